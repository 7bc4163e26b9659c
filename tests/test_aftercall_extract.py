"""After-call ticket, call type and summary from plain call records (aftercall/), on the
sample pack's templates."""
from __future__ import annotations

import re
from datetime import date

import pytest

from callcue.daemon.aftercall.finish import AfterCall
from callcue.daemon.aftercall.record import OfferRecord, Pushed
from callcue.daemon.assist.pack import default_pack_dir, load_pack
from helpers import call_record as record, ticket_field as field, ticket_value as value


@pytest.fixture(scope="module")
def ac() -> AfterCall:
    return AfterCall(load_pack(default_pack_dir()))


# ---------------------------------------------------------------- numbers in the ticket

CLAIM = [
    ("agent", "Thank you for calling Harbor Mutual, how can I help you today?"),
    ("customer", "Hi, I was rear ended yesterday afternoon and I need to report it."),
    ("agent", "Sorry to hear that. Can I start with your policy number and date of birth?"),
    ("customer", "The policy number is H M 4 4 1 0 7, and my date of birth is the fourth of June 1985."),
    ("agent", "So that's H M 4 4 1 0 7. Thanks, that all matches."),
    ("agent", "I've opened the claim for you, your claim number is C 3 3 0 1 8."),
    ("agent", "An adjuster will call you within two business days. What's the best number to reach you on?"),
    ("customer", "Call me on four one five, double five five, two six seven one."),
    ("agent", "Anything else? Have a great day."),
]


def test_claim_report_fields_from_both_channels(ac):
    out = ac.finish(record(CLAIM, branch="claim_report"))
    assert out["call_type"] == "claim_report" and out["ticket"]["template"] == "claim_report"
    assert value(out, "policy_number") == "HM44107"
    assert value(out, "claim_number") == "C33018"                     # the agent's number, not the policy's
    assert value(out, "callback_number") == "4155552671"              # "double five"
    assert value(out, "incident_date") == "2026-03-09"                # "yesterday", not 1985
    assert value(out, "claim_type") == "auto" and value(out, "requested_action") == "file_claim"
    fu = field(out, "follow_up")
    assert "adjuster" in fu["value"].lower() and fu["due"] == "2026-03-12" and fu["speaker"] == "agent"
    assert out["ticket"]["missing_required"] == []


def test_evidence_is_redacted_and_values_full_by_default(ac):
    out = ac.finish(record(CLAIM, branch="claim_report"))
    pol = field(out, "policy_number")
    assert pol["speaker"] == "customer" and pol["t"] is not None and pol["confidence"] >= 0.9   # read back by the agent
    assert "4 4 1 0 7" not in pol["evidence"] and "H M" in pol["evidence"]
    cb = field(out, "callback_number")
    assert not re.search(r"\b(four|one|five|two|six|seven)\b", cb["evidence"]), cb["evidence"]


def test_personal_fields_masked_by_the_switch(ac):
    out = ac.finish(record(CLAIM, branch="claim_report"), mask_personal=True)
    assert value(out, "policy_number") == "HM*****" and field(out, "policy_number")["masked"] is True
    assert value(out, "callback_number") == "*" * 10
    assert value(out, "claim_number") == "C33018"                     # not personal
    assert value(out, "incident_date") == "2026-03-09"


def test_a_call_that_states_nothing_leaves_the_fields_empty(ac):
    out = ac.finish(record([
        ("agent", "Harbor Mutual, how can I help?"),
        ("customer", "Hi, somebody hit my car and I want to make a claim."),
        ("agent", "Sorry to hear that. Can you confirm your date of birth and the last four of your ID?"),
        ("customer", "Ninth of May 1979, and the last four are 2 2 0 9."),
        ("customer", "I'm not sure when exactly it happened, I only saw the dent today... well, no, I can't say."),
        ("agent", "Thanks. I'll look into it."),
    ], branch="claim_report"))
    for name in ("policy_number", "callback_number", "claim_number"):
        assert value(out, name) is None, name
    assert "policy_number" in out["ticket"]["missing_required"]


def test_card_and_id_digits_are_not_a_callback_number(ac):
    out = ac.finish(record([
        ("customer", "I want to pay my premium by card."),
        ("agent", "Sure, go ahead with the card number."),
        ("customer", "It's four one one one, two two two two, three three three three, four four four four."),
        ("agent", "And the last four of your ID card?"),
        ("customer", "Five five six seven."),
    ], branch="billing"))
    assert value(out, "callback_number") is None and value(out, "policy_number") is None


