"""LineAnalyzer, pure logic: blocks and commands in, contract messages out."""
import numpy as np

from callcue.daemon.audio import Block
from callcue.daemon.config import CallsConfig, DetectorConfig, LineConfig, SourceConfig
from callcue.daemon.line import LineAnalyzer
from callcue.daemon.prosody.session import Detectors
from helpers import call, speech, write_pack

SR = 8000


def feed(an: LineAnalyzer, audio: np.ndarray, t0: float = 0.0, block_s: float = 0.1):
    out = []
    step = int(SR * block_s)
    for i in range(0, len(audio) - step + 1, step):
        out += [(t0 + i / SR, m) for m in an.feed(Block("7", t0 + i / SR, SR, audio[i:i + step, 0].copy(),
                                                          audio[i:i + step, 1].copy()))]
    return out


def analyzer(ended: list | None = None, **calls) -> LineAnalyzer:
    """`ended` collects (call, reason) of every call the analyzer ends."""
    line = LineConfig(id="7", agent="Ann", source=SourceConfig(wav="x.wav"))
    ids = iter(f"call-{i}" for i in range(100))
    on_end = (lambda c, reason, _dur: ended.append((c, reason))) if ended is not None else None
    return LineAnalyzer(line, CallsConfig(**calls), Detectors(DetectorConfig(), SR), new_id=lambda: next(ids),
                        on_call_end=on_end)


def states(msgs):
    return [(round(t, 1), m.payload["status"], m.payload["call_id"]) for t, m in msgs if m.subtopic.endswith("/state")]


def test_auto_call_starts_on_speech_and_ends_after_idle():
    ended = []
    an = analyzer(ended, auto=True, idle_end_s=4.0, start_speech_s=0.5)
    audio = call([("customer", 3.0, speech(2.0, f0=200)), ("agent", 5.5, speech(2.0))], 14.0)
    msgs = feed(an, audio)
    st = states(msgs)
    assert [s[1] for s in st] == ["in_call", "idle"]
    assert 3.0 < st[0][0] < 4.0             # a little speech is needed to start
    assert 11.0 < st[1][0] < 12.5           # 4 s after the last word (7.5 s)
    [(call_obj, reason)] = ended
    assert call_obj.t0 <= 3.0 and "no speech" in reason   # the pre-roll keeps the first words


def test_no_auto_calls_when_disabled_and_commands_drive_calls():
    an = analyzer(auto=False)
    audio = call([("customer", 0.5, speech(2.0, f0=200))], 4.0)
    assert states(feed(an, audio)) == []
    msgs = an.start_call(4.0, "cmd", call_id="pbx-1", agent="Ann B")
    assert msgs[0].payload["status"] == "in_call" and msgs[0].payload["agent"] == "Ann B"
    # a second call_start ends the first call before the new one
    msgs = an.start_call(5.0, "cmd", call_id="pbx-2")
    assert [(m.payload["status"], m.payload["call_id"]) for m in msgs] == [("idle", None), ("in_call", "pbx-2")]
    ended = an.end_call("call_end command")     # the call it ended comes back with its messages
    assert ended.call.call_id == "pbx-2" and [m.payload["status"] for m in ended.messages] == ["idle"]
    assert an.end_call() == (None, [])


def test_line_down_and_back():
    an = analyzer(auto=False)
    an.start_call(0.0, "cmd", call_id="c1")
    msgs = an.line_down("device 'usb1' delivered no audio for 1 s")
    assert msgs[0].payload["status"] == "down"
    alert = msgs[1].payload
    assert alert["kind"] == "line_down" and alert["call_id"] == "c1" and "usb1" in alert["message"]
    back = feed(an, call([], 0.2))
    assert states(back) == [(0.0, "in_call", "c1")]


