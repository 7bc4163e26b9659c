"""After-call causes found on held-out set 5 (looked at), fixed in general ways; plain data,
made-up wording (not the set's)."""
from __future__ import annotations

import pytest

from callcue.daemon.aftercall.extract import says_done_clauses
from callcue.daemon.aftercall.finish import AfterCall
from callcue.daemon.aftercall.record import Utterance
from callcue.daemon.assist.numbers import amounts, bare_numbers, digit_runs
from callcue.daemon.assist.pack import default_pack_dir, load_pack
from helpers import call_record as record, ticket_value as value


@pytest.fixture(scope="module")
def ac() -> AfterCall:
    return AfterCall(load_pack(default_pack_dir()))


# ---------------------------------------------------------------- numbers read out

def test_an_oh_after_a_sentence_is_no_digit():
    runs = digit_runs("Call me on four one five, two two two, one nine nine eight. Oh, and one more thing.", 4)
    assert [r.digits for r in runs] == ["4152221998"]


def test_a_new_sentence_starts_a_new_number():
    runs = digit_runs("No wait, the end is four one. Seven seven two, five four one.", 3)
    assert [r.digits for r in runs] == ["772541"]       # "four one" (2 digits) is a run of its own, too short
    # written digits across ". " with no capital word stay one run
    assert [r.digits for r in digit_runs("HM 4. 4107", 4)] == ["44107"]


def test_cents_said_as_a_bare_number():
    got = [(a.value, a.currency) for a in amounts("it went up to sixty three dollars twenty this month")]
    assert got == [(63.2, "USD")]
    assert [a.value for a in bare_numbers("both payments were ninety four thirty")] == [94.3]
    assert [a.value for a in bare_numbers("three hundred and twelve sixty is what I paid")] == [312.6]
    # not cents: a year, a count after the amount, a unit
    assert [a.value for a in amounts("ten dollars twenty times")] == [10.0]
    assert bare_numbers("born in nineteen ninety one") == []
    assert bare_numbers("about forty five twenty minutes ago") == []


# ---------------------------------------------------------------- corrections

def test_a_correction_in_the_next_turn_replaces_the_value(ac):
    out = ac.finish(record([
        ("agent", "Thanks for calling Harbor Mutual. What's your policy number?"),
        ("customer", "It's five five two, eight one three."),
        ("agent", "Five five two, eight one three?"),
        ("customer", "Oh sorry, I read it wrong. Five five two, eight one six."),
        ("agent", "Five five two eight one six, thank you."),
    ]))
    assert value(out, "policy_number") == "552816"


def test_the_talk_moving_on_is_no_correction(ac):
    out = ac.finish(record([
        ("agent", "Your claim number is four four one two nine zero."),
        ("customer", "Four four one two nine zero."),
        ("agent", "What's the best number to reach you on?"),
        ("customer", "Sorry, it's two one two, three three three, seven seven eight one."),
    ]))
    assert value(out, "callback_number") == "2123337781"


def test_the_other_side_reads_back_the_corrected_number(ac):
    out = ac.finish(record([
        ("agent", "What's the best number for a callback?"),
        ("customer", "Two one two, three three three, seven seven one eight. Hmm, no, sorry, the end is eight one."),
        ("agent", "So two one two, three three three, seven seven eight one."),
        ("customer", "Oh, yes."),
    ]))
    assert value(out, "callback_number") == "2123337781"


# ---------------------------------------------------------------- enum options

def test_a_phrase_inside_a_longer_phrase_of_another_option_does_not_count(ac):
    out = ac.finish(record([
        ("customer", "你好，我想报案，我的山地车昨天在小区里被偷了。"),
        ("agent", "好的，已经给您登记报案了，报案号是C七七一二零。"),
    ], lang="zh"))
    assert out["call_type"] == "claim_report"
    assert value(out, "claim_type") == "other"          # 车 of auto inside 山地车


def test_a_chinese_cue_ending_an_earlier_clause_tells_an_earlier_event(ac):
    out = ac.finish(record([
        ("customer", "你好，我爸上周五在家门口摔了一跤，被送去医院住院了，昨天做了手术，想报案。"),
        ("agent", "好的，已经给您登记报案了。"),
    ], lang="zh"))
    assert value(out, "incident_date") == "2026-03-06"    # 上周五, not 昨天 after 住院了，


# ---------------------------------------------------------------- call type from what the agent did

def test_done_clauses_are_cut_at_sentences():
    assert says_done_clauses("Right. I've logged the claim. What's your number?") == ["I've logged the claim."]
    assert says_done_clauses("好的，优惠给您申请好了。") == ["优惠给您申请好了。"]


def test_the_agent_opening_a_claim_makes_it_a_claim_report(ac):
    out = ac.finish(record([
        ("agent", "Harbor Mutual, how can I help?"),
        ("customer", "Hi, so my holiday was a disaster, the bag with my camera in it never showed up at the carousel."),
        ("agent", "Oh dear. Let me sort that for you, what's the claim about exactly, just the camera?"),
        ("customer", "The camera and my clothes."),
        ("agent", "Okay, I've registered the claim. Your claim number is C 5 5 1 0 2."),
    ]))
    assert out["call_type"] == "claim_report"
    assert value(out, "requested_action") == "file_claim"
    said = [Utterance("agent", "I've registered the claim. Your claim number is C 5 5 1 0 2.", 1.0, 3.0),
            Utterance("agent", "Would you like me to open a claim?", 4.0, 5.0)]
    assert ac.classifier.agent_did(said) == {"claim_report"}     # not the status step's "claim number", not a question
