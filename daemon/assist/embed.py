"""Sentence embeddings on the box's CPU with OpenVINO: all-MiniLM-L6-v2, int8 or fp32.

The OpenVINO IRs are built ahead of time by `callcue models convert minilm-l6-v2` (torch
and NNCF at build time only); here there is no torch. Text is tokenized with the model's
own tokenizer.json (`tokenizers`), the IR gives per-token states, and the sentence vector
is their mean over the attention mask, L2-normalised (the pooling the model was trained
with; pooling.json must say so).

Threading: one Embedder is shared by every line. It holds one OpenVINO infer request,
and a lock makes `encode` calls from several threads run one after another; for more
throughput, batch the texts into one call rather than calling from many threads.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np

from ..yamlfile import ConfigError

MAX_TOKENS = 128            # all-MiniLM-L6-v2 was trained on 128 word pieces
PRECISIONS = ("int8", "fp32")
# model file roles by precision (models/manifest.yaml)
IR_ROLES = {"int8": ("model", "weights"), "fp32": ("model_fp32", "weights_fp32")}
INPUTS = ("input_ids", "attention_mask")


class EmbedError(ConfigError):
    """The embedding model cannot be loaded; the message names the file and the fix."""


def load_tokenizer(path: Path, max_tokens: int = MAX_TOKENS):
    """The model's tokenizer: truncate at ``max_tokens``, pad a batch to its longest text
    (tokenizer.json ships fixed padding to 128, which would waste most of the work)."""
    from tokenizers import Tokenizer
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as exc:   # tokenizers raises its own Exception subclass for bad JSON
        raise EmbedError(f"{path}: not a usable tokenizer.json ({exc})") from None
    tok.enable_truncation(max_length=max_tokens)
    pad_id = tok.token_to_id("[PAD]")
    if pad_id is None:
        raise EmbedError(f"{path}: the tokenizer has no [PAD] token")
    tok.enable_padding(pad_id=pad_id, pad_token="[PAD]")
    return tok


RUNTIME_CACHE_SHAPES = 64     # OpenVINO CPU_RUNTIME_CACHE_CAPACITY (see Embedder.from_files)


def tokenize(tokenizer, texts: list[str]) -> dict[str, np.ndarray]:
    """Model inputs for a batch: int64 (n, longest) ids and attention mask."""
    enc = tokenizer.encode_batch(list(texts))
    return {"input_ids": np.array([e.ids for e in enc], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64)}


def mean_pool(states: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of the token states where mask is 1, then L2-normalised: (n, dim) float32."""
    m = mask.astype(np.float32)[:, :, None]
    summed = (states * m).sum(axis=1)
    pooled = summed / np.maximum(m.sum(axis=1), 1e-9)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


