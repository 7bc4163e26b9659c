"""Speech recognition engine base: the queue and the thread every backend shares.

One engine per box holds the loaded model (the weights, shared by every call); each
call channel (line x speaker) is a cheap stream or VAD session. Line workers hand over
gated audio through a bounded queue; the engine's thread decodes all channels that
have audio ready together, and reports results through a callback. `step()` does one
round synchronously, which is how `callcue replay` and the benchmarks drive it.

The backends (picked by the model's kind in factory.py):
* streaming.py: OnlineRecognizer (streaming transducer) with endpointing, partial and
  final results, token timestamps, hotwords (modified beam search).
* offline.py: silero VAD segments + OfflineRecognizer (Whisper, SenseVoice,
  Paraformer), finals only.
setup.py builds the configured one (`build_engine`).
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .. import memory
from ..config import AsrConfig
from .gate import Chunk, SpeechGate, Timeline

log = logging.getLogger(__name__)

TRIM_EVERY_S = 2.0     # at most this often, freed channels' memory is handed back (malloc_trim)


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
    record: bool = False             # the call record's text (second pass over a whole turn), not a live final


class AsrError(Exception):
    """The engine cannot start (model missing, corrupt, wrong kind); the message says why."""


@dataclass
class Channel:
    """One call channel (line x speaker x call). Only the engine thread touches it."""

    line: str
    speaker: str
    call_id: str
    sample_rate: int
    timeline: Timeline = field(default_factory=Timeline)
    utterance: int = 0
    closing: bool = False
    fed_at: float = 0.0                               # monotonic time audio last arrived


def f32(samples: np.ndarray) -> np.ndarray:
    """int16 PCM as the float32 in [-1, 1) sherpa-onnx takes."""
    return (samples.astype(np.float32) / 32768.0)


class AsrEngine:
    def __init__(self, cfg: AsrConfig, on_result: Callable[[AsrResult], None]):
        self.cfg = cfg
        self.on_result = on_result
        # every channel still producing results, and the one each (line, speaker) feeds now:
        # a call's closing channel finishes its last utterance while the next call starts.
        # Engine thread only; other threads ask has_call().
        self.channels: dict[tuple[str, str, str], Channel] = {}
        self._current: dict[tuple[str, str], tuple[str, str, str]] = {}
        # one ordered queue, so a channel's open, audio and close are applied in order;
        # only audio counts against the bound (open/close are rare and never dropped)
        self._ops: deque = deque()
        self._audio_queued = 0
        # guarded by _lock, for other threads: channels from open() until their last result
        # (a queued open counts, so a call is never reported done before it began), and
        # each (line, speaker)'s sample rate for counting dropped audio
        self._live: set[tuple[str, str, str]] = set()
        # the channels open now (taking audio: a VAD or stream each), by (line, speaker):
        # what the caps count; a closed channel finishing its last utterances holds none
        self._opened: dict[tuple[str, str], str] = {}
        self._rates: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._abandon = False          # stop(): the queue took too long to finish; drop the rest
        self._thread: threading.Thread | None = None
        self.busy_s = 0.0
        self.audio_s = 0.0
        self.dropped_s = 0.0
        self.decode_calls = 0
        self.decoded_streams = 0
        self.busy_decodes = 0          # offline Whisper: utterances decoded with the short padding
        self.repeats_trimmed = 0       # offline Whisper: finals that said their own words again (repeats.py)
        self.cap_retries = 0           # offline Whisper: utterances decoded again past sherpa-onnx's token cap
        self.record_decodes = 0        # offline: turns decoded whole for the call record (asr.record)
        self.errors = 0
        self.dropped_utterances = 0    # offline: cut but never decoded, the engine that far behind (asr.max_pending_utterances)
        # channels refused by the caps (asr.max_channels, asr.max_channels_per_line), by line
        self.refused: dict[str, int] = {}
        self._refusal_log = memory.LogLimiter(log, every_s=5.0)
        self._freed = 0                # channels freed since the last malloc_trim
        self._trimmed_at = 0.0

    # ---- called from line workers (any thread) ----
    def speech_gate(self, sample_rate: int) -> SpeechGate:
        """The gate a line puts in front of this engine for one speaker of a call."""
        return SpeechGate(sample_rate, self.cfg.pre_roll_s, self.cfg.post_roll_s)

    def open(self, line: str, speaker: str, call_id: str, sample_rate: int) -> bool:
        """Queue a new channel. False (logged, counted in `refused`) when the line or the box
        already has its cap of open channels (asr.max_channels_per_line, asr.max_channels):
        that speaker of the call is then not transcribed, and nothing of it is allocated."""
        with self._lock:
            self._opened.pop((line, speaker), None)     # a channel left open is replaced (_apply_open)
            on_line = sum(1 for k in self._opened if k[0] == line)
            total = len(self._opened)
            if on_line >= self.cfg.max_channels_per_line or total >= self.cfg.max_channels:
                self.refused[line] = self.refused.get(line, 0) + 1
                why = (f"line {line} already holds {on_line} (asr.max_channels_per_line)"
                       if on_line >= self.cfg.max_channels_per_line
                       else f"the box already holds {total} (asr.max_channels)")
                refused = True
            else:
                self._ops.append(("open", line, speaker, call_id, sample_rate))
                self._opened[(line, speaker)] = call_id
                self._live.add((line, speaker, call_id))
                self._rates[(line, speaker)] = sample_rate
                refused = False
        if refused:
            self._refusal_log.error("speech recognition refused a channel for line %s %s of call %s: %s; "
                                    "that speaker of the call is not transcribed", line, speaker, call_id, why)
            return False
        self._wake.set()
        return True

    def close(self, line: str, speaker: str) -> None:
        with self._lock:
            self._opened.pop((line, speaker), None)
            self._ops.append(("close", line, speaker))
        self._wake.set()

    def feed(self, line: str, speaker: str, chunk: Chunk) -> bool:
        """Queue gated audio; never blocks. False (and counted) when the engine is behind."""
        with self._lock:
            if self._audio_queued >= self.cfg.queue_chunks:
                self.dropped_s += len(chunk.samples) / self._rates.get((line, speaker), 16000)
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

    def has_call(self, line: str, call_id: str) -> bool:
        """Whether results of this call may still come: a channel of it is open, or closed
        with audio or utterances left to decode. False once its last result is out."""
        with self._lock:
            return any(k[0] == line and k[2] == call_id for k in self._live)

    def idle(self) -> bool:
        """Nothing queued and every channel closed with its last result out."""
        with self._lock:
            return not self._ops and not self._live

    def _channel(self, line: str, speaker: str) -> Channel | None:
        key = self._current.get((line, speaker))
        return self.channels.get(key) if key else None

    # ---- the engine thread ----
    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="asr", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish what is queued (up to `timeout`; then the rest is dropped, with a log
        line) and join the engine's thread: nothing of it runs after this returns."""
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("speech recognition: its queue was not finished %.0f s after the stop; "
                            "the rest is dropped", timeout)
                self._abandon = True
                self._thread.join()

    def shutdown(self) -> None:
        """After stop(): free every channel (VADs, streams) and the model now, in this
        order, rather than in the interpreter's teardown."""
        for ch in list(self.channels.values()):
            self._release(ch)
        self.channels.clear()
        self._current.clear()
        with self._lock:
            self._ops.clear()
            self._live.clear()
            self._opened.clear()

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
        if self._abandon:
            with self._lock:
                self._ops.clear()
                self._audio_queued = 0
        while True:
            with self._lock:
                if not self._ops:
                    break
                op = self._ops.popleft()
                if op[0] == "audio":
                    self._audio_queued -= 1
            worked = True
            if op[0] == "open":
                self._apply_open(*op[1:])
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
        self._reap()
        if worked:
            self.busy_s += time.perf_counter() - t0
        return worked

    def _reap(self) -> None:
        """Forget closed channels whose last result is out; give the freed memory back to
        the system now and then (glibc keeps freed blocks otherwise, and a burst of calls
        would leave the process at its peak)."""
        done = [k for k, ch in self.channels.items() if ch.closing and self._finished(ch)]
        for key in done:
            self._release(self.channels.pop(key))
        if done:
            with self._lock:
                self._live.difference_update(done)
            self._freed += len(done)
        if self._freed and time.monotonic() - self._trimmed_at >= TRIM_EVERY_S:
            self._freed = 0
            self._trimmed_at = time.monotonic()
            memory.trim()

    def _apply_open(self, line: str, speaker: str, call_id: str, sample_rate: int) -> None:
        old = self._channel(line, speaker)
        if old is not None and not old.closing:
            self._close(old)
        key = (line, speaker, call_id)
        try:
            ch = self._open(line, speaker, call_id, sample_rate)
        except Exception:
            with self._lock:    # never opened: nothing of this channel is to come
                self._live.discard(key)
            raise
        self.channels[key] = ch
        self._current[(line, speaker)] = key

    def stats(self) -> dict:
        return {"channels": len(self.channels), "open_channels": len(self._opened),
                "refused_channels": sum(self.refused.values()), "dropped_utterances": self.dropped_utterances,
                "queue_chunks": self._audio_queued,
                "pending_utterances": self._pending_utterances(),
                "rtf": round(self.busy_s / self.audio_s, 4) if self.audio_s else None,
                "dropped_s": round(self.dropped_s, 1), "decode_calls": self.decode_calls,
                "mean_batch": round(self.decoded_streams / self.decode_calls, 2) if self.decode_calls else None,
                "errors": self.errors, "busy_decodes": self.busy_decodes,
                "repeats_trimmed": self.repeats_trimmed, "cap_retries": self.cap_retries,
                "record_decodes": self.record_decodes}

    # ---- backend specifics ----
    def _open(self, line, speaker, call_id, sample_rate) -> Channel:
        raise NotImplementedError

    def _accept(self, ch: Channel, chunk: Chunk, dur: float) -> None:
        raise NotImplementedError

    def _decode(self) -> bool:
        raise NotImplementedError

    def _between_chunks(self) -> None:
        """Called after each queued chunk of a round is taken in."""

    def _close(self, ch: Channel) -> None:
        """Input is over: cut what is left. What only the audio needed (a VAD, its history)
        is released here, at once, not when the last utterance has been decoded."""
        raise NotImplementedError

    def _release(self, ch: Channel) -> None:
        """The channel is done (last result out, or the engine stops): free what it holds."""

    def _finished(self, ch: Channel) -> bool:
        raise NotImplementedError

    def _pending_utterances(self) -> int:
        """Utterances cut and waiting for (or in) a decode, for health."""
        return 0

    def _emit(self, ch: Channel, text: str, final: bool, t0: float, t1: float,
              tokens=(), stamps=(), record: bool = False) -> None:
        self.on_result(AsrResult(ch.line, ch.speaker, ch.call_id, text, final, t0, t1, ch.utterance,
                                 tuple(tokens), tuple(stamps), time.monotonic(), record))
