"""The after-call call type (aftercall/classify.py): the customer's words as word and
character n-grams learned from the pack, position-weighted, with IVR (strong), flow branch
(weak), articles and steps; margin-aware fallback to the default template. Also the
branch steps found again at call end (steps.py), promises in every future form, "done"
in any wording, and the evaluator's set selection."""
from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest

from callcue.daemon.aftercall import classify as C
from callcue.daemon.aftercall.classify import Classifier
from callcue.daemon.aftercall.extract import future_as_will, says_done
from callcue.daemon.aftercall.finish import AfterCall, pack_articles
from callcue.daemon.aftercall.ngrams import BACKGROUND, Votes, terms
from callcue.daemon.aftercall.record import CallRecord, Pushed
from callcue.daemon.assist.pack import default_pack_dir, load_pack
from helpers import call_record, ticket_value as value

DAY = date(2026, 3, 10)


@pytest.fixture(scope="module")
def pack():
    return load_pack(default_pack_dir())


@pytest.fixture(scope="module")
def ac(pack) -> AfterCall:
    return AfterCall(pack)


def record(turns, *, branch=None, steps=(), **kw) -> CallRecord:
    """Steps as (id, done); a step's and the branch's title are their ids."""
    return call_record(turns, day=DAY, branch=branch, branch_title=branch,
                       steps=[(i, i, done) for i, done in steps], **kw)


GREET_EN = ("agent", "Harbor Mutual, this is Sam, how can I help?")
GREET_ZH = ("agent", "您好，长宁财险，请问有什么可以帮您？")


# ---------------------------------------------------------------- new wording

@pytest.mark.parametrize("want, said", [
    ("claim_report", "Hi, a lorry backed into my parked car this morning and smashed the headlight."),
    ("claim_report", "Our washing machine flooded the kitchen overnight and the floor is ruined."),
    ("claim_status", "I reported the damage to my roof a month ago and nobody has told me anything since."),
    ("billing", "There are two debits from you on my statement this month, one must be a mistake."),
    ("policy_change", "We've bought a house across town and move in next week, so the policy needs the new place."),
    ("cancellation", "I've decided to go with another company, so please end my cover."),
])
def test_new_wording_in_english(ac, want, said):
    out = ac.finish(record([GREET_EN, ("customer", said), ("agent", "Sure, what's the policy number?")]))
    assert out["call_type"] == want, out["ticket"]["call_type_by"]


@pytest.mark.parametrize("want, said", [
    ("claim_report", "你好，我家昨天晚上进了小偷，电视和首饰都没了。"),
    ("claim_status", "你好，我半个月前报的案，到现在一点消息都没有。"),
    ("billing", "你好，这个月银行卡被你们扣了两回钱。"),
    ("policy_change", "你好，我们家搬到浦东了，保单上的地址得改。"),
    ("cancellation", "你好，这个车险我不打算要了，帮我退掉吧。"),
])
def test_new_wording_in_chinese(ac, want, said):
    out = ac.finish(record([GREET_ZH, ("customer", said), ("agent", "好的，请报一下保单号。")], lang="zh"))
    assert out["call_type"] == want


def test_the_opening_request_outweighs_a_passing_mention(ac):
    # a claim-status call that names the leak it is about; the flow took 漏水 as a claim report
    said = [GREET_ZH, ("customer", "你好，我上个月家里漏水报的那个案子，想问问赔到哪一步了。"),
            ("agent", "好的，报案号是多少？"), ("customer", "五二零，七七三幺。")]
    out = ac.finish(record(said, branch="claim_report", lang="zh"))
    assert out["call_type"] == "claim_status" and out["ticket"]["call_type_by"] == "customer"
    # the opening asks to cancel; the premium rise comes later, in passing
    later = ac.finish(record([GREET_EN, ("customer", "I'd like to cancel my car insurance please."),
                              ("agent", "May I ask why?"),
                              ("customer", "The premium went up again and I've had enough.")]))
    assert later["call_type"] == "cancellation"
    assert value(later, "requested_action") == "cancel"