def test_the_customer_corrects_a_digit(ac):
    out = ac.finish(record([
        ("agent", "What's the policy number?"),
        ("customer", "It's H M 3 3 1 0 9, sorry, I mean 3 3 1 0 8."),
        ("agent", "H M 3 3 1 0 8, thank you."),
    ], branch="policy_change"))
    assert value(out, "policy_number") == "HM33108"


def test_a_number_only_the_agent_says_counts_once_the_customer_confirms(ac):
    said = [("agent", "I'm calling because your car policy, H M 2 2 8 1 9, is up for renewal next month."),
            ("customer", "Yes, that's right.")]
    out = ac.finish(record(said, ivr={"intent": "outbound_renewal", "lang": "en"}))
    assert out["call_type"] == "renewal" and value(out, "policy_number") == "HM22819"
    assert field(out, "policy_number")["speaker"] == "agent"


def test_chinese_numbers_with_yao_and_liang(ac):
    out = ac.finish(record([
        ("agent", "您好，长宁财险，请问有什么可以帮您？"),
        ("customer", "你好，我上周五下班路上被电动车刮了，想报个案。"),
        ("agent", "好的，麻烦报一下保单号和身份证后四位。"),
        ("customer", "保单号是八八三，零幺两六，身份证后四位是两零零九。"),
        ("agent", "好的，已经给您报案了，报案号是六幺零四五两。"),
        ("agent", "明天上午会有查勘员给您打电话。您留哪个电话？"),
        ("customer", "打我手机吧，幺三九，幺两三四，五六七八。"),
        ("agent", "幺三九幺两三四五六七八，对吗？"),
        ("customer", "对的。"),
    ], day=date(2026, 3, 18), branch="claim_report", lang="zh"))
    assert value(out, "policy_number") == "8830126"
    assert value(out, "claim_number") == "610452"
    assert value(out, "callback_number") == "13912345678"
    assert value(out, "incident_date") == "2026-03-13"                # 上周五 from a Wednesday
    assert value(out, "claim_type") == "auto"
    fu = field(out, "follow_up")
    assert "查勘员" in fu["value"] and fu["due"] == "2026-03-19"
    assert "八八三" not in field(out, "policy_number")["evidence"]    # redacted


def test_amounts_in_words_digits_and_chinese(ac):
    en = ac.finish(record([("customer", "My payment failed."),
                           ("agent", "The amount due is ninety four dollars and twenty cents.")], branch="billing"))
    assert value(en, "amount") == 94.2
    zh = ac.finish(record([("customer", "你好，这个月扣了我两次保费，每次都是三百二十六块。")], branch="billing", lang="zh"))
    assert value(zh, "amount") == 326
    # a bare number is money only right after a money cue
    bare = ac.finish(record([("customer", "我想问一下，我今年的车险保费怎么涨到三千一百五了？")], branch="billing", lang="zh"))
    assert value(bare, "amount") == 3150
    none = ac.finish(record([("customer", "I have been with you for twelve hundred days, not that it matters.")],
                            branch="billing"))
    assert value(none, "amount") is None


# ---------------------------------------------------------------- promises

def test_a_question_or_a_thing_already_done_is_no_promise(ac):
    out = ac.finish(record([
        ("customer", "I'd like to pay now."),
        ("agent", "Would you like me to email you a receipt?"),
        ("agent", "I have already sent the payment link to your phone."),
    ], branch="billing"))
    assert value(out, "follow_up") is None
    zh = ac.finish(record([("customer", "我想交一下保费。"), ("agent", "我已经把付款链接发到您手机上了。")],
                          branch="billing", lang="zh"))
    assert value(zh, "follow_up") is None


def test_a_deadline_is_a_promise_and_the_deadline_is_the_due_date(ac):
    out = ac.finish(record([
        ("customer", "I want to cancel, I sold the car."),
        ("agent", "I have cancelled the policy from today, and any refund will be paid within ten days."),
    ], day=date(2026, 2, 27), branch="cancellation"))
    fu = field(out, "follow_up")
    assert "refund" in fu["value"] and fu["due"] == "2026-03-09"


# ---------------------------------------------------------------- enums, call type