def read_pooling(path: Path) -> int:
    """Check the pooling config asks for what encode does (mean over tokens); its dimension."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EmbedError(f"{path}: cannot read the pooling config ({exc})") from None
    modes = {k: v for k, v in doc.items() if k.startswith("pooling_mode_")} if isinstance(doc, dict) else {}
    on = sorted(k for k, v in modes.items() if v)
    if on != ["pooling_mode_mean_tokens"]:
        raise EmbedError(f"{path}: pooling must be pooling_mode_mean_tokens only (found: {', '.join(on) or 'none'}); "
                         f"this is not the model callcue was built for")
    dim = doc.get("word_embedding_dimension")
    if not isinstance(dim, int) or dim <= 0:
        raise EmbedError(f"{path}: word_embedding_dimension must be a positive integer, got {dim!r}")
    return dim


class Embedder:
    """all-MiniLM-L6-v2 on OpenVINO. `encode` is serialised by a lock (see the module doc)."""

    dim: int
    precision: str

    def __init__(self, compiled, tokenizer, *, dim: int, precision: str, name: str, source: Path):
        self._compiled = compiled
        self._request = compiled.create_infer_request()
        self._tokenizer = tokenizer
        self._lock = threading.Lock()
        self.dim = dim
        self.precision = precision
        self.name = name
        self.source = source          # the IR file loaded

    @classmethod
    def load(cls, model: str = "minilm-l6-v2", precision: str = "int8", device: str = "CPU",
             threads: int = 1, models_dir: str | Path | None = None) -> "Embedder":
        """Find the installed model (every file re-hashed against installed.json), compile
        the IR of ``precision`` for ``device``. EmbedError says what is wrong and the fix."""
        from callcue.models.installed import ModelError, check_kind, resolve

        if precision not in IR_ROLES:
            raise EmbedError(f"embedding precision {precision!r}: use one of {', '.join(PRECISIONS)}")
        try:
            m = resolve(model, models_dir=models_dir)
            check_kind(m, "embedding", engine="sentence embedding")
            xml_role, bin_role = IR_ROLES[precision]
            xml, weights = m.path(xml_role), m.path(bin_role)
            tokenizer, pooling = m.path("tokenizer"), m.path("config")
        except ModelError as exc:
            raise EmbedError(str(exc)) from None
        return cls.from_files(xml, tokenizer, pooling, weights=weights, precision=precision, device=device,
                              threads=threads, name=model)

    @classmethod
    def from_files(cls, xml: Path, tokenizer: Path, pooling: Path, *, weights: Path | None = None,
                   precision: str, device: str = "CPU", threads: int = 1, name: str = "") -> "Embedder":
        """Compile an IR from files (the converter checks its own output this way, before
        installing it). No checksums here: `load` is the checked path."""
        import openvino as ov

        if threads < 1:
            raise EmbedError(f"embedding threads must be at least 1, got {threads}")
        dim = read_pooling(pooling)
        tok = load_tokenizer(tokenizer)
        core = ov.Core()
        try:
            net = core.read_model(str(xml), str(weights) if weights is not None else None)
        except RuntimeError as exc:
            raise EmbedError(f"{xml}: OpenVINO cannot read the model ({str(exc).strip().splitlines()[0]}); "
                             f"rebuild it: callcue models convert {name or 'minilm-l6-v2'} --force") from None
        names = [sorted(p.get_names()) for p in net.inputs]
        if len(names) != len(INPUTS) or any(not any(n in ns for ns in names) for n in INPUTS) \
                or len(net.outputs) != 1:
            raise EmbedError(f"{xml}: expected inputs {', '.join(INPUTS)} and one output, found inputs "
                             f"{names} and {len(net.outputs)} output(s)")
        out_dim = net.outputs[0].get_partial_shape()[-1]
        if out_dim.is_static and out_dim.get_length() != dim:
            raise EmbedError(f"{xml}: token states have {out_dim.get_length()} values, {pooling} says {dim}")
        config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
                  # the CPU plugin keeps the kernels made for each input shape (batch x tokens) it
                  # has seen, up to 5000 by default, ~1-2 MB each: a process encoding sentences of
                  # every length grew by hundreds of MB (212 -> 669 MB over 600 encodes, still
                  # climbing); 64 shapes keep it bounded (-> 494 MB, flat) for ~25% more CPU per
                  # encode once warm (the embedder is a small part of a call's work)
                  "CPU_RUNTIME_CACHE_CAPACITY": RUNTIME_CACHE_SHAPES,
                  # fp32 means fp32: a CPU with bf16 units would otherwise run the float parts in bf16
                  "INFERENCE_PRECISION_HINT": "f32"}
        try:
            compiled = core.compile_model(net, device, config)
        except RuntimeError as exc:
            raise EmbedError(f"{xml}: OpenVINO cannot compile it for device {device!r} "
                             f"({str(exc).strip().splitlines()[0]})") from None
        return cls(compiled, tok, dim=dim, precision=precision, name=name, source=Path(xml))

    def linear_kernels(self) -> dict[str, int]:
        """How the device runs the linear layers: {kernel (precision): count}, for benchmarks."""
        out: dict[str, int] = {}
        for op in self._compiled.get_runtime_model().get_ordered_ops():
            info = op.get_rt_info()
            if info["layerType"].value == "FullyConnected":
                k = f"{info['primitiveType'].value} ({info['runtimePrecision'].value})"
                out[k] = out.get(k, 0) + 1
        return out

    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32 unit vectors; cosine similarity is their dot product."""
        if isinstance(texts, str):
            raise TypeError("encode takes a list of texts, not one string")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        feed = tokenize(self._tokenizer, texts)
        with self._lock:
            states = self._request.infer(feed)[0]
            # the request's output buffer is reused by the next call: pool before unlocking
            return mean_pool(states, feed["attention_mask"])