def test_ivr_is_strong_and_the_agents_branch_weak(ac):
    out = ac.finish(record([("customer", "Hello?")], ivr={"intent": "claim_status"}))
    assert out["call_type"] == "claim_status" and out["ticket"]["call_type_by"] == "ivr"
    # the agent asked for a number and the flow took the claim-status branch: the words say claim report
    said = [GREET_EN, ("customer", "Somebody crashed into the side of my car at a junction yesterday."),
            ("agent", "Sorry to hear that. Do you have the policy number?")]
    out = ac.finish(record(said, branch="claim_status", branch_by="agent"))
    assert out["call_type"] == "claim_report"


def test_too_little_or_too_close_falls_back_to_general(ac):
    none = ac.finish(record([("customer", "Hello, can you hear me?"), ("agent", "Yes, go ahead.")]))
    assert none["call_type"] is None and none["ticket"]["template"] == "general"
    assert none["ticket"]["call_type_by"] == "default"


def test_margin_fallback(pack, monkeypatch):
    clf = Classifier(pack.tickets.usable(), pack.flows, pack_articles(pack))
    # two requests of two types, said alike: no type rather than a coin toss
    both = clf.classify(record([GREET_EN, ("customer", "I want to cancel my policy and also change my address.")]))
    assert both.call_type is None and both.template.default and both.by == "default"
    assert both.scores["cancellation"] > 0.3 and both.scores["policy_change"] > 0.3
    clear = record([GREET_EN, ("customer", "I'd like to cancel my policy please.")])
    assert clf.classify(clear).call_type == "cancellation"
    monkeypatch.setattr(C, "MIN_MARGIN", 0.99)
    assert clf.classify(clear).call_type is None


def test_articles_and_steps_add_weak_evidence(pack):
    clf = Classifier(pack.tickets.usable(), pack.flows, pack_articles(pack))
    rec = record([GREET_EN, ("customer", "Hi there."),
                  ("agent", "I have opened the claim for you, your claim number is C 4 4 1 9.")],
                 knowledge=[Pushed("claim-filing", "How to file a claim", 3.0)])
    kind = clf.classify(rec)
    assert kind.call_type == "claim_report"
    assert "claim_number" in {s.id for s in kind.steps}


def test_background_words_vote_for_nothing():
    v = Votes(["a", "b"], [("a", "cancel my policy", 1.0), ("b", "change my address", 1.0),
                           (BACKGROUND, "what is your policy number", 1.0), (BACKGROUND, "thank you for calling", 1.0)])
    assert v.votes("thank you for calling").sum() < 0.01
    got = v.votes("I want to cancel")
    assert got[0] > 0.0 and got[0] > 2 * got[1]


def test_terms_leave_numbers_out_and_keep_tones():
    assert "two" not in terms("took two bikes and 3 mowers") and "bik" in terms("took two bikes")
    assert not any(t in ("三", "五") for t in terms("保单号是五三七"))
    assert terms("买了")[-1] != terms("卖了")[-1]          # 买 (buy) and 卖 (sell) differ by tone


# ---------------------------------------------------------------- embeddings (optional)

class FakeEncoder:
    """Unit vectors: sentences about a phone stolen or lost point one way, the rest another."""

    def __call__(self, texts):
        out = []
        for t in texts:
            v = np.zeros(4, dtype=np.float32)
            v[0 if any(w in t.lower() for w in ("stole", "took", "broke", "lost")) else 1] = 1.0
            out.append(v)
        return np.stack(out)


def test_sentence_vectors_from_the_record_vote(pack):
    with_vec = Classifier(pack.tickets.usable(), pack.flows, pack_articles(pack), FakeEncoder())
    assert with_vec.example_vecs is not None
    turns = [GREET_EN, ("customer", "Hi, my mobile got nicked at the station this afternoon.")]
    plain = record(turns)
    vec = record(turns, vectors={round(plain.utterances[1].t_start, 2): np.array([1, 0, 0, 0], dtype=np.float32)})
    s_plain = with_vec.classify(plain).scores["claim_report"]
    s_vec = with_vec.classify(vec).scores["claim_report"]
    assert s_vec > s_plain


