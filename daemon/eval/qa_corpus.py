"""The bulk-QA test corpus: N varied recorded calls as a phone system's recorder would leave
them (`callcue bench qa` and the tests use it; `python -m callcue.daemon.eval.qa_corpus DIR`).

Random insurance calls rendered by `callcue synth`'s code (generate_call + render_call,
espeak-ng + sox), English and Mandarin, 16 and 8 kHz, eight agents in three teams over
five days; every fifth call as a mono pair (NAME-agent.wav + NAME-customer.wav), the rest
stereo. The file names carry date, time, agent and call id (`NAME_PATTERN`), a
`metadata.csv` the team, the IVR intent and the language; two bad files ride along (a WAV
that is not one, and an agent channel without its customer file).
"""
from __future__ import annotations

import csv
import sys
import wave
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

NAME_PATTERN = "{date}_{time}_{agent}_{call_id}"
AGENTS = {"alice.wong": "claims", "bob.li": "claims", "carol.chen": "billing", "dan.smith": "billing",
          "eve.zhang": "billing", "frank.wu": "service", "gina.ho": "service", "hank.lee": "service"}
INTENTS = ("claim", "billing", "policy")
BAD = ("20260306_170000_bob.li_C9998.wav", "20260306_171500_gina.ho_C9999-agent.wav")


def _split(stereo: Path, stem: Path) -> None:
    with wave.open(str(stereo), "rb") as w:
        rate, n = w.getframerate(), w.getnframes()
        x = np.frombuffer(w.readframes(n), dtype="<i2").reshape(-1, 2)
    for ch, side in enumerate(("agent", "customer")):
        with wave.open(str(stem.parent / f"{stem.name}-{side}.wav"), "wb") as o:
            o.setnchannels(1)
            o.setsampwidth(2)
            o.setframerate(rate)
            o.writeframes(np.ascontiguousarray(x[:, ch]).tobytes())
    stereo.unlink()


def make_corpus(out: Path, n: int = 50, seed: int = 15, quiet: bool = False) -> list[Path]:
    """Render the corpus into `out` (calls already there are kept); returns the recordings."""
    from .synth.generate import generate_call
    from .synth.render import NOISE_DBFS, render_call, write_call

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    agents = list(AGENTS)
    day0 = datetime(2026, 3, 2, 9, 0, 0)
    rows, made = [], []
    for i in range(n):
        lang = "en" if i % 2 == 0 else "zh"
        rate = 16000 if (i // 2) % 2 == 0 else 8000
        agent = agents[i % len(agents)]
        start = day0 + timedelta(days=i % 5, minutes=7 * i)
        call_id = f"C{1000 + i}"
        stem = f"{start:%Y%m%d}_{start:%H%M%S}_{agent}_{call_id}"
        mono = i % 5 == 4
        rows.append({"file": stem, "team": AGENTS[agent], "intent": INTENTS[i % len(INTENTS)], "lang": lang})
        target = out / f"{stem}.wav"
        done = [out / f"{stem}-agent.wav", out / f"{stem}-customer.wav"] if mono else [target]
        if not all(p.exists() for p in done):
            call = render_call(generate_call(f"qa{seed}-{i}", lang), rate, NOISE_DBFS, seed * 1000 + i)
            labels = write_call(call, target)
            labels.unlink(missing_ok=True)          # a recorder leaves no truth labels
            if mono:
                _split(target, out / stem)
            if not quiet:
                print(f"  {i + 1}/{n} {stem} ({lang}, {rate // 1000} kHz{', mono pair' if mono else ''}, "
                      f"{call.duration:.0f} s)", file=sys.stderr, flush=True)
        made += done
    with open(out / "metadata.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["file", "team", "intent", "lang"])
        w.writeheader()
        w.writerows(rows)
    (out / BAD[0]).write_bytes(b"this is not a recording\n")
    if not (out / BAD[1]).exists():
        with wave.open(str(out / BAD[1]), "wb") as o:
            o.setnchannels(1)
            o.setsampwidth(2)
            o.setframerate(8000)
            o.writeframes(np.zeros(8000, dtype="<i2").tobytes())
    return made


if __name__ == "__main__":
    made = make_corpus(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/callcue-qa-corpus"),
                       int(sys.argv[2]) if len(sys.argv) > 2 else 50)
    print(f"{len(made)} files")
