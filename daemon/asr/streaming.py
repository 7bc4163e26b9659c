"""Streaming backend: a sherpa-onnx OnlineRecognizer (streaming transducer).

Endpointing, partial and final results, token timestamps, hotwords (modified beam
search). Every channel with audio ready is decoded in one batched `decode_streams` call.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..config import AsrConfig
from .engine import AsrEngine, AsrError, Channel, f32


@dataclass
class StreamingChannel(Channel):
    stream: object = None
    last_partial: str = ""


class StreamingEngine(AsrEngine):
    def __init__(self, cfg: AsrConfig, model, on_result):
        super().__init__(cfg, on_result)
        import sherpa_onnx

        hot = str(cfg.hotwords_file) if cfg.hotwords_file else ""
        # hotwords only work with modified beam search in sherpa-onnx
        method = "modified_beam_search" if hot else cfg.decoding_method
        try:
            self.rec = sherpa_onnx.OnlineRecognizer.from_transducer(
                tokens=str(model.path("tokens")), encoder=str(model.path("encoder")),
                decoder=str(model.path("decoder")), joiner=str(model.path("joiner")),
                num_threads=cfg.num_threads, sample_rate=16000, feature_dim=80,
                enable_endpoint_detection=True,
                rule1_min_trailing_silence=cfg.endpoint_rule1_s, rule2_min_trailing_silence=cfg.endpoint_rule2_s,
                rule3_min_utterance_length=cfg.endpoint_rule3_s, decoding_method=method,
                hotwords_file=hot, hotwords_score=cfg.hotwords_score,
                modeling_unit=cfg.modeling_unit, bpe_vocab=str(model.path("bpe_vocab")) if model.has("bpe_vocab") else "")
        except Exception as exc:   # sherpa-onnx raises RuntimeError/ValueError with its own text
            raise AsrError(f"cannot load streaming model {model.name} from {model.directory}: {exc}") from None

    def _open(self, line, speaker, call_id, sample_rate):
        return StreamingChannel(line, speaker, call_id, sample_rate, stream=self.rec.create_stream())

    def _accept(self, ch, chunk, dur):
        ch.timeline.add(chunk.t, dur)
        ch.stream.accept_waveform(ch.sample_rate, f32(chunk.samples))

    def _close(self, ch):
        ch.closing = True
        ch.stream.input_finished()

    def _release(self, ch):
        ch.stream = None      # the stream (features, decoder state) is freed with its last reference

    def _finished(self, ch):
        return not self.rec.is_ready(ch.stream)

    def _decode(self) -> bool:
        worked = False
        touched: dict[int, StreamingChannel] = {}
        while True:
            ready = [ch for ch in self.channels.values() if self.rec.is_ready(ch.stream)]
            if not ready:
                break
            for i in range(0, len(ready), self.cfg.max_batch):
                batch = ready[i:i + self.cfg.max_batch]
                self.rec.decode_streams([ch.stream for ch in batch])
                self.decode_calls += 1
                self.decoded_streams += len(batch)
                for ch in batch:
                    touched[id(ch)] = ch
            worked = True
        for ch in touched.values():
            self._results(ch)
        for ch in self.channels.values():
            if ch.closing and id(ch) not in touched and not self.rec.is_ready(ch.stream):
                self._results(ch, force_final=True)
        return worked

    def _results(self, ch: StreamingChannel, force_final: bool = False) -> None:
        text = self.rec.get_result(ch.stream).strip()
        endpoint = self.rec.is_endpoint(ch.stream) or (ch.closing and not self.rec.is_ready(ch.stream))
        if not (endpoint or force_final):
            if text and text != ch.last_partial and self.cfg.partials:
                ch.last_partial = text
                t0, t1 = self._span(ch)
                self._emit(ch, text, False, t0, t1)
            return
        if text:
            res = self.rec.get_result_all(ch.stream)
            seg0 = float(getattr(res, "start_time", 0.0) or 0.0)
            stamps = [ch.timeline.to_call(seg0 + float(x)) for x in (res.timestamps or [])]
            t0, t1 = self._span(ch, stamps)
            self._emit(ch, text, True, t0, t1, res.tokens, stamps)
        ch.last_partial = ""
        ch.utterance += 1
        if not ch.closing:
            self.rec.reset(ch.stream)

    def _span(self, ch: StreamingChannel, stamps=()) -> tuple[float, float]:
        end = ch.timeline.to_call(ch.timeline.fed_s)
        if stamps:
            return stamps[0], max(stamps[-1], stamps[0])
        start = ch.timeline.to_call(float(self.rec.start_time(ch.stream)))
        return start, end
