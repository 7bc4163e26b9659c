"""Numbers and dates read back from what was said (assist/numbers.py, aftercall/dates.py)."""
from __future__ import annotations

from datetime import date

import pytest

from callcue.daemon.aftercall.dates import add_business_days, find_dates
from callcue.daemon.assist.numbers import amounts, bare_numbers, digit_runs, en_cardinal, zh_number


@pytest.mark.parametrize("text, prefix, digits", [
    ("and the policy is H M 5 5 3 0 2.", "HM", "55302"),
    ("It's PL-2023-884512.", "PL", "2023884512"),
    ("four one five, five five five, two six seven one", "", "4155552671"),
    ("call me on four one five, double five five, two six seven one", "", "4155552671"),
    ("It's H M five eight double two oh.", "HM", "58220"),
    ("three triple seven one", "", "37771"),
    ("Yeah, call me on 415-555-4,111.", "", "4155554111"),                 # Whisper's digits
    ("oh seven seven double oh, nine hundred, one two three", "", "07700900123"),
    ("eight hundred five five five one two one two", "", "8005551212"),
    ("my number is twenty one thirty four fifty six", "", "213456"),
    ("保单号是六六二零三九五。", "", "6620395"),
    ("打我手机，幺三八 零零幺三 八零零零", "", "13800138000"),             # 幺 = 1
    ("两八七零", "", "2870"),                                             # 两 = 2
    ("一九〇五", "", "1905"),                                             # 〇 = 0
    ("保单号是HM幺幺两零五。", "HM", "11205"),
    ("your claim number is C 7 7 1 4 0", "C", "77140"),
    ("07911 123456", "", "07911123456"),
])
def test_numbers_said_any_way_read_back(text, prefix, digits):
    runs = digit_runs(text)
    assert [(r.prefix, r.digits) for r in runs][-1] == (prefix, digits)


def test_an_interjection_oh_and_short_numbers_are_not_digits():
    assert [r.digits for r in digit_runs("Oh, five five three two one")] == ["55321"]
    assert digit_runs("I have one dog and two cats", 3) == []
    # a clock time or an amount is two runs / not one long number
    assert [r.digits for r in digit_runs("at 10:30 on line 4455")] == ["4455"]


@pytest.mark.parametrize("text, value", [
    ("三百二十六", 326), ("两千五", 2500), ("一万五", 15000), ("十二", 12), ("三点五", 3.5), ("一百零五", 105),
    ("两万三千", 23000), ("3万", 30000), ("二零二六", 2026), ("一千零二十", 1020), ("三百五", 350),
    ("一万零五百", 10500), ("三千一百五", 3150), ("两千八百六十", 2860),
])
def test_chinese_numerals(text, value):
    assert zh_number(text) == value


@pytest.mark.parametrize("words, value", [
    ("five hundred", 500), ("a hundred and ten", 110), ("nineteen ninety", 1990), ("twenty twenty four", 2024),
    ("three thousand two hundred", 3200), ("four point five", 4.5), ("seven hundred and twelve", 712),
])
def test_english_cardinals(words, value):
    got = en_cardinal(words.split())
    assert got is not None and got[0] == value and got[1] == len(words.split())


@pytest.mark.parametrize("text, value, currency", [
    ("the deductible is five hundred dollars", 500, "USD"),
    ("the amount due is ninety four dollars and twenty cents", 94.2, "USD"),
    ("It is $3,200 a year", 3200, "USD"),
    ("two payments of $86.40 on the 2nd", 86.4, "USD"),
    ("comes to seven hundred and twelve dollars", 712, "USD"),
    ("保费是三百二十六元", 326, "CNY"),
    ("退您两千五百块", 2500, "CNY"),
    ("326块5", 326.5, "CNY"),
])
def test_amounts(text, value, currency):
    (a,) = amounts(text)
    assert a.value == pytest.approx(value) and a.currency == currency


def test_bare_numbers_are_found_apart_from_amounts():
    assert [a.value for a in bare_numbers("保费怎么涨到三千一百五了")] == [3150]
    assert [a.value for a in bare_numbers("it went up to 1,240 and then three thousand two hundred")] == [1240, 3200]
    assert bare_numbers("I have two cats") == []


TUESDAY = date(2026, 3, 10)


@pytest.mark.parametrize("text, tense, want", [
    ("Somebody rear ended me this morning", "past", "2026-03-10"),
    ("it happened yesterday", "past", "2026-03-09"),
    ("the day before yesterday", "past", "2026-03-08"),
    ("last Saturday night", "past", "2026-03-07"),
    ("on Saturday", "past", "2026-03-07"),
    ("on Tuesday", "past", "2026-03-03"),                 # a bare weekday in the past is the one before today
    ("a couple of days ago", "past", "2026-03-08"),
    ("two weeks ago", "past", "2026-02-24"),
    ("on the 3rd", "past", "2026-03-03"),
    ("on the fifth", "past", "2026-03-05"),
    ("the 21st", "past", "2026-02-21"),                   # this month's 21st is still ahead
    ("March fifth", "past", "2026-03-05"),
    ("on the twenty first of February", "past", "2026-02-21"),
    ("the fourth of June nineteen eighty five", "any", "1985-06-04"),
    ("June 4th, 1985", "any", "1985-06-04"),
    ("we will call you on Friday", "future", "2026-03-13"),
    ("next Monday", "future", "2026-03-16"),
    ("by Friday", "future", "2026-03-13"),
    ("tomorrow afternoon", "future", "2026-03-11"),
    ("within two business days", "future", "2026-03-12"),
    ("within five working days", "future", "2026-03-17"),
    ("in the next couple of days", "future", "2026-03-12"),
    ("in a day or two", "future", "2026-03-12"),
    ("by the end of the week", "future", "2026-03-13"),
    ("next week", "future", "2026-03-20"),
    ("昨天晚上被撞了", "past", "2026-03-09"),
    ("前天发现的", "past", "2026-03-08"),
    ("上周五出的事", "past", "2026-03-06"),                # Friday of last week
    ("上星期三", "past", "2026-03-04"),
    ("这周一", "past", "2026-03-09"),
    ("三月五号", "past", "2026-03-05"),
    ("3月5日", "any", "2026-03-05"),
    ("二十三号那天", "past", "2026-02-23"),
    ("两天前", "past", "2026-03-08"),
    ("明天会有人联系您", "future", "2026-03-11"),
    ("后天给您回电", "future", "2026-03-12"),
    ("下周一前", "future", "2026-03-16"),
    ("三个工作日内", "future", "2026-03-13"),
    ("七天内", "future", "2026-03-17"),
    ("月底前", "future", "2026-03-31"),
])
def test_dates_relative_to_the_call_date(text, tense, want):
    hits = find_dates(text, TUESDAY, tense)
    assert hits and hits[0].value.isoformat() == want, hits


@pytest.mark.parametrize("text", [
    "the first thing I did", "保单号是六六二零三九五", "工号三零七号", "I paid it off in the end", "one of those days",
])
def test_no_date_where_none_is_said(text):
    assert find_dates(text, TUESDAY, "past") == []


def test_business_days_skip_the_weekend():
    assert add_business_days(date(2026, 2, 27), 7) == date(2026, 3, 10)     # Friday + 7 working days
