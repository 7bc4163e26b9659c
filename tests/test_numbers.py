"""Digits in transcripts meet numbers written in words (assist/numbers.py, assist/match.py)."""
import pytest

from callcue.daemon.assist.match import PhraseSet, units
from callcue.daemon.assist.numbers import spoken, words_for_symbols


@pytest.mark.parametrize("token, words", [
    ("0", "zero"), ("7", "seven"), ("13", "thirteen"), ("40", "forty"), ("95", "ninety five"),
    ("500", "five hundred"), ("3200", "three thousand two hundred"), ("1000000", "one million"),
    ("1968", "nineteen sixty eight"), ("1905", "nineteen oh five"), ("1900", "nineteen hundred"),
    ("2005", "two thousand five"), ("2024", "twenty twenty four"), ("5000", "five thousand"),
    ("21st", "twenty first"), ("3rd", "third"), ("12th", "twelfth"), ("30th", "thirtieth"), ("100th", "one hundredth"),
    ("007", "zero zero seven"), ("1234567890123", "one two three four five six seven eight nine zero one two three"),
])
def test_digits_are_said_as_people_say_them(token, words):
    assert spoken(token) == words.split()


def test_words_are_not_numbers():
    assert spoken("policy") is None and spoken("4x4") is None and spoken("0th1") is None


def test_symbols_become_the_words_said_with_them():
    assert words_for_symbols("It is $3,200 a year, 5% less, £40 or €1,000,000.") == \
        "It is 3200 dollars a year, 5 percent less, 40 pounds or 1000000 euros."
    assert words_for_symbols("call 555,1234 now") == "call 555,1234 now"     # not a thousands group


def test_a_list_in_words_finds_what_whisper_wrote_in_digits_and_back():
    ps = PhraseSet([("nineteen ninety", "year"), ("five hundred dollars", "excess"), ("seventy", "seventy"),
                    ("5 percent", "discount"), ("twenty first", "day")])
    found = {f.item for f in ps.find("Sure, it is the 21st of June 1990, the excess is $500 and you save 5%.")}
    assert found == {"year", "excess", "discount", "day"}
    assert {f.item for f in ps.find("born in 1979")} == {"seventy"}
    assert not ps.find("it costs 1,500 a year")         # one thousand five hundred: no listed phrase in it
    assert units("1990") == units("nineteen ninety")
