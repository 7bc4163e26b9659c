"""WAV replay: a recorded call played in as if it were a live line.

The agent and customer come from channels of one file, or from two mono (or
multi-channel) files read in lockstep. Only 16-bit PCM at the line's rate is
accepted: resampling on the fly would hide a wrong file behind a working demo.
"""
from __future__ import annotations

import threading
import time
import wave
from pathlib import Path

import numpy as np

from ..audio import SPEAKERS, Block, SourceError, frame_len
from ..config import LineConfig


def _sox_hint(path: Path, args: str) -> str:
    return f" (convert with: sox {path} {args} {path.with_suffix('')}-fixed.wav)"


def open_wav(path: Path, rate: int) -> wave.Wave_read:
    """Open ``path`` as 16-bit PCM at ``rate`` Hz, or raise SourceError saying what is wrong."""
    path = Path(path)
    if not path.exists():
        raise SourceError(f"{path}: file not found")
    if path.is_dir():
        raise SourceError(f"{path}: is a folder, not a WAV file")
    try:
        w = wave.open(str(path), "rb")
    except wave.Error as exc:
        msg = str(exc)
        if "RIFF" in msg:
            raise SourceError(f"{path}: not a WAV file (RIFF header missing)") from None
        if "WAVE" in msg:
            raise SourceError(f"{path}: not a WAV file (RIFF file without a WAVE header)") from None
        if msg.startswith("unknown format"):
            code = msg.rsplit(":", 1)[-1].strip()
            raise SourceError(f"{path}: WAV sample format {code} is not plain PCM; only 16-bit PCM WAV is supported"
                              + _sox_hint(path, "-b 16 -e signed-integer")) from None
        raise SourceError(f"{path}: not a usable WAV file ({msg})") from None
    except EOFError:
        raise SourceError(f"{path}: not a WAV file (file ends inside the header)") from None
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        if w.getsampwidth() != 2:
            raise SourceError(f"{path}: samples are {8 * w.getsampwidth()}-bit; only 16-bit PCM WAV is supported"
                              + _sox_hint(path, "-b 16"))
        if w.getframerate() != rate:
            raise SourceError(f"{path}: sample rate is {w.getframerate()} Hz but the line is configured for {rate} Hz"
                              + _sox_hint(path, f"-r {rate}"))
        if w.getnframes() == 0:
            raise SourceError(f"{path}: has no audio (0 frames)")
        short = _missing_bytes(path)
        if short:
            rate_bytes = w.getframerate() * w.getnchannels() * w.getsampwidth()
            promised = w.getnframes() * w.getnchannels() * w.getsampwidth()
            raise SourceError(f"{path}: truncated: its header promises {promised / rate_bytes:.1f} s of audio but the "
                              f"file holds {(promised - short) / rate_bytes:.1f} s (an interrupted copy or recording?)")
    except SourceError:
        w.close()
        raise
    return w


def _missing_bytes(path: Path) -> int:
    """How many bytes of the data chunk its header promises beyond the end of the file
    (0 for a whole file). The wave module reads a truncated file to its end without a
    word, so a line would replay less than the file says, and be reported up."""
    import struct

    size = path.stat().st_size
    with open(path, "rb") as fh:
        fh.seek(12)                          # RIFF, size, WAVE
        while True:
            head = fh.read(8)
            if len(head) < 8:
                return 0
            cid, n = struct.unpack("<4sI", head)
            if cid == b"data":
                return max(0, fh.tell() + n - size)
            fh.seek(n + (n & 1), 1)          # chunks are word-aligned


def _channels_text(n: int) -> str:
    return {1: "mono", 2: "stereo"}.get(n, f"{n}-channel")


