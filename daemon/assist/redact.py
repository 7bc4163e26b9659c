"""Redaction: personal numbers masked in transcripts before they are published or stored.

Runs on every partial and final transcript, so it is one pass of precompiled regular
expressions and no I/O. ``Redactor(RedactionConfig(...)).redact(text)`` returns the
masked text and the spans (offsets in the ORIGINAL text) of what was masked.

What counts as a digit
    numerals (ASCII and full-width), Chinese 零〇一二三四五六七八九, 幺 (1, as read in phone
    numbers) and 两 (2), and English words zero/oh/one..nine, with "double five" and
    "triple seven" standing for 55 and 777. An 18-character Chinese ID may end in X
    (written X/x, or spoken 叉).

What makes one number (a "run")
    digits next to each other, or separated by up to 3 of: spaces, commas (, ，、), dots,
    hyphens/dashes, slashes, brackets. So ASR's "138, 0013, 8000", "一三八 零零一三 八零零零",
    "four one five, five five five, two six seven one" and "138 零零一三 8000" are each
    one run. Any other word or mark (":" too, so clock times stay apart) ends a run; two
    numbers read out with only a comma between them therefore merge into one run (still
    masked, as "digits" when too long for a kind). A leading "oh" followed by
    punctuation is an interjection ("Oh, ...") and is left out.

Not personal, never masked
    amounts (a currency sign or word, a % sign, 1,250,000 grouping, 12.50 decimals),
    dates (2023-11-23, 23/11/2023, 2023年 / 二零二三年), runs shorter than 4 digits, and
    runs shorter than ``min_digits`` with no cue word nearby.

Kinds, first that applies
    policy     the run follows a policy prefix (``policy_prefixes``; letters may be spelled
               "P L") and has >= 4 digits; the prefix is inside the span but not masked
    cue        a cue word within 40 characters before the run (nearest first) or 20 after,
               and no other candidate number between, whose kind's length fits:
               phone (phone, mobile, cell, call me, 手机, 电话 ...) 7-15 digits;
               id_number (ID, identity, passport, SSN, 身份证, 证件) 15 or 18;
               bank_card (card, account, 银行卡, 卡号, 账号 ...) 13-19;
               policy (policy, 保单) 5-20
    shape      18 characters ending in X, or 18 digits with a valid GB 11643 check digit:
               id_number; 13-19 digits passing Luhn: bank_card; "+" before the run,
               Chinese mobile 1[3-9]xxxxxxxxx (or 86 + it), 10-digit NANP [2-9]xxxxxxxxx,
               or 10-12 digits starting 0 (area code): phone
    partial    a cue fits except that the run is shorter than the kind's range (a partial
               transcript, or a digit the ASR lost): the cue's kind, for >= 4 digits,
               unless it is just a year (19xx / 20xx)
    digits     any other run of >= ``min_digits`` digits
A run is masked only if its kind is listed in ``kinds`` (so ``kinds: [phone]`` leaves
card numbers alone: that is the site's choice).

Mask
    one mask character per digit: a numeral or Chinese digit becomes one mask, a spoken
    word becomes one mask per digit it stands for ("four one five" -> "* * *", "double
    five" -> "**"), an ID's X becomes one mask; separators and any policy prefix stay.
    So the shape (digit count and grouping) is kept, no digit or digit word survives, and
    the length of the spoken words (which would tell "one" from "three") is not leaked.
    Spoken words shrink, so the masked text may be shorter than the original: spans are
    offsets in the original. ``keep_last`` leaves the last digits of each masked run
    visible (never more than half the run's digits).

Partial transcripts
    each is masked on its own, so while a number is still being spoken its first digits
    show until the run is long enough: up to 3 after a cue word, up to min_digits - 1
    without one. No single transcript holds a longer run of a number.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, field_validator

from ..schema import Strict
from .numbers import EN_DIGIT, EN_DIGIT_WORDS, GAP_SRC, ZH_DIGIT, ZH_DIGIT_CLASS

Kind = Literal["phone", "id_number", "bank_card", "policy", "digits"]
ALL_KINDS: tuple[str, ...] = ("phone", "id_number", "bank_card", "policy", "digits")


class RedactionConfig(Strict):
    enabled: bool = Field(True, description="mask personal numbers in transcripts before they are published or stored")
    kinds: list[Kind] = Field(
        default_factory=lambda: list(ALL_KINDS),
        description="kinds of number to mask: phone, id_number, bank_card, policy, digits (any other long run)")
    min_digits: int = Field(6, ge=4, le=32, description="a run of this many digits (written or spoken) with no other kind is masked as 'digits'")
    mask: str = Field("*", description="the character each masked digit becomes (one character, not a letter or digit)")
    keep_last: int = Field(0, ge=0, le=4, description="trailing digits of each masked number left visible (at most half the number), e.g. 4 for 'card ending 1234'")
    policy_prefixes: list[str] = Field(
        default_factory=lambda: ["PL", "POL", "保单号"],
        description="text that starts a policy number, e.g. PL for PL-2023-884512; letters may be spoken apart ('P L')")

    @field_validator("kinds")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("each kind may be listed once")
        return v

    @field_validator("mask")
    @classmethod
    def _mask(cls, v: str) -> str:
        if len(v) != 1 or v.isalnum() or v.isspace():
            raise ValueError(f"mask {v!r} must be one character that is not a letter, digit or space (e.g. '*')")
        return v

    @field_validator("policy_prefixes")
    @classmethod
    def _prefixes(cls, v: list[str]) -> list[str]:
        for p in v:
            if not p.strip() or any(c.isdigit() or c in _ZH_VALUE for c in p):
                raise ValueError(f"policy prefix {p!r} must be non-empty and hold no digits")
        return v


@dataclass(frozen=True, slots=True)
class Span:
    kind: str
    start: int   # offsets in the original text
    end: int


@dataclass(frozen=True, slots=True)
class Redacted:
    text: str
    spans: list[Span]


# the digit tables are shared with after-call extraction (numbers.py reads numbers back)
_EN_VALUE, _ZH_VALUE, _EN_WORD, _ZH_CLASS = EN_DIGIT, ZH_DIGIT, EN_DIGIT_WORDS, ZH_DIGIT_CLASS



def _unit_src(named: bool) -> str:
    def g(name: str) -> str:
        return f"?P<{name}>" if named else "?:"
    return (rf"({g('num')}[0-9０-９])"
            rf"|({g('zh')}[{_ZH_CLASS}])"
            rf"|(?<![A-Za-z])({g('mul')}double|triple)\s+({g('md')}{_EN_WORD}|[0-9])(?![A-Za-z0-9])"
            rf"|(?<![A-Za-z])({g('en')}{_EN_WORD})(?![A-Za-z])"
            rf"|(?<![A-Za-z])({g('x')}[Xx叉])(?![A-Za-z])")


_GAP_SRC = GAP_SRC
_UNIT = re.compile(_unit_src(True), re.I)
# a whole run in one C-level match, so text with only stray 一/两/one costs no Python loop
_RUN = re.compile(rf"(?:{_unit_src(False)})(?:{_GAP_SRC}(?:{_unit_src(False)}))*", re.I)
_VALUE = {**_EN_VALUE, **_ZH_VALUE, **{str(i): str(i) for i in range(10)},
          **{chr(0xFF10 + i): str(i) for i in range(10)}, "x": "X", "叉": "X"}
_PUNCT_GAP = re.compile(r".*[^\s]", re.S)

_MONTH = r"(?:0?[1-9]|1[0-2])"
_DAY = r"(?:0?[1-9]|[12][0-9]|3[01])"
# amounts and dates: the digits inside are never part of a run
_NOT_PERSONAL = re.compile(
    r"[$¥￥€£]\s?[0-9][0-9,]*(?:\.[0-9]+)?"
    # a grouping right after "555-" is the end of a phone number as Whisper writes it ("415-555-4,111")
    r"|(?<![0-9,.])(?<![0-9][-–])[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?(?![0-9])"
    r"|(?<![0-9.,])[0-9]+(?:\.[0-9]+)?\s?(?:%|％|元|块|美元|(?:percent|dollars?|bucks|yuan|rmb|usd|euros?|pounds?|cents?)(?![A-Za-z]))"
    rf"|(?<![0-9])[0-9]{{4}}[-/.年]{_MONTH}[-/.月]{_DAY}日?(?![0-9])"
    rf"|(?<![0-9]){_DAY}[/.]{_DAY}[/.](?:[0-9]{{4}}|[0-9]{{2}})(?![0-9])"
    rf"|(?<![0-9{_ZH_CLASS}])(?:[0-9]{{4}}|[{_ZH_CLASS}]{{4}})\s?年"
    r"|(?<![0-9.])[0-9]+\.[0-9]{1,2}(?![0-9.])",
    re.I)

# what makes an amount or a date an amount or a date whatever surrounds it
_MARKED = re.compile(r"[$¥￥€£%％元块年月日]|percent|dollar|buck|yuan|rmb|usd|euro|pound|cent", re.I)
_GAP_THEN_UNIT = re.compile(rf"{_GAP_SRC}(?:{_unit_src(False)})", re.I)
_UNIT_THEN_GAP = re.compile(rf"(?:{_unit_src(False)}){_GAP_SRC}\Z", re.I)
_AMOUNT_MAX_DIGITS = 9     # a bare grouped number this long is a number read out, not an amount


def _blocks(text: str) -> list[tuple[int, int]]:
    """Spans of amounts and dates, whose digits are never part of a run. A bare one (no
    currency, unit or date mark: "4,111", "41.11", "4111/11/11") that another digit group
    follows or precedes across a run's separators, or that holds more digits than any
    amount said on a call, is a number read out in groups (Whisper writes a card's first
    group as "4,111, 1111, ..."): it stays in the run."""
    out = []
    for m in _NOT_PERSONAL.finditer(text):
        s, e = m.span()
        if not _MARKED.search(m.group()):
            digits = sum(c.isdigit() for c in m.group())
            if digits > _AMOUNT_MAX_DIGITS or _GAP_THEN_UNIT.match(text, e) \
                    or _UNIT_THEN_GAP.search(text, max(0, s - 24), s):
                continue
        out.append((s, e))
    return out


_CUES = {
    # id before bank_card so "ID card" is an ID cue
    "id_number": r"id card|id number|identity|passport|social security|ssn|id|i\.d\.|身份证|证件",
    "phone": r"phone|cellphone|mobile|cell|telephone|tel|call me|reach me|text me|whatsapp|手机|电话|座机|固话|联系方式",
    "bank_card": r"credit card|debit card|bank card|card|account|visa|mastercard|银行卡|信用卡|储蓄卡|借记卡|卡号|账号|账户",
    "policy": r"policy|保单|保险单",
}
_CUE = re.compile(
    "|".join(rf"(?<![A-Za-z])(?P<{k}>{v})s?(?![A-Za-z])" for k, v in _CUES.items()), re.I)
# (lo, hi): digits a cued run of that kind has
_RANGE = {"phone": (7, 15), "id_number": (15, 18), "bank_card": (13, 19), "policy": (5, 20)}
_MIN_RUN = 4        # below this nothing is masked, cue or not
_CUE_BEFORE, _CUE_AFTER = 40, 20
_MAY_BLOCK = re.compile(r"[0-9年]")   # skips the amount/date scan for most text
_YEAR = re.compile(r"(?:19|20)[0-9]{2}")
_CN_MOBILE = re.compile(r"(?:86)?1[3-9][0-9]{9}")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def _luhn(d: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(d)):
        n = ord(c) - 48
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _cn_id(d: str) -> bool:
    if len(d) != 18 or not d[:17].isdigit():
        return False
    s = sum(int(c) * w for c, w in zip(d, _ID_WEIGHTS))
    return "10X98765432"[s % 11] == d[17].upper()


def _times(m: re.Match) -> str:
    """Value of "double five" / "triple 7"."""
    d = m.group("md").lower()
    d = _EN_VALUE.get(d, d)
    return d * (2 if m.group("mul").lower() == "double" else 3)


def _prefix_pattern(p: str) -> str:
    if p.isascii() and p.isalpha():
        # spoken apart: "P L", "p. l."
        return r"(?<![A-Za-z])" + r"[\s.]*".join(re.escape(c) for c in p)
    return re.escape(p)


class Redactor:
    """Masks personal numbers in transcript text; see the module docstring for the rules."""

    def __init__(self, cfg: RedactionConfig):
        self.cfg = cfg
        self._kinds = frozenset(cfg.kinds)
        prefixes = sorted(cfg.policy_prefixes, key=len, reverse=True)
        self._prefix = re.compile(
            r"(?:" + "|".join(_prefix_pattern(p) for p in prefixes) + r")[\s\-_.:：#＃/]{0,3}\Z",
            re.I) if prefixes else None

    def redact(self, text: str) -> Redacted:
        if not self.cfg.enabled or not text:
            return Redacted(text, [])
        runs = self._runs(text)
        if not runs:
            return Redacted(text, [])
        out: list[str] = []
        spans: list[Span] = []
        pos = 0
        prev_end = 0
        for i, run in enumerate(runs):
            end = run[-1][1]
            nxt = runs[i + 1][0][0] if i + 1 < len(runs) else len(text)
            kind, span_start = self._classify(text, run, prev_end, nxt)
            prev_end = end
            if kind is None or kind not in self._kinds:
                continue
            spans.append(Span(kind, span_start, end))
            keep = self._kept(run)
            for j, (s, e, val) in enumerate(run):
                if j >= keep:
                    break
                out.append(text[pos:s])
                out.append(self.cfg.mask * len(val))
                pos = e
        out.append(text[pos:])
        return Redacted("".join(out), spans)

    def _runs(self, text: str) -> list[list[tuple[int, int, str]]]:
        """Candidate numbers: lists of (start, end, digits) units, >= _MIN_RUN digits."""
        runs: list[list[tuple[int, int, str]]] = []
        blocked: list[tuple[int, int]] | None = None
        cur: list[tuple[int, int, str]] = []
        n = 0   # digits in cur, X excluded

        def close() -> None:
            nonlocal cur, n
            # "Oh, ..." is an interjection, not a zero
            while cur and text[cur[0][0]:cur[0][1]].lower() == "oh" and len(cur) > 1 \
                    and _PUNCT_GAP.match(text, cur[0][1], cur[1][0]):
                cur.pop(0)
                n -= 1
            if n >= _MIN_RUN:
                runs.append(cur)
            cur, n = [], 0

        for rm in _RUN.finditer(text):
            r0, r1 = rm.span()
            if r1 - r0 < _MIN_RUN:   # each digit takes at least one character
                continue
            if blocked is None:
                blocked = _blocks(text) if _MAY_BLOCK.search(text) else []
            b, nb = 0, len(blocked)
            # inside rm every gap is a separator; only amounts, dates and X split it
            for m in _UNIT.finditer(text, r0, r1):
                s, e = m.span()
                if nb:
                    while b < nb and blocked[b][1] <= s:
                        b += 1
                    if b < nb and blocked[b][0] < e:
                        close()
                        continue
                val = _VALUE.get(m.group().lower()) or _times(m)
                if val == "X":
                    # only the check character of an 18-character ID
                    if n == 17:
                        cur.append((s, e, val))
                    close()
                    continue
                cur.append((s, e, val))
                n += len(val)
            close()
        return runs

    def _classify(self, text: str, run, prev_end: int, next_start: int) -> tuple[str | None, int]:
        start, end = run[0][0], run[-1][1]
        d = "".join(v for _, _, v in run)
        n = len(d)
        if self._prefix is not None:
            pm = self._prefix.search(text, max(prev_end, start - 24), start)
            if pm:
                return "policy", pm.start()
        cues = [m.lastgroup for m in _CUE.finditer(text, max(prev_end, start - _CUE_BEFORE), start)][::-1]
        cues += [m.lastgroup for m in _CUE.finditer(text, end, min(next_start, end + _CUE_AFTER))]
        for k in cues:
            lo, hi = _RANGE[k]
            if (n in (15, 18)) if k == "id_number" else (lo <= n <= hi):
                return k, start
        if d.endswith("X") or _cn_id(d):
            return "id_number", start
        if 13 <= n <= 19 and _luhn(d):
            return "bank_card", start
        if 7 <= n <= 15 and text[:start].rstrip().endswith(("+", "＋")):
            return "phone", start
        if _CN_MOBILE.fullmatch(d) or (n == 10 and d[0] in "23456789") or (10 <= n <= 12 and d[0] == "0"):
            return "phone", start
        for k in cues:
            if n < _RANGE[k][1] and not (n == 4 and _YEAR.fullmatch(d)):
                return k, start
        if n >= self.cfg.min_digits:
            return "digits", start
        return None, start

    def _kept(self, run) -> int:
        """Index of the first unit left visible by keep_last (len(run) = none)."""
        total = sum(len(v) for _, _, v in run)
        budget = min(self.cfg.keep_last, total // 2)
        j = len(run)
        while j > 0 and len(run[j - 1][2]) <= budget:
            budget -= len(run[j - 1][2])
            j -= 1
        return j

