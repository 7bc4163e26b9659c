"""Offline backend: silero VAD per channel cuts utterances, a sherpa-onnx
OfflineRecognizer (Whisper, SenseVoice, Paraformer) decodes them; finals only.
8 kHz lines are up-sampled for the VAD and recogniser (`upsample2`).
"""
from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from .. import memory
from ..config import AsrConfig
from .engine import AsrEngine, AsrError, Channel, f32
from .repeats import drop_loops

log = logging.getLogger(__name__)

BUSY_WAITED_S = 0.2     # an utterance that waited this long for a decode thread takes the fast path
# sherpa-onnx stops greedy Whisper after 6 tokens per second of the audio it was given
# (100 feature frames a second): a fast talker says more than that
WHISPER_TOKENS_PER_S = 6
CAP_SILENCE = 0.5       # a capped utterance is decoded again with this much silence after it (x its length)
WHISPER_MAX_SAMPLES = 29 * 16000    # sherpa-onnx keeps the first 3000 - 50 feature frames
# silero VADs of closed channels kept (reset) for the next calls: each is ~9 MB (its own ONNX
# session), so making one per call would churn the heap; more than this are freed
VAD_POOL = 8


@dataclass(frozen=True, slots=True)
class Utterance:
    """One cut of a channel's speech, waiting for (or in) its decode."""

    samples: np.ndarray     # float32, 16 kHz, with the lead before the VAD's start
    start: float            # call seconds of samples[0]
    order: int              # cut number across the box: the decode order
    cut_at: float           # time.monotonic() when it was cut
    record: bool = False    # a whole turn for the call record (second pass), not a live utterance
    copy: bool = False      # record of a one-utterance turn by the live model: the live text, not decoded again
    end: float = 0.0        # record: call seconds where the turn ends (its fed audio skips the pauses)
    lang: str | None = None # record: the call's language, when it was given (IVR) and is not asr.language


