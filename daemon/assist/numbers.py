"""English numbers written in digits, said in words: "1990" -> "nineteen ninety".

Whisper writes what it hears as digits ("21st of June 1990", "$500", "5%"), while word
lists, flow steps and offers are written as people say them ("nineteen ninety", "five
hundred dollars"). Matching turns digits into the words most people would say, so both
spellings meet: four-digit numbers that read as years are said as years (1979 ->
nineteen seventy nine, 2024 -> twenty twenty four, 2005 -> two thousand five), other
numbers as cardinals without "and" (3200 -> three thousand two hundred), ordinals as
ordinals (21st -> twenty first). Pure, no I/O.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen " \
        "seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((1_000_000_000, "billion"), (1_000_000, "million"), (1000, "thousand"), (100, "hundred"))
_ORDINAL = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth", "nine": "ninth",
            "twelve": "twelfth"}
_NUMBER = re.compile(r"^(\d+)(st|nd|rd|th)?$")
MAX_DIGITS = 12       # longer runs are identifiers, read digit by digit


def cardinal(n: int) -> list[str]:
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        return [_TENS[n // 10]] + (cardinal(n % 10) if n % 10 else [])
    for size, name in _SCALES:
        if n >= size:
            return cardinal(n // size) + [name] + (cardinal(n % size) if n % size else [])
    raise AssertionError(n)


def _year(n: int) -> list[str] | None:
    """1100-1999 and 2010-2099 as two pairs ("nineteen oh five"); round hundreds as "nineteen hundred"."""
    if not (1100 <= n <= 1999 or 2010 <= n <= 2099):
        return None
    hi, lo = divmod(n, 100)
    if lo == 0:
        return cardinal(hi) + ["hundred"]
    return cardinal(hi) + (["oh"] + cardinal(lo) if lo < 10 else cardinal(lo))


def ordinal(words: list[str]) -> list[str]:
    last = words[-1]
    if last in _ORDINAL:
        last = _ORDINAL[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return words[:-1] + [last]


def spoken(token: str) -> list[str] | None:
    """The words for a digit token ("1990", "21st", "007"), or None when it is not one.
    Runs with leading zeros or longer than MAX_DIGITS are said digit by digit."""
    m = _NUMBER.match(token)
    if not m:
        return None
    digits, suffix = m.groups()
    if (len(digits) > 1 and digits[0] == "0") or len(digits) > MAX_DIGITS:
        return [_ONES[int(d)] for d in digits] if not suffix else None
    n = int(digits)
    if suffix:
        return ordinal(cardinal(n))
    return (len(digits) == 4 and _year(n)) or cardinal(n)


_GROUPED = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_MONEY = re.compile(r"[$£€]\s?(\d[\d,]*(?:\.\d+)?)")
_CURRENCY = {"$": "dollars", "£": "pounds", "€": "euros"}
_PERCENT = re.compile(r"(\d)\s?%")


def words_for_symbols(text: str) -> str:
    """Thousands separators out, currency and percent signs to the words said with them:
    "$3,200" -> "3200 dollars", "5%" -> "5 percent"."""
    text = _GROUPED.sub("", text)
    text = _MONEY.sub(lambda m: f"{m.group(1)} {_CURRENCY[m.group(0)[0]]}", text)
    return _PERCENT.sub(r"\1 percent", text)


# ---- numbers as people say them: digit by digit, in groups, in words, in Chinese ----
# Shared by redaction (redact.py masks personal numbers) and after-call extraction
# (aftercall/ reads policy, phone and claim numbers, amounts and dates back as values).

EN_DIGIT = {"zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4",
            "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9"}
ZH_DIGIT = {"零": "0", "〇": "0", "一": "1", "幺": "1", "二": "2", "两": "2", "三": "3",
            "四": "4", "五": "5", "六": "6", "七": "7", "八": "8", "九": "9"}
EN_DIGIT_WORDS = "zero|oh|one|two|three|four|five|six|seven|eight|nine"
ZH_DIGIT_CLASS = "零〇一幺二两三四五六七八九"
# separators that may sit inside one number said or written in groups: "138, 0013, 8000"
GAP_SRC = r"[\s,，、.．\-–—/()（）]{0,3}"

_TEEN = {w: 10 + i for i, w in enumerate("ten eleven twelve thirteen fourteen fifteen sixteen seventeen "
                                           "eighteen nineteen".split())}
_TENS_V = {w: 10 * (i + 2) for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())}
_EN_ONES_V = {w: int(d) for w, d in EN_DIGIT.items() if w != "oh"}
_EN_SCALE_V = {"hundred": 100, "thousand": 1000, "million": 1_000_000, "billion": 1_000_000_000}


def _run_unit_src() -> str:
    w = EN_DIGIT_WORDS
    teens = "|".join(_TEEN)
    tens = "|".join(_TENS_V)
    return (r"(?P<num>[0-9０-９]+(?:,[0-9]{3})*)"
            rf"|(?P<zh>[{ZH_DIGIT_CLASS}])"
            rf"|(?<![A-Za-z])(?P<mul>double|triple)\s+(?P<md>{w}|[0-9])(?![A-Za-z0-9])"
            rf"|(?<![A-Za-z])(?P<tens>{tens})(?:[\s-]+(?P<tu>one|two|three|four|five|six|seven|eight|nine))?(?![A-Za-z])"
            rf"|(?<![A-Za-z])(?P<teen>{teens})(?![A-Za-z])"
            rf"|(?<![A-Za-z])(?P<en>{w})(?![A-Za-z])"
            r"|(?<![A-Za-z])(?P<hun>hundred|thousand)(?![A-Za-z])")


_RUN_UNIT = re.compile(_run_unit_src(), re.I)
_RUN_GAP = re.compile(GAP_SRC + r"\Z")
_SENTENCE_END = re.compile(r"[.!?]\s+\Z")
_FULLWIDTH = str.maketrans({chr(0xFF10 + i): str(i) for i in range(10)})
# a spelled or written letter prefix just before a number: "H M 5 5 3 0 2", "PL-2023-...", "C 7 7 1 4 0"
_PREFIX = re.compile(r"(?:(?<![A-Za-z])(?P<block>[A-Z]{1,4})|(?P<spelled>(?:(?<![A-Za-z])[A-Z]\.?[\s\-]+){1,3}[A-Z]))"
                     r"[\s\-#:：.,，]*\Z")


@dataclass(frozen=True, slots=True)
class DigitRun:
    """One number said or written digit by digit (or in groups): its digits as numerals."""

    start: int              # offsets in the text (the prefix is not inside)
    end: int
    digits: str
    prefix: str = ""        # capital letters just before it ("HM", "PL", "C"), "" when none
    prefix_start: int = -1
    spoken: bool = False    # any digit said in words
    units: int = 0          # how many pieces it was said in (1 = one written block)

    @property
    def code(self) -> str:
        return self.prefix + self.digits


def _unit_digits(m: re.Match) -> str | None:
    g = m.lastgroup
    s = m.group(0).lower()
    if g == "num":
        return s.translate(_FULLWIDTH).replace(",", "")
    if g == "zh":
        return ZH_DIGIT[s]
    if g in ("mul", "md"):
        d = m.group("md").lower()
        d = EN_DIGIT.get(d, d)
        return d * (2 if m.group("mul").lower() == "double" else 3)
    if g in ("tens", "tu"):
        v = _TENS_V[m.group("tens").lower()] + (_EN_ONES_V[m.group("tu").lower()] if m.group("tu") else 0)
        return str(v)
    if g == "teen":
        return str(_TEEN[s])
    if g == "en":
        return EN_DIGIT[s]
    return None     # hundred / thousand: only inside a run


def digit_runs(text: str, min_digits: int = 3) -> list[DigitRun]:
    """Numbers read out in `text`, digit by digit or in groups, in numerals, English words
    ("double five", "twenty one"), Chinese (幺, 两, 零/〇) or mixed; "hundred"/"thousand"
    right after a digit add its zeros ("eight hundred" -> 800). Pieces separated by up to
    3 spaces, commas, dots, hyphens or slashes are one run. A capital-letter prefix right
    before the run (written "HM", spelled "H M") is reported apart. Amount and date
    context is not judged here: the caller decides what a run is."""
    out: list[DigitRun] = []
    cur: list[tuple[int, int, str, bool]] = []

    def close() -> None:
        nonlocal cur
        # a leading "oh" followed by punctuation is an interjection ("Oh, ...")
        while len(cur) > 1 and text[cur[0][0]:cur[0][1]].lower() == "oh" and \
                re.search(r"[^\s]", text[cur[0][1]:cur[1][0]]):
            cur.pop(0)
        # ... and a trailing "Oh" after a sentence's end ("... six two. Oh, no wait")
        while len(cur) > 1 and text[cur[-1][0]:cur[-1][1]].lower() == "oh" and \
                re.search(r"[.!?]", text[cur[-2][1]:cur[-1][0]]):
            cur.pop()
        digits = "".join(u[2] for u in cur)
        if cur and len(digits) >= min_digits:
            s = cur[0][0]
            pm = _PREFIX.search(text, max(0, s - 12), s)
            prefix, pstart = "", -1
            if pm:
                prefix = re.sub(r"[^A-Z]", "", pm.group(0))
                pstart = pm.start()
            out.append(DigitRun(s, cur[-1][1], digits, prefix, pstart, any(u[3] for u in cur), len(cur)))
        cur = []

    for m in _RUN_UNIT.finditer(text):
        s, e = m.span()
        g = m.lastgroup
        if cur and (not _RUN_GAP.match(text, cur[-1][1], s) or
                    (_SENTENCE_END.match(text, cur[-1][1], s) and text[s].isupper())):
            close()         # "... six oh nine. Eight two three ...": a new sentence, a new number
        if g == "hun":
            if cur and len(cur[-1][2]) == 1 and cur[-1][3]:
                zeros = "00" if m.group(0).lower() == "hundred" else "000"
                cur[-1] = (cur[-1][0], e, cur[-1][2] + zeros, True)
            else:
                close()
            continue
        d = _unit_digits(m)
        if d is None:
            continue
        cur.append((s, e, d, g not in ("num", "zh")))
    close()
    return out


# ---- cardinals in words: "five hundred and ten", "nineteen ninety", 三百二十六, 一万五 ----

def en_cardinal(words: list[str], i: int = 0) -> tuple[float, int] | None:
    """The number English words spell from words[i] on: (value, index after it), or None.
    "a hundred", "two thousand three hundred and fifty", "twenty five", "nineteen ninety"
    (said like a year), "four point five", digits too ("3", "3,200")."""
    total, cur, j, n = 0, 0, i, len(words)
    seen = False
    last = ""          # kind of the last word: one | teen | tens | scale
    while j < n:
        w = words[j].lower()
        if re.fullmatch(r"[0-9][0-9,]*(?:\.[0-9]+)?", w) and not seen:
            v = float(w.replace(",", ""))
            return (int(v) if v.is_integer() else v), j + 1
        if w in _EN_ONES_V and last not in ("one", "teen"):
            cur += _EN_ONES_V[w]
            last = "one"
        elif w in _TEEN and last in ("", "scale"):
            cur += _TEEN[w]
            last = "teen"
        elif w in _TENS_V and last in ("", "scale"):
            cur += _TENS_V[w]
            last = "tens"
        elif w in _TENS_V | _TEEN and last in ("teen", "tens") and cur < 100 and total == 0:
            cur = cur * 100 + (_TENS_V.get(w) or _TEEN[w])       # "nineteen ninety", "twenty twenty"
            last = "tens" if w in _TENS_V else "teen"
        elif w in _EN_SCALE_V and (seen or w == "hundred" and j > i and words[j - 1].lower() == "a"):
            scale = _EN_SCALE_V[w]
            if scale == 100:
                cur = (cur or 1) * 100
            else:
                total += (cur or 1) * scale
                cur = 0
            last = "scale"
        elif w == "a" and not seen and j + 1 < n and words[j + 1].lower() in _EN_SCALE_V:
            cur = 1
            last = "one"
            j += 1
            seen = True
            continue
        elif w == "and" and seen and last == "scale" and j + 1 < n and \
                words[j + 1].lower() in {**_EN_ONES_V, **_TEEN, **_TENS_V}:
            pass
        elif w == "point" and seen and j + 1 < n and words[j + 1].lower() in _EN_ONES_V:
            k = j + 1
            frac = ""
            while k < n and words[k].lower() in _EN_ONES_V:
                frac += str(_EN_ONES_V[words[k].lower()])
                k += 1
            return total + cur + float("0." + frac), k
        else:
            break
        seen = True
        j += 1
    if not seen:
        return None
    return total + cur, j


_ZH_NUM_V = {**{c: int(d) for c, d in ZH_DIGIT.items()}, **{str(i): i for i in range(10)}}
_ZH_UNIT_V = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
_ZH_BIG_V = {"万": 10_000, "萬": 10_000, "亿": 100_000_000}
ZH_NUMBER_CHARS = "零〇一幺二两三四五六七八九十拾百佰千仟万萬亿点0123456789"
ZH_NUMBER = re.compile(rf"[{ZH_NUMBER_CHARS}]+")


def zh_number(s: str) -> float | None:
    """A Chinese numeral (三百二十六, 两千五, 一万五, 十二, 三点五, 3万, 二零二六) as a number.
    A digit after the last unit without a unit of its own takes the next lower unit
    (两千五 = 2500, 一万五 = 15000); digits only are read as a plain numeral."""
    s = s.strip()
    if not s or any(c not in ZH_NUMBER_CHARS for c in s):
        return None
    if "点" in s:
        whole, _, frac = s.partition("点")
        w = zh_number(whole) if whole else 0
        if w is None or not frac or any(c not in _ZH_NUM_V for c in frac):
            return None
        return w + float("0." + "".join(str(_ZH_NUM_V[c]) for c in frac))
    if all(c in _ZH_NUM_V for c in s):
        return int("".join(str(_ZH_NUM_V[c]) for c in s))
    total, section, num, last_unit = 0, 0, None, 0
    zero = False           # a 零 since the last unit: the digit after it is a plain one (一百零五)
    prev_digit = False
    for c in s:
        if c in _ZH_NUM_V:
            d = _ZH_NUM_V[c]
            if d == 0:
                zero = True
            else:
                num = num * 10 + d if num is not None and prev_digit else d
            prev_digit = True
            continue
        prev_digit = False
        if c in _ZH_UNIT_V:
            u = _ZH_UNIT_V[c]
            section += (1 if num is None else num) * u
            num, last_unit, zero = None, u, False
        elif c in _ZH_BIG_V:
            u = _ZH_BIG_V[c]
            section += num or 0
            total += (section or 1) * u
            section, num, last_unit, zero = 0, None, u, False
    if num is not None:
        # 两千五: a trailing digit right after a unit takes the next lower unit
        section += num * (last_unit // 10 if last_unit >= 100 and not zero else 1)
    return total + section


# ---- amounts: "$500", "five hundred dollars", "ninety four dollars and twenty cents", 三百二十六元 ----

@dataclass(frozen=True, slots=True)
class Amount:
    start: int
    end: int
    value: float
    currency: str           # USD, GBP, EUR, CNY, or "" when only "bucks"/"块" said it


_SIGN_CUR = {"$": "USD", "£": "GBP", "€": "EUR", "¥": "CNY", "￥": "CNY"}
_WORD_CUR = {"dollar": "USD", "dollars": "USD", "bucks": "USD", "buck": "USD", "pound": "GBP", "pounds": "GBP",
             "euro": "EUR", "euros": "EUR", "yuan": "CNY", "rmb": "CNY", "元": "CNY", "块": "CNY", "块钱": "CNY",
             "美元": "USD", "美金": "USD", "欧元": "EUR", "英镑": "GBP", "人民币": "CNY"}
_SIGN_AMOUNT = re.compile(r"(?P<sign>[$£€¥￥])\s?(?P<n>[0-9][0-9,]*(?:\.[0-9]+)?)(?:\s?(?P<k>k|thousand|million)(?![A-Za-z]))?", re.I)
_DIGIT_AMOUNT = re.compile(r"(?<![0-9.,])(?P<n>[0-9][0-9,]*(?:\.[0-9]+)?)\s?(?P<cur>dollars?|bucks?|pounds?|euros?|yuan|rmb"
                           r"|块钱|块|元|美元|美金|欧元|英镑)(?![A-Za-z])", re.I)
_ZH_AMOUNT = re.compile(rf"(?P<n>[{ZH_NUMBER_CHARS}]+)(?P<cur>块钱|块|元|美元|美金|欧元|英镑)(?:(?P<jiao>[{ZH_NUMBER_CHARS}])(?:毛|角)?)?")
_WORD = re.compile(r"[A-Za-z]+|[0-9][0-9,]*(?:\.[0-9]+)?")
_CENTS = re.compile(r"\s+and\s+(?P<c>[a-z\s-]+?)\s+cents?(?![A-Za-z])", re.I)


def amounts(text: str) -> list[Amount]:
    """Money said or written in `text` (English and Chinese), in order."""
    found: list[Amount] = []
    taken: list[tuple[int, int]] = []

    def add(s: int, e: int, v: float, cur: str) -> None:
        if any(a < e and s < b for a, b in taken):
            return
        taken.append((s, e))
        found.append(Amount(s, e, float(v), cur))

    for m in _SIGN_AMOUNT.finditer(text):
        v = float(m.group("n").replace(",", ""))
        k = (m.group("k") or "").lower()
        v *= 1000 if k in ("k", "thousand") else 1_000_000 if k == "million" else 1
        add(m.start(), m.end(), v, _SIGN_CUR[m.group("sign")])
    for m in _ZH_AMOUNT.finditer(text):
        v = zh_number(m.group("n"))
        if v is None:
            continue
        if m.group("jiao"):
            j = zh_number(m.group("jiao"))
            v += (j or 0) / 10
        add(m.start(), m.end(), v, _WORD_CUR.get(m.group("cur"), ""))
    for m in _DIGIT_AMOUNT.finditer(text):
        add(m.start(), m.end(), float(m.group("n").replace(",", "")), _WORD_CUR.get(m.group("cur").lower(), ""))
    # English words: "<cardinal> dollars [and <cardinal> cents]"
    words = list(_WORD.finditer(text))
    low = [w.group(0).lower() for w in words]
    for k, w in enumerate(low):
        if w not in _WORD_CUR:
            continue
        start = None
        for j in range(k - 1, max(-1, k - 10), -1):     # the earliest word whose number ends right here
            got = en_cardinal(low, j)
            if got is not None and got[1] == k:
                start = j
        if start is None:
            continue
        value = en_cardinal(low, start)[0]
        end = words[k].end()
        cm = _CENTS.match(text, end)
        if cm:
            cw = cm.group("c").split()
            got = en_cardinal(cw, 0)
            if got is not None and got[1] == len(cw) and got[0] < 100:
                value += got[0] / 100
                end = cm.end()
        else:
            cents = _spoken_cents(low, k + 1, words, end, text)      # "a hundred and twelve dollars forty"
            if cents is not None:
                value += cents[0] / 100
                end = words[cents[1] - 1].end()
        add(words[start].start(), end, value, _WORD_CUR[w])
    return sorted(found, key=lambda a: a.start)


# words after which a number is no price's cents ("ten dollars twenty times", "forty dollars fifty percent")
_NOT_CENTS = frozenset("""dollar dollars pound pounds euro euros cents cent pence percent hundred thousand million
times time days day weeks week months month years year minutes hours miles""".split())


def _spoken_cents(low: list[str], j: int, words: list, after: int, text: str) -> tuple[int, int] | None:
    """Cents said as a bare two-digit number right after the whole part ("dollars forty",
    "eighty seven fifty"): (cents, index after them), or None."""
    if j >= len(low) or (low[j] not in _TENS_V and low[j] not in _TEEN):
        return None
    if re.search(r"[^\s]", text[after:words[j].start()]):
        return None                     # "... dollars. Forty of them ..."
    got = en_cardinal(low, j)
    if got is None or not 10 <= got[0] <= 99 or got[1] > j + 2:
        return None
    if got[1] < len(low) and (low[got[1]] in _NOT_CENTS or low[got[1]] in _EN_BARE_WORDS):
        return None
    return int(got[0]), got[1]


_ZH_BARE = re.compile(rf"[{ZH_NUMBER_CHARS}]*[十拾百佰千仟万萬][{ZH_NUMBER_CHARS}]*")
_EN_BARE_WORDS = set(_EN_ONES_V) | set(_TEEN) | set(_TENS_V) | {"hundred", "thousand", "million", "and", "a"}


def bare_numbers(text: str) -> list[Amount]:
    """Numbers said without a currency ("three thousand one hundred and fifty", 三千一百五,
    "1,240"), as Amounts with currency "": a money field takes them only right after its cue."""
    out: list[Amount] = []
    for m in _ZH_BARE.finditer(text):
        v = zh_number(m.group(0))
        if v is not None and v >= 10:
            out.append(Amount(m.start(), m.end(), float(v), ""))
    for m in re.finditer(r"(?<![0-9.,])[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?(?![0-9])|(?<![0-9.,])[0-9]+\.[0-9]{2}(?![0-9])", text):
        out.append(Amount(m.start(), m.end(), float(m.group(0).replace(",", "")), ""))
    words = list(_WORD.finditer(text))
    low = [w.group(0).lower() for w in words]
    k = 0
    while k < len(low):
        if low[k] in _EN_BARE_WORDS and low[k] not in ("and", "a"):
            got = en_cardinal(low, k)
            if got is not None and got[1] > k + 1 and any(w in ("hundred", "thousand", "million") for w in low[k:got[1]]):
                value, end = float(got[0]), got[1]
                cents = _spoken_cents(low, end, words, words[end - 1].end(), text) if value < 10_000 else None
                if cents is not None:               # "two hundred and forty three eighteen"
                    value, end = value + cents[0] / 100, cents[1]
                out.append(Amount(words[k].start(), words[end - 1].end(), value, ""))
                k = end
                continue
            if got is not None and got[1] == k + 2 and low[k] in _TENS_V and low[k + 1] in _EN_ONES_V:
                # a price said as two numbers: "eighty seven fifty" (87.50)
                cents = _spoken_cents(low, got[1], words, words[got[1] - 1].end(), text)
                if cents is not None:
                    out.append(Amount(words[k].start(), words[cents[1] - 1].end(), got[0] + cents[0] / 100, ""))
                    k = cents[1]
                    continue
        k += 1
    return sorted(out, key=lambda a: a.start)
