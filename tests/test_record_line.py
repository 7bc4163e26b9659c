"""The call record on the line (issue 13): a record result is published on
line/{line}/record (redacted), stored with the call, and kept unredacted as the call's
record text for the after-call work; the assist engine does not hear it twice."""
from __future__ import annotations

from callcue.daemon import contract
from callcue.daemon.asr.engine import AsrResult
from callcue.daemon.config import CallsConfig, DetectorConfig, LineConfig, SourceConfig
from callcue.daemon.line import LineAnalyzer
from callcue.daemon.prosody.session import Detectors


def test_a_record_turn_is_published_stored_and_kept_for_the_after_call_work():
    line = LineConfig(id="7", source=SourceConfig(wav="x.wav"))
    an = LineAnalyzer(line, CallsConfig(auto=False), Detectors(DetectorConfig(), 8000),
                      redact=lambda s: s.replace("4729", "****"))
    an.start_call(0.0, "cmd", "c1")
    res = AsrResult("7", "customer", "c1", "my policy is 4729 and I was charged twice", True, 1.0, 6.5, 0,
                    record=True)
    msgs = an.on_asr_result(res)
    assert [m.output for m in msgs] == ["record"]
    m = msgs[0]
    assert m.subtopic == "line/7/record" and contract.Route.STORE in m.route and m.qos == 1
    assert m.payload["text"] == "my policy is **** and I was charged twice" and m.payload["seq"] == 0
    if hasattr(an.call, "record_text"):
        assert [u.text for u in an.call.record_text] == [res.text]       # unredacted, for the after-call work
    assert an.on_asr_result(res)[0].payload["seq"] == 1