def test_resolution_in_order_escalated_follow_up_resolved(ac):
    steps = [("status_update", "Give the status", True)]
    done = ac.finish(record([("customer", "Where is my claim?"), ("agent", "Your claim is currently with the garage.")],
                            branch="claim_status", steps=steps))
    assert value(done, "resolution") == "resolved"
    later = ac.finish(record([("customer", "Where is my claim?"),
                              ("agent", "I'll chase the garage and call you back on Monday.")],
                             branch="claim_status", steps=steps))
    assert value(later, "resolution") == "follow_up" and field(later, "follow_up")["due"] == "2026-03-16"
    up = ac.finish(record([("customer", "Where is my claim?"),
                           ("agent", "I'm going to escalate this to my supervisor, she will call you back tomorrow.")],
                          branch="claim_status", steps=steps))
    assert value(up, "resolution") == "escalated"


def test_call_type_from_branch_ivr_words_or_none(ac):
    said = [("customer", "Hello, I just want to cancel my policy please.")]
    assert ac.finish(record(said, branch="cancellation"))["call_type"] == "cancellation"
    assert ac.finish(record([("customer", "Hello.")], ivr={"intent": "claim_status"}))["call_type"] == "claim_status"
    words = ac.finish(record(said))
    assert words["call_type"] == "cancellation" and words["ticket"]["call_type_by"] == "customer"
    assert value(words, "requested_action") == "cancel"
    none = ac.finish(record([("customer", "Hello, can you hear me?"), ("agent", "Yes, go ahead.")]))
    assert none["call_type"] is None and none["ticket"]["template"] == "general"


def test_claim_type_from_words_and_articles(ac):
    home = ac.finish(record([("customer", "A pipe burst in the kitchen and the ceiling came down.")], branch="claim_report"))
    assert value(home, "claim_type") == "home"
    travel = ac.finish(record([("customer", "I want to make a claim.")], branch="claim_report",
                              knowledge=[Pushed("travel-medical-abroad", "Medical cover abroad", 5.0)]))
    assert value(travel, "claim_type") == "travel"
    unclear = ac.finish(record([("customer", "I want to make a claim.")], branch="claim_report"))
    assert value(unclear, "claim_type") is None


# ---------------------------------------------------------------- summary

def test_summary_in_english(ac):
    steps = [("greet", "Greeting", True), ("verify", "Verify identity", True), ("claim_incident", "What happened", False),
             ("claim_number", "Give claim number", True)]
    out = ac.finish(record(CLAIM, branch="claim_report", steps=steps,
                           offers=[OfferRecord("roadside-en", "Roadside assistance add-on", 20.0, 25.0)]))
    lines = out["summary"].split("\n")
    assert 3 <= len(lines) <= 6, lines
    assert lines[0].startswith("Reason: ") and "rear ended yesterday afternoon" in lines[0]
    assert any(ln.startswith("Agent: ") and "Give claim number" in ln and "Roadside" in ln for ln in lines)
    assert any(ln.startswith("Promised: ") and "2026-03-12" in ln for ln in lines)
    assert lines[-1].startswith("Outcome: ") and "What happened" in lines[-1]
    assert not re.search(r"\d \d \d", out["summary"])


def test_summary_in_chinese(ac):
    out = ac.finish(record([
        ("agent", "您好，长宁财险，请问有什么可以帮您？"),
        ("customer", "喂，你好，我搬家了，想改一下保单上的地址。"),
        ("agent", "好的，地址已经更新了，批单今天下午发到您邮箱。"),
    ], day=date(2026, 4, 2), branch="policy_change", lang="zh",
        steps=[("change_details", "确认变更内容", True), ("change_confirm", "确认变更完成", True)]))
    lines = out["summary"].split("\n")
    assert 3 <= len(lines) <= 6, lines
    assert lines[0].startswith("来电原因：") and "我搬家了" in lines[0] and "喂" not in lines[0]
    assert any(ln.startswith("承诺：") and "2026-04-02" in ln for ln in lines)
    assert lines[-1].startswith("结果：") and "已在通话中解决" in lines[-1]


def test_the_payload_shape(ac):
    out = ac.finish(record(CLAIM, branch="claim_report"))
    assert set(out) == {"summary", "ticket", "scorecard", "call_type"}
    t = out["ticket"]
    assert {"template", "fields", "missing_required"} <= set(t)
    for f in t["fields"].values():
        assert {"value", "evidence", "t", "confidence"} <= set(f)
        assert 0.0 <= f["confidence"] <= 1.0
