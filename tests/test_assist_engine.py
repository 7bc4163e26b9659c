"""The assist engine as pure logic: plain transcript events in, contract messages out.

A small pack (helpers.py: RULES, FLOW, OFFER) is written per test, and each test shows
the rule behaviour it relies on."""
from __future__ import annotations

import os
import time

import pytest

from callcue.daemon.assist.content import PackWatcher, load_content
from callcue.daemon.assist.engine import AssistEngine
from callcue.daemon.config import AssistConfig, DetectorConfig
from callcue.daemon.yamlfile import ConfigError
from helpers import FLOW, RULES, write_pack


def engine(tmp_path, grace_s: float = 2.0, **cfg) -> AssistEngine:
    content = load_content(write_pack(tmp_path / "pack"), None, grace_s=grace_s, knowledge=False)
    return AssistEngine(content, AssistConfig(**cfg))


class Call:
    """Feeds finals (and partials) in order; keeps every message as (topic suffix, payload)."""

    def __init__(self, eng: AssistEngine, ivr=None):
        self.s = eng.session("L1", "c1", None, ivr)
        self.out = [(m.subtopic.rsplit("/", 1)[1], m.payload) for m in self.s.start()]
        self.n = 0

    def say(self, speaker: str, text: str, t0: float, t1: float, final: bool = True, utt: int | None = None):
        if utt is None:
            self.n += 1
        msgs = self.s.tick(t1) + self.s.heard(speaker, text, final, t0, t1, utt if utt is not None else self.n, t1)
        self.out += [(m.subtopic.rsplit("/", 1)[1], m.payload) for m in msgs]
        return msgs

    def end(self, t: float):
        self.out += [(m.subtopic.rsplit("/", 1)[1], m.payload) for m in self.s.close(t)]

    def of(self, kind: str, sub: str | None = None) -> list[dict]:
        return [p for k, p in self.out if k == kind and (sub is None or p.get("kind") == sub)]


def test_sensitive_words_per_speaker_once_per_utterance_and_by_pinyin(tmp_path):
    c = Call(engine(tmp_path))
    c.say("agent", "These are Guaranteed returns", 1, 3, final=False, utt=7)
    c.say("agent", "These are guaranteed returns, truly guaranteed returns.", 1, 4, final=True, utt=7)
    c.say("customer", "guaranteed returns?", 5, 6)                     # agent-only phrase
    c.say("customer", "我要投速你们", 7, 9)                             # 诉 heard as 速: same pinyin
    alerts = c.of("alert", "sensitive_word")
    assert [(a["speaker"], a["evidence"]["phrase"]) for a in alerts] == [("agent", "guaranteed returns"),
                                                                        ("customer", "投诉")]
    assert alerts[0]["severity"] == "critical" and "mis-selling" in alerts[0]["message"]
    assert alerts[1]["evidence"]["heard"] == "我要投速你们"


def test_missing_greeting_is_raised_after_its_deadline_and_not_when_said(tmp_path):
    eng = engine(tmp_path, grace_s=30.0)
    c = Call(eng)
    c.say("agent", "Hello, what is it?", 2, 4)
    c.say("customer", "My car, it is about my car, you see.", 10, 16)
    assert not c.of("alert", "missing_phrase")               # no agent words after 15 s recognised yet
    c.say("agent", "Go on.", 15.5, 16.5)                     # a later agent utterance: judged now
    c.say("customer", "Yes.", 16.6, 16.8)
    missing = c.of("alert", "missing_phrase")
    assert [a["evidence"]["required"] for a in missing] == ["greeting"] and missing[0]["t_end"] == 15
    ok = Call(eng)
    ok.say("agent", "Thank you for calling Northgate, this is Ann.", 1, 4)
    ok.say("customer", "hi", 30, 31)
    assert not ok.of("alert", "missing_phrase")


def test_a_recogniser_running_late_does_not_make_the_greeting_missing(tmp_path):
    c = Call(engine(tmp_path, grace_s=30.0))
    c.s.tick(25.0)                                           # 25 s into the call, nothing recognised yet
    c.say("agent", "Thank you for calling, this is Ann.", 1, 4)   # its final arrives late
    c.s.tick(60.0)
    assert not c.of("alert", "missing_phrase")
    silent = Call(engine(tmp_path / "b", grace_s=30.0))
    assert [f["evidence"]["required"] for f in
            (m.payload for m in silent.s.tick(45.0))] == ["greeting"]   # grace over, nothing heard


