"""Redaction of personal numbers (daemon/assist/redact.py) on labelled ASR-style sentences.

The oracle below turns spoken digits back into numerals on its own (it does not reuse
the redactor's tokenizer), so a digit the redactor fails to see is caught.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

import pytest
from pydantic import Field

from callcue.daemon.assist.redact import RedactionConfig, Redactor
from callcue.daemon.config import Strict
from callcue.daemon.yamlfile import ConfigError, load_model

CASES = Path(__file__).parent / "data" / "redaction_cases.yaml"


class Number(Strict):
    digits: str = Field(pattern=r"^[0-9]+X?$", description="the number as numerals; an ID's check character as X")
    kind: Literal["phone", "id_number", "bank_card", "policy", "digits"] = Field(description="kind it must be masked as")


class Case(Strict):
    text: str = Field(description="ASR-style transcript")
    lang: Literal["en", "zh"] = Field(description="language of the sentence")
    numbers: list[Number] = Field(min_length=1, description="personal numbers in the text, in order")


class CaseFile(Strict):
    cases: list[Case] = Field(min_length=60, description="sentences holding personal numbers")
    negatives: list[str] = Field(min_length=20, description="sentences that must come out unchanged")


DATA = load_model(CASES, CaseFile)

_EN = {"zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
       "six": "6", "seven": "7", "eight": "8", "nine": "9"}
_EN_WORDS = "|".join(_EN)
_ZH = str.maketrans({**{c: str(i) for i, c in enumerate("零一二三四五六七八九")},
                     "〇": "0", "幺": "1", "两": "2", "叉": "X",
                     **{chr(0xFF10 + i): str(i) for i in range(10)}})


def numerals(text: str) -> str:
    """Spoken digits (en, zh) back to numerals; everything else kept."""
    def times(m: re.Match) -> str:
        d = _EN.get(m.group(2).lower(), m.group(2))
        return d * (2 if m.group(1).lower() == "double" else 3)
    text = re.sub(rf"(?i)(?<![a-z])(double|triple)\s+({_EN_WORDS}|[0-9])(?![a-z])", times, text)
    text = re.sub(rf"(?i)(?<![a-z])({_EN_WORDS})(?![a-z])", lambda m: _EN[m.group(1).lower()], text)
    return text.translate(_ZH)


def all_digits(text: str) -> str:
    return re.sub(r"[^0-9]", "", numerals(text))


def number_of(fragment: str) -> str:
    """The number a span of the original text holds: its digits and an ID's X."""
    return re.sub(r"[^0-9X]", "", numerals(fragment).upper().replace("POL", "").replace("PL", ""))


def leaks(true: str, redacted_text: str) -> list[str]:
    """Runs of 6 digits (the whole number when shorter) of `true` still in the text."""
    digits = true.rstrip("X")
    k = min(6, len(digits))
    seen = all_digits(redacted_text)
    return [digits[i:i + k] for i in range(len(digits) - k + 1) if digits[i:i + k] in seen]


DEFAULT = Redactor(RedactionConfig())
case_ids = [f"{i}-{c.lang}" for i, c in enumerate(DATA.cases)]


def test_case_file_covers_both_languages():
    langs = [c.lang for c in DATA.cases]
    assert langs.count("en") >= 20 and langs.count("zh") >= 20
    kinds = {n.kind for c in DATA.cases for n in c.numbers}
    assert kinds == {"phone", "id_number", "bank_card", "policy", "digits"}


@pytest.mark.parametrize("case", DATA.cases, ids=case_ids)
def test_no_digit_run_of_the_test_numbers_survives(case: Case):
    out = DEFAULT.redact(case.text).text
    for n in case.numbers:
        assert not leaks(n.digits, out), f"{case.text!r} -> {out!r} still holds {leaks(n.digits, out)}"
    # the oracle itself must see every number in the original, or this test proves nothing
    for n in case.numbers:
        assert leaks(n.digits, case.text), f"oracle cannot read {n.digits} in {case.text!r}"


@pytest.mark.parametrize("case", DATA.cases, ids=case_ids)
def test_kinds_and_spans_in_the_original(case: Case):
    red = DEFAULT.redact(case.text)
    got = [(s.kind, number_of(case.text[s.start:s.end])) for s in red.spans]
    assert got == [(n.kind, n.digits) for n in case.numbers], f"{case.text!r} -> {red.text!r}"


@pytest.mark.parametrize("case", DATA.cases, ids=case_ids)
def test_only_the_spans_change(case: Case):
    """Outside the spans the text is untouched; inside, no digit or digit word is left."""
    red = DEFAULT.redact(case.text)
    pieces, pos = [], 0
    for s in red.spans:
        pieces.append(re.escape(case.text[pos:s.start]))
        pieces.append("(.*?)")
        pos = s.end
    pieces.append(re.escape(case.text[pos:]))
    m = re.fullmatch("".join(pieces), red.text, re.S)
    assert m, f"{case.text!r} -> {red.text!r}: text outside the spans changed"
    for masked in m.groups():
        assert not all_digits(masked), f"masked part {masked!r} holds digits"
        assert "*" in masked