def test_transcripts_of_a_call_in_a_language_the_model_lacks_are_not_published(tmp_path):
    """An English-only model turns Mandarin into made-up English: the line neither decodes
    nor publishes it once the IVR has said the call is in Chinese."""
    from callcue.daemon.asr.engine import AsrResult
    from callcue.daemon.assist.content import load_content
    from callcue.daemon.assist.engine import AssistEngine
    from callcue.daemon.config import AssistConfig

    content = load_content(write_pack(tmp_path / "pack"), None, grace_s=2.0, knowledge=False)
    engine = AssistEngine(content, AssistConfig(), None, "whisper-tiny.en", ("en",))
    line = LineConfig(id="7", agent="Ann", source=SourceConfig(wav="x.wav"))
    an = LineAnalyzer(line, CallsConfig(), Detectors(DetectorConfig(), SR), assist=engine)
    for lang, want in (("zh", 0), ("en", 1)):
        an.start_call(0.0, "cmd", call_id=f"c-{lang}", ivr={"lang": lang})
        res = AsrResult("7", "customer", f"c-{lang}", "and we will be able to help you", True, 1.0, 3.0, 0)
        got = [m for m in an.on_asr_result(res) if m.subtopic.endswith("/transcript")]
        assert len(got) == want, lang
        an.end_call("call_end")


def test_each_message_says_whether_it_is_published_stored_or_both(tmp_path):
    """The daemon publishes and stores by Message.route; what a call's record keeps is
    decided where the message is made: alerts, suggestions and summaries of a call, and
    final transcripts. State, flow, partials and alerts outside a call are only published."""
    from callcue.daemon.asr.engine import AsrResult
    from callcue.daemon.assist.content import load_content
    from callcue.daemon.assist.engine import AssistEngine
    from callcue.daemon.config import AssistConfig
    from callcue.daemon.contract import Route

    content = load_content(write_pack(tmp_path / "pack"), None, grace_s=2.0, knowledge=False)
    engine = AssistEngine(content, AssistConfig(), None, "whisper-tiny.en", ("en",))
    line = LineConfig(id="7", agent="Ann", source=SourceConfig(wav="x.wav"))
    # min_call_s 0: this call lasts no audio at all, and still gets its summary (README "Bursts")
    an = LineAnalyzer(line, CallsConfig(min_call_s=0), Detectors(DetectorConfig(), SR), assist=engine)
    msgs = an.line_down("usb1 gone") + an.line_up()                     # no call: nothing to store
    msgs += an.start_call(0.0, "cmd", call_id="c1") + an.line_down("usb1 gone") + an.line_up()
    for text, final in (("thank you for", False), ("thank you for calling", True)):
        msgs += an.on_asr_result(AsrResult("7", "agent", "c1", text, final, 0.5, 2.0, 0))
    msgs += an.end_call().messages + an.flush()
    got = {(m.output, bool(isinstance(m.payload, dict) and m.payload.get("call_id")),
            m.payload.get("final") if isinstance(m.payload, dict) else None, m.route) for m in msgs}
    want = {("state", False, None, Route.PUBLISH), ("state", True, None, Route.PUBLISH),
            ("alert", False, None, Route.PUBLISH), ("alert", True, None, Route.BOTH),
            ("transcript", True, False, Route.PUBLISH), ("transcript", True, True, Route.BOTH),
            ("flow", True, None, Route.PUBLISH), ("summary", True, None, Route.BOTH)}
    assert want <= got, got - want
    for m in msgs:
        assert m.subtopic == f"line/7/{m.output}"      # the output named is the topic it goes to
        if m.output == "suggestion":
            assert m.route == Route.BOTH


def test_the_summary_says_which_box_took_the_call(tmp_path):
    """`callcue collect` files a summary under its box: the topic names site, floor and line
    only, so the summary's `call` block carries the box id (the daemon's `box`)."""
    from callcue.daemon.assist.content import load_content
    from callcue.daemon.assist.engine import AssistEngine
    from callcue.daemon.config import AssistConfig
    from callcue.daemon.warehouse.records import rows_from_summary

    content = load_content(write_pack(tmp_path / "pack"), None, grace_s=2.0, knowledge=False)
    engine = AssistEngine(content, AssistConfig(), None, "whisper-tiny.en", ("en",))
    line = LineConfig(id="7", agent="Ann", team="claims", source=SourceConfig(wav="x.wav"))
    for box in ("nuc-3", None):
        an = LineAnalyzer(line, CallsConfig(min_call_s=0), Detectors(DetectorConfig(), SR), assist=engine, box=box)
        msgs = an.start_call(0.0, "cmd", call_id=f"c-{box}") + an.end_call().messages + an.flush()
        [summary] = [m.payload for m in msgs if m.output == "summary"]
        assert summary["call"]["box"] == box and summary["call"]["team"] == "claims"
        # what the central store makes of it
        assert rows_from_summary(summary, site="hq", floor="f1", line="7").call["box"] == box