def test_identity_check_before_account_details_and_closing_line(tmp_path):
    eng = engine(tmp_path)
    bad = Call(eng)
    bad.say("agent", "Thank you for calling.", 0, 2)
    bad.say("agent", "Right, your balance is two hundred dollars.", 3, 6)
    bad.say("agent", "Can I have your date of birth?", 7, 9)       # too late
    bad.end(12)
    assert sorted(a["evidence"]["required"] for a in bad.of("alert", "missing_phrase")) == ["closing", "identity"]
    good = Call(eng)
    good.say("agent", "Thank you for calling.", 0, 2)
    good.say("agent", "Can I have your date of birth please?", 3, 5)
    good.say("agent", "Thanks. Your balance is two hundred dollars.", 8, 11)
    good.say("agent", "Is there anything else I can help with?", 12, 14)
    good.end(16)
    assert good.of("alert", "missing_phrase") == []
    card = good.of("summary")[0]["scorecard"]
    assert card["missing_phrases"] == [] and card["pack"] == "test-pack"


def test_flow_steps_branch_by_customer_intent_and_next_step_suggestions(tmp_path):
    c = Call(engine(tmp_path))
    c.say("agent", "Thank you for calling, how can I help?", 0, 3)
    c.say("customer", "I had a car accident yesterday.", 4, 6)
    c.say("agent", "Sorry to hear. Before anything, could you verify your identity with your date of birth?", 7, 11)
    c.say("agent", "Now tell me what happened and where the accident was.", 12, 15)   # an example, no keyword
    flows = c.of("flow")
    last = flows[-1]
    assert last["flow"] == "service-en" and last["branch"] == "claim" and last["call_type"] == "Claim report"
    assert [(s["id"], s["done"]) for s in last["steps"]] == [("greet", True), ("verify", True),
                                                             ("claim_details", True), ("close", False)]
    assert last["completion"] == 0.75 and last["next_step"]["id"] == "close"
    steps = [s["step"] for s in c.of("suggestion", "next_step")]
    assert steps == ["verify", "claim_details", "close"]    # greet was done by the utterance that chose the flow
    assert c.of("suggestion", "next_step")[0]["body"] == "Can I have your date of birth?"


def test_ivr_context_chooses_the_branch_at_call_start(tmp_path):
    c = Call(engine(tmp_path), ivr={"intent": "billing", "lang": "en"})
    first = c.of("flow")[0]
    assert first["flow"] == "service-en" and first["branch"] == "billing" and first["branch_by"] == "ivr"
    c.say("customer", "I had a car accident", 1, 3)          # the IVR's choice stands
    assert c.of("flow")[-1]["branch"] == "billing"


def test_offer_suggested_when_it_fits_and_pitch_counted(tmp_path):
    eng = engine(tmp_path)
    c = Call(eng)
    c.say("customer", "My car broke down last week on a long drive.", 1, 4)
    c.say("customer", "It broke down again.", 5, 7)
    offers = c.of("suggestion", "offer")
    assert len(offers) == 1 and offers[0]["offer"] == "roadside" and "towing" in offers[0]["body"]
    c.say("agent", "Have you thought about our roadside assistance cover?", 8, 11)
    c.end(12)
    card = c.of("summary")[0]["scorecard"]["offers"]
    assert card["made_after_suggestion"] == ["roadside"] and card["pitch_rate"] == 1.0
    missed = Call(eng)
    missed.say("customer", "I have a long drive tomorrow.", 1, 3)
    missed.end(5)
    card = missed.of("summary")[0]["scorecard"]["offers"]
    assert card["missed"] == ["roadside"] and card["pitch_rate"] == 0.0


def test_team_thresholds_come_from_the_pack(tmp_path):
    eng = engine(tmp_path)
    base = DetectorConfig()
    assert eng.detectors_for("sales", base).fast_speech_syl_s == 5.5
    assert eng.detectors_for("claims", base) == base


@pytest.mark.parametrize("rules, msg", [
    (RULES.replace("within_s: 15}", "within_s: 15, at_end: true}"), r"rules\.yaml:6: required_phrases\.0: .*exactly one"),
    (RULES.replace("fast_speech_syl_s", "fast_speach"), r"rules\.yaml:\d+: teams: .*unknown threshold.*fast_speach"),
    (RULES.replace("severity: critical", "severity: huge"), r"rules\.yaml:3: sensitive_words\.0\.severity"),
    (RULES + "colour: red\n", r"rules\.yaml:\d+: colour: .*not permitted|rules\.yaml:\d+: colour"),
])
def test_broken_rule_pack_names_file_line_and_field(tmp_path, rules, msg):
    root = write_pack(tmp_path / "pack", rules=rules)
    with pytest.raises(ConfigError, match=msg):
        load_content(root, None, 2.0, knowledge=False)


