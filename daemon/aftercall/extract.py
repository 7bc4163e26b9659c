"""Ticket fields from what was said (both channels, unredacted) and what the call did.

A value is found, not guessed. Numbers (ids, phones), amounts and dates are read back
from every way they are said or written (numbers.py, dates.py) and belong to a field
only when one of the field's cue phrases is next to them: before them in the same
utterance ("the policy is H M 5 5 3 0 2"), right after them ("... that's my policy
number"), or in the other side's question just before ("can I have your policy
number?"). When several fields' cues (or a `not_cues` phrase) are near one value, the
nearest wins. The speaker who usually states the field (customer for a policy number)
adds confidence, the other side's read-back of the same value adds more, a correction
("sorry, I mean ...") makes the later value win. Enum fields add up evidence for each
option: the flow branch, IVR intent, steps done (the flow's, and the call type's branch
steps found again at call end), articles pushed, offers made, the agent saying something
is done in any wording (`agent_done`), and the options' phrases (a Chinese phrase also
without the particle 了); once the call type is decided, the words of options that file
as another type no longer count. Promises are read with every future form as "will".
Anything below the field's `min_confidence` stays empty.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Callable

from ..assist.match import Heard, PhraseSet
from ..assist.numbers import EN_DIGIT, ZH_DIGIT, Amount, DigitRun, amounts, bare_numbers, digit_runs
from ..text import has_cjk
from .dates import DateHit, find_dates
from .forms import TicketField, TicketTemplate, phrases_of, text_in
from .record import CallRecord, Step, Utterance

# cue strength -> confidence: 0.45 + 0.35 * strength, then speaker, read-back, corrections
CUE_NEAR_UNITS = 6          # a cue this close before a value is as strong as it gets
CUE_FAR_UNITS = 16          # ... farther than this it does not count
CJK_UNITS = 2.5             # Chinese counts characters: a word is about this many units
PHRASE_WEIGHT = 0.55        # one phrase of an enum option heard: enough on its own
ASKED_BACK = 2              # a question this many utterances back may ask for the value
CORRECT_BACK = 3            # a correction fixes a value said at most this many utterances before
READBACK_WINDOW = 4         # utterances either side where the other side's repeat confirms
_COMMON_PREFIX = {"I", "A", "OK", "AND", "SO", "NO", "YES", "THE"}
_CORRECTION = re.compile(r"(?<![a-z])(sorry|i mean|actually|correction|i meant|let me correct)(?![a-z])|不对|说错|应该是|更正|我是说",
                         re.I)
_AFFIRM = re.compile(r"^\W*(?:(?:oh|ah|um|uhm|uh|er|erm|well|okay|ok|right)\W+)*(yes|yeah|yep|correct|that'?s (right|correct|it)|right|exactly|对|是的|没错|对的|嗯|是)", re.I)
_JOINED = re.compile(r"\s*(and|but|so|then|she|he|they|it|并且|然后|他|她|他们)(?![a-z])", re.I)
_SENTENCE = re.compile(r"[^.!?。！？]+[.!?。！？]*")
_CLAUSE = re.compile(r"[^,;，；]+[,;，；]*")
_CLAUSE_ZH = re.compile(r"[^,;，；.!?。！？]+[,;，；.!?。！？]*")
_LEAD_FILLER = re.compile(r"^\s*(?:(?:okay|ok|alright|all right|right|perfect|great|sure|so|and|well|yes|no|also|then|"
                          r"好的|好|嗯|那|行|对|那么|然后|另外)[\s,，.。!！]+)+", re.I)


@dataclass
class Said:
    """One utterance with what it holds, computed on first use."""

    i: int
    u: Utterance
    read: Callable[[str], Heard] = Heard.of
    _runs: list[DigitRun] | None = None
    _amounts: list[Amount] | None = None
    _bare: list[Amount] | None = None
    _dates: dict[str, list[DateHit]] = field(default_factory=dict)
    _heard: Heard | None = None

    @property
    def heard(self) -> Heard:
        if self._heard is None:
            self._heard = self.read(self.u.text)
        return self._heard

    def runs(self) -> list[DigitRun]:
        if self._runs is None:
            self._runs = digit_runs(self.u.text, 4)
        return self._runs

    def amounts(self) -> list[Amount]:
        if self._amounts is None:
            self._amounts = amounts(self.u.text)
        return self._amounts

    def bare(self) -> list[Amount]:
        if self._bare is None:
            taken = self.amounts()
            self._bare = [b for b in bare_numbers(self.u.text)
                          if not any(a.start < b.end and b.start < a.end for a in taken)]
        return self._bare

    def dates(self, today: date, tense: str) -> list[DateHit]:
        if tense not in self._dates:
            self._dates[tense] = find_dates(self.u.text, today, tense)   # type: ignore[arg-type]
        return self._dates[tense]


@dataclass
class Mention:
    """A value said once, for one field."""

    value: Any
    key: str                    # values with the same key are the same value
    said: Said
    start: int
    end: int
    strength: float             # cue strength 0..1
    how: str                    # before | after | asked | shape
    confidence: float = 0.0


@dataclass
class FieldValue:
    value: Any = None
    evidence: str | None = None
    t: float | None = None
    confidence: float = 0.0
    speaker: str | None = None
    due: str | None = None           # promise fields: by when (ISO date)

    def payload(self) -> dict[str, Any]:
        out = {"value": self.value, "evidence": self.evidence, "t": None if self.t is None else round(self.t, 2),
               "confidence": round(self.confidence, 2), "speaker": self.speaker}
        if self.due is not None:
            out["due"] = self.due
        return out


# Matching drops apostrophes ("I'll" is heard as "ill"): a phrase written one way also
# matches the other ("you will receive" = "you'll receive", "I've cancelled" = "I have cancelled").
_CONTRACTIONS = [("i have", "ive"), ("i will", "ill"), ("you will", "youll"), ("we will", "well"),
                 ("they will", "theyll"), ("she will", "shell"), ("he will", "hell"), ("it will", "itll"),
                 ("i am", "im"), ("you are", "youre"), ("we have", "weve"), ("you have", "youve"),
                 ("they have", "theyve"), ("it is", "its"), ("that is", "thats"), ("there is", "theres"),
                 ("do not", "dont"), ("does not", "doesnt"), ("did not", "didnt"), ("cannot", "cant"),
                 ("will not", "wont"), ("is not", "isnt"), ("have not", "havent"), ("has not", "hasnt"),
                 ("i would", "id"), ("we would", "wed"), ("you would", "youd")]
_WORDS_OF = [(re.compile(rf"(?<![a-z]){re.escape(a)}(?![a-z])"), b) for a, b in _CONTRACTIONS]
_CONTRACTED = [(re.compile(rf"(?<![a-z]){re.escape(b)}(?![a-z])"), a) for a, b in _CONTRACTIONS]


def with_contractions(phrases: list[str]) -> list[str]:
    out = []
    for p in phrases:
        q = p.lower().replace("'", "").replace("’", "")
        out.append(p)
        for pat, repl in (*_WORDS_OF, *_CONTRACTED):
            if pat.search(q):
                out.append(pat.sub(repl, q))
    return list(dict.fromkeys(out))


# A promise is said in many future forms ("I'll post", "the adjuster's going to ring you",
# "we're gonna send"): for promise cues, text and cues alike are read with each of them as "will".
_FUTURE = [(re.compile(r"\b([a-z]+)['’]ll\b", re.I), r"\1 will"),
           (re.compile(r"\b([a-z]+)['’](?:s|re|m)\s+(?:going\s+to|gonna)\b", re.I), r"\1 will"),
           (re.compile(r"\b(?:is|are|am|be)\s+(?:going\s+to|gonna)\b", re.I), "will"),
           (re.compile(r"\b(?:gonna|shall)\b", re.I), "will")]


# ... and the commitment itself: someone who will do what agents promise
_WILL_DO = re.compile(
    r"\b(?:i|we|he|she|they|someone|somebody|(?:the|our|an?|your|my) [a-z]+(?: [a-z]+)?) will "
    r"(?:also |then |personally |now |definitely |be able to )?"
    r"(?:call|ring|phone|contact|e-?mail|text|message|write|send|post|visit|come|inspect|assess|arrange|book|"
    r"review|process|pay|refund|transfer|chase|update|confirm|follow up|get back|be in touch|reach out|look into|"
    r"collect|deliver|issue|return|repair|fix|replace|credit|reimburse)\b")


def future_as_will(text: str) -> str:
    for pat, repl in _FUTURE:
        text = pat.sub(repl, text)
    return text


# Something the agent says is done, in any wording: a completion verb after I/we, after a
# form of "be" or "has been", or opening the clause ("Payment accepted", "All done"); in
# Chinese 已(经)...了/好/成功/生效/到账, ...好了, ...成功. Not when asked, negated, conditional
# or still to come.
_DONE_VERBS = ("updated|changed|processed|cancell?ed|canceled|added|removed|applied|approved|paid|refunded|registered|"
               "logged|raised|opened|booked|arranged|sorted|done|accepted|received|sent|issued|renewed|reinstated|"
               "credited|reversed|fixed|corrected|amended|submitted|filed|completed|scheduled|cleared|settled|"
               "transferred|reduced|lowered|switched|activated|set up|gone through|put through|taken care of|"
               "posted|emailed|lodged|authori[sz]ed|repaired|replaced|released|restored|extended|waived")
_DONE_EN = re.compile(
    rf"\b(?:i|we)(?:\s*'ve|\s+have|ve)?\s+(?:just\s+|now\s+|already\s+|also\s+|gone\s+ahead\s+and\s+)?(?:{_DONE_VERBS})\b"
    rf"|\b(?:has|have|had|'s)\s+(?:now\s+|just\s+|already\s+|also\s+)?been\s+(?:\w+\s+)?(?:{_DONE_VERBS})\b"
    rf"|\b(?:is|are|was|were|'s|'re)\s+(?:now\s+|all\s+|fully\s+|already\s+|been\s+)?(?:{_DONE_VERBS})\b"
    rf"|^\W*(?:\w+\s+){{0,2}}?(?:{_DONE_VERBS})\b"
    r"|\b(?:all|that is|thats|that's|it's|its) (?:done|sorted|set|gone through)\b")
_NOT_DONE_EN = re.compile(r"\b(?:not|never|no longer|yet|cannot|can't|cant|unable|if|once|when|after|as soon as|until|"
                          r"before|will|would|should|could|might|may|need to|needs to|have to|has to|going to|want|"
                          r"wanted|like)\b|n't\b|\?\s*$|^\W*(?:has|have|had|is|are|was|were|did|do|does|can|could)\b")
_DONE_ZH = re.compile(r"已(?:经)?[^，。！？,.!?；;]{0,12}?(?:了|好|完成|成功|生效|到账|通过)|"
                      r"(?:办|改|弄|处理|设置|加|换|退|交|补|扣|登记|更新|安排|提交|修改|取消|申请|录入|备注|调整|开通)好了|"
                      r"(?:扣款|支付|缴费|付款|交费|提交|办理|变更|批改|退保|注销|转账|开通|登记|更新|修改|退款)(?:已经)?成功|"
                      r"生效了")
_NOT_DONE_ZH = re.compile(r"没|未|不|还要|需要|如果|等|[吗么呢？?]\s*$")


def says_done_clauses(text: str) -> list[str]:
    """The clauses of the utterance that say something is done (see _DONE_EN and _DONE_ZH)."""
    t = text.replace("’", "'")
    zh = has_cjk(t)
    out = []
    for m in _CLAUSE_ZH.finditer(t):         # clauses of sentences: "I've registered the claim. Your claim number is"
        clause = m.group(0).strip()
        if not clause:
            continue
        if zh:
            if _DONE_ZH.search(clause) and not _NOT_DONE_ZH.search(clause):
                out.append(clause)
        else:
            low = clause.lower()
            if _DONE_EN.search(low) and not _NOT_DONE_EN.search(low):
                out.append(clause)
    return out


def says_done(text: str) -> bool:
    """The utterance says something is done (see _DONE_EN and _DONE_ZH)."""
    return bool(says_done_clauses(text))


# Chinese puts the aspect particle 了 between a verb and its object (改了名字, 换了车, 卖了车):
# a phrase written without it (改名字) is matched on the text without it too.
_ASPECT = re.compile(r"(?<=[\u4e00-\u9fff])了(?=[\u4e00-\u9fff])(?!解)")


def without_aspect(text: str) -> str:
    return _ASPECT.sub("", text)


def _phrase_set(phrases: list[str]) -> PhraseSet[str] | None:
    return PhraseSet((v, p) for p in phrases for v in with_contractions([p])) if phrases else None


def _phrase_set_items(pairs: list[tuple[Any, str]]) -> PhraseSet | None:
    return PhraseSet((v, item) for item, p in pairs for v in with_contractions([p])) if pairs else None


class CompiledField:
    def __init__(self, f: TicketField):
        self.f = f
        self.cues = _phrase_set(phrases_of(f.cues))
        self.not_cues = _phrase_set(phrases_of(f.not_cues))
        # promise cues in every future form (matched on text read the same way)
        self.future_cues = _phrase_set(list(dict.fromkeys(future_as_will(p) for p in phrases_of(f.cues)))) \
            if f.source == "promise" else None
        self.pattern = re.compile(f.pattern) if f.pattern else None
        self.options = list(f.options)
        # every option's phrases in one set, matched once per utterance: items (option index, phrase)
        self.option_phrases = _phrase_set_items([((k, p), p) for k, o in enumerate(f.options)
                                                 for p in phrases_of(o.phrases)])

    @property
    def family(self) -> str:
        """Values of one family compete for cues (a policy number vs a claim number)."""
        return {"id": "digits", "phone": "digits", "number": "digits"}.get(self.f.type, self.f.type)


class CompiledTemplate:
    def __init__(self, t: TicketTemplate):
        self.t = t
        self.fields = [CompiledField(f) for f in t.fields]


# ---------------- cue distance ----------------

def _cue_before(ps: PhraseSet | None, text: str) -> int | None:
    """Units between the last cue in `text` and its end (None: no cue)."""
    if ps is None or not text.strip():
        return None
    h = Heard.of(text)
    found = ps.find(h)
    if not found:
        return None
    return min(len(h.units) - (f.start + f.length) for f in found)


def _cue_after(ps: PhraseSet | None, text: str) -> int | None:
    if ps is None or not text.strip():
        return None
    found = ps.find(text)
    return min(f.start for f in found) if found else None


def _strength_before(d: int | None, scale: float = 1.0) -> float:
    if d is None or d > CUE_FAR_UNITS * scale:
        return 0.0
    return 1.0 if d <= CUE_NEAR_UNITS * scale else 0.7


def _strength_after(d: int | None, scale: float = 1.0) -> float:
    if d is None or d > CUE_NEAR_UNITS * scale:
        return 0.0
    return 0.7


# ---------------- the extractor ----------------

class Extraction:
    """One call's ticket: run `fill()`; `values` holds a FieldValue per field."""

    def __init__(self, ct: CompiledTemplate, record: CallRecord, redact: Callable[[str], str], lang: str | None,
                 call_type: str | None = None, call_type_by: str | None = None, steps: list[Step] | None = None,
                 heard: Callable[[str], Heard] = Heard.of):
        """`steps`: the flow steps done that speak for this call (default: the record's)."""
        self.ct = ct
        self.call_type = call_type
        self.call_type_by = call_type_by
        fl = record.flow
        # the flow's branch speaks for the call only when it files as the call type chosen (with
        # no call type, only when the IVR or the customer's words chose it, not the agent's first step)
        self.branch_ok = fl is None or not fl.branch or fl.branch in ct.t.calls.branches or \
            (ct.t.default and fl.branch_by in ("ivr", "customer"))
        self.steps_done = steps if steps is not None else [st for st in (fl.steps if fl else ()) if st.done]
        self.record = record
        self.redact = redact
        self.lang = lang
        self.today = record.call_date
        self.said = [Said(i, u, heard)
                     for i, u in enumerate(sorted(record.utterances, key=lambda u: (u.t_start, u.t_end)))]
        self.values: dict[str, FieldValue] = {}
        self._cand_memo: dict[tuple, list] = {}
        self._strength_memo: dict[tuple, tuple[float, str]] = {}

    # -- values said --
    def _candidates(self, cf: CompiledField, s: Said) -> list[tuple[Any, str, int, int]]:
        """(value, key, start, end) of values of the field's type in one utterance."""
        key = (id(cf), s.i)
        got = self._cand_memo.get(key)
        if got is None:
            got = self._cand_memo[key] = self._find_candidates(cf, s)
        return got

    def _find_candidates(self, cf: CompiledField, s: Said) -> list[tuple[Any, str, int, int]]:
        f = cf.f
        out = []
        if f.type in ("id", "phone", "number"):
            lo, hi = f.digits or ((7, 15) if f.type == "phone" else (4, 20))
            blocked = [(a.start, a.end) for a in s.amounts()]
            for r in s.runs():
                if any(a < r.end and r.start < b for a, b in blocked):
                    continue
                if not lo <= len(r.digits) <= hi:
                    continue
                if f.type == "id":
                    code = self._id_code(cf, r)
                    if code is None:
                        continue
                    out.append((code, r.digits, r.prefix_start if r.prefix and code.startswith(r.prefix) else r.start,
                                r.end))
                elif f.type == "phone":
                    out.append((r.digits, r.digits, r.start, r.end))
                else:
                    out.append((int(r.digits), r.digits, r.start, r.end))
        elif f.type == "money":
            for a in [*s.amounts(), *s.bare()]:
                v = int(a.value) if float(a.value).is_integer() else round(a.value, 2)
                out.append((v, str(v), a.start, a.end))
        elif f.type == "date":
            for h in s.dates(self.today, f.tense):
                if h.kind != "day":
                    continue
                # an incident is not years ago, a promise not a year ahead
                if (self.today - h.value).days > 3 * 366 or (h.value - self.today).days > 366:
                    continue
                out.append((h.value.isoformat(), h.value.isoformat(), h.start, h.end))
        return out

    def _id_code(self, cf: CompiledField, r: DigitRun) -> str | None:
        pat = cf.pattern
        if pat is None:
            return r.code if r.prefix and r.prefix not in _COMMON_PREFIX else r.digits
        if r.prefix and pat.fullmatch(r.code):
            return r.code
        if (not r.prefix or r.prefix in _COMMON_PREFIX) and pat.fullmatch(r.digits):
            return r.digits
        return None

    def _strength(self, cf: CompiledField, s: Said, start: int, end: int, seg_a: int, seg_b: int,
                  asked: bool) -> tuple[float, str]:
        key = (id(cf), s.i, start, end, seg_a, seg_b, asked)
        got = self._strength_memo.get(key)
        if got is None:
            got = self._strength_memo[key] = self._find_strength(cf, s, start, end, seg_a, seg_b, asked)
        return got

    def _find_strength(self, cf: CompiledField, s: Said, start: int, end: int, seg_a: int, seg_b: int,
                       asked: bool) -> tuple[float, str]:
        text = s.u.text
        k = CJK_UNITS if has_cjk(text) else 1.0
        before = _cue_before(cf.cues, text[seg_a:start])
        after = _cue_after(cf.cues, text[end:seg_b])
        not_before = _cue_before(cf.not_cues, text[seg_a:start])
        not_after = _cue_after(cf.not_cues, text[end:seg_b])
        sb, sa = _strength_before(before, k), _strength_after(after, k)
        if sb == 1.0 and cf.f.type == "date" and k > 1.0:
            # Chinese: a cue that ends an earlier clause tells an earlier event (住院了，前天刚做完手术)
            cut = max(text.rfind(p, seg_a, start) for p in "，。；！？,;")
            if cut >= seg_a and _cue_before(cf.cues, text[cut + 1:start]) is None:
                sb = 0.7
        # a not-cue nearer than the cue: the value is something else's
        if not_before is not None and (before is None or not_before < before) and not_before <= CUE_FAR_UNITS * k:
            sb = 0.0
        if not_after is not None and (after is None or not_after < after) and not_after <= CUE_NEAR_UNITS * k:
            sa = 0.0
        if not_before is not None and not_before <= 3 * k and sb < 1.0:
            return 0.0, "not"
        best, how = max((sb, "before"), (sa, "after"))
        if best < 0.8 and cf.f.type == "date":
            # a date in the sentence that tells the incident ("... was stolen on Saturday")
            sent = _sentence_at(text, start)
            if cf.cues is not None and cf.cues.find(sent) and not (cf.not_cues is not None and cf.not_cues.find(sent)):
                best, how = 0.8, "sentence"
        if best == 0.0 and asked:
            return 0.75, "asked"
        return best, how

    def _asked(self, cf: CompiledField, s: Said) -> bool:
        """The other side asked for this field just before (its cue in their last words)."""
        if cf.cues is None:
            return False
        for back in range(1, ASKED_BACK + 1):
            j = s.i - back
            if j < 0:
                break
            prev = self.said[j]
            if prev.u.speaker == s.u.speaker:
                continue
            hits = cf.cues.find(prev.heard)
            if hits:
                # the last thing asked: a not-cue after the cue takes it away ("... and your date of birth?")
                return True
            break
        return False

    def _said_field(self, cf: CompiledField, others: list[CompiledField]) -> FieldValue:
        f = cf.f
        mentions: list[Mention] = []
        for s in self.said:
            cands = self._candidates(cf, s)
            if not cands:
                continue
            asked = self._asked(cf, s)
            # segment bounds: a cue belongs to the nearest value of the same family
            spans = sorted({(a, b) for o in [cf, *others] if o.family == cf.family
                            for _, _, a, b in self._candidates(o, s)})
            bare = {(x.start, x.end) for x in s.bare()} if f.type == "money" else set()
            prev: Mention | None = None
            for k, (value, key, a, b) in enumerate(cands):
                seg_a = max((e for (x, e) in spans if e <= a), default=0)
                seg_b = min((x for (x, e) in spans if x >= b), default=len(s.u.text))
                first = all(x >= a for (x, _) in spans)
                st, how = self._strength(cf, s, a, b, seg_a, seg_b, asked and first)
                fixed = self._corrects(cf, others, mentions, s, key, a)
                if fixed is not None and fixed.strength > st:
                    st, how = fixed.strength, "correction"
                if prev is not None and _CORRECTION.search(s.u.text[prev.end:a]) and len(s.u.text[prev.end:a]) < 30:
                    # "H M 3 3 1 0 9, sorry, I mean 3 3 1 0 8": the correction takes the first one's place
                    mentions.remove(prev)
                    st, how = max(st, prev.strength), "correction"
                if how == "not":
                    continue
                if (a, b) in bare and (how != "before" or st < 1.0):
                    continue            # a number without a currency is money only right after a money cue
                if st == 0.0 and f.type == "date" and f.tense == "past" and s.u.speaker == f.speaker and \
                        self._early(s):
                    st, how = 0.4, "early"      # a past date in the customer's first words: what happened when
                if st == 0.0:
                    st, how = (0.3 if cf.pattern is not None and re.search(r"[A-Z]", str(value)) else 0.0), "shape"
                # another field's cue nearer: it is theirs
                if st > 0 and self._claimed_by_other(cf, others, s, a, b, seg_a, seg_b, st, asked and first):
                    continue
                if st > 0:
                    prev = Mention(value, key, s, a, b, st, how)
                    mentions.append(prev)
        if not mentions:
            return FieldValue()
        return self._decide(cf, mentions)

    def _corrects(self, cf: CompiledField, others: list[CompiledField], mentions: list[Mention], s: Said, key: str,
                  a: int) -> Mention | None:
        """The mention a value at `a` in `s` corrects, if any: the field's value said just
        before (within CORRECT_BACK utterances), and either `s` says it is a correction before
        the value ("Sorry, no, I misread it, ... six oh nine") or the earlier value's speaker
        corrected it after saying it and this is the other side reading the fixed value back
        ("... zero one six two. Oh, no wait, sorry, it ends two six" -> "So ... zero one two
        six"). Numbers: the same count of digits, other digits."""
        if not mentions:
            return None
        m = mentions[-1]
        if m.key == key or s.i - m.said.i > CORRECT_BACK or s.i == m.said.i:
            return None
        if cf.family == "digits" and len(m.key) != len(key):
            return None
        # the talk has moved on to another field ("... what's the best number?"): no correction of this one
        rivals = [o.cues for o in others if o.family == cf.family and o.cues is not None]
        if any(ps.find(x.heard) for x in self.said[m.said.i + 1:s.i] for ps in rivals) or \
                any(ps.find(s.u.text[:a]) for ps in rivals if s.u.text[:a].strip()):
            return None
        if _CORRECTION.search(s.u.text[:a]):
            return m
        if s.u.speaker != m.said.u.speaker and _CORRECTION.search(m.said.u.text[m.end:]) and \
                not any(x.u.speaker == s.u.speaker for x in self.said[m.said.i + 1:s.i]):
            return m
        return None

    def _early(self, s: Said) -> bool:
        """One of the first three utterances of its speaker."""
        k = sum(1 for x in self.said[:s.i] if x.u.speaker == s.u.speaker)
        return k < 3

    def _claimed_by_other(self, cf, others, s, a, b, seg_a, seg_b, st, asked) -> bool:
        for o in others:
            if o is cf or o.family != cf.family or o.cues is None:
                continue
            if not any(x == a and y == b for _, _, x, y in self._candidates(o, s)):
                # the other field can not hold this value: its cue may still be nearer ("claim number" before C77140)
                pass
            ost, ohow = self._strength(o, s, a, b, seg_a, seg_b, asked and self._asked(o, s))
            if ost > st or (ost == st and ohow == "before" and self._nearer(o, cf, s.u.text[seg_a:a])):
                return True
        return False

    @staticmethod
    def _nearer(o: CompiledField, cf: CompiledField, before: str) -> bool:
        do, dc = _cue_before(o.cues, before), _cue_before(cf.cues, before)
        return do is not None and (dc is None or do < dc)

    def _decide(self, cf: CompiledField, mentions: list[Mention]) -> FieldValue:
        f = cf.f
        for m in mentions:
            c = 0.45 + 0.35 * m.strength if m.how != "shape" else 0.45
            if f.speaker != "any":
                c += 0.1 if m.said.u.speaker == f.speaker else -0.1
            if m.how == "correction":
                c += 0.1
            m.confidence = c
        # the same value said by the other side (read-back) confirms it
        by_key: dict[str, list[Mention]] = {}
        for m in mentions:
            by_key.setdefault(m.key, []).append(m)
        scored = []
        for key, ms in by_key.items():
            best = max(ms, key=lambda m: (m.confidence, m.said.i))
            conf = best.confidence + 0.03 * (len(ms) - 1)
            note = ""
            if self._read_back(cf, best):
                conf += 0.15
                note = "read back"
            elif best.said.u.speaker != f.speaker and f.speaker != "any" and self._affirmed(best):
                conf += 0.1
                note = "confirmed"
            scored.append((min(conf, 0.99), best, note))
        scored.sort(key=lambda x: (x[0], x[1].said.i), reverse=True)
        conf, best, note = scored[0]
        if len(scored) > 1:
            # a correction later in the call wins over what it corrects
            later = [x for x in scored[1:] if x[1].said.i > best.said.i and _CORRECTION.search(x[1].said.u.text)]
            if later and later[0][0] >= conf - 0.15:
                conf, best, note = later[0]
            elif scored[1][0] > conf - 0.1:
                conf -= 0.15
        if conf < f.min_confidence:
            return FieldValue()
        value = best.value
        # prefer the prefixed spelling when any mention had one
        if f.type == "id":
            longer = [m.value for m in by_key[best.key] if len(str(m.value)) > len(str(value))]
            value = longer[0] if longer else value
        text = best.said.u.text
        if f.personal or f.type in ("phone", "id"):
            # the value's own digits never reach the evidence, whatever the redactor makes of them
            text = text[:best.start] + _mask_span(text[best.start:best.end]) + text[best.end:]
        return FieldValue(value, self.redact(text), best.said.u.t_start, conf, best.said.u.speaker)

    def _read_back(self, cf: CompiledField, m: Mention) -> bool:
        lo, hi = m.said.i - READBACK_WINDOW, m.said.i + READBACK_WINDOW
        for s in self.said[max(0, lo):hi + 1]:
            if s.u.speaker == m.said.u.speaker:
                continue
            if any(key == m.key for _, key, _, _ in self._candidates(cf, s)):
                return True
            if cf.f.type in ("id", "phone") and m.key in "".join(r.digits for r in s.runs()):
                return True
        return False

    def _affirmed(self, m: Mention) -> bool:
        nxt = next((s for s in self.said[m.said.i + 1:] if s.u.speaker != m.said.u.speaker), None)
        return nxt is not None and nxt.i <= m.said.i + 2 and bool(_AFFIRM.search(nxt.u.text))

    # -- enum --
    def _enum_field(self, cf: CompiledField) -> FieldValue:
        f, rec = cf.f, self.record
        results = []
        heard: dict[int, list] = {}          # option index -> [(phrase, said)] in call order
        if cf.option_phrases is not None:
            for s in self.said:
                hits = _longest(cf.option_phrases.find(s.heard))
                bare = without_aspect(s.u.text)
                if bare != s.u.text:        # 改了名字 also as 改名字
                    seen = {id(h.item) for h in hits}
                    hits += [h for h in _longest(cf.option_phrases.find(bare)) if id(h.item) not in seen]
                for hit in hits:
                    heard.setdefault(hit.item[0], []).append((hit.item[1], s))
        # once the call type is decided, the words and IVR intent that point to another call
        # type's option have been weighed already (a cancellation that mentions "my renewal")
        decided = self.call_type is not None and any(self.call_type in o.call_types for o in cf.options)
        for oi, opt in enumerate(cf.options):
            ev: list[tuple[float, str, float | None, str | None]] = []     # (weight, evidence, t, speaker)
            fl = rec.flow
            other_type = decided and bool(opt.call_types) and self.call_type not in opt.call_types
            if fl is not None and fl.branch and fl.branch in opt.branches and self.branch_ok:
                ev.append((0.9, f"flow branch: {fl.branch_title or fl.branch}"
                                + (f" (chosen by {fl.branch_by})" if fl.branch_by else ""), None, None))
            if self.call_type and self.call_type in opt.call_types and not ev:
                ev.append((0.65 if self.call_type_by == "customer" else 0.8,
                           f"call type: {self.call_type} ({self.call_type_by})", None, None))
            if rec.ivr_intent and rec.ivr_intent in opt.ivr and not other_type:
                ev.append((0.85, f"IVR intent: {rec.ivr_intent}", 0.0, None))
            for st in self.steps_done:
                if st.id in opt.steps:
                    ev.append((0.8, f"flow step done: {st.title}", st.t, "agent"))
            for p in rec.knowledge:
                if p.topic in opt.knowledge:
                    ev.append((0.6, f"article pushed: {p.title}", p.t, None))
            for o in rec.offers:
                if o.made_t is not None and o.id in opt.offers:
                    ev.append((0.7, f"offer made: {o.title}", o.made_t, "agent"))
            if opt.agent_done:
                done = next((x for x in self.said if x.u.speaker == "agent" and says_done(x.u.text)), None)
                if done is not None:
                    ev.append((PHRASE_WEIGHT, done.u.text, done.u.t_start, "agent"))
            for name in opt.agent_gave:
                v = self.values.get(name)
                if v is not None and v.value is not None and v.speaker == "agent":
                    ev.append((0.75, v.evidence or name, v.t, "agent"))
            who = opt.speaker or f.speaker
            seen: set[str] = set()
            for phrase, s in heard.get(oi, ()) if not other_type else ():
                if (who != "any" and s.u.speaker != who) or phrase in seen:
                    continue
                seen.add(phrase)
                ev.append((PHRASE_WEIGHT, s.u.text, s.u.t_start, s.u.speaker))
            if not ev:
                results.append((0.0, opt, None))
                continue
            miss = 1.0
            for w, *_ in ev:
                miss *= 1.0 - w
            top = max(ev, key=lambda e: e[0])
            results.append((1.0 - miss, opt, top))
        chosen = None
        if f.pick == "first":
            for score, opt, top in results:
                if score >= f.min_confidence:
                    chosen = (score, opt, top)
                    break
        else:
            ranked = sorted(results, key=lambda r: -r[0])
            if ranked and ranked[0][0] > 0:
                s1 = ranked[0][0]
                s2 = ranked[1][0] if len(ranked) > 1 else 0.0
                conf = s1 - 0.5 * s2
                if conf >= f.min_confidence:
                    chosen = (conf, ranked[0][1], ranked[0][2])
        if chosen is None:
            if f.otherwise is not None:
                return FieldValue(f.otherwise, "no option had enough evidence", None, f.min_confidence, None)
            return FieldValue()
        score, opt, top = chosen
        evidence = self.redact(top[1]) if top[3] is not None or top[2] is not None else top[1]
        return FieldValue(opt.value, evidence, top[2], min(score, 0.99), top[3])

    # -- text --
    def _promise(self, cf: CompiledField) -> FieldValue:
        """What the agent committed to and by when: the clause with a commitment cue (or a
        deadline: "within five working days", 三个工作日内), not one saying what is done already
        or asking (not_cues). The latest such clause with a date wins, else the latest."""
        f = cf.f
        best: tuple | None = None
        for s in self.said:
            if f.speaker != "any" and s.u.speaker != f.speaker:
                continue
            all_dates = s.dates(self.today, "future")
            if not self._promised(cf, s.u.text, s.heard) and not any(h.kind == "deadline" for h in all_dates):
                continue
            text_all = s.u.text
            for sm in _SENTENCE.finditer(text_all):
                spans = [(sm.start() + m.start(), sm.start() + m.end()) for m in _CLAUSE.finditer(sm.group(0))]
                clauses = [text_all[a:b] for a, b in spans]
                in_clause = [[h for h in all_dates if a <= h.start < b] for a, b in spans]
                for k, clause in enumerate(clauses):
                    if cf.not_cues is not None and cf.not_cues.find(clause):
                        continue
                    dates = in_clause[k]
                    cued = self._promised(cf, clause)
                    if not cued and not any(h.kind == "deadline" for h in dates):
                        continue
                    text = clause
                    if k > 0 and _JOINED.match(clause):
                        text = clauses[k - 1] + clause      # "..., and she will call you": who she is
                    short = len(clause.strip()) < (8 if has_cjk(clause) else 25)
                    if (short or not dates) and k + 1 < len(clauses) and not (
                            cf.not_cues is not None and cf.not_cues.find(clauses[k + 1])):
                        more = in_clause[k + 1]
                        if short or more:
                            text, dates = text + clauses[k + 1], dates + more
                    due = _due(dates, self.today)
                    score = (0.6 if cued else 0.55) + (0.2 if due else 0.0)
                    cand = (score, s.i, s, text, due)
                    if best is None or (cand[0], cand[1]) >= (best[0], best[1]):
                        best = cand
        if best is None:
            return FieldValue()
        score, _, s, clause, due = best
        value = self.redact(_tidy(clause))
        return FieldValue(value, self.redact(s.u.text), s.u.t_start, score, s.u.speaker,
                          due.isoformat() if due else None)

    @staticmethod
    def _promised(cf: CompiledField, text: str, heard: Heard | None = None) -> bool:
        """A commitment cue in `text`, as said or with its future forms read as "will", or
        (English) someone who will do one of the things promised ("a surveyor will visit")."""
        if cf.cues is not None and cf.cues.find(heard if heard is not None else text):
            return True
        if cf.future_cues is None:
            return False
        will = future_as_will(text)
        if will != text and cf.future_cues.find(will):
            return True
        return not has_cjk(text) and bool(_WILL_DO.search(will.lower().replace("’", "'")))

    def _said_text(self, cf: CompiledField) -> FieldValue:
        f = cf.f
        for s in self.said:
            if f.speaker != "any" and s.u.speaker != f.speaker:
                continue
            for sm in _SENTENCE.finditer(s.u.text):
                if cf.cues is not None and cf.cues.find(sm.group(0)):
                    return FieldValue(self.redact(_tidy(sm.group(0))), self.redact(s.u.text), s.u.t_start, 0.6,
                                      s.u.speaker)
        return FieldValue()

    def _from_call(self, cf: CompiledField) -> FieldValue:
        rec, src = self.record, cf.f.source
        if src == "branch":
            fl = rec.flow
            if fl is None or not fl.branch:
                return FieldValue()
            return FieldValue(fl.branch_title or fl.branch, f"flow branch ({fl.branch_by or 'flow'})", None, 0.9, None)
        if src == "steps":
            done = [s for s in (rec.flow.steps if rec.flow else ()) if s.done]
            if not done:
                return FieldValue()
            return FieldValue("; ".join(s.title for s in done), "flow steps done", done[0].t, 0.9, "agent")
        if src == "knowledge":
            if not rec.knowledge:
                return FieldValue()
            return FieldValue("; ".join(p.title for p in rec.knowledge), "articles pushed", rec.knowledge[0].t, 0.9, None)
        if src == "offers":
            made = [o for o in rec.offers if o.made_t is not None]
            if not made:
                return FieldValue()
            return FieldValue("; ".join(o.title for o in made), "offers made", made[0].made_t, 0.9, "agent")
        return FieldValue()

    def fill(self) -> dict[str, FieldValue]:
        fields = self.ct.fields
        # values said first: enum options may rest on them (agent_gave)
        for cf in sorted(fields, key=lambda c: c.f.type == "enum"):
            f = cf.f
            if f.source == "promise":
                v = self._promise(cf)
            elif f.source != "said":
                v = self._from_call(cf)
            elif f.type == "enum":
                v = self._enum_field(cf)
            elif f.type == "text":
                v = self._said_text(cf)
            else:
                v = self._said_field(cf, [o for o in fields if o is not cf and o.f.source == "said"])
            self.values[f.name] = v
        return {cf.f.name: self.values[cf.f.name] for cf in fields}


