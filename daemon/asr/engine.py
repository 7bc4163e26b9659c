"""Speech recognition engines on sherpa-onnx.

One engine per box holds the loaded model (the weights, shared by every call); each
call channel (line x speaker) is a cheap stream or VAD session. Line workers hand over
gated audio through a bounded queue; the engine's thread decodes all channels that
have audio ready together (one batched sherpa-onnx call), and reports results through
a callback. `step()` does one round synchronously, which is how `callcue replay` and
the benchmarks drive it.

* StreamingEngine: OnlineRecognizer (streaming transducer) with endpointing, partial
  and final results, token timestamps, hotwords (modified beam search).
* OfflineEngine: silero VAD segments + OfflineRecognizer (Whisper, SenseVoice,
  Paraformer), finals only.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..config import AsrConfig
from .gate import Chunk, Timeline
from .repeats import drop_loops

log = logging.getLogger(__name__)

ONLINE_KINDS = ("online_transducer",)
BUSY_WAITED_S = 0.2     # an utterance that waited this long for a decode thread takes the fast path
# sherpa-onnx stops greedy Whisper after 6 tokens per second of the audio it was given
# (100 feature frames a second): a fast talker says more than that
WHISPER_TOKENS_PER_S = 6
CAP_SILENCE = 0.5       # a capped utterance is decoded again with this much silence after it (x its length)
WHISPER_MAX_SAMPLES = 29 * 16000    # sherpa-onnx keeps the first 3000 - 50 feature frames
OFFLINE_KINDS = ("offline_whisper", "offline_sense_voice", "offline_paraformer")


@dataclass(frozen=True, slots=True)
class AsrResult:
    line: str
    speaker: str
    call_id: str
    text: str
    final: bool
    t_start: float                   # call seconds
    t_end: float
    utterance: int                   # per channel; partials and final of one utterance share it
    tokens: tuple[str, ...] = ()
    timestamps: tuple[float, ...] = ()   # call seconds, one per token
    decoded_at: float = 0.0          # time.monotonic() when the result was produced


class AsrError(Exception):
    """The engine cannot start (model missing, corrupt, wrong kind); the message says why."""


@dataclass
class _Channel:
    line: str
    speaker: str
    call_id: str
    sample_rate: int
    timeline: Timeline = field(default_factory=Timeline)
    utterance: int = 0
    last_partial: str = ""
    closing: bool = False
    stream: object = None
    vad: object = None
    pending: deque = field(default_factory=deque)     # offline: (samples, call t) segments waiting
    history: np.ndarray | None = None                 # offline: the last seconds fed to the VAD (16 kHz)
    history_start: int = 0                            # fed-sample index of history[0]
    fed_at: float = 0.0                               # monotonic time audio last arrived


class AsrEngine:
    def __init__(self, cfg: AsrConfig, on_result: Callable[[AsrResult], None]):
        self.cfg = cfg
        self.on_result = on_result
        # every channel still producing results, and the one each (line, speaker) feeds now:
        # a call's closing channel finishes its last utterance while the next call starts
        self.channels: dict[tuple[str, str, str], _Channel] = {}
        self._current: dict[tuple[str, str], tuple[str, str, str]] = {}
        # one ordered queue, so a channel's open, audio and close are applied in order;
        # only audio counts against the bound (open/close are rare and never dropped)
        self._ops: deque = deque()
        self._audio_queued = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.busy_s = 0.0
        self.audio_s = 0.0
        self.dropped_s = 0.0
        self.decode_calls = 0
        self.decoded_streams = 0
        self.busy_decodes = 0          # offline Whisper: utterances decoded with the short padding
        self.repeats_trimmed = 0       # offline Whisper: finals that said their own words again (repeats.py)
        self.cap_retries = 0           # offline Whisper: utterances decoded again past sherpa-onnx's token cap
        self.errors = 0

    # ---- called from line workers (any thread) ----
    def open(self, line: str, speaker: str, call_id: str, sample_rate: int) -> None:
        with self._lock:
            self._ops.append(("open", line, speaker, call_id, sample_rate))
        self._wake.set()

    def close(self, line: str, speaker: str) -> None:
        with self._lock:
            self._ops.append(("close", line, speaker))
        self._wake.set()

    def feed(self, line: str, speaker: str, chunk: Chunk) -> bool:
        """Queue gated audio; never blocks. False (and counted) when the engine is behind."""
        with self._lock:
            if self._audio_queued >= self.cfg.queue_chunks:
                self.dropped_s += len(chunk.samples) / self._rate_of(line, speaker)
                return False
            self._ops.append(("audio", line, speaker, chunk))
            self._audio_queued += 1
        self._wake.set()
        return True

    def room(self) -> int:
        """Chunks the input queue still takes. Line workers never wait; a producer that
        may (a benchmark feeding recordings as fast as the engine goes) waits for room."""
        with self._lock:
            return self.cfg.queue_chunks - self._audio_queued

    def _rate_of(self, line: str, speaker: str) -> int:
        ch = self._channel(line, speaker)
        return ch.sample_rate if ch else 16000

    def _channel(self, line: str, speaker: str) -> _Channel | None:
        key = self._current.get((line, speaker))
        return self.channels.get(key) if key else None

    # ---- the engine thread ----
    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="asr", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout)

    def _main(self) -> None:
        while not self._stop.is_set():
            try:
                worked = self.step()
            except Exception:
                # one bad decode must not end recognition for the whole floor
                self.errors += 1
                log.exception("speech recognition round failed")
                worked = False
            if not worked:
                self._wake.wait(0.05)
                self._wake.clear()
        self.step()   # finish what was queued before stopping

    def step(self) -> bool:
        """Apply queued control and audio, then decode everything that is ready."""
        t0 = time.perf_counter()
        worked = False
        while True:
            with self._lock:
                if not self._ops:
                    break
                op = self._ops.popleft()
                if op[0] == "audio":
                    self._audio_queued -= 1
            worked = True
            if op[0] == "open":
                old = self._channel(op[1], op[2])
                if old is not None and not old.closing:
                    self._close(old)
                ch = self._open(*op[1:])
                key = (op[1], op[2], op[3])
                self.channels[key] = ch
                self._current[(op[1], op[2])] = key
            elif op[0] == "close":
                ch = self._channel(op[1], op[2])
                if ch is not None and not ch.closing:
                    self._close(ch)
                self._current.pop((op[1], op[2]), None)
            else:
                _, line, speaker, chunk = op
                ch = self._channel(line, speaker)
                if ch is None or ch.closing:
                    continue     # audio of a call that already ended
                dur = len(chunk.samples) / ch.sample_rate
                self.audio_s += dur
                ch.fed_at = time.monotonic()
                self._accept(ch, chunk, dur)
                self._between_chunks()
        worked |= self._decode()
        for key in [k for k, ch in self.channels.items() if ch.closing and self._finished(ch)]:
            del self.channels[key]
        if worked:
            self.busy_s += time.perf_counter() - t0
        return worked

    def stats(self) -> dict:
        return {"channels": len(self.channels), "queue_chunks": self._audio_queued,
                "pending_utterances": sum(len(ch.pending) for ch in list(self.channels.values())),
                "rtf": round(self.busy_s / self.audio_s, 4) if self.audio_s else None,
                "dropped_s": round(self.dropped_s, 1), "decode_calls": self.decode_calls,
                "mean_batch": round(self.decoded_streams / self.decode_calls, 2) if self.decode_calls else None,
                "errors": self.errors, "busy_decodes": self.busy_decodes,
                "repeats_trimmed": self.repeats_trimmed, "cap_retries": self.cap_retries}

    # ---- engine specifics ----
    def _open(self, line, speaker, call_id, sample_rate) -> _Channel:
        raise NotImplementedError

    def _accept(self, ch: _Channel, chunk: Chunk, dur: float) -> None:
        raise NotImplementedError

    def _decode(self) -> bool:
        raise NotImplementedError

    def _between_chunks(self) -> None:
        """Called after each queued chunk of a round is taken in."""

    def _close(self, ch: _Channel) -> None:
        raise NotImplementedError

    def _finished(self, ch: _Channel) -> bool:
        raise NotImplementedError

    def _emit(self, ch: _Channel, text: str, final: bool, t0: float, t1: float,
              tokens=(), stamps=()) -> None:
        self.on_result(AsrResult(ch.line, ch.speaker, ch.call_id, text, final, t0, t1, ch.utterance,
                                 tuple(tokens), tuple(stamps), time.monotonic()))


def _f32(samples: np.ndarray) -> np.ndarray:
    return (samples.astype(np.float32) / 32768.0)


def _up2_taps() -> np.ndarray:
    k = np.arange(31) - 15
    h = 0.5 * np.sinc(0.5 * k) * np.hamming(31)
    return (2.0 * h / h.sum()).astype(np.float32)


_UP2 = _up2_taps()


def upsample2(x: np.ndarray) -> np.ndarray:
    """8 kHz -> 16 kHz (zero-stuffing + 31-tap windowed-sinc low-pass at 4 kHz).

    silero VAD in sherpa-onnx only runs at 16 kHz; telephone audio has nothing above
    3.4 kHz, so this loses nothing."""
    y = np.zeros(2 * len(x), dtype=np.float32)
    y[::2] = x
    return np.convolve(y, _UP2, mode="same").astype(np.float32)


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
        return _Channel(line, speaker, call_id, sample_rate, stream=self.rec.create_stream())

    def _accept(self, ch, chunk, dur):
        ch.timeline.add(chunk.t, dur)
        ch.stream.accept_waveform(ch.sample_rate, _f32(chunk.samples))

    def _close(self, ch):
        ch.closing = True
        ch.stream.input_finished()

    def _finished(self, ch):
        return not self.rec.is_ready(ch.stream)

    def _decode(self) -> bool:
        worked = False
        touched: dict[int, _Channel] = {}
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

    def _results(self, ch: _Channel, force_final: bool = False) -> None:
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

    def _span(self, ch: _Channel, stamps=()) -> tuple[float, float]:
        end = ch.timeline.to_call(ch.timeline.fed_s)
        if stamps:
            return stamps[0], max(stamps[-1], stamps[0])
        start = ch.timeline.to_call(float(self.rec.start_time(ch.stream)))
        return start, end


class OfflineEngine(AsrEngine):
    """silero VAD per channel cuts utterances; the one shared OfflineRecognizer (ONNX
    Runtime sessions are thread-safe) decodes them on `num_threads` decode threads of one
    intra-op thread each, which uses the cores better than one decode with several
    threads (Whisper decodes token by token).

    Utterances are decoded oldest first across the box (the order they were cut), one
    at a time per channel so a channel's finals come out in order. Run by its own thread
    (`start()`), the engine hands an utterance to a free decode thread as soon as it is
    cut and goes on feeding the VADs while it decodes; driven by `step()` (replay,
    benchmarks) each round waits for its decodes, so a replay is deterministic."""

    LEAD_S = 0.25      # silero marks speech a little late; the first word needs this lead

    def __init__(self, cfg: AsrConfig, model, vad_model, on_result):
        super().__init__(cfg, on_result)
        import sherpa_onnx
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(cfg.num_threads, thread_name_prefix="asr-decode")
        self._inflight: dict = {}      # future -> channel; at most one per channel
        self._async = False            # True while the engine runs on its own thread
        self._cuts = 0                 # utterances cut so far: the decode order
        self.rec_busy = None           # Whisper with the short tail padding, used under load (start())
        self.model = model
        self.is_whisper = model.kind == "offline_whisper"

        self._sherpa = sherpa_onnx
        self.vad_model = vad_model
        self.rec = self._loaded(self._recogniser)

    def _loaded(self, make):
        try:
            return make()
        except Exception as exc:     # sherpa-onnx raises RuntimeError/ValueError from C++
            raise AsrError(f"cannot load model {self.model.name} from {self.model.directory}: {exc}") from None

    def _recogniser(self):
        m = self.model
        if m.kind == "offline_whisper":
            return self._whisper(self.cfg.whisper_tail_s)
        if m.kind == "offline_sense_voice":
            return self._sherpa.OfflineRecognizer.from_sense_voice(
                model=str(m.path("model")), tokens=str(m.path("tokens")), num_threads=1, use_itn=True, language="auto")
        return self._sherpa.OfflineRecognizer.from_paraformer(
            paraformer=str(m.path("model")), tokens=str(m.path("tokens")), num_threads=1)

    def _whisper(self, tail_s: float):
        m, cfg = self.model, self.cfg
        return self._sherpa.OfflineRecognizer.from_whisper(
            encoder=str(m.path("encoder")), decoder=str(m.path("decoder")), tokens=str(m.path("tokens")),
            language=cfg.language, task="transcribe", num_threads=1, decoding_method="greedy_search",
            enable_token_timestamps=cfg.token_timestamps,
            tail_paddings=round(tail_s * 100))     # in 10 ms feature frames

    def _vad(self, sample_rate: int):
        c = self._sherpa.VadModelConfig()
        c.silero_vad.model = str(self.vad_model.path("model"))
        c.silero_vad.threshold = self.cfg.vad_threshold
        c.silero_vad.min_silence_duration = self.cfg.vad_min_silence_s
        c.silero_vad.min_speech_duration = self.cfg.vad_min_speech_s
        c.silero_vad.max_speech_duration = self.cfg.max_utterance_s
        c.silero_vad.window_size = 512
        c.sample_rate = 16000
        c.num_threads = 1
        return self._sherpa.VoiceActivityDetector(c, buffer_size_in_seconds=self.cfg.max_utterance_s + 5)

    def _open(self, line, speaker, call_id, sample_rate):
        return _Channel(line, speaker, call_id, sample_rate, vad=self._vad(sample_rate))

    def _accept(self, ch, chunk, dur):
        ch.timeline.add(chunk.t, dur)
        x = _f32(chunk.samples)
        x = x if ch.sample_rate == 16000 else upsample2(x)
        keep = int((self.cfg.max_utterance_s + 5) * 16000)
        if ch.history is None:
            ch.history = x
        else:
            ch.history = np.concatenate([ch.history, x])
            if len(ch.history) > keep:
                ch.history_start += len(ch.history) - keep
                ch.history = ch.history[-keep:]
        ch.vad.accept_waveform(x)
        self._collect(ch)

    def _collect(self, ch: _Channel) -> None:
        while not ch.vad.empty():
            seg = ch.vad.front
            samples = np.asarray(seg.samples, dtype=np.float32)
            first = seg.start
            # the lead may not reach back past the start of this contiguous run of audio
            run0 = int(round(ch.timeline.run_start(first / 16000) * 16000))
            lead = min(int(self.LEAD_S * 16000), max(0, first - run0))
            i0 = max(ch.history_start, first - lead) - ch.history_start
            i1 = first - ch.history_start
            if ch.history is not None and 0 <= i0 < i1 <= len(ch.history):
                samples = np.concatenate([ch.history[i0:i1], samples])
                first -= i1 - i0
            self._cuts += 1
            ch.pending.append((samples, ch.timeline.to_call(first / 16000), self._cuts, time.monotonic()))
            ch.vad.pop()

    def _close(self, ch):
        ch.closing = True
        ch.vad.flush()
        self._collect(ch)

    def _finished(self, ch):
        return not ch.pending      # the utterance being decoded stays at the head until its result

    def start(self) -> None:
        # only the live engine decodes under load: replays (step()) never pay for the second
        # copy of the weights (~130 MB)
        if self.is_whisper and self.rec_busy is None and self.cfg.whisper_busy_tail_s != self.cfg.whisper_tail_s:
            self.rec_busy = self._loaded(lambda: self._whisper(self.cfg.whisper_busy_tail_s))
        self._async = True
        super().start()

    def stop(self, timeout: float = 10.0) -> None:
        self._async = False        # the last round finishes every decode it starts
        super().stop(timeout)

    def _between_chunks(self) -> None:
        # a long queue of audio (a burst after a stall, a benchmark feeding recordings)
        # must not keep utterances already cut from decode threads that are free
        if self._async and (len(self._inflight) < self.cfg.num_threads or any(f.done() for f in self._inflight)):
            self._decode()

    def _decode(self) -> bool:
        if self._async:
            done = self._complete()
            self._submit()
            for item in done:
                self._result(*item)
            return bool(done)
        # step() finishes its round: everything cut so far is decoded before it returns,
        # and the results come out in the order the utterances were cut (deterministic)
        from concurrent.futures import FIRST_COMPLETED, wait
        done = self._complete()
        self._submit()
        while self._inflight:
            wait(list(self._inflight), return_when=FIRST_COMPLETED)
            done += self._complete()
            self._submit()
        for item in sorted(done, key=lambda d: d[1][2]):
            self._result(*item)
        return bool(done)

    def _submit(self) -> None:
        """Give free decode threads the oldest utterances of channels not decoding one.

        Live (own thread), an utterance is decoded by the short-padding recogniser when
        others still wait behind it or it has itself waited for a thread (a burst of turns
        ending together): a loaded box trades a little accuracy for keeping finals prompt.
        step() (replay, benchmarks) always uses the accurate one, so a replay gives the same
        text however fast the machine is."""
        free = self.cfg.num_threads - len(self._inflight)
        if free <= 0:
            return
        decoding = set(map(id, self._inflight.values()))
        idle = [ch for ch in self.channels.values() if ch.pending and id(ch) not in decoding]
        taken = sorted(idle, key=lambda c: c.pending[0][2])[:free]
        waiting = sum(len(ch.pending) for ch in self.channels.values()) - len(self._inflight) - len(taken)
        late = bool(taken) and time.monotonic() - taken[0].pending[0][3] > BUSY_WAITED_S
        rec = self.rec_busy if self._async and self.rec_busy is not None and (waiting > 0 or late) else self.rec
        for ch in taken:
            fut = self._pool.submit(self._decode_one, ch.pending[0], rec)
            self._inflight[fut] = ch
            fut.add_done_callback(lambda _: self._wake.set())
            self.decode_calls += 1
            self.busy_decodes += rec is not self.rec

    def _complete(self) -> list:
        """(channel, utterance, stream or None) of every finished decode; the channel may
        start its next one."""
        out = []
        for fut in [f for f in self._inflight if f.done()]:
            ch = self._inflight.pop(fut)
            seg = ch.pending.popleft()
            self.decoded_streams += 1
            try:
                stream, retried = fut.result()
                self.cap_retries += retried
                out.append((ch, seg, stream))
            except Exception:
                # an utterance the model cannot decode must not stop the channel
                self.errors += 1
                log.exception("decoding an utterance of line %s %s failed", ch.line, ch.speaker)
                out.append((ch, seg, None))
        return out

    def _result(self, ch: _Channel, seg, s) -> None:
        samples, start, _, _ = seg
        text = s.result.text.strip() if s is not None else ""
        if text:
            stamps = [start + float(x) for x in (getattr(s.result, "timestamps", None) or [])]
            tokens = tuple(s.result.tokens)
            if self.is_whisper:
                text, keep, dropped = drop_loops(text, tokens)
                if dropped:
                    self.repeats_trimmed += 1
                    tokens = tuple(tokens[i] for i in keep)
                    stamps = [stamps[i] for i in keep if i < len(stamps)]
            self._emit(ch, text, True, start, start + len(samples) / 16000, tokens, stamps)
        ch.utterance += 1

    def _decode_one(self, seg, rec) -> tuple[object, bool]:
        """(decoded stream, whether it took a second decode). A Whisper transcript that
        reached sherpa-onnx's token cap lost its last words; silence after the speech
        raises the cap without changing what is heard, so such an utterance is decoded
        again with it (only fast talkers pay for the second decode). Not when the model
        looped into the cap: the loop is dropped anyway, and more room only makes it longer."""
        samples = seg[0]
        s = _decoded(rec, samples)
        # Whisper hears at most 30 s (sherpa-onnx drops the rest): the silence must fit
        silence = min(int(len(samples) * CAP_SILENCE), WHISPER_MAX_SAMPLES - len(samples))
        if (self.is_whisper and silence > 0 and len(s.result.tokens) >= whisper_token_cap(len(samples)) - 1
                and not drop_loops(s.result.text.strip(), ())[2]):    # a loop ran into the cap: nothing was lost
            return _decoded(rec, np.concatenate([samples, np.zeros(silence, np.float32)])), True
        return s, False


def _decoded(rec, samples: np.ndarray):
    s = rec.create_stream()
    s.accept_waveform(16000, samples)
    rec.decode_stream(s)
    return s


def whisper_token_cap(n_samples: int) -> int:
    """How many tokens sherpa-onnx lets greedy Whisper write for n_samples of 16 kHz audio."""
    return int(n_samples / 160 / 100 * WHISPER_TOKENS_PER_S)


def resolve_models(cfg: AsrConfig, models_dir: Path | None, verify: bool = True):
    """(model, vad model or None), of the right kinds; every file re-hashed when `verify`
    (sizes only otherwise, for a caller that has just verified them)."""
    from callcue.models.installed import ModelError, check_kind, resolve

    try:
        model = resolve(cfg.model, models_dir=models_dir, verify=verify)
        check_kind(model, ONLINE_KINDS + OFFLINE_KINDS, engine="speech recognition")
        vad = None
        if model.kind in OFFLINE_KINDS:
            vad = resolve(cfg.vad_model, models_dir=models_dir, verify=verify)
            check_kind(vad, "vad", engine="voice activity")
        return model, vad
    except ModelError as exc:
        raise AsrError(str(exc)) from None


def build_engine(cfg: AsrConfig, on_result: Callable[[AsrResult], None], models_dir: Path | None = None,
                 preflight: bool = True) -> AsrEngine:
    """Resolve, verify and load the configured model; AsrError with the fix if that fails.

    Before loading it here, the model is loaded and exercised in a child process
    (preflight.py): some broken models end the process inside sherpa-onnx instead of
    raising, and the daemon must answer those with a message, not a crash."""
    if cfg.hotwords_file is not None and not Path(cfg.hotwords_file).is_file():
        raise AsrError(f"hotwords file {cfg.hotwords_file} does not exist")
    model, vad = resolve_models(cfg, models_dir)   # the one full checksum pass
    if preflight:
        from .preflight import run_preflight
        problem = run_preflight(cfg.model_copy(update={"models_dir": models_dir}))
        if problem:
            raise AsrError(f"model {cfg.model}: {problem}")
    return _construct(cfg, on_result, model, vad)


def _construct(cfg: AsrConfig, on_result, model, vad) -> AsrEngine:
    if vad is None:
        return StreamingEngine(cfg, model, on_result)
    return OfflineEngine(cfg, model, vad, on_result)