def test_broken_flow_names_file_and_field(tmp_path):
    root = write_pack(tmp_path / "pack", flow=FLOW.replace("id: verify,", "id: greet,"))
    with pytest.raises(ConfigError, match=r"service\.en\.yaml:\d+: .*unique.*greet"):
        load_content(root, None, 2.0, knowledge=False)


def test_pack_reload_takes_edits_and_refuses_broken_ones(tmp_path):
    root = write_pack(tmp_path / "pack")
    build = lambda: load_content(root, None, 2.0, knowledge=False)
    w = PackWatcher(build, build())
    assert w.check() is None                                     # nothing changed
    rules = root / "rules.yaml"
    rules.write_text(RULES.replace("guaranteed returns", "risk free"), encoding="utf-8")
    os.utime(rules, ns=(time.time_ns(), time.time_ns() + 10**9))
    new = w.check()
    assert new is not None and new.rules.pack.sensitive_words[0].phrase == "risk free" and w.error is None
    rules.write_text(RULES.replace("speaker: agent", "speaker: robot"), encoding="utf-8")
    os.utime(rules, ns=(time.time_ns(), time.time_ns() + 2 * 10**9))
    assert w.check() is None and "rules.yaml:3" in w.error
    assert w.current is new                                      # the last good version stays live


def test_calls_in_a_language_the_speech_model_lacks_get_no_rules(tmp_path):
    content = load_content(write_pack(tmp_path / "pack"), None, grace_s=2.0, knowledge=False)
    eng = AssistEngine(content, AssistConfig(), None, "whisper-tiny.en", ("en",))
    s = eng.session("L1", "c1", None, {"lang": "zh"})
    # what an English-only model makes of Mandarin: English-looking words that mean nothing
    assert s.heard("agent", "Nin how, Harbor mutual, calm down", True, 0, 3, 1, 3) == []
    assert s.tick(60.0) == []
    (summary,) = s.close(70.0)
    assert summary.payload["scorecard"]["assist"] == "off" and "does not recognise zh" in summary.payload["summary"]
    ok = eng.session("L1", "c2", None, {"lang": "en"})
    assert ok.heard("agent", "guaranteed returns", True, 1, 2, 2, 2)[0].payload["kind"] == "sensitive_word"


def test_ivr_intent_without_language_waits_for_the_first_words(tmp_path):
    root = write_pack(tmp_path / "pack")
    zh = FLOW.replace("id: service-en", "id: service-zh").replace("lang: en", "lang: zh")
    (root / "flows" / "service.zh.yaml").write_text(zh, encoding="utf-8")
    eng = AssistEngine(load_content(root, None, 2.0, knowledge=False), AssistConfig())
    c = Call(eng, ivr={"intent": "billing"})
    assert not c.of("flow") or c.of("flow")[-1]["flow"] is None       # en or zh? not known yet
    c.say("customer", "您好，我上个月被扣了两次钱", 1, 3)
    last = c.of("flow")[-1]
    assert last["flow"] == "service-zh" and last["branch"] == "billing" and last["branch_by"] == "ivr"


def test_a_paraphrased_greeting_close_to_an_example_counts_as_said(tmp_path):
    rules = RULES.replace("say_any: [thank you for calling, 感谢您的来电], within_s: 15}",
                          "say_any: [thank you for calling, 感谢您的来电], within_s: 15,\n"
                          "     examples: [\"you are through to the customer service team how can I help\","
                          " \"您好这里是客服中心请问有什么可以帮您\"]}")
    root = write_pack(tmp_path / "pack", rules=rules)
    eng = AssistEngine(load_content(root, None, grace_s=2.0, knowledge=False), AssistConfig())
    for text in ("Hi, you are through to customer service, how can I help?", "您好，这里是客服中心，有什么可以帮您？"):
        c = Call(eng)
        c.say("agent", text, 1, 4)
        c.say("agent", "Right.", 20, 21)
        c.say("customer", "ok", 22, 23)
        assert not c.of("alert", "missing_phrase"), text
    c = Call(eng)
    c.say("agent", "Yes?", 1, 2)                         # nothing like a greeting
    c.say("agent", "Right.", 20, 21)
    c.say("customer", "ok", 22, 23)
    assert [a["evidence"]["required"] for a in c.of("alert", "missing_phrase")] == ["greeting"]
