"""One capture device, read in its own process.

Why a process and not a thread: PortAudio builds its device list once, in
Pa_Initialize, and the init is reference-counted per process, so a second
PyAudio() inside the daemon sees the same stale list while any other stream is
open (measured with PortAudio 19.6). A device plugged in after start can only be
found by a fresh PortAudio, and a read stuck inside the driver cannot be cancelled
from Python, only killed with its process. This file therefore runs as a script
(stdlib + pyaudio only, so it starts in about 50 ms) and talks to
device_source.DeviceReader over its stdout:

    header struct "<cI" (kind, payload length), then the payload
    O  JSON {name, index, channels, rate, max_input_channels, alsa}   the stream is open
       (alsa: what ALSA printed beyond the usual probe noise, for the log)
    D  raw int16 interleaved frames, block_frames of them       one block of audio
    E  JSON {reason}                                            fatal; the process exits
"""
from __future__ import annotations

import json
import os
import re
import struct
import sys
import tempfile
import time

HEADER = struct.Struct("<cI")

# PortAudio probes every ALSA PCM and JACK on init and prints what it cannot open;
# these lines are expected on any box and say nothing about the device we want.
_NOISE = re.compile(
    r"^(ALSA lib confmisc\.c:\d+:\((parse_card|snd_func_\w+)\) "
    r"|ALSA lib conf\.c:\d+:\((_snd_config_evaluate|snd_config_expand)\) "
    r"|ALSA lib pcm\.c:\d+:\(snd_pcm_open_noupdate\) Unknown PCM"
    r"|Cannot connect to server|jack server is not running|JackShmReadWritePtr"
    r"|Expression '.*' failed in 'src/hostapi)"
)
_ALSA_PREFIX = re.compile(r"^ALSA lib [\w.]+:\d+:\(\w+\) ")


def pick_device(match: str, names: list[str]) -> int:
    """Index into ``names`` of the device ``match`` selects, or raise LookupError saying why.

    An exact (case-insensitive) name wins; otherwise exactly one name must contain the
    substring, because two identical taps must never be confused silently.
    """
    m = match.lower()
    exact = [i for i, n in enumerate(names) if n.lower() == m]
    if len(exact) == 1:
        return exact[0]
    hits = [i for i, n in enumerate(names) if m in n.lower()]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        listed = ", ".join(repr(n) for n in names) or "none"
        raise LookupError(f"no input device name contains {match!r} (input devices: {listed})")
    listed = ", ".join(repr(names[i]) for i in hits)
    raise LookupError(f"{match!r} matches {len(hits)} input devices ({listed}); use a longer name, "
                      f"or give the card a stable name (hardware/README.md, udev)")


class _Stderr:
    """Collects what C libraries write to fd 2 while active, so it can be filtered."""

    def __enter__(self):
        sys.stderr.flush()
        self._tmp = tempfile.TemporaryFile()
        self._saved = os.dup(2)
        os.dup2(self._tmp.fileno(), 2)
        self.text = ""
        return self

    def __exit__(self, *exc):
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._tmp.seek(0)
        self.text = self._tmp.read().decode("utf-8", "replace")
        self._tmp.close()
        return False

    def useful(self, limit: int = 3) -> str:
        """The lines that are not enumeration noise, ALSA prefixes stripped."""
        keep = []
        for line in self.text.splitlines():
            line = line.strip()
            if line and not _NOISE.match(line):
                line = _ALSA_PREFIX.sub("", line)
                if line not in keep:
                    keep.append(line)
        return "; ".join(keep[:limit])


def _die_with_parent() -> None:
    # a worker blocked in a driver read must not outlive the daemon
    try:
        import ctypes
        import signal
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    parent = int(spec.get("parent_pid", 0))
    _die_with_parent()
    if parent and os.getppid() != parent:
        return 1
    # the protocol gets its own fd; anything a C library prints to stdout goes to stderr instead
    out_fd = os.dup(1)
    os.dup2(2, 1)

    def send(kind: bytes, payload: bytes) -> None:
        buf = memoryview(HEADER.pack(kind, len(payload)) + payload)
        while buf:
            buf = buf[os.write(out_fd, buf):]

    def fail(reason: str) -> int:
        send(b"E", json.dumps({"reason": reason}).encode())
        return 0

    match, rate = spec["match"], int(spec["rate"])
    block_frames, clocked = int(spec["block_frames"]), bool(spec["clocked"])

    with _Stderr() as init_err:
        import pyaudio
        try:
            pa = pyaudio.PyAudio()
        except Exception as exc:   # PortAudio refuses to start: nothing to capture with
            init_failed = exc
        else:
            init_failed = None
    if init_failed is not None:
        detail = init_err.useful()
        return fail(f"PortAudio failed to start: {init_failed}" + (f" ({detail})" if detail else ""))
    try:
        infos = [pa.get_device_info_by_index(i) for i in range(pa.get_device_count())]
        inputs = [d for d in infos if d["maxInputChannels"] > 0]
        try:
            dev = inputs[pick_device(match, [d["name"] for d in inputs])]
        except LookupError as exc:
            # an ALSA PCM that failed its probe is listed with no inputs: say why it failed
            silent = [d["name"] for d in infos if d["maxInputChannels"] == 0 and match.lower() in d["name"].lower()]
            detail = init_err.useful()
            if silent:
                return fail(f"{silent[0]!r} is listed but cannot capture (it has no input channels now)"
                            + (f": {detail}" if detail else ""))
            return fail(str(exc) + (f"; ALSA said: {detail}" if detail else ""))
        channels = int(spec.get("channels") or 1)
        if channels > dev["maxInputChannels"]:
            return fail(f"{dev['name']!r} has {dev['maxInputChannels']} input channels but {channels} are needed")
        with _Stderr() as open_err:
            try:
                stream = pa.open(format=pyaudio.paInt16, channels=channels, rate=rate, input=True,
                                 input_device_index=dev["index"], frames_per_buffer=block_frames)
            except (OSError, ValueError) as exc:
                opened = exc
            else:
                opened = None
        if opened is not None:
            detail = open_err.useful()
            hint = ""
            if getattr(opened, "errno", None) == pyaudio.paInvalidSampleRate:
                hint = " (the device cannot run at this rate itself: open it through an ALSA plug PCM or set PA_ALSA_PLUGHW=1, see hardware/README.md)"
            return fail(f"cannot open {dev['name']!r} ({channels} ch, {rate} Hz): {opened}"
                        + (f": {detail}" if detail else "") + hint)
        send(b"O", json.dumps({"name": dev["name"], "index": dev["index"], "channels": channels, "rate": rate,
                               "max_input_channels": dev["maxInputChannels"],
                               "alsa": open_err.useful() or init_err.useful()}).encode())
        start = time.monotonic()
        n = 0
        while True:
            try:
                data = stream.read(block_frames, exception_on_overflow=False)
            except OSError as exc:
                return fail(f"read error on {dev['name']!r}: {exc}")
            n += 1
            if not clocked:
                # file/null taps return at once: hold each block until its audio time has passed
                delay = start + n * block_frames / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            send(b"D", data)
    except BrokenPipeError:
        return 0   # the daemon stopped reading: it closed us on purpose


if __name__ == "__main__":
    sys.exit(main(sys.argv))
