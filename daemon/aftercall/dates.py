"""Dates people say, read relative to the call date: "yesterday", "last Saturday", "on the
3rd", "the fourth of June", 昨天, 上周五, 三月五号, and deadlines: "within two business
days", "by Friday", 三个工作日内. Pure: text and the call's date in, dates out.

`tense` settles what a bare weekday or day of the month means: "on Saturday" in a claim
("it happened on Saturday", tense past) is the last Saturday before the call; in a
promise ("we will call you on Saturday", tense future) the next one. "last X" is the
latest X before the call date, "next X" the first after it; Chinese 上周五 / 这周五 /
下周五 name the Friday of the previous / this / next Monday-to-Sunday week.
"""
from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from ..assist.numbers import en_cardinal, zh_number

Tense = Literal["past", "future", "any"]


@dataclass(frozen=True, slots=True)
class DateHit:
    start: int
    end: int
    value: date
    kind: str           # day | deadline
    text: str


_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if m}
_MONTHS.update({m.lower(): i for i, m in enumerate(calendar.month_abbr) if m})
_MONTHS.pop("may", None)
_MONTHS["may"] = 5
_ORD_WORDS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
              "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13, "fourteenth": 14,
              "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18, "nineteenth": 19,
              "twentieth": 20, "thirtieth": 30}
_ORD_SRC = ("(?:(?:twenty|thirty)[\\s-]+(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth)|"
            + "|".join(sorted(_ORD_WORDS, key=len, reverse=True)) + ")")
_DAYNUM_SRC = rf"(?:(?P<dd>[0-9]{{1,2}})(?:st|nd|rd|th)?|(?P<dw>{_ORD_SRC}))"
_MONTH_SRC = "(?P<mon>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_YEAR_SRC = r"(?:,?\s+(?P<yr>(?:19|20)[0-9]{2}|(?:nineteen|twenty)\s+[a-z]+(?:[\s-][a-z]+)?))?"
_NUMWORD = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
            "eight": 8, "nine": 9, "ten": 10, "couple": 2, "a couple": 2, "a couple of": 2, "couple of": 2}

_LOW = r"(?:[0-9]+|one|two|three|four|five|six|seven|eight|nine)"     # "two to three working days": the later one
_EN = re.compile("|".join([
    r"(?P<rel_m2>(?:the\s+)?day\s+before\s+yesterday)",
    r"(?P<rel_p2>(?:the\s+)?day\s+after\s+tomorrow)",
    r"(?P<rel_m1>yesterday(?:\s+(?:morning|afternoon|evening|night))?|last\s+night)",
    r"(?P<rel_0>this\s+(?:morning|afternoon|evening)|earlier\s+today|today|tonight)",
    r"(?P<rel_p1>tomorrow(?:\s+(?:morning|afternoon|evening))?)",
    r"(?P<ago>(?P<agon>[0-9]+|a|an|one|two|three|four|five|six|seven|eight|nine|ten|a\s+couple\s+of|couple\s+of)"
    r"\s+(?P<agou>days?|weeks?)\s+ago)",
    rf"(?P<wd>(?:(?P<wdq>last|this\s+past|this|next|on|by|this\s+coming|coming|until)\s+)?(?P<wdn>{'|'.join(_WEEKDAYS)})"
    r"(?:\s+(?P<wdw>week))?)",
    rf"(?P<dm>(?:(?:on|by)\s+)?(?:the\s+)?{_DAYNUM_SRC}\s+of\s+{_MONTH_SRC}{_YEAR_SRC})",
    rf"(?P<md>{_MONTH_SRC.replace('mon', 'mon2')}\s+(?:the\s+)?(?:(?P<dd2>[0-9]{{1,2}})(?:st|nd|rd|th)?|(?P<dw2>{_ORD_SRC})){_YEAR_SRC.replace('yr', 'yr2')})",
    rf"(?P<dn>(?:(?:on\s+the|by\s+the|the)\s+(?P<dd3>[0-9]{{1,2}})(?P<sfx>st|nd|rd|th)|(?:on|by)\s+the\s+(?P<dw3>{_ORD_SRC}))"
    r"(?:\s+of\s+(?P<dnm>this|last|next)\s+month)?)",
    r"(?P<dayortwo>in\s+a\s+day\s+or\s+two|next\s+day\s+or\s+two)",
    r"(?P<bdays>(?:within|in)\s+(?:the\s+next\s+)?(?:" + _LOW + r"\s+(?:to|or)\s+)?(?P<bdn>[0-9]+|a|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|twenty|thirty|"
    r"a\s+couple\s+of|couple\s+of)\s+(?P<bdk>business|working)\s+days?)",
    r"(?P<ndays>(?:within|in)\s+(?:the\s+next\s+)?(?:" + _LOW + r"\s+(?:to|or)\s+)?(?P<ndn>[0-9]+|a|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|twenty|thirty|"
    r"a\s+couple\s+of|couple\s+of)\s+(?P<ndu>days?|weeks?|hours))",
    r"(?P<eow>(?:by\s+)?(?:the\s+)?end\s+of\s+(?:the|this)\s+week)",
    r"(?P<eod>(?:by\s+)?(?:the\s+)?end\s+of\s+(?:the\s+)?day|close\s+of\s+business)",
    r"(?P<nextweek>next\s+week)",
]), re.I)