def _longest(hits: list) -> list:
    """Enum option phrases heard in one utterance, without those inside a longer phrase of
    another option (车 of auto inside 自行车 of other, "door" inside "front door")."""
    if len(hits) < 2:
        return hits
    return [h for h in hits if not any(g.item[0] != h.item[0] and g.length > h.length and g.start <= h.start and
                                       h.start + h.length <= g.start + g.length for g in hits)]


def _due(dates: list[DateHit], today: date) -> date | None:
    """By when: a deadline said ("within two days", "by Friday") first, else the latest
    date after today ("today ... on Monday" -> Monday), else today."""
    dates = [h for h in dates if h.value >= today]
    if not dates:
        return None
    deadlines = [h for h in dates if h.kind == "deadline"]
    if deadlines:
        return deadlines[-1].value
    later = [h for h in dates if h.value > today]
    return later[-1].value if later else dates[-1].value


def _sentence_at(text: str, pos: int) -> str:
    for m in _SENTENCE.finditer(text):
        if m.start() <= pos < m.end():
            return m.group(0)
    return text


def _clause_with(sentence: str, cues: PhraseSet) -> str:
    """The part of a long sentence that holds the cue (and the clause after it)."""
    if len(sentence) <= 140:
        return sentence
    clauses = [m.group(0) for m in _CLAUSE.finditer(sentence)]
    for k, c in enumerate(clauses):
        if cues.find(c):
            return "".join(clauses[k:k + 2])
    return sentence[:140]


