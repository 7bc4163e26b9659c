"""The QA scorecard and the call's figures on plain timelines (aftercall/scorecard.py,
figures.py): the score moves as it should when a call skips a step, talks over the
customer, leaves dead air, misses an offer, leaves the customer agitated."""
from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from callcue.daemon.aftercall.figures import call_figures
from callcue.daemon.aftercall.finish import AfterCall
from callcue.daemon.aftercall.record import Alert, CallRecord, FlowRecord, OfferRecord, Step, Utterance
from callcue.daemon.assist.pack import default_pack_dir, load_pack

STEPS = ["greet", "verify", "claim_incident", "claim_safety", "claim_number", "claim_next", "anything_else", "close"]


@pytest.fixture(scope="module")
def ac() -> AfterCall:
    return AfterCall(load_pack(default_pack_dir()))


def base() -> CallRecord:
    """A clean two-minute claim call: turns alternate with short pauses, every step done,
    the offer that fitted made, nothing raised."""
    said = [
        ("agent", "Thank you for calling Harbor Mutual, my name is Priya, how can I help you today?"),
        ("customer", "Hi, somebody rear ended my car yesterday and I want to make a claim."),
        ("agent", "I'm sorry to hear that. Can I have your policy number and date of birth?"),
        ("customer", "The policy number is H M 4 4 1 0 7, born fourth of June 1985."),
        ("agent", "Thank you, that all matches. Tell me what happened."),
        ("customer", "I stopped at the lights and a van drove into the back of my car."),
        ("agent", "Was anyone hurt?"),
        ("customer", "No, nobody was hurt."),
        ("agent", "I've opened the claim, your claim number is C 3 3 0 1 8."),
        ("agent", "An adjuster will call you within two business days."),
        ("customer", "We're driving to Denver next week, so I need the car soon."),
        ("agent", "For a long drive, you could add roadside assistance for four dollars a month."),
        ("customer", "Yes please."),
        ("agent", "Done. Is there anything else I can help with?"),
        ("customer", "No, thank you."),
        ("agent", "Thanks for calling Harbor Mutual, have a great day."),
    ]
    utts, t = [], 0.5
    for who, text in said:
        d = max(1.2, len(text.split()) / 2.6)
        utts.append(Utterance(who, text, round(t, 2), round(t + d, 2)))
        t += d + 0.7
    flow = FlowRecord("inbound-service-en", "en", tuple(Step(s, s.replace("_", " ").title(), True, 1.0) for s in STEPS),
                      "claim_report", "Claim report", "customer")
    return CallRecord("c1", date(2026, 3, 10), utts, lang="en", flow=flow,
                      offers=[OfferRecord("roadside-en", "Roadside assistance add-on", 40.0, 45.0)], duration_s=t + 1.0)


def items(out: dict) -> dict[str, dict]:
    return {i["id"]: i for i in out["scorecard"]["items"]}


def test_a_clean_call_scores_full_marks(ac):
    out = ac.finish(base())
    card = out["scorecard"]
    assert card["form"] == "insurance-qa" and card["score"] == 100.0 and card["passed"] is True
    it = items(out)
    assert it["agitation_handled"]["applies"] is False          # never agitated: left out, not free points
    assert all(i["points"] == i["weight"] for i in card["items"] if i["applies"])


def test_skipping_a_step_costs_points(ac):
    rec = base()
    steps = tuple(replace(s, done=False, t=None) if s.id in ("claim_safety", "anything_else") else s
                  for s in rec.flow.steps)
    out = ac.finish(replace(rec, flow=replace(rec.flow, steps=steps)))
    it = items(out)
    assert it["flow_steps"]["points"] < it["flow_steps"]["weight"]
    assert it["flow_steps"]["evidence"]["missed"] == ["Claim Safety", "Anything Else"]
    assert out["scorecard"]["score"] < 100


def test_talking_over_the_customer_costs_points(ac):
    rec = base()
    # from the prosody detector
    alert = Alert("talk_over", "agent", 20.0, 21.5, "warning",
                  {"overlap_s": 1.5, "interrupter": "agent", "interrupted": "customer"})
    out = ac.finish(replace(rec, alerts=[alert]))
    it = items(out)
    assert it["no_interrupting"]["points"] == pytest.approx(5.0) and it["no_interrupting"]["evidence"]["agent"] == 1
    assert out["scorecard"]["figures"]["interruptions"] == {"agent": 1, "customer": 0}
    # seen in the utterances alone (no alert stream): the agent starts 2 s before the customer ends
    utts = list(rec.utterances)
    cust = utts[5]
    utts[6] = replace(utts[6], t_start=cust.t_end - 2.0, t_end=cust.t_end + 0.5)
    out2 = ac.finish(replace(rec, utterances=utts))
    assert items(out2)["no_interrupting"]["points"] < items(out2)["no_interrupting"]["weight"]
    assert out2["scorecard"]["figures"]["interruptions"]["agent"] == 1


