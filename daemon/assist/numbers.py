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