def _tidy(text: str) -> str:
    t = _LEAD_FILLER.sub("", text.strip())
    t = t.strip().rstrip(",;，；")
    return t[:1].upper() + t[1:] if t[:1].isascii() else t


_DIGIT_WORD = re.compile(r"(?<![A-Za-z])(?:double|triple)\s+(?:" + "|".join(EN_DIGIT) + r"|[0-9])(?![A-Za-z])|(?<![A-Za-z])(?:"
                         + "|".join(EN_DIGIT) + r")(?![A-Za-z])|[0-9０-９" + "".join(ZH_DIGIT) + "]", re.I)


def _mask_span(text: str) -> str:
    return _DIGIT_WORD.sub("*", text)


def mask(value: Any, ch: str = "*") -> Any:
    """A personal value with every digit (and letter after the first ones) masked."""
    if value is None:
        return None
    return re.sub(r"[0-9０-９]", ch, str(value))


def ticket_payload(ct: CompiledTemplate, values: dict[str, FieldValue], lang: str | None,
                   mask_personal: bool, mask_char: str = "*") -> dict[str, Any]:
    fields = {}
    for cf in ct.fields:
        v = values.get(cf.f.name) or FieldValue()
        p = v.payload()
        if mask_personal and cf.f.personal and p["value"] is not None:
            p["value"] = mask(p["value"], mask_char)
            p["masked"] = True
        fields[cf.f.name] = p
    return {"template": ct.t.id, "title": text_in(ct.t.title, lang), "fields": fields,
            "missing_required": [cf.f.name for cf in ct.fields
                                 if cf.f.required and (values.get(cf.f.name) or FieldValue()).value is None]}