def test_dead_air_costs_points(ac):
    rec = base()
    utts = [replace(u, t_start=u.t_start + 15.0, t_end=u.t_end + 15.0) if k >= 8 else u
            for k, u in enumerate(rec.utterances)]
    out = ac.finish(replace(rec, utterances=utts, duration_s=rec.duration_s + 15.0))
    figs = out["scorecard"]["figures"]
    assert figs["dead_air_s"] >= 15.0 and figs["longest_silence_s"] >= 15.0
    assert items(out)["dead_air"]["points"] < items(out)["dead_air"]["weight"]
    assert out["scorecard"]["score"] < ac.finish(rec)["scorecard"]["score"]


def test_missing_an_offer_that_fitted_costs_points(ac):
    rec = replace(base(), offers=[OfferRecord("roadside-en", "Roadside assistance add-on", 40.0, None)])
    it = items(ac.finish(rec))
    assert it["offers"]["points"] == 0 and it["offers"]["evidence"]["missed"] == ["roadside-en"]
    # no offer fitted at all: the item does not apply
    assert items(ac.finish(replace(rec, offers=[])))["offers"]["applies"] is False


def test_agitation_handled_when_calmer_at_the_end(ac):
    def agit(t0, t1, st):
        return Alert("agitation", "customer", t0, t1, "critical", {"pitch_up_st": st, "loudness_up_db": 6.0})
    rec = base()
    end = rec.duration_s
    early = items(ac.finish(replace(rec, alerts=[agit(5.0, 9.0, 5.0)])))["agitation_handled"]
    assert early["applies"] and early["points"] == early["weight"]
    calmer = items(ac.finish(replace(rec, alerts=[agit(5.0, 9.0, 6.0), agit(end - 6, end - 4, 2.0)])))["agitation_handled"]
    assert calmer["points"] == pytest.approx(calmer["weight"] / 2)
    worst_last = items(ac.finish(replace(rec, alerts=[agit(5.0, 9.0, 2.0), agit(end - 6, end - 4, 6.0)])))
    assert worst_last["agitation_handled"]["points"] == 0
    figs = ac.finish(replace(rec, alerts=[agit(5.0, 9.0, 5.0)]))["scorecard"]["figures"]
    assert figs["agitation_s"] == {"agent": 0.0, "customer": 4.0}


def test_rule_alerts_cost_points(ac):
    rec = base()
    sens = Alert("sensitive_word", "agent", 30.0, 32.0, "warning", {"phrase": "calm down"})
    miss = Alert("missing_phrase", "agent", 0.0, 15.0, "warning", {"required": "greeting", "title": "Greeting"})
    fast = Alert("fast_speech", "agent", 50.0, 56.0, "info", {"rate_syl_s": 7.2})
    it = items(ac.finish(replace(rec, alerts=[sens, miss, fast])))
    assert it["no_sensitive_words"]["points"] == pytest.approx(7.5)
    assert it["required_phrases"]["points"] == pytest.approx(10.0)
    assert it["speaking_rate"]["points"] == pytest.approx(3.75)


def test_an_incomplete_ticket_costs_points(ac):
    rec = base()
    utts = [u for u in rec.utterances if "policy number is" not in u.text]
    it = items(ac.finish(replace(rec, utterances=utts)))
    assert it["ticket_complete"]["evidence"]["missing"] == ["policy_number"]
    assert it["ticket_complete"]["points"] < it["ticket_complete"]["weight"]


def test_figures_of_a_hand_made_timeline():
    utts = [Utterance("agent", "one two three four five six", 0.0, 2.0),      # 6 syllables in 2 s
            Utterance("agent", "seven eight nine ten", 2.5, 4.0),              # joined: monologue 0-4 s
            Utterance("customer", "okay okay", 4.0, 5.0),
            Utterance("agent", "and so on and so forth", 11.0, 13.0),           # 6 s of dead air before it
            Utterance("customer", "yes yes yes", 12.0, 14.0)]                   # 1 s over the agent: interrupts
    rec = CallRecord("c", date(2026, 3, 10), utts, duration_s=15.0)
    f = call_figures(rec, min_gap_s=5.0, min_overlap_s=1.0)
    assert f["talk_s"] == {"agent": 5.5, "customer": 3.0}
    assert f["talk_listen_ratio"] == pytest.approx(1.83, abs=0.01)
    assert f["silence_share"] == pytest.approx(1 - 7.5 / 15.0, abs=0.01)           # speech: 0-2, 2.5-5, 11-14
    assert f["dead_air_s"] == 6.0 and f["longest_silence_s"] == 6.0
    assert f["interruptions"] == {"agent": 0, "customer": 1}
    assert f["longest_agent_monologue_s"] == 4.0
    assert f["speaking_rate_syl_s"]["agent"] == pytest.approx((6 + 5 + 6) / 5.5, abs=0.01)   # "seven" has two