class WavReplay:
    """The two speakers of a line read from one or two WAV files, frame-aligned.

    read(n) gives (agent, customer) int16 arrays of n samples, zero-padded past the
    end of a shorter file and at the very end, or None once every file has ended.
    """

    def __init__(self, line: LineConfig):
        self.line = line
        self.rate = line.sample_rate
        taps = {who: line.source.tap(who) for who in SPEAKERS}
        for who, tap in taps.items():
            if tap.wav is None:
                raise SourceError(f"line {line.id}: {who} comes from device {tap.device!r} but the other speaker "
                                  f"from a WAV file; a line's speakers must both be devices or both be WAV files")
        self._files: dict[Path, wave.Wave_read] = {}
        self._route: dict[str, tuple[Path, int]] = {}
        try:
            for who, tap in taps.items():
                path = Path(tap.wav)
                if path not in self._files:
                    self._files[path] = open_wav(path, self.rate)
                n = self._files[path].getnchannels()
                if tap.channel >= n:
                    raise SourceError(f"{path} is {_channels_text(n)} but the line maps {who} to channel {tap.channel}")
                self._route[who] = (path, tap.channel)
        except SourceError:
            self.close()
            raise

    @property
    def paths(self) -> list[Path]:
        return list(self._files)

    def rewind(self) -> None:
        for w in self._files.values():
            w.rewind()

    def close(self) -> None:
        for w in self._files.values():
            w.close()

    def read(self, n: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Up to ``n`` samples per speaker, cut to whole 20 ms frames (the last frame of
        the audio zero-padded); a file that ended before the other reads as silence."""
        data: dict[Path, np.ndarray] = {}
        real = 0
        for path, w in self._files.items():
            ch = w.getnchannels()
            got = np.frombuffer(w.readframes(n), dtype="<i2").reshape(-1, ch)
            real = max(real, len(got))
            if len(got) < n:
                got = np.concatenate([got, np.zeros((n - len(got), ch), dtype=np.int16)])
            data[path] = got
        if real == 0:
            return None
        fl = frame_len(self.rate)
        keep = -(-real // fl) * fl
        out = []
        for who in SPEAKERS:
            path, ch = self._route[who]
            out.append(np.ascontiguousarray(data[path][:keep, ch], dtype=np.int16))
        return out[0], out[1]


class WavLineSource:
    """Replays one line's WAV file(s) into its queue on a thread of its own.

    realtime pace holds every block until its audio time has passed on the wall clock
    (measured from the start, so sleep errors never accumulate); fast pace goes as fast
    as the consumer empties the queue, waiting for room instead of dropping.
    """

    def __init__(self, line: LineConfig, sink, on_status, on_eof=None, retry_s: float = 2.0,
                 block_frames: int = 5, max_retry_s: float = 30.0):
        self.line = line
        self._sink = sink
        self._on_status = on_status
        self._on_eof = on_eof
        self._retry_s = retry_s
        self._max_retry_s = max_retry_s
        self._block = block_frames * frame_len(line.sample_rate)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"capture-wav-{line.id}", daemon=True)
        self._last: tuple[bool, str] | None = None
        self.samples = 0          # per speaker, since the source started
        self.up = False
        self.reason = "not started"

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _status(self, up: bool, reason: str) -> None:
        self.up, self.reason = up, reason
        if self._last != (up, reason):
            self._last = (up, reason)
            self._on_status(self.line.id, up, reason)

    def _run(self) -> None:
        delay = self._retry_s
        while not self._stop.is_set():
            try:
                replay = WavReplay(self.line)
            except SourceError as exc:
                # a bad file stays bad until someone replaces it: report once, look again slowly
                self._status(False, str(exc))
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, self._max_retry_s)
                continue
            delay = self._retry_s
            try:
                finished = self._play(replay)
            except (OSError, EOFError, wave.Error) as exc:
                self._status(False, f"line {self.line.id}: reading {', '.join(map(str, replay.paths))} failed: {exc}")
                finished = False
            finally:
                replay.close()
            if finished:
                if self._on_eof is not None:
                    self._on_eof(self.line.id)
                return

    def _play(self, replay: WavReplay) -> bool:
        """True when the files ended (and the line does not loop), False when stopped."""
        src = self.line.source
        rate = self.line.sample_rate
        names = " + ".join(str(p) for p in replay.paths)
        self._status(True, f"replaying {names} ({src.pace}{', looping' if src.loop else ''})")
        start = time.monotonic()
        played = 0            # samples since this play started, for pacing
        while not self._stop.is_set():
            got = replay.read(self._block)
            if got is None:
                if not src.loop:
                    return True
                replay.rewind()
                continue
            agent, customer = got
            n = len(agent)
            if src.pace == "realtime":
                due = start + (played + n) / rate
                wait = due - time.monotonic()
                if wait > 0 and self._stop.wait(wait):
                    return False
            block = Block(self.line.id, self.samples / rate, rate, agent, customer)
            if src.pace == "fast":
                while not self._sink.wait_for_room(block.n_frames, timeout=0.2):
                    if self._stop.is_set():
                        return False
            self._sink.put(block)
            played += n
            self.samples += n
        return False
