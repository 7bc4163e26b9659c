"""Redaction fuzzed (hypothesis): a card, phone or ID number however the recogniser
groups and punctuates it, spoken or written, loses every digit.

Issue 11 found "4,111, ***, ***, ***" on the wire and in the store: Whisper wrote the
first group of a card number with a thousands comma, which read as an amount. These
tests generate the groupings a recogniser produces (any group sizes, any of the
separators it writes, thousands commas, decimal points, digits said as words) and
require that no digit of the number survives, with or without a cue word before it.
"""
from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callcue.daemon.assist.redact import RedactionConfig, Redactor

R = Redactor(RedactionConfig())
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
SEPARATORS = [" ", ", ", ",", "-", ".", " - ", "/", "  ", ". "]
BEFORE = ["", "my card number is ", "It's ", "card ", "the number is ", "yes, ", "okay so "]
AFTER = ["", ".", " thanks", "?", ", is that right", " and that's it"]
DIGIT_WORD = re.compile(r"\b(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)\b", re.I)


def luhn_complete(body: str) -> str:
    total = 0
    for i, c in enumerate(reversed(body)):
        n = int(c)
        if i % 2 == 0:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return body + str((10 - total % 10) % 10)


@st.composite
def card_numbers(draw) -> str:
    n = draw(st.integers(13, 19))
    first = draw(st.sampled_from("3456"))
    body = first + "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=n - 2, max_size=n - 2)))
    return luhn_complete(body)


@st.composite
def cn_mobiles(draw) -> str:
    return "1" + draw(st.sampled_from("3456789")) + "".join(
        draw(st.lists(st.sampled_from("0123456789"), min_size=9, max_size=9)))


@st.composite
def grouped(draw, digits: str) -> str:
    """The digits as a recogniser may write them: groups of any size, a separator
    between each, some groups with a thousands comma or as spoken words."""
    if draw(st.integers(0, 9)) == 0:
        return f"{int(digits):,}" if digits[0] != "0" else digits   # one big 'amount'
    groups, i = [], 0
    while i < len(digits):
        k = draw(st.integers(1, 6))
        groups.append(digits[i:i + k])
        i += k
    out = []
    for j, g in enumerate(groups):
        style = draw(st.integers(0, 5))
        if style == 0 and len(g) >= 4 and g[0] != "0":
            g = f"{int(g):,}"                  # "4,111"
        elif style == 1 and len(g) >= 3:
            g = f"{g[:-2]}.{g[-2:]}"           # "41.11": a decimal
        elif style == 2:
            g = " ".join(WORDS[int(c)] for c in g)
        out.append(g)
        if j + 1 < len(groups):
            out.append(draw(st.sampled_from(SEPARATORS)))
    return "".join(out)


def assert_no_digit_left(text: str, number: str) -> None:
    masked = R.redact(text).text
    assert not any(c.isdigit() for c in masked), f"{text!r} -> {masked!r}"
    assert not DIGIT_WORD.search(masked), f"{text!r} -> {masked!r}"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), number=card_numbers())
def test_no_digit_of_a_card_number_survives(data, number):
    text = data.draw(st.sampled_from(BEFORE)) + data.draw(grouped(number)) + data.draw(st.sampled_from(AFTER))
    assert_no_digit_left(text, number)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), number=cn_mobiles())
def test_no_digit_of_a_mobile_number_survives(data, number):
    before = data.draw(st.sampled_from(["", "my phone is ", "call me on ", "手机号 ", "it's "]))
    text = before + data.draw(grouped(number)) + data.draw(st.sampled_from(AFTER))
    assert_no_digit_left(text, number)


def test_the_issue_s_card_reading():
    # "4,111, ***, ***, ***" on the wire and in the store (issue 11)
    for text in ("my card is 4,111, 1111, 1111, 1111", "4,111,111,111,111,111", "41.11 1111 1111 1111",
                 "card 4111/11/11 1111 1111 11"):
        assert_no_digit_left(text, "")


def test_amounts_alone_are_still_amounts():
    for text, kept in [("the premium is 1,250,000 a year", "1,250,000"), ("it went up 12.50 this month", "12.50"),
                       ("I paid $4,111 last week", "$4,111"), ("since 2023-11-23", "2023-11-23")]:
        assert kept in R.redact(text).text, text