@pytest.mark.parametrize("text", DATA.negatives)
def test_negatives_unchanged(text: str):
    red = DEFAULT.redact(text)
    assert red.text == text
    assert red.spans == []


def test_shape_is_kept_one_mask_per_digit():
    assert DEFAULT.redact("call me at 138-0013-8000").text == "call me at ***-****-****"
    assert DEFAULT.redact("it's four one five, five five five, two six seven one").text == "it's * * *, * * *, * * * *"
    assert DEFAULT.redact("call me on double five triple seven one two three").text == "call me on ** *** * * *"
    assert DEFAULT.redact("身份证号11010519491231002X").text == "身份证号" + "*" * 18


def test_disabled_leaves_text_alone():
    text = DATA.cases[0].text
    red = Redactor(RedactionConfig(enabled=False)).redact(text)
    assert red.text == text and red.spans == []


def test_kinds_subset_masks_only_those():
    text = "my phone is 650 555 0199 and my card is 4111 1111 1111 1111"
    red = Redactor(RedactionConfig(kinds=["phone"])).redact(text)
    assert red.text == "my phone is *** *** **** and my card is 4111 1111 1111 1111"
    assert [s.kind for s in red.spans] == ["phone"]
    code = "the verification code is 583920"
    assert Redactor(RedactionConfig(kinds=["phone", "bank_card"])).redact(code).text == code
    assert Redactor(RedactionConfig(kinds=["digits"])).redact(code).text == "the verification code is ******"


def test_keep_last_shows_the_tail_only():
    r = Redactor(RedactionConfig(keep_last=4))
    assert r.redact("the card number is 6222 0202 0000 1234 567").text == "the card number is **** **** **** ***4 567"
    assert r.redact("it's four one five, five five five, two six seven one").text == "it's * * *, * * *, two six seven one"
    # never more than half the number: a 5-digit fragment keeps 2
    assert r.redact("my phone number is 13800").text == "my phone number is ***00"
    # a double word is kept whole or masked whole
    assert r.redact("my cell is one three eight, double five").text == "my cell is * * *, double five"
    for case in DATA.cases:
        out = r.redact(case.text).text
        for n in case.numbers:
            assert not leaks(n.digits, out), f"keep_last leaked {leaks(n.digits, out)} from {case.text!r}: {out!r}"


def test_min_digits_and_mask():
    code = "the verification code is 583920"
    assert Redactor(RedactionConfig(min_digits=7)).redact(code).text == code
    assert Redactor(RedactionConfig(min_digits=6, mask="#")).redact(code).text == "the verification code is ######"
    # cue and shape kinds do not depend on min_digits
    assert Redactor(RedactionConfig(min_digits=20)).redact("我的手机号是13800138000").text == "我的手机号是" + "*" * 11


def test_policy_prefixes_are_configurable():
    text = "reference AB-1234-5678"
    assert [s.kind for s in DEFAULT.redact(text).spans] == ["digits"]
    red = Redactor(RedactionConfig(policy_prefixes=["AB"])).redact(text)
    assert red.text == "reference AB-****-****"
    assert [(s.kind, text[s.start:s.end]) for s in red.spans] == [("policy", "AB-1234-5678")]
    spoken = Redactor(RedactionConfig(policy_prefixes=["AB"])).redact("it is a b 1 2 3 4 5")
    assert spoken.text == "it is a b * * * * *" and spoken.spans[0].kind == "policy"


@pytest.mark.parametrize("bad, field", [
    ({"mask": "7"}, "mask"), ({"mask": "**"}, "mask"), ({"mask": "x"}, "mask"),
    ({"keep_last": 5}, "keep_last"), ({"min_digits": 3}, "min_digits"),
    ({"kinds": ["phone", "phone"]}, "kinds"), ({"kinds": ["email"]}, "kinds"),
    ({"policy_prefixes": ["P1"]}, "policy_prefixes"), ({"policy_prefixes": [" "]}, "policy_prefixes"),
    ({"mask_char": "*"}, "mask_char"),
])
def test_bad_config_names_the_file_line_and_field(tmp_path, bad, field):
    path = tmp_path / "redaction.yaml"
    (key, value), = bad.items()
    path.write_text(f"enabled: true\n{key}: {json.dumps(value, ensure_ascii=False)}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_model(path, RedactionConfig)
    assert f"{path}:2: {field}" in str(err.value)


def test_every_config_field_is_described():
    for name, f in RedactionConfig.model_fields.items():
        assert f.description, name
