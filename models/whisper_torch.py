"""Whisper rebuilt in torch from CTranslate2 weights, in the two-graph form sherpa-onnx runs.

sherpa-onnx (csrc/offline-whisper-model.cc, offline-whisper-greedy-search-decoder.cc)
drives Whisper as two ONNX graphs:

- encoder: mel (N, n_mels, T) float, T <= 3000 and variable (sherpa pads the speech
  with ~10 s of zeros, not to 30 s) -> n_layer_cross_k, n_layer_cross_v, each
  (n_text_layer, N, ceil(T/2), n_text_state): the audio features already projected by
  every decoder layer's cross-attention key and value weights, so the decoder never
  recomputes them. Its metadata carries the model constants sherpa reads (see
  encoder_metadata()).
- decoder: tokens (N, n) int64, in_n_layer_self_k_cache and in_n_layer_self_v_cache
  (n_text_layer, N, S, n_text_state), n_layer_cross_k, n_layer_cross_v,
  offset (1,) int64 (how many tokens are already in the cache) -> logits
  (N, n, n_vocab), out_n_layer_self_k_cache, out_n_layer_self_v_cache, cross_attention_weights
  (N, n_alignment_heads, n, T_audio): the cross-attention of Whisper's alignment heads,
  which sherpa-onnx aligns (DTW) to give token timestamps when asked
  (enable_token_timestamps); the encoder metadata then carries n_alignment_heads.

sherpa-onnx only hands these tensors from one call to the next, which leaves two
layout choices to the model, both made here for speed (converter 4):
- the self-attention cache grows: sherpa's first cache is n_text_ctx zeros, the decoder
  keeps positions [0, offset) of what it is given and appends this step's keys/values,
  so out has offset+n positions. A fixed n_text_ctx cache meant copying 5.5 MB in and
  out of every decoder step for a few dozen live positions.
- the cross-attention keys/values are stored head-major: the (ceil(T/2), n_text_state)
  block of a layer holds (n_text_head, ceil(T/2), head_dim) in memory order, so each
  decoder step attends with plain matrix products instead of transposing every layer's
  keys (1 MB each at 14 s of audio) per token. Only this decoder reads them.

torch is used here only, at build time; the daemon never imports this module.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .whisper_ct2 import Ct2Error, Ct2Whisper
from .whisper_layout import DECODER_INPUTS, DECODER_OUTPUTS, ENCODER_INPUTS, ENCODER_OUTPUTS

LN_EPS = 1e-5
SUPPRESSED = -1e9       # added to the logit of a token that must not be picked


@dataclass(frozen=True)
class Dims:
    n_mels: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    n_vocab: int
    n_text_ctx: int
    n_text_state: int
    n_text_head: int
    n_text_layer: int


def _count_layers(variables: dict, prefix: str) -> int:
    n = 0
    while f"{prefix}/layer_{n}/ffn/linear_0/weight" in variables:
        n += 1
    return n


def dims_of(ct2: Ct2Whisper) -> Dims:
    v = ct2.variables
    try:
        return Dims(
            n_mels=int(v["encoder/conv1/weight"].shape[1]),
            n_audio_ctx=int(v["encoder/position_encodings/encodings"].shape[0]),
            n_audio_state=int(v["encoder/conv1/weight"].shape[0]),
            n_audio_head=int(v["encoder/num_heads"]),
            n_audio_layer=_count_layers(v, "encoder"),
            n_vocab=int(v["decoder/embeddings/weight"].shape[0]),
            n_text_ctx=int(v["decoder/position_encodings/encodings"].shape[0]),
            n_text_state=int(v["decoder/embeddings/weight"].shape[1]),
            n_text_head=int(v["decoder/num_heads"]),
            n_text_layer=_count_layers(v, "decoder"),
        )
    except KeyError as exc:
        raise Ct2Error(f"{ct2.directory / 'model.bin'}: no variable {exc}; not a Whisper model") from None


def _ln(d: int) -> nn.LayerNorm:
    return nn.LayerNorm(d, eps=LN_EPS)


def _attend(q: Tensor, k: Tensor, v: Tensor, n_head: int, mask: Tensor | None = None) -> Tensor:
    """Multi-head scaled dot-product attention; q (N, Tq, D), k/v (N, Tk, D)."""
    n, tq, d = q.shape
    dh = d // n_head
    q = q.reshape(n, tq, n_head, dh).transpose(1, 2)
    k = k.reshape(k.shape[0], k.shape[1], n_head, dh).transpose(1, 2)
    v = v.reshape(v.shape[0], v.shape[1], n_head, dh).transpose(1, 2)
    w = torch.matmul(q * (1.0 / math.sqrt(dh)), k.transpose(-1, -2))
    if mask is not None:
        w = w + mask
    w = torch.softmax(w, dim=-1)
    return torch.matmul(w, v).transpose(1, 2).reshape(n, tq, d)


class _Mlp(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.ln, self.fc1, self.fc2 = _ln(d), nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(self.ln(x))))


class _EncoderLayer(nn.Module):
    def __init__(self, d: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.ln, self.qkv, self.out = _ln(d), nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = _Mlp(d)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self.qkv(self.ln(x)).chunk(3, dim=-1)
        x = x + self.out(_attend(q, k, v, self.n_head))
        return x + self.mlp(x)


class SherpaEncoder(nn.Module):
    """mel -> every decoder layer's cross-attention keys and values."""

    def __init__(self, dims: Dims):
        super().__init__()
        d = dims.n_audio_state
        self.conv1 = nn.Conv1d(dims.n_mels, d, 3, padding=1)
        self.conv2 = nn.Conv1d(d, d, 3, stride=2, padding=1)
        self.register_buffer("pos", torch.zeros(dims.n_audio_ctx, d))
        self.layers = nn.ModuleList(_EncoderLayer(d, dims.n_audio_head) for _ in range(dims.n_audio_layer))
        self.ln_post = _ln(d)
        # the decoder layers' fused cross-attention key+value projections
        self.cross_kv = nn.ModuleList(nn.Linear(d, 2 * dims.n_text_state) for _ in range(dims.n_text_layer))
        self.n_text_head = dims.n_text_head

    def features(self, mel: Tensor) -> Tensor:
        x = F.gelu(self.conv2(F.gelu(self.conv1(mel)))).transpose(1, 2)
        # shorter than 30 s is allowed: sherpa-onnx pads only ~10 s past the speech
        x = x + self.pos[: x.shape[1]]
        for layer in self.layers:
            x = layer(x)
        return self.ln_post(x)

    def forward(self, mel: Tensor) -> tuple[Tensor, Tensor]:
        x = self.features(mel)
        ks, vs = [], []
        for proj in self.cross_kv:
            k, v = proj(x).chunk(2, dim=-1)
            ks.append(_head_major(k, self.n_text_head))
            vs.append(_head_major(v, self.n_text_head))
        return torch.stack(ks), torch.stack(vs)