@dataclass
class OfflineChannel(Channel):
    vad: object = None
    pending: deque[Utterance] = field(default_factory=deque)   # oldest first; the head may be decoding
    history: np.ndarray | None = None                 # the last seconds fed to the VAD (16 kHz)
    history_start: int = 0                            # fed-sample index of history[0]
    # the turn the record pass will decode whole: fed-sample span of its live utterances
    turn: tuple[int, int] | None = None
    turn_cuts: int = 0
    last_live: tuple = ()                             # (text, tokens, stamps) of the last live final


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

    def __init__(self, cfg: AsrConfig, model, vad_model, on_result, record_model=None):
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
        self._free_vads: list = []     # reset VADs of closed channels, reused by the next opens
        self._drop_log = memory.LogLimiter(log, every_s=10.0)
        self.rec = self._loaded(self._recogniser)
        # the record pass: each speaker's turn decoded whole, with the accurate padding, by the
        # live model or asr.record_model (e.g. Whisper base)
        self.record_model = record_model
        self.rec_record = None
        if self.is_whisper and cfg.record:
            self.rec_record = self._loaded(lambda: self._whisper(self.cfg.whisper_tail_s, record_model or model))
        self.record_name = (record_model or model).name
        # a multilingual record model hears each call in its own language (the IVR context's):
        # sherpa-onnx fixes a Whisper's language per recogniser, so one per language, made
        # on first use by a decode thread
        self._record_langs = tuple((record_model or model).languages) if self.rec_record is not None else ()
        self._record_recs: dict[str, object] = {}
        self._call_langs: dict[tuple[str, str], str] = {}      # (line, call) -> language; guarded by _lock
        import threading
        self._rec_lock = threading.Lock()

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

    def _whisper(self, tail_s: float, m=None, language: str | None = None):
        m, cfg = m or self.model, self.cfg
        return self._sherpa.OfflineRecognizer.from_whisper(
            encoder=str(m.path("encoder")), decoder=str(m.path("decoder")), tokens=str(m.path("tokens")),
            language=language or cfg.language, task="transcribe", num_threads=1, decoding_method="greedy_search",
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
        vad = self._free_vads.pop() if self._free_vads else self._vad(sample_rate)
        return OfflineChannel(line, speaker, call_id, sample_rate, vad=vad)

    def _accept(self, ch, chunk, dur):
        ch.timeline.add(chunk.t, dur)
        x = f32(chunk.samples)
        x = x if ch.sample_rate == 16000 else upsample2(x)
        keep = int((max(self.cfg.max_utterance_s, self.cfg.record_max_s if self.rec_record else 0) + 5) * 16000)
        if ch.history is None:
            ch.history = x
        else:
            ch.history = np.concatenate([ch.history, x])
            if len(ch.history) > keep:
                ch.history_start += len(ch.history) - keep
                ch.history = ch.history[-keep:]
        ch.vad.accept_waveform(x)
        self._collect(ch)

    def _collect(self, ch: OfflineChannel) -> None:
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
            if self.rec_record is not None:
                self._turn(ch, first, first + len(samples))
            self._cuts += 1
            ch.pending.append(Utterance(samples, ch.timeline.to_call(first / 16000), self._cuts, time.monotonic()))
            ch.vad.pop()
            self._bound_pending()

    def _bound_pending(self) -> None:
        """At most asr.max_pending_utterances wait for a decode across the box: when the
        decoders fall that far behind, the oldest waiting one is dropped (counted in
        health asr.dropped_utterances, logged), so memory and latency stay bounded."""
        waiting = sum(len(c.pending) for c in self.channels.values()) - len(self._inflight)
        if waiting <= self.cfg.max_pending_utterances:
            return
        decoding = {id(c) for c in self._inflight.values()}
        while waiting > self.cfg.max_pending_utterances:
            # a channel decoding its head keeps it; the oldest of the rest goes
            cands = [(c.pending[1 if id(c) in decoding else 0].order, c) for c in self.channels.values()
                     if len(c.pending) > (1 if id(c) in decoding else 0)]
            if not cands:
                return
            _, ch = min(cands, key=lambda x: x[0])
            k = 1 if id(ch) in decoding else 0
            utt = ch.pending[k]
            del ch.pending[k]            # by position: utterances hold arrays, == would not do
            if not utt.record:
                ch.utterance += 1      # the dropped one keeps its number: later finals stay in order
            waiting -= 1
            self.dropped_utterances += 1
            self._drop_log.error("speech recognition is behind: %d utterances wait for a decoder "
                                 "(asr.max_pending_utterances %d); dropped one of %.1f s of line %s %s, call %s "
                                 "(%d dropped so far)", waiting + 1, self.cfg.max_pending_utterances,
                                 len(utt.samples) / 16000, ch.line, ch.speaker, ch.call_id, self.dropped_utterances)

    def _turn(self, ch: OfflineChannel, first: int, end: int) -> None:
        """The record pass's turns: an utterance after a pause longer than record_gap_s (call
        time), or that would make the turn's audio longer than record_max_s, starts a new
        turn; the other party starting to speak ends this speaker's turn. The turn's audio is
        what was fed (the gate leaves out most of a long pause)."""
        call = ch.timeline.to_call
        if ch.turn is not None and (call(first / 16000) - call(ch.turn[1] / 16000) > self.cfg.record_gap_s
                                    or end - ch.turn[0] > self.cfg.record_max_s * 16000):
            self._end_turn(ch)
        if ch.turn is None:
            ch.turn, ch.turn_cuts = (first, end), 0
        ch.turn = (ch.turn[0], end)
        ch.turn_cuts += 1
        t = ch.timeline.to_call(first / 16000)
        for other in (self.channels.values() if self.cfg.record_turns else ()):
            if (other is not ch and other.line == ch.line and other.call_id == ch.call_id and other.turn is not None
                    and other.timeline.to_call(other.turn[1] / 16000) <= t):
                self._end_turn(other)

    def set_language(self, line: str, call_id: str, lang: str | None) -> None:
        """The call's spoken language (any thread; the line calls it with the IVR context's):
        a multilingual record model decodes the call's turns in it from now on."""
        with self._lock:
            if lang and lang != self.cfg.language and lang in self._record_langs and len(self._record_langs) > 1:
                if len(self._call_langs) >= 4096:          # calls long over: forget the oldest
                    self._call_langs.pop(next(iter(self._call_langs)))
                self._call_langs[(line, call_id)] = lang
            else:
                self._call_langs.pop((line, call_id), None)

    def _record_rec(self, lang: str | None):
        if lang is None:
            return self.rec_record
        with self._rec_lock:
            if lang not in self._record_recs:
                self._record_recs[lang] = self._loaded(lambda: self._whisper(
                    self.cfg.whisper_tail_s, self.record_model or self.model, lang))
            return self._record_recs[lang]

    def _end_turn(self, ch: OfflineChannel) -> None:
        """Queue the channel's turn for the record pass, after its live utterances."""
        if ch.turn is None:
            return
        (a, b), n = ch.turn, ch.turn_cuts
        ch.turn = None
        self._cuts += 1
        with self._lock:
            lang = self._call_langs.get((ch.line, ch.call_id))
        if n == 1 and lang is None and (self.record_model is None or self.record_model.name == self.model.name):
            # one utterance, the same model: the live decode is already this turn's record
            ch.pending.append(Utterance(np.zeros(0, np.float32), ch.timeline.to_call(a / 16000), self._cuts,
                                        time.monotonic(), record=True, copy=True))
            return
        b = min(b + int(0.3 * 16000), ch.history_start + (len(ch.history) if ch.history is not None else 0))
        i0, i1 = max(0, a - ch.history_start), b - ch.history_start
        if ch.history is None or i1 <= i0:
            return
        ch.pending.append(Utterance(ch.history[i0:i1].copy(), ch.timeline.to_call((ch.history_start + i0) / 16000),
                                    self._cuts, time.monotonic(), record=True, end=ch.timeline.to_call(b / 16000),
                                    lang=lang))

    def _close(self, ch):
        ch.closing = True
        ch.vad.flush()
        self._collect(ch)
        self._end_turn(ch)
        # the VAD and the audio history are only needed while audio comes: back to the pool
        # now; the utterances already cut stay until they are decoded
        vad, ch.vad, ch.history = ch.vad, None, None
        vad.reset()
        if len(self._free_vads) < VAD_POOL:
            self._free_vads.append(vad)
        else:
            del vad
            self._freed += 1

    def _release(self, ch):
        if ch.vad is not None:      # the engine stops with the channel open
            ch.vad = None
        ch.history = None
        ch.pending.clear()

    def _finished(self, ch):
        return not ch.pending      # the utterance being decoded stays at the head until its result

    def _pending_utterances(self) -> int:
        return sum(len(ch.pending) for ch in list(self.channels.values()))

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
        self._pool.shutdown(wait=True, cancel_futures=True)   # decode threads joined, not left to exit

    def shutdown(self) -> None:
        super().shutdown()
        self._inflight.clear()
        self._free_vads.clear()
        self.rec = self.rec_busy = None

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
        for item in sorted(done, key=lambda d: d[1].order):
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
        taken = sorted(idle, key=lambda c: c.pending[0].order)[:free] if not self._abandon else []
        waiting = sum(len(ch.pending) for ch in self.channels.values()) - len(self._inflight) - len(taken)
        late = bool(taken) and time.monotonic() - taken[0].pending[0].cut_at > BUSY_WAITED_S
        rec = self.rec_busy if self._async and self.rec_busy is not None and (waiting > 0 or late) else self.rec
        for ch in taken:
            utt = ch.pending[0]
            if utt.copy:
                from concurrent.futures import Future
                fut = Future()
                fut.set_result((None, False))
                self._inflight[fut] = ch
                continue
            if utt.record:
                self.record_decodes += 1
            fut = self._pool.submit(self._decode_one, utt, None if utt.record else rec)
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
            utt = ch.pending.popleft()
            self.decoded_streams += 1
            try:
                stream, retried = fut.result()
                self.cap_retries += retried
                out.append((ch, utt, stream))
            except Exception:
                # an utterance the model cannot decode must not stop the channel
                self.errors += 1
                log.exception("decoding an utterance of line %s %s failed", ch.line, ch.speaker)
                out.append((ch, utt, None))
        return out

    def _result(self, ch: OfflineChannel, utt: Utterance, s) -> None:
        start = utt.start
        if utt.copy:
            if ch.last_live:
                text, tokens, stamps, t0, t1 = ch.last_live
                self._emit(ch, text, True, t0, t1, tokens, stamps, record=True)
            return
        text = s.result.text.strip() if s is not None else ""
        ch.last_live = ()
        if text:
            stamps = [start + float(x) for x in (getattr(s.result, "timestamps", None) or [])]
            tokens = result_tokens(s.result)
            if self.is_whisper:
                text, keep, dropped = drop_loops(text, tokens)
                if dropped:
                    self.repeats_trimmed += 1
                    tokens = tuple(tokens[i] for i in keep)
                    stamps = [stamps[i] for i in keep if i < len(stamps)]
            end = utt.end if utt.record else start + len(utt.samples) / 16000
            if utt.record:
                self._emit(ch, text, True, start, end, tokens, stamps, record=True)
                return
            ch.last_live = (text, tokens, stamps, start, end)
            self._emit(ch, text, True, start, end, tokens, stamps)
        if not utt.record:
            ch.utterance += 1

    def _decode_one(self, utt: Utterance, rec) -> tuple[object, bool]:
        """(decoded stream, whether it took a second decode). A Whisper transcript that
        reached sherpa-onnx's token cap lost its last words; silence after the speech
        raises the cap without changing what is heard, so such an utterance is decoded
        again with it (only fast talkers pay for the second decode). Not when the model
        looped into the cap: the loop is dropped anyway, and more room only makes it longer."""
        if rec is None:         # the record pass: its recogniser for the call's language, made here if new
            rec = self._record_rec(utt.lang)
        samples = utt.samples
        s = _decoded(rec, samples)
        # Whisper hears at most 30 s (sherpa-onnx drops the rest): the silence must fit
        silence = min(int(len(samples) * CAP_SILENCE), WHISPER_MAX_SAMPLES - len(samples))
        if (self.is_whisper and silence > 0 and len(result_tokens(s.result)) >= whisper_token_cap(len(samples)) - 1
                and not drop_loops(s.result.text.strip(), ())[2]):    # a loop ran into the cap: nothing was lost
            return _decoded(rec, np.concatenate([samples, np.zeros(silence, np.float32)])), True
        return s, False


def result_tokens(result) -> tuple[str, ...]:
    """The decoded tokens. A multilingual Whisper (whisper-base) writes a Chinese character as
    byte-level pieces that are not UTF-8 one by one, and sherpa-onnx's binding raises
    UnicodeDecodeError returning them: then the text's characters stand in for them (the
    loop trimmer and the token cap count characters instead, which Chinese text has about as
    many of as it has tokens)."""
    try:
        return tuple(result.tokens)
    except UnicodeDecodeError:
        return tuple(ch for ch in result.text if not ch.isspace())


def _decoded(rec, samples: np.ndarray):
    s = rec.create_stream()
    s.accept_waveform(16000, samples)
    rec.decode_stream(s)
    return s


def whisper_token_cap(n_samples: int) -> int:
    """How many tokens sherpa-onnx lets greedy Whisper write for n_samples of 16 kHz audio."""
    return int(n_samples / 160 / 100 * WHISPER_TOKENS_PER_S)