_ZH_WD = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6, "末": 5}
_ZH_NUMS = "零〇一二两三四五六七八九十0-9"
_ZH = re.compile("|".join([
    r"(?P<z_m3>大前天)", r"(?P<z_p3>大后天)", r"(?P<z_m2>前天|前日)", r"(?P<z_p2>后天)",
    r"(?P<z_m1>昨天|昨晚|昨日|昨儿)", r"(?P<z_p1>明天|明早|明日|明儿)",
    r"(?P<z_0>今天|今早|今晚|今日|今儿|刚才|刚刚)",
    rf"(?P<z_ago>(?P<z_agon>[{_ZH_NUMS}]+)(?:个)?(?P<z_agou>天|星期|礼拜|周)(?:以前|之前|前))",
    r"(?P<z_wd>(?P<z_wdq>上上|上|这|本|下|这个|上个|下个)?(?:个)?(?:周|星期|礼拜)(?P<z_wdn>[一二三四五六日天末])(?P<z_wdby>之前|以前|前)?)",
    rf"(?P<z_md>(?:(?P<z_y>[{_ZH_NUMS}]{{4}}|今|去|明)年)?(?P<z_mq>上个|下个|这个|本)?(?:(?P<z_mon>[{_ZH_NUMS}]{{1,3}})月|月)?(?P<z_day>[{_ZH_NUMS}]{{1,3}})(?:号|日)(?![期记]))",
    rf"(?P<z_bdays>(?:[{_ZH_NUMS}]+[到至])?(?P<z_bdn>[{_ZH_NUMS}]+)个?工作日(?:之内|以内|内|左右)?)",
    rf"(?P<z_ndays>(?:[{_ZH_NUMS}]+[到至])?(?P<z_ndn>[{_ZH_NUMS}]+)(?:个)?(?P<z_ndu>天|小时|星期|礼拜|周)(?:之内|以内|内|左右))",
    r"(?P<z_eow>(?:本|这)(?:个)?(?:周|星期|礼拜)(?:之|以)?内)",
    r"(?P<z_nextweek>下(?:个)?(?:周|星期|礼拜)(?![一二三四五六日天末]))",
    r"(?P<z_eom>(?:这个|本)?月底(?:前|之前)?)",
]))


def _count(s: str) -> int | None:
    s = re.sub(r"\s+", " ", s.lower().strip())
    if s.isdigit():
        return int(s)
    if s in _NUMWORD:
        return _NUMWORD[s]
    words = s.split()
    got = en_cardinal(words)
    if got is not None and got[1] == len(words) and float(got[0]).is_integer():
        return int(got[0])
    v = zh_number(s)
    return int(v) if v is not None and float(v).is_integer() else None


def add_business_days(d: date, n: int) -> date:
    while n > 0:
        d += timedelta(days=1)
        if d.weekday() < 5:
            n -= 1
    return d


def _weekday(today: date, wd: int, how: str, tense: Tense) -> date:
    """`how`: last | next | this | week-1 | week0 | week+1 | bare."""
    delta = wd - today.weekday()
    if how == "last":
        return today - timedelta(days=(today.weekday() - wd) % 7 or 7)
    if how == "next":
        return today + timedelta(days=delta % 7 or 7)
    if how.startswith("week"):
        monday = today - timedelta(days=today.weekday())
        return monday + timedelta(days=7 * int(how[4:]) + wd)
    if how == "this":
        if tense == "past":
            return today - timedelta(days=(today.weekday() - wd) % 7)
        return today + timedelta(days=delta % 7)
    # bare / on / by
    if tense == "future":
        return today + timedelta(days=delta % 7 or 7)
    return today - timedelta(days=(today.weekday() - wd) % 7 or 7)


def _safe(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d)
    except ValueError:
        return None