def _head_major(x: Tensor, n_head: int) -> Tensor:
    """(N, T, D) -> the same shape with memory order (N, n_head, T, D/n_head)."""
    n, t, d = x.shape
    return x.reshape(n, t, n_head, d // n_head).transpose(1, 2).reshape(n, t, d)


def _heads_of(x: Tensor, n_head: int) -> Tensor:
    """A head-major (N, T, D) block as (N, n_head, T, D/n_head), a reshape without copying."""
    n, t, d = x.shape
    return x.reshape(n, n_head, t, d // n_head)


class _DecoderLayer(nn.Module):
    def __init__(self, d: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.alignment_heads: list[int] = []
        self.ln, self.qkv, self.out = _ln(d), nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.cross_ln, self.cross_q, self.cross_out = _ln(d), nn.Linear(d, d), nn.Linear(d, d)
        self.mlp = _Mlp(d)

    def forward(self, x: Tensor, k_cache: Tensor, v_cache: Tensor, start: Tensor,
                mask: Tensor, cross_k: Tensor, cross_v: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        q, k, v = self.qkv(self.ln(x)).chunk(3, dim=-1)
        # the cache grows: the first `start` positions of what came in, then this step's
        k_cache = torch.cat([k_cache[:, :start], k], dim=1)
        v_cache = torch.cat([v_cache[:, :start], v], dim=1)
        x = x + self.out(_attend(q, k_cache, v_cache, self.n_head, mask))
        q = self.cross_q(self.cross_ln(x))
        out, weights = self._cross(q, cross_k, cross_v)
        x = x + self.cross_out(out)
        return x + self.mlp(x), k_cache, v_cache, weights

    def _cross(self, q: Tensor, cross_k: Tensor, cross_v: Tensor) -> tuple[Tensor, Tensor | None]:
        """Attention over the head-major encoder keys/values: keys times queries gives the
        scores without transposing the keys."""
        n, tq, d = q.shape
        dh = d // self.n_head
        k, v = _heads_of(cross_k, self.n_head), _heads_of(cross_v, self.n_head)   # (N, H, T, dh)
        qh = q.reshape(n, tq, self.n_head, dh).permute(0, 2, 3, 1) * (1.0 / math.sqrt(dh))  # (N, H, dh, tq)
        w = torch.softmax(torch.matmul(k, qh).transpose(-1, -2), dim=-1)                     # (N, H, tq, T)
        out = torch.matmul(w, v).transpose(1, 2).reshape(n, tq, d)
        return out, (w[:, self.alignment_heads] if self.alignment_heads else None)


class SherpaDecoder(nn.Module):
    """One step of the text decoder over a growing self-attention cache.

    Whisper's usual decoding rules are part of the graph, since sherpa-onnx's greedy
    search takes the plain argmax: the tokens the model's own conversion lists as never
    to be written (non-speech symbols such as "(" and "♪", and the task tokens) are
    masked at every step, and a blank or end of text is masked as the first token
    (what faster-whisper and OpenAI's decoder do by default).
    """

    def __init__(self, dims: Dims):
        super().__init__()
        d = dims.n_text_state
        self.embed = nn.Embedding(dims.n_vocab, d)
        # the output projection: the token embeddings transposed, a separate constant so
        # that it is quantized to int8 like every other weight (onnxruntime quantizes only
        # a MatMul whose second input is a constant). Kept in float32 it was over half of
        # each decoder step: 80 MB of weights read per token.
        self.register_buffer("proj", torch.zeros(d, dims.n_vocab))
        self.register_buffer("pos", torch.zeros(dims.n_text_ctx, d))
        self.layers = nn.ModuleList(_DecoderLayer(d, dims.n_text_head) for _ in range(dims.n_text_layer))
        self.ln = _ln(d)
        self.register_buffer("suppress", torch.zeros(dims.n_vocab))         # 0 or SUPPRESSED per token
        self.register_buffer("suppress_begin", torch.zeros(dims.n_vocab))   # the same, first token only

    def forward(self, tokens: Tensor, in_k: Tensor, in_v: Tensor, cross_k: Tensor, cross_v: Tensor,
                offset: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        start = offset[0]
        end = start + tokens.shape[1]
        positions = torch.arange(tokens.shape[1], dtype=torch.int64) + start
        x = self.embed(tokens) + self.pos[positions]
        # causal: the token at absolute position p sees cache positions <= p
        # (sliced from a constant range: arange(end) would freeze `end` into the trace)
        keys = torch.arange(self.pos.shape[0], dtype=torch.int64)[:end]
        allowed = keys.unsqueeze(0) <= positions.unsqueeze(1)
        mask = torch.where(allowed, torch.zeros((), dtype=x.dtype), torch.full((), float("-inf"), dtype=x.dtype))
        out_k, out_v, align = [], [], []
        for i, layer in enumerate(self.layers):
            x, k, v, w = layer(x, in_k[i], in_v[i], start, mask, cross_k[i], cross_v[i])
            out_k.append(k)
            out_v.append(v)
            if w is not None:
                align.append(w)
        logits = torch.matmul(self.ln(x), self.proj) + self.suppress
        # offset 0 is the call with the start-of-transcript prompt: it picks the first token
        logits = logits + self.suppress_begin * (start == 0).to(logits.dtype)
        return logits, torch.stack(out_k), torch.stack(out_v), torch.cat(align, dim=1)


def _set(param: Tensor, value: np.ndarray, name: str) -> None:
    if tuple(param.shape) != tuple(value.shape):
        raise Ct2Error(f"CTranslate2 variable {name} has shape {tuple(value.shape)}, "
                       f"the network expects {tuple(param.shape)}")
    with torch.no_grad():
        param.copy_(torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)))


def _linear(lin: nn.Linear, v: dict, name: str) -> None:
    _set(lin.weight, v[f"{name}/weight"], f"{name}/weight")
    _set(lin.bias, v[f"{name}/bias"], f"{name}/bias")


def _norm(ln: nn.LayerNorm, v: dict, name: str) -> None:
    _set(ln.weight, v[f"{name}/gamma"], f"{name}/gamma")
    _set(ln.bias, v[f"{name}/beta"], f"{name}/beta")


def build_networks(ct2: Ct2Whisper) -> tuple[Dims, SherpaEncoder, SherpaDecoder]:
    """Both graphs with the CTranslate2 weights loaded, in eval mode."""
    dims = dims_of(ct2)
    v = ct2.variables
    enc, dec = SherpaEncoder(dims), SherpaDecoder(dims)
    try:
        _linear(enc.conv1, v, "encoder/conv1")
        _linear(enc.conv2, v, "encoder/conv2")
        _set(enc.pos, v["encoder/position_encodings/encodings"], "encoder/position_encodings/encodings")
        for i, layer in enumerate(enc.layers):
            p = f"encoder/layer_{i}"
            _norm(layer.ln, v, f"{p}/self_attention/layer_norm")
            _linear(layer.qkv, v, f"{p}/self_attention/linear_0")
            _linear(layer.out, v, f"{p}/self_attention/linear_1")
            _norm(layer.mlp.ln, v, f"{p}/ffn/layer_norm")
            _linear(layer.mlp.fc1, v, f"{p}/ffn/linear_0")
            _linear(layer.mlp.fc2, v, f"{p}/ffn/linear_1")
        _norm(enc.ln_post, v, "encoder/layer_norm")
        _set(dec.embed.weight, v["decoder/embeddings/weight"], "decoder/embeddings/weight")
        _set(dec.proj, np.ascontiguousarray(v["decoder/embeddings/weight"].T), "decoder/embeddings/weight (transposed)")
        _set(dec.pos, v["decoder/position_encodings/encodings"], "decoder/position_encodings/encodings")
        for i, layer in enumerate(dec.layers):
            p = f"decoder/layer_{i}"
            _norm(layer.ln, v, f"{p}/self_attention/layer_norm")
            _linear(layer.qkv, v, f"{p}/self_attention/linear_0")
            _linear(layer.out, v, f"{p}/self_attention/linear_1")
            _norm(layer.cross_ln, v, f"{p}/attention/layer_norm")
            _linear(layer.cross_q, v, f"{p}/attention/linear_0")
            _linear(enc.cross_kv[i], v, f"{p}/attention/linear_1")
            _linear(layer.cross_out, v, f"{p}/attention/linear_2")
            _norm(layer.mlp.ln, v, f"{p}/ffn/layer_norm")
            _linear(layer.mlp.fc1, v, f"{p}/ffn/linear_0")
            _linear(layer.mlp.fc2, v, f"{p}/ffn/linear_1")
        _norm(dec.ln, v, "decoder/layer_norm")
    except KeyError as exc:
        raise Ct2Error(f"{ct2.directory / 'model.bin'}: no variable {exc}; not a Whisper model") from None
    _set(dec.suppress, _mask(ct2.config.get("suppress_ids") or [], dims.n_vocab), "suppress_ids")
    _set(dec.suppress_begin, _mask(ct2.config.get("suppress_ids_begin") or [], dims.n_vocab), "suppress_ids_begin")
    heads = alignment_heads(ct2, dims)
    for layer_index, head in heads:
        dec.layers[layer_index].alignment_heads.append(head)
    proj = v.get("decoder/projection/weight")
    if proj is not None and not np.array_equal(proj, v["decoder/embeddings/weight"]):
        raise Ct2Error("decoder/projection/weight differs from the token embeddings; "
                       "sherpa-onnx's Whisper layout ties them")
    return dims, enc.eval(), dec.eval()


def _mask(ids: list[int], n_vocab: int) -> np.ndarray:
    bad = [i for i in ids if not 0 <= int(i) < n_vocab]
    if bad:
        raise Ct2Error(f"config.json: suppress ids {bad[:5]} outside the vocabulary of {n_vocab}")
    m = np.zeros(n_vocab, np.float32)
    m[[int(i) for i in ids]] = SUPPRESSED
    return m


def alignment_heads(ct2: Ct2Whisper, dims: Dims) -> list[tuple[int, int]]:
    """(decoder layer, head) pairs whose cross-attention follows the audio in time, as the
    CTranslate2 conversion recorded them (config.json), in layer order."""
    raw = ct2.config.get("alignment_heads")
    if not raw:
        raise Ct2Error(f"{ct2.directory / 'config.json'}: no alignment_heads (needed for token timestamps)")
    try:
        heads = sorted((int(a), int(b)) for a, b in raw)
    except (TypeError, ValueError):
        raise Ct2Error(f"{ct2.directory / 'config.json'}: alignment_heads must be [layer, head] pairs") from None
    bad = [h for h in heads if not (0 <= h[0] < dims.n_text_layer and 0 <= h[1] < dims.n_text_head)]
    if bad:
        raise Ct2Error(f"{ct2.directory / 'config.json'}: alignment_heads {bad} outside the decoder's "
                       f"{dims.n_text_layer} layers x {dims.n_text_head} heads")
    return heads


def encoder_metadata(ct2: Ct2Whisper, dims: Dims, name: str) -> dict[str, str]:
    """The constants sherpa-onnx reads from the encoder, taken from the model's own vocabulary."""
    sp = ct2.special
    eot, sot = sp("<|endoftext|>"), sp("<|startoftranscript|>")
    multilingual = dims.n_vocab >= 51865
    languages = [(i, t[2:-2]) for i, t in enumerate(ct2.vocabulary)
                 if sot < i < sp("<|translate|>") and t.startswith("<|") and t.endswith("|>")]
    no_speech = next((sp(t) for t in ("<|nospeech|>", "<|nocaptions|>") if t in ct2.vocabulary), None)
    if no_speech is None:
        raise Ct2Error(f"{ct2.directory / 'vocabulary.txt'}: neither <|nospeech|> nor <|nocaptions|>")
    space = ct2.vocabulary.index("\u0120") if "\u0120" in ct2.vocabulary else None
    if space is None:
        raise Ct2Error(f"{ct2.directory / 'vocabulary.txt'}: no token for a lone space")
    heads = alignment_heads(ct2, dims)
    sot_sequence = [sot]
    if multilingual:
        sot_sequence += [sp("<|en|>"), sp("<|transcribe|>")]
    meta = {
        "model_type": f"whisper-{name}",
        "version": "2",  # 2: the decoder also returns alignment-head attention
        "maintainer": "callcue",
        **{k: v for k, v in asdict(dims).items()},
        "sot_sequence": ",".join(map(str, sot_sequence)),
        "all_language_tokens": ",".join(str(i) for i, _ in languages),
        "all_language_codes": ",".join(code for _, code in languages),
        "sot": sot,
        "sot_index": 0,
        "eot": eot,
        "blank_id": space,
        "is_multilingual": int(multilingual),
        "no_speech": no_speech,
        "transcribe": sp("<|transcribe|>"),
        "translate": sp("<|translate|>"),
        "sot_prev": sp("<|startofprev|>"),
        "sot_lm": sp("<|startoflm|>"),
        "no_timestamps": sp("<|notimestamps|>"),
        "n_alignment_heads": len(heads),
        "alignment_heads": ",".join(f"{a}:{b}" for a, b in heads),
        "source_model_sha256": ct2.model_sha256,
    }
    return {k: str(v) for k, v in meta.items()}


def export_onnx(enc: SherpaEncoder, dec: SherpaDecoder, dims: Dims, encoder_path, decoder_path,
                opset: int = 17) -> None:
    """Trace both graphs to ONNX with the input/output names and dynamic axes sherpa-onnx uses."""
    import warnings
    mel = torch.zeros(1, dims.n_mels, 3000)
    with torch.no_grad(), warnings.catch_warnings():
        # the tracer warns that Python ints from shapes become constants; every shape
        # here that must stay dynamic is taken from a tensor, which the tracer records
        warnings.simplefilter("ignore")
        torch.onnx.export(
            enc, (mel,), str(encoder_path), dynamo=False, opset_version=opset,
            input_names=ENCODER_INPUTS, output_names=ENCODER_OUTPUTS,
            dynamic_axes={"mel": {0: "n_audio", 2: "T"},
                          "n_layer_cross_k": {1: "n_audio", 2: "T_audio"},
                          "n_layer_cross_v": {1: "n_audio", 2: "T_audio"}})
        cross_k, cross_v = enc(mel)
        cache = torch.zeros(dims.n_text_layer, 1, dims.n_text_ctx, dims.n_text_state)
        tokens = torch.tensor([[1, 2, 3]], dtype=torch.int64)
        offset = torch.tensor([2], dtype=torch.int64)
        torch.onnx.export(
            dec, (tokens, cache, cache.clone(), cross_k, cross_v, offset), str(decoder_path), dynamo=False,
            opset_version=opset, input_names=DECODER_INPUTS, output_names=DECODER_OUTPUTS,
            dynamic_axes={"tokens": {0: "n_audio", 1: "n_tokens"},
                          "in_n_layer_self_k_cache": {1: "n_audio", 2: "n_cached"},
                          "in_n_layer_self_v_cache": {1: "n_audio", 2: "n_cached"},
                          "n_layer_cross_k": {1: "n_audio", 2: "T_audio"},
                          "n_layer_cross_v": {1: "n_audio", 2: "T_audio"},
                          "logits": {0: "n_audio", 1: "n_tokens"},
                          "out_n_layer_self_k_cache": {1: "n_audio", 2: "n_cached_out"},
                          "out_n_layer_self_v_cache": {1: "n_audio", 2: "n_cached_out"},
                          "cross_attention_weights": {0: "n_audio", 2: "n_tokens", 3: "T_audio"}})
