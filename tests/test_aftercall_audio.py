"""After the call through AUDIO: calls rendered with `callcue synth` (the Piper voice for
English when installed, else espeak-ng) and replayed through the live pipeline with
Whisper tiny.en, as `callcue replay` runs them.

- The QA scorecard moves as it should on replayed calls that skip a flow step, talk over
  the customer, leave dead air or miss an offer, against the same call done right.
- `callcue replay --store` then `callcue calls show` of the replayed call prints its whole
  timeline: IVR context, turns, alerts, suggestions, flow steps, ticket, scorecard.
"""
from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from callcue.daemon.eval.synth.render import render_call, write_call
from callcue.daemon.eval.synth.script import CallScript
from conftest import missing, needs_demo_calls

REPO = Path(__file__).resolve().parent.parent
CALLCUE = [sys.executable, "-m", "callcue.daemon.cli"]
MODELS = ("whisper-tiny.en", "silero-vad")

# A short claim report done right: every step of the path, the offer that fits made,
# turns taking their turn (0.6 s apart). Each variant changes one thing.
BASE = [
    ("agent", "Thank you for calling Harbor Mutual, my name is Priya. How can I help you today?"),
    ("customer", "Hi, somebody rear ended my car yesterday and I want to make a claim."),
    ("agent", "I'm sorry to hear that. Can I have your policy number and date of birth?"),
    ("customer", "The policy number is H M 4 4 1 0 7, and I was born on the fourth of June 1985."),
    ("agent", "Thank you, that all matches. Tell me what happened."),
    ("customer", "I stopped at the lights and a van drove into the back of my car, the bumper is hanging off."),
    ("agent", "Was anyone hurt, and did the police come out?"),
    ("customer", "No, nobody was hurt, and the police did not come."),
    ("agent", "I have opened the claim for you, your claim number is C 3 3 0 1 8."),
    ("agent", "An adjuster will call you within two business days to arrange an inspection."),
    ("customer", "Good, because we are planning a road trip next month and I need the car."),
    ("agent", "For a road trip, you could add roadside assistance for four dollars a month. Shall I add it?"),
    ("customer", "Yes please, add that."),
    ("agent", "Done. Is there anything else I can help you with today?"),
    ("customer", "No, that's all, thank you."),
    ("agent", "Thanks for calling Harbor Mutual, have a great day."),
]


def script(turns: list[dict]) -> CallScript:
    return CallScript.model_validate({
        "language": "en", "title": "scorecard on audio", "sample_rate": 16000, "tail": 1.0, "turns": turns,
        "expect": {"ivr": {"intent": "claim", "lang": "en"}, "call_date": "2026-03-10"}})


def variant(name: str) -> CallScript:
    turns = [{"speaker": who, "text": text} for who, text in BASE]
    if name == "skip_step":          # no question about injuries and the police (and no answer)
        del turns[6:8]
    elif name == "talk_over":        # the agent cuts into the customer's account of the accident
        turns[6]["gap"] = -3.0
    elif name == "dead_air":         # 9 s of nothing before the agent comes back
        turns[8]["gap"] = 9.0
    elif name == "missed_offer":     # the road trip fits the roadside offer; the agent does not make it
        turns[11] = {"speaker": "agent", "text": "Okay, the adjuster will be quick, don't worry."}
        turns[12] = {"speaker": "customer", "text": "Thanks."}
    return script(turns)


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    """name -> the summary payload of each variant, rendered and replayed once."""
    from callcue.models.installed import installed_names
    lacking = [m for m in MODELS if m not in installed_names()]
    if lacking:
        missing(f"model(s) not installed: {', '.join(lacking)} (hardware/provision.sh builds them)")
    from callcue.daemon.eval.aftercall_audio import Replayer
    out_dir = tmp_path_factory.mktemp("scorecard_audio")
    rep = Replayer()
    got = {}
    for name in ("base", "skip_step", "talk_over", "dead_air", "missed_offer"):
        wav = out_dir / f"{name}.wav"
        write_call(render_call(variant(name), 16000), wav)
        run = rep.run(wav, name, 16000, {"intent": "claim", "lang": "en"}, date(2026, 3, 10))
        assert run.summary is not None, name
        got[name] = run.summary
    return got