def test_a_broken_encoder_leaves_the_words(pack):
    def broken(texts):
        raise RuntimeError("no model")
    clf = Classifier(pack.tickets.usable(), pack.flows, pack_articles(pack), broken)
    assert clf.example_vecs is None
    kind = clf.classify(record([GREET_EN, ("customer", "I'd like to cancel my policy.")],
                               vectors={1.0: np.ones(384, dtype=np.float32)}))
    assert kind.call_type == "cancellation"


def test_the_record_takes_the_sessions_vectors():
    class Session:
        request_vectors = [(1.234, np.ones(3)), (5.0, np.zeros(3))]
        call_id, lang, ivr_data, pushed = "c", "en", None, []

        class flow:
            @staticmethod
            def state():
                return {"flow": None}

        class offers:
            fitted, made = {}, {}

            class compiled:
                offers = {}

        class content:
            name = "p"
    rec = CallRecord.from_assist(Session, [], [], call_date=DAY)
    assert set(rec.vectors) == {1.23, 5.0}


# ---------------------------------------------------------------- steps found again, done, promises

def test_the_types_branch_steps_are_found_again(ac):
    # no branch chosen live: the change confirmed by the agent still resolves the ticket
    out = ac.finish(record([GREET_EN, ("customer", "I need to update my address, I've moved."),
                            ("agent", "No problem. That change is done, you're covered at the new address from today.")]))
    assert out["call_type"] == "policy_change"
    assert value(out, "resolution") == "resolved"


@pytest.mark.parametrize("text, done", [
    ("Payment accepted, your policy is fully paid for the year.", True),
    ("The repair is booked for next Wednesday.", True),
    ("I've cancelled the policy and you'll get a refund.", True),
    ("理赔款已经打到您账户了。", True),
    ("已经扣款成功，短信稍后发给您。", True),
    ("批改已经生效了。", True),
    ("I've checked, and I'm afraid I can't match that price.", False),
    ("Has it been processed?", False),
    ("Once it's approved I'll call you.", False),
    ("It hasn't been paid yet.", False),
    ("Thank you, you're verified.", False),
    ("您已经报警了吗？", False),
    ("还没有处理好。", False),
])
def test_done_in_any_wording(text, done):
    assert says_done(text) is done


def test_promises_in_every_future_form(ac):
    assert future_as_will("The adjuster's going to ring you") == "The adjuster will ring you"
    assert future_as_will("I'll post it") == "I will post it"
    assert future_as_will("We're gonna send it") == "We will send it"
    out = ac.finish(record([GREET_EN, ("customer", "Somebody hit my car in a car park and drove off."),
                            ("agent", "I've opened the claim. The assessor's going to phone you on Thursday.")]))
    fu = out["ticket"]["fields"]["follow_up"]
    assert "assessor" in fu["value"] and fu["due"] == "2026-03-12"


def test_words_of_another_call_type_do_not_split_requested_action(ac):
    out = ac.finish(record([GREET_EN, ("customer", "My renewal went up by two hundred dollars, so I want to cancel.")]))
    assert out["call_type"] == "cancellation" and value(out, "requested_action") == "cancel"


# ---------------------------------------------------------------- evaluator

def test_the_evaluator_scores_a_named_set_or_folders_only_when_asked(tmp_path):
    from callcue.daemon.eval import aftercall_score as S
    assert S.call_files([tmp_path]) == []
    (tmp_path / "b.yaml").write_text("x")
    (tmp_path / "a.yaml").write_text("x")
    assert [p.name for p in S.call_files([tmp_path])] == ["a.yaml", "b.yaml"]
    with pytest.raises(SystemExit):
        S.main(["--set", "no_such_set_here"])
    # the default sets never include a new held-out folder
    assert "heldout5" not in str(S.TUNED) + str(S.HELDOUT)
    assert Path(S.TUNED).name == "aftercall" and Path(S.HELDOUT).name == "aftercall_heldout"