def _day_of_month(today: date, day: int, month: int | None, year: int | None, tense: Tense) -> date | None:
    if not 1 <= day <= 31:
        return None
    if year is not None and month is not None:
        return _safe(year, month, day)
    if month is not None:
        cands = [_safe(today.year + k, month, day) for k in (-1, 0, 1)]
    else:
        cands = []
        for k in (-1, 0, 1):
            m = (today.month - 1 + k) % 12 + 1
            y = today.year + (today.month - 1 + k) // 12
            cands.append(_safe(y, m, day))
    cands = [c for c in cands if c is not None]
    if tense == "past":
        past = [c for c in cands if c <= today]
        return max(past) if past else None
    if tense == "future":
        fut = [c for c in cands if c >= today]
        return min(fut) if fut else None
    return min(cands, key=lambda c: abs((c - today).days)) if cands else None


def _ordinal(dd: str | None, dw: str | None) -> int | None:
    if dd:
        return int(dd)
    if not dw:
        return None
    w = re.sub(r"[\s-]+", " ", dw.lower()).split()
    if len(w) == 2:
        return {"twenty": 20, "thirty": 30}[w[0]] + _ORD_WORDS.get(w[1], 0)
    return _ORD_WORDS.get(w[0])


def _year(s: str | None) -> int | None:
    if not s:
        return None
    if s.isdigit():
        return int(s)
    got = en_cardinal(re.split(r"[\s-]+", s.lower()))
    return int(got[0]) if got and 1900 <= got[0] <= 2099 else None


# cheap first looks: most utterances hold no date, and the full patterns are long
_EN_MAYBE = re.compile(r"(?i)day|night|tomorrow|ago|morning|afternoon|evening|" + "|".join(_WEEKDAYS) + "|"
                       + "|".join(m for m in _MONTHS if len(m) > 2) + r"|[0-9](?:st|nd|rd|th)|the\s+(?:"
                       + "|".join(_ORD_WORDS) + r"|twenty|thirty)|week|hour")
_ZH_MAYBE = re.compile(r"[天号日周期拜内底前]")


def find_dates(text: str, today: date, tense: Tense = "any") -> list[DateHit]:
    """Every date expression in `text`, resolved against `today` (the call's date).
    Deadlines ("within two business days", 三个工作日内) are found with tense future or any."""
    out: list[DateHit] = []
    en = _EN_MAYBE.search(text) is not None
    zh = _ZH_MAYBE.search(text) is not None
    for m in (_EN.finditer(text) if en else ()):
        if m.start() > 0 and text[m.start() - 1].isalnum() and text[m.start() - 1].isascii():
            continue
        if m.end() < len(text) and text[m.end()].isascii() and text[m.end()].isalnum():
            continue
        v, kind = _en_value(m, today, tense)
        if v is not None:
            out.append(DateHit(m.start(), m.end(), v, kind, m.group(0)))
    for m in (_ZH.finditer(text) if zh else ()):
        v, kind = _zh_value(m, today, tense)
        if v is not None:
            out.append(DateHit(m.start(), m.end(), v, kind, m.group(0)))
    if tense == "past":
        out = [h for h in out if h.kind == "day" and h.value <= today]
    elif tense == "future":
        out = [h for h in out if h.value >= today]
    return sorted(out, key=lambda h: h.start)


