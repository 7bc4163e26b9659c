"""Golden replays: `callcue replay` of each demo call gives the same JSON Lines.

Guards restructuring (issue 10: no behaviour change) end to end: prosody, speech
recognition, transcripts, assist, contract encoding. Each demo call
(flows/demo/calls/*.wav, rendered by hardware/provision.sh) is replayed exactly as a user
runs it (`callcue replay CALL.wav --events OUT.jsonl`) and compared, message by message,
with tests/data/replay_golden/<call>.jsonl. Generated ids and wall-clock times are
normalised first (see `normalise`); everything else must match, float digits included.

After an INTENDED behaviour change, regenerate and review the diff before committing:

    .venv/bin/python tests/test_replay_golden.py --update
    git diff tests/data/replay_golden/

The expected files hold what this machine's models and libraries produce (whisper-tiny.en
int8 via sherpa-onnx, MiniLM via OpenVINO, Numba prosody); a different CPU or library
version may change float digits or a decoded word, which is also worth seeing.
"""
from __future__ import annotations

import difflib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import missing

ROOT = Path(__file__).resolve().parent.parent
CALLS = ROOT / "flows" / "demo" / "calls"
GOLDEN = Path(__file__).resolve().parent / "data" / "replay_golden"
# the models a demo replay uses; without them the output is a different (degraded) run
MODELS = ("whisper-tiny.en", "silero-vad", "minilm-l6-v2")
TIMESTAMP_KEYS = ("ts", "since", "started")   # wall clock: contract.now_iso(); the call block's start
_NEW_ID = re.compile(r"^[0-9a-f]{16}$")     # contract.new_id()
# the call's date: relative dates said in a call ("last Tuesday") are read from it, so the
# after-call ticket is the same on any day only with the date fixed (as a user replaying an
# old recording gives it)
CALL_DATE = "2026-03-10"


def normalise(lines: list[str]) -> list[str]:
    """JSON Lines with generated ids numbered by first appearance (so a message that
    refers to another's id still has to refer to the same one) and wall-clock times
    blanked; one canonical JSON object per line."""
    ids: dict[str, str] = {}

    def walk(v, key=None):
        if isinstance(v, dict):
            return {k: walk(x, k) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        if key in TIMESTAMP_KEYS and isinstance(v, str):
            return "<time>"
        if isinstance(v, str) and (key == "id" and _NEW_ID.match(v) or v in ids):
            return ids.setdefault(v, f"<id{len(ids) + 1}>")
        return v

    return [json.dumps(walk(json.loads(l)), ensure_ascii=False, sort_keys=True) for l in lines if l.strip()]


def demo_calls() -> list[Path]:
    return sorted(CALLS.glob("*.wav"))


def replay(wav: Path, out: Path) -> list[str]:
    r = subprocess.run([sys.executable, "-m", "callcue.daemon.cli", "replay", str(wav), "--events", str(out),
                        "--call-date", CALL_DATE],
                       capture_output=True, text=True, timeout=600, cwd=ROOT, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    # a replay that quietly ran without a model would differ everywhere; say why instead
    assert "speech recognition off" not in r.stderr and "embeddings off" not in r.stderr, r.stderr
    return normalise(out.read_text(encoding="utf-8").splitlines())


def _missing_models() -> list[str]:
    from callcue.models.installed import installed_names
    return [m for m in MODELS if m not in installed_names()]


@pytest.mark.parametrize("stem", [p.stem for p in demo_calls()] or ["no-demo-calls"])
def test_replay_matches_golden(stem, tmp_path):
    wav = CALLS / f"{stem}.wav"
    if not wav.is_file():
        missing("demo calls not rendered (hardware/provision.sh renders them)")
    if lacking := _missing_models():
        missing(f"models not installed: {', '.join(lacking)} (hardware/provision.sh installs them)")
    expected_file = GOLDEN / f"{stem}.jsonl"
    assert expected_file.is_file(), f"no golden output for {stem}: run `python {Path(__file__).name} --update`"
    expected = expected_file.read_text(encoding="utf-8").splitlines()
    got = replay(wav, tmp_path / "events.jsonl")
    if got != expected:
        diff = "\n".join(list(difflib.unified_diff(expected, got, "expected", "replayed", lineterm="", n=1))[:80])
        pytest.fail(f"replay of {stem} changed ({len(expected)} -> {len(got)} messages); "
                    f"if intended, regenerate (see this file's docstring):\n{diff}")


def update() -> None:
    import tempfile

    if missing := _missing_models():
        sys.exit(f"models not installed: {', '.join(missing)}")
    calls = demo_calls()
    if not calls:
        sys.exit(f"no demo calls in {CALLS} (hardware/provision.sh renders them)")
    GOLDEN.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for wav in calls:
            lines = replay(wav, Path(tmp) / "events.jsonl")
            (GOLDEN / f"{wav.stem}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
            print(f"{wav.stem}: {len(lines)} messages")


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit(__doc__)
    update()