def items(summary: dict) -> dict[str, dict]:
    return {i["id"]: i for i in summary["scorecard"]["items"]}


def test_the_call_done_right_scores_high(replayed):
    s = replayed["base"]
    it = items(s)
    assert s["call_type"] == "claim_report"
    assert it["flow_steps"]["points"] == it["flow_steps"]["weight"], it["flow_steps"]
    assert it["no_interrupting"]["points"] == it["no_interrupting"]["weight"], it["no_interrupting"]
    assert it["dead_air"]["points"] == it["dead_air"]["weight"], it["dead_air"]
    assert it["offers"]["applies"] and it["offers"]["points"] == it["offers"]["weight"], it["offers"]
    assert s["scorecard"]["score"] >= 85, s["scorecard"]


@pytest.mark.parametrize("name,item,evidence", [
    ("skip_step", "flow_steps", lambda ev: "Injuries and police" in ev["missed"]),
    ("talk_over", "no_interrupting", lambda ev: ev["agent"] >= 1),
    ("dead_air", "dead_air", lambda ev: ev["dead_air_s"] >= 7),
    ("missed_offer", "offers", lambda ev: "roadside-en" in ev["missed"]),
])
def test_the_scorecard_moves_on_replayed_audio(replayed, name, item, evidence):
    base, got = items(replayed["base"]), items(replayed[name])
    assert got[item]["applies"] and got[item]["points"] < base[item]["points"], (got[item], base[item])
    assert evidence(got[item]["evidence"]), got[item]["evidence"]
    assert replayed[name]["scorecard"]["score"] < replayed["base"]["scorecard"]["score"]
    # the other items stay where the call done right has them (one change, one item)
    for other in ("flow_steps", "no_interrupting", "dead_air", "offers"):
        if other != item and base[other]["applies"]:
            assert got[other]["points"] == base[other]["points"], (other, got[other], base[other])


@pytest.mark.needs_models(*MODELS)
def test_calls_show_prints_the_whole_timeline_of_a_replayed_call(tmp_path):
    needs_demo_calls()
    wav = REPO / "flows" / "demo" / "calls" / "en_claim_status.wav"
    r = subprocess.run(CALLCUE + ["replay", str(wav), "--store", str(tmp_path / "data"), "--call-id", "demo-1",
                                  "--call-date", "2026-03-10", "--ivr", "intent=claim_status", "--ivr", "lang=en",
                                  "--agent", "Daniel Ortiz"],
                       capture_output=True, text=True, timeout=900, cwd=REPO, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    ls = subprocess.run(CALLCUE + ["calls", "list", "--data-dir", str(tmp_path / "data"), "--agent", "Daniel Ortiz",
                                   "--since", "1d"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert ls.returncode == 0 and "demo-1" in ls.stdout, ls.stdout + ls.stderr
    show = subprocess.run(CALLCUE + ["calls", "show", "demo-1", "--data-dir", str(tmp_path / "data"), "--width", "160"],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert show.returncode == 0, show.stderr
    text = show.stdout
    for part in ("Call demo-1", "Daniel Ortiz", "IVR context: intent=claim_status, lang=en", "Summary", "Timeline",
                 "agent ", "customer ", "⚠ long_silence", "⚠ talk_over", "★ next_step", "✓ Greeting",
                 "Flow steps", "Ticket: Claim status", "Policy number", "Scorecard (insurance-qa)", "No dead air",
                 "Figures: duration_s"):
        assert part in text, (part, text[:3000])
    assert "47291" not in text            # the policy number said in the call: masked everywhere
    missing_call = subprocess.run(CALLCUE + ["calls", "show", "nope", "--data-dir", str(tmp_path / "data")],
                                  capture_output=True, text=True, timeout=120, cwd=REPO)
    assert missing_call.returncode == 1 and "no call 'nope'" in missing_call.stderr