def _en_value(m: re.Match, today: date, tense: Tense) -> tuple[date | None, str]:
    g = m.lastgroup
    # lastgroup is the innermost closed group; walk to the named alternative
    for name in ("rel_m2", "rel_p2", "rel_m1", "rel_0", "rel_p1", "ago", "wd", "dm", "md", "dn", "bdays", "ndays",
                 "dayortwo", "eow", "eod", "nextweek"):
        if m.group(name):
            g = name
            break
    if g.startswith("rel_"):
        off = {"rel_m2": -2, "rel_p2": 2, "rel_m1": -1, "rel_0": 0, "rel_p1": 1}[g]
        return today + timedelta(days=off), "day"
    if g == "ago":
        n = _count(m.group("agon"))
        if n is None:
            return None, ""
        unit = 7 if m.group("agou").lower().startswith("week") else 1
        return today - timedelta(days=n * unit), "day"
    if g == "wd":
        wd = _WEEKDAYS.index(m.group("wdn").lower())
        q = re.sub(r"\s+", " ", (m.group("wdq") or "").lower())
        if m.group("wdw"):          # "Friday week": a week after the next Friday
            return _weekday(today, wd, "next", tense) + timedelta(days=7), "day"
        how = {"last": "last", "this past": "last", "next": "next", "this coming": "next", "coming": "next",
               "this": "this"}.get(q, "bare")
        if q in ("by", "until"):
            return _weekday(today, wd, "this", "future"), "deadline"
        return _weekday(today, wd, how, tense), "day"
    if g in ("dm", "md"):
        sfx = "" if g == "dm" else "2"
        day = _ordinal(m.group("dd" + sfx), m.group("dw" + sfx))
        mon = _MONTHS[m.group("mon" + sfx).lower().rstrip(".")]
        year = _year(m.group("yr" + sfx))
        return (_day_of_month(today, day, mon, year, tense) if day else None), "day"
    if g == "dn":
        day = _ordinal(m.group("dd3"), m.group("dw3"))
        if day is None:
            return None, ""
        rel = (m.group("dnm") or "").lower()
        if rel:
            k = {"this": 0, "last": -1, "next": 1}[rel]
            mm = (today.month - 1 + k) % 12 + 1
            yy = today.year + (today.month - 1 + k) // 12
            return _safe(yy, mm, day), "day"
        return _day_of_month(today, day, None, None, tense), "day"
    if g == "bdays":
        n = _count(m.group("bdn"))
        return (add_business_days(today, n) if n else None), "deadline"
    if g == "ndays":
        n = _count(m.group("ndn"))
        if not n:
            return None, ""
        u = m.group("ndu").lower()
        days = 7 * n if u.startswith("week") else -(-n // 24) if u == "hours" else n
        return today + timedelta(days=days), "deadline"
    if g == "dayortwo":
        return today + timedelta(days=2), "deadline"
    if g == "eow":
        return _weekday(today, 4, "week0", "future"), "deadline"
    if g == "eod":
        return today, "deadline"
    if g == "nextweek":
        return _weekday(today, 4, "week1", "future"), "deadline"
    return None, ""


def _zh_value(m: re.Match, today: date, tense: Tense) -> tuple[date | None, str]:
    for name in ("z_m3", "z_p3", "z_m2", "z_p2", "z_m1", "z_p1", "z_0", "z_ago", "z_wd", "z_md", "z_bdays",
                 "z_ndays", "z_eow", "z_nextweek", "z_eom"):
        if m.group(name):
            g = name
            break
    else:
        return None, ""
    rel = {"z_m3": -3, "z_p3": 3, "z_m2": -2, "z_p2": 2, "z_m1": -1, "z_p1": 1, "z_0": 0}
    if g in rel:
        return today + timedelta(days=rel[g]), "day"
    if g == "z_ago":
        n = _count(m.group("z_agon"))
        if not n:
            return None, ""
        return today - timedelta(days=n * (1 if m.group("z_agou") == "天" else 7)), "day"
    if g == "z_wd":
        wd = _ZH_WD[m.group("z_wdn")]
        q = (m.group("z_wdq") or "").replace("个", "")
        how = {"上上": "week-2", "上": "week-1", "这": "week0", "本": "week0", "下": "week1"}.get(q, "bare")
        return _weekday(today, wd, how, tense), "deadline" if m.group("z_wdby") else "day"
    if g == "z_md":
        day = _count(m.group("z_day"))
        if day is None:
            return None, ""
        mon = _count(m.group("z_mon")) if m.group("z_mon") else None
        y = m.group("z_y")
        year = {"今": today.year, "去": today.year - 1, "明": today.year + 1}.get(y) if y and len(y) == 1 else \
            (_count(y) if y else None)
        q = m.group("z_mq")
        if q and mon is None:
            k = {"上个": -1, "下个": 1, "这个": 0, "本": 0}[q]
            mm = (today.month - 1 + k) % 12 + 1
            yy = today.year + (today.month - 1 + k) // 12
            return _safe(yy, mm, day), "day"
        if mon is not None and not 1 <= mon <= 12:
            return None, ""
        if year is not None and mon is None:
            return None, ""
        return _day_of_month(today, day, mon, year, tense), "day"
    if g == "z_bdays":
        n = _count(m.group("z_bdn"))
        return (add_business_days(today, n) if n else None), "deadline"
    if g == "z_ndays":
        n = _count(m.group("z_ndn"))
        if not n:
            return None, ""
        u = m.group("z_ndu")
        days = n if u == "天" else -(-n // 24) if u == "小时" else 7 * n
        return today + timedelta(days=days), "deadline"
    if g == "z_eow":
        return _weekday(today, 4, "week0", "future"), "deadline"
    if g == "z_nextweek":
        return _weekday(today, 4, "week1", "future"), "deadline"
    if g == "z_eom":
        last = calendar.monthrange(today.year, today.month)[1]
        return date(today.year, today.month, last), "deadline"
    return None, ""
