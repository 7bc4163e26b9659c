"""Recognition results -> `transcript` messages and the alerts words can raise.

Per line: numbers transcript events (`seq`, per call) and measures the agent's speaking rate from final transcripts (words
and token times are a better syllable count than the energy envelope when a transcript
exists). Pure logic, no I/O.
"""
from __future__ import annotations

from collections import OrderedDict

from .. import contract
from ..config import DetectorConfig
from ..text import syllables


def speech_span(res) -> float:
    """Seconds of speech in a final result: token times when there are enough."""
    st = res.timestamps
    if len(st) >= 3 and st[-1] > st[0]:
        return (st[-1] - st[0]) * len(st) / (len(st) - 1)
    return max(0.0, res.t_end - res.t_start)


class TranscriptTracker:
    def __init__(self, line: str, det: DetectorConfig):
        self.line = line
        self.det = det
        self._calls: OrderedDict[str, dict] = OrderedDict()   # call_id -> {seq}

    def call_started(self, call_id: str) -> None:
        self._calls[call_id] = {"seq": 0}
        while len(self._calls) > 8:   # late results of recent calls only
            self._calls.popitem(last=False)

    def result(self, res, text: str, fast_spans: list[tuple[float, float]] | None):
        """(transcript messages, alert messages) for one result; `text` is the redacted text."""
        state = self._calls.get(res.call_id)
        if state is None:
            self.call_started(res.call_id)
            state = self._calls[res.call_id]
        state["seq"] += 1
        msgs = [contract.transcript(self.line, res.call_id, res.speaker, text, res.final,
                                    res.t_start, res.t_end, state["seq"])]
        alerts = []
        if res.final and res.speaker == "agent" and fast_spans is not None:
            alert = self._rate(res, text, fast_spans)
            if alert is not None:
                alerts.append(alert)
        return msgs, alerts

    def _rate(self, res, text: str, fast_spans):
        if len(res.timestamps) < 3:
            return None   # without token times the segment length is too loose a clock; prosody decides
        span = speech_span(res)
        n = syllables(res.text)
        if span < self.det.fast_speech_min_s or n < 6:
            return None
        rate = n / span
        t0, t1 = (res.timestamps[0], res.t_end) if res.timestamps else (res.t_start, res.t_end)
        if rate <= self.det.fast_speech_syl_s or any(s < t1 and t0 < e for s, e in fast_spans):
            return None
        fast_spans.append((t0, t1))
        return contract.alert(self.line, res.call_id, "fast_speech", "info", "agent", t0, t1,
                              f"Agent speaking fast: {rate:.1f} syllables/s (limit {self.det.fast_speech_syl_s:.1f})",
                              {"rate_syl_s": round(rate, 2), "threshold_syl_s": self.det.fast_speech_syl_s,
                               "speech_s": round(span, 2), "syllables": n, "source": "transcript",
                               "heard": text})
