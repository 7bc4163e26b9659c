"""Random-weight stand-ins with the official shapes of the production speech models, for sizing.

Sites run the official sherpa-onnx releases of SenseVoice small, Paraformer (large) and
the bilingual streaming zipformer; they cannot be downloaded here, and what a box holds
depends on a model's architecture, tensor shapes and quantization, not on its weight
values. This build tool writes ONNX models with the published architecture and
hyper-parameters, the inputs, outputs and metadata that sherpa-onnx's loaders read, and
the int8 quantization of the official export scripts, with random weights: sherpa-onnx
loads them and decodes audio into gibberish, and `callcue bench asr --model NAME` times
them. They are estimates for capacity planning and never recognisers (the manifest marks
them `estimate: true`).

Sources the shapes were taken from (read, not copied; the glue below is our own):

- SenseVoice small: FunAudioLLM/SenseVoice model.py (SenseVoiceEncoderSmall), its
  config.yaml (SAN-M encoder, output 512, 4 heads, FFN 2048, 50 blocks (1 + 49) and 20
  tp blocks, FSMN kernel 11, input 560 = 80 fbank x LFR 7/6, prompt embedding of 16 rows,
  CTC over 25055 tokens) and k2-fsa/sherpa-onnx scripts/sense-voice/export-onnx.py
  (inputs x, x_length, language, text_norm; output logits; 4 prompt frames prepended;
  opset 13; metadata keys; int8 = onnxruntime quantize_dynamic of MatMul, QUInt8).
- Paraformer large (sherpa-onnx-paraformer-zh-2023-09-14 / -2024-03-09, FunASR
  speech_paraformer-large ...-vocab8404): k2-fsa/sherpa-onnx scripts/paraformer/torch_model.py
  and FunASR (SAN-M encoder 50 blocks x 512, CifPredictorV2 with l_order = r_order = 1 and
  tail threshold 0.45, ParaformerSANMDecoder 16 blocks + 1 FFN-only block, 8404 tokens);
  FunASR's ONNX export (inputs speech, speech_lengths; outputs logits (log-softmax),
  token_num int32; opset 14; int8 = quantize_dynamic of MatMul, per channel, QUInt8, nodes
  named *output* left in float) and sherpa-onnx offline-paraformer-model.cc (metadata).
- Streaming zipformer (APPROXIMATE): the ONNX interface sherpa-onnx's
  online-zipformer-transducer-model.cc reads for icefall's pruned_transducer_stateless7_streaming
  export (x (N, 39, 80) + 7 x 5 state tensors in, encoder_out + new states out; decoder y
  (N, 2) -> decoder_out; joiner (encoder_out, decoder_out) -> logit; metadata keys; int8 =
  quantize_dynamic of MatMul, QInt8), the model's own export settings, and our own
  simplified zipformer layer (three FFNs, pooling, one attention-weight computation used
  with two value projections, two causal conv modules, bypass). The official encoder
  file holds more weights than this rewrite (see README).

Build-time tool: needs torch and onnx (never imported by the daemon).
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

LFR_M, LFR_N = 7, 6          # low frame rate: 7 stacked 10 ms frames every 6 frames
FBANK = 80
SANM_IN = FBANK * LFR_M      # 560


def _torch():
    try:
        import torch
        import onnx  # noqa: F401
        from onnxruntime.quantization import quantize_dynamic  # noqa: F401
    except ImportError as exc:
        raise RuntimeError("building the production-shape models needs torch, onnx and onnxruntime "
                           "(pip install 'callcue[convert]')") from exc
    return torch


# ------------------------------------------------------------------ SAN-M building blocks

def _modules():
    """The SAN-M layers (FunASR's architecture, written for an export with padding masks)."""
    torch = _torch()
    nn = torch.nn

    def sinusoid(x):
        # FunASR SinusoidalPositionEncoder: positions 1..T, depth = feature size of x
        t, d = x.shape[1], x.shape[2]
        pos = torch.arange(1, t + 1, dtype=x.dtype, device=x.device)[None, :, None]
        inc = math.log(10000.0) / (d / 2 - 1)
        inv = torch.exp(torch.arange(d // 2, dtype=x.dtype) * -inc)[None, None, :]
        return x + torch.cat([torch.sin(pos * inv), torch.cos(pos * inv)], dim=2)

    class SanmAttention(nn.Module):
        """Multi-head self-attention plus the FSMN memory (a depthwise conv over v)."""

        def __init__(self, heads, d_in, d, kernel):
            super().__init__()
            self.h, self.dk = heads, d // heads
            self.linear_q_k_v = nn.Linear(d_in, 3 * d)
            self.linear_out = nn.Linear(d, d)
            self.fsmn_block = nn.Conv1d(d, d, kernel, groups=d, bias=False)
            left = (kernel - 1) // 2
            self.pad = (left, kernel - 1 - left)

        def forward(self, x, mask, bias):
            # mask (N, T, 1) of 1/0; bias (N, 1, 1, T) additive (-inf-like on padding)
            b, t, _ = x.shape
            q, k, v = torch.split(self.linear_q_k_v(x), self.h * self.dk, dim=-1)
            vm = v * mask
            mem = self.fsmn_block(nn.functional.pad(vm.transpose(1, 2), self.pad)).transpose(1, 2)
            mem = (mem + vm) * mask
            q = q.reshape(b, t, self.h, self.dk).transpose(1, 2) * self.dk ** -0.5
            k = k.reshape(b, t, self.h, self.dk).transpose(1, 2)
            v = v.reshape(b, t, self.h, self.dk).transpose(1, 2)
            att = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) + bias, dim=-1)
            out = torch.matmul(att, v).transpose(1, 2).reshape(b, t, self.h * self.dk)
            return self.linear_out(out) + mem

    class FeedForward(nn.Module):
        def __init__(self, d, units):
            super().__init__()
            self.w_1, self.w_2 = nn.Linear(d, units), nn.Linear(units, d)

        def forward(self, x):
            return self.w_2(torch.relu(self.w_1(x)))

    class SanmEncoderLayer(nn.Module):
        """Pre-norm; the attention residual only where input and output sizes agree."""

        def __init__(self, d_in, d, heads, units, kernel):
            super().__init__()
            self.norm1, self.norm2 = nn.LayerNorm(d_in), nn.LayerNorm(d)
            self.self_attn = SanmAttention(heads, d_in, d, kernel)
            self.feed_forward = FeedForward(d, units)
            self.residual = d_in == d

        def forward(self, x, mask, bias):
            a = self.self_attn(self.norm1(x), mask, bias)
            x = x + a if self.residual else a
            return x + self.feed_forward(self.norm2(x))

    def masks(lengths, t):
        keep = (torch.arange(t, device=lengths.device)[None, :] < lengths[:, None].to(torch.int64))
        mask = keep.to(torch.float32)[:, :, None]                      # (N, T, 1)
        bias = ((1.0 - keep.to(torch.float32)) * -10000.0)[:, None, None, :]   # (N, 1, 1, T)
        return mask, bias

    return torch, nn, sinusoid, SanmEncoderLayer, FeedForward, masks


# ------------------------------------------------------------------ SenseVoice small

SV_NAME = "sense-voice-small-estimate"
SV = dict(d=512, heads=4, units=2048, blocks=50, tp_blocks=20, kernel=11, vocab=25055, embed_rows=16)
SV_TINY = dict(d=64, heads=4, units=128, blocks=2, tp_blocks=1, vocab=400)
SV_LID = {"auto": 0, "zh": 3, "en": 4, "yue": 7, "ja": 11, "ko": 12, "nospeech": 13}
SV_ITN = {"withitn": 14, "woitn": 15}


def _sense_voice_module(c: dict):
    torch, nn, sinusoid, Layer, _, masks = _modules()

    class SenseVoiceSmall(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(c["embed_rows"], SANM_IN)
            self.encoders0 = nn.ModuleList([Layer(SANM_IN, c["d"], c["heads"], c["units"], c["kernel"])])
            self.encoders = nn.ModuleList([Layer(c["d"], c["d"], c["heads"], c["units"], c["kernel"])
                                           for _ in range(c["blocks"] - 1)])
            self.after_norm = nn.LayerNorm(c["d"])
            self.tp_encoders = nn.ModuleList([Layer(c["d"], c["d"], c["heads"], c["units"], c["kernel"])
                                              for _ in range(c["tp_blocks"])])
            self.tp_norm = nn.LayerNorm(c["d"])
            self.ctc_lo = nn.Linear(c["d"], c["vocab"])

        def forward(self, x, x_length, language, text_norm):
            n = x.shape[0]
            lang = self.embed(language.to(torch.int64)).unsqueeze(1)
            itn = self.embed(text_norm.to(torch.int64)).unsqueeze(1)
            event_emo = self.embed(torch.tensor([[1, 2]], dtype=torch.int64)).repeat(n, 1, 1)
            x = torch.cat((lang, event_emo, itn, x), dim=1)      # 4 prompt frames, as exported
            lengths = x_length + 4
            mask, bias = masks(lengths, x.shape[1])
            x = sinusoid(x * c["d"] ** 0.5)
            for layer in self.encoders0:
                x = layer(x, mask, bias)
            for layer in self.encoders:
                x = layer(x, mask, bias)
            x = self.after_norm(x)
            for layer in self.tp_encoders:
                x = layer(x, mask, bias)
            x = self.tp_norm(x)
            return self.ctc_lo(x)

    return torch, SenseVoiceSmall()


def _cmvn() -> tuple[str, str]:
    """Plausible global CMVN for fbank of int16-range samples (values do not change compute)."""
    mean = np.tile(np.linspace(-9.0, -14.0, FBANK), LFR_M)
    istd = np.full(SANM_IN, 0.3)
    return ",".join(f"{v:.4f}" for v in mean), ",".join(f"{v:.4f}" for v in istd)


def _placeholder_tokens(n: int, specials: dict[int, str]) -> list[str]:
    """Token table of n entries: the special ids as given, the rest printable placeholders
    (CJK characters and short latin pieces), so gibberish text prints cleanly."""
    out = []
    for i in range(n):
        if i in specials:
            out.append(specials[i])
        elif i % 3:
            out.append(chr(0x4E00 + (i * 7919) % 20900))
        else:
            out.append("\u2581" + "".join(chr(ord("a") + (i // 26 ** k) % 26) for k in range(3)))
    # sherpa-onnx's symbol table wants unique symbols
    seen: dict[str, int] = {}
    for i, t in enumerate(out):
        if t in seen:
            out[i] = f"{t}{i}"
        seen[out[i]] = i
    return out


def _random_init(torch, model, seed: int) -> None:
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 0:
                continue
            if p.dim() == 1 and "norm" in name:
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            elif p.dim() == 1:
                p.normal_(0, 0.02)
            else:
                fan_in = int(np.prod(p.shape[1:]))
                p.normal_(0, 1 / math.sqrt(max(fan_in, 1)))


def _write_tokens(out_dir: Path, tokens: list[str]) -> Path:
    """tokens.txt as sherpa-onnx reads it: one `symbol id` per line."""
    path = out_dir / "tokens.txt"
    path.write_text("".join(f"{t} {i}\n" for i, t in enumerate(tokens)), encoding="utf-8")
    return path


def _add_meta(path: Path, meta: dict[str, object]) -> None:
    import onnx
    m = onnx.load(str(path))
    del m.metadata_props[:]
    for k, v in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = k, str(v)
    onnx.save(m, str(path))


def build_sense_voice(out_dir: Path, seed: int = 20240717, log=print, tiny: bool = False) -> dict[str, Path]:
    """model.int8.onnx + tokens.txt with SenseVoice small's official shapes, random weights
    (`tiny`: the same graph with a few small blocks, for a quick test of the export path)."""
    c = dict(SV, **SV_TINY) if tiny else SV
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch, model = _sense_voice_module(c)
    _random_init(torch, model, seed)
    model.eval()
    fp32 = out_dir / "model.fp32.onnx"
    x = torch.randn(2, 100, SANM_IN)
    args = (x, torch.tensor([80, 100], dtype=torch.int32), torch.tensor([0, 3], dtype=torch.int32),
            torch.tensor([14, 15], dtype=torch.int32))
    log(f"{SV_NAME}: exporting ({sum(p.numel() for p in model.parameters()) / 1e6:.0f} M parameters)")
    with torch.no_grad():
        torch.onnx.export(model, args, str(fp32), dynamo=False, opset_version=13,
                          input_names=["x", "x_length", "language", "text_norm"], output_names=["logits"],
                          dynamic_axes={"x": {0: "N", 1: "T"}, "x_length": {0: "N"}, "language": {0: "N"},
                                        "text_norm": {0: "N"}, "logits": {0: "N", 1: "T"}})
    neg_mean, inv_stddev = _cmvn()
    _add_meta(fp32, {
        "lfr_window_size": LFR_M, "lfr_window_shift": LFR_N, "normalize_samples": 0,
        "neg_mean": neg_mean, "inv_stddev": inv_stddev, "model_type": "sense_voice_ctc", "version": "2",
        "model_author": "callcue (random weights, SenseVoiceSmall shapes)", "maintainer": "callcue",
        "vocab_size": c["vocab"], "comment": "ESTIMATE ONLY: random weights with iic/SenseVoiceSmall shapes",
        **{f"lang_{k}": v for k, v in SV_LID.items()},
        "with_itn": SV_ITN["withitn"], "without_itn": SV_ITN["woitn"],
        "url": "https://huggingface.co/FunAudioLLM/SenseVoiceSmall", "seed": seed})
    log(f"{SV_NAME}: quantizing (MatMul, QUInt8, as scripts/sense-voice/export-onnx.py)")
    int8 = out_dir / "model.int8.onnx"
    quantize_dynamic(model_input=str(fp32), model_output=str(int8), op_types_to_quantize=["MatMul"],
                     weight_type=QuantType.QUInt8)
    fp32.unlink()
    specials = {0: "<unk>", 1: "<s>", 2: "</s>"}
    # the prompt tokens sherpa-onnx reads back as language, emotion, event and itn
    for i, t in enumerate(["<|zh|>", "<|en|>", "<|yue|>", "<|ja|>", "<|ko|>", "<|nospeech|>",
                           "<|HAPPY|>", "<|SAD|>", "<|ANGRY|>", "<|NEUTRAL|>", "<|Speech|>",
                           "<|BGM|>", "<|withitn|>", "<|woitn|>"]):
        specials[c["vocab"] - 171 + i] = t
    return {"model": int8, "tokens": _write_tokens(out_dir, _placeholder_tokens(c["vocab"], specials))}


# ------------------------------------------------------------------ Paraformer large

PF_NAME = "paraformer-large-estimate"
PF = dict(d=512, heads=4, units=2048, enc_blocks=50, dec_blocks=16, kernel=11, vocab=8404,
          l_order=1, r_order=1, tail_threshold=0.45)
# Random weights would make the CIF predictor fire about every other 60 ms frame (sigmoid
# of noise ~ 0.5): 8 tokens a second, and the decoder's cost grows with tokens. The
# predictor's output bias is set so it fires PF_ALPHA per frame instead, 4.5 tokens a
# second, about the character rate of Mandarin speech (silence included, so a little
# pessimistic).
PF_ALPHA = 0.27
PF_TINY = dict(d=64, heads=4, units=128, enc_blocks=2, dec_blocks=1, vocab=300)


def _paraformer_module(c: dict):
    torch, nn, sinusoid, Layer, _, masks = _modules()

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoders0 = nn.ModuleList([Layer(SANM_IN, c["d"], c["heads"], c["units"], c["kernel"])])
            self.encoders = nn.ModuleList([Layer(c["d"], c["d"], c["heads"], c["units"], c["kernel"])
                                           for _ in range(c["enc_blocks"] - 1)])
            self.after_norm = nn.LayerNorm(c["d"])

        def forward(self, x, mask, bias):
            x = sinusoid(x * c["d"] ** 0.5)
            for layer in list(self.encoders0) + list(self.encoders):
                x = layer(x, mask, bias)
            return self.after_norm(x)

    class Predictor(nn.Module):
        """CifPredictorV2: conv (3 taps) + ReLU + linear + sigmoid -> firing weights; the tail
        threshold added after the last frame; integrate-and-fire by interval overlap."""

        def __init__(self):
            super().__init__()
            self.cif_conv1d = nn.Conv1d(c["d"], c["d"], c["l_order"] + c["r_order"] + 1)
            self.cif_output = nn.Linear(c["d"], 1)

        def forward(self, h, mask, lengths):
            ctx = nn.functional.pad(h.transpose(1, 2), (c["l_order"], c["r_order"]))
            a = torch.sigmoid(self.cif_output(torch.relu(self.cif_conv1d(ctx)).transpose(1, 2)))
            a = a.squeeze(-1) * mask.squeeze(-1)                            # (N, T)
            n, t = a.shape
            tail = (torch.arange(t + 1)[None, :] == lengths[:, None].to(torch.int64)).to(a.dtype)
            a = torch.cat([a, torch.zeros(n, 1)], dim=1) + tail * c["tail_threshold"]
            h = torch.cat([h, torch.zeros(n, 1, h.shape[2])], dim=1)
            token_num = torch.floor(a.sum(-1))
            hi = torch.cumsum(a, dim=1)                                     # (N, T+1)
            lo = hi - a
            k = torch.arange(torch.max(token_num).to(torch.int64)).to(a.dtype)[None, :, None]  # (1, U, 1)
            w = torch.clamp(torch.minimum(hi[:, None, :], k + 1) - torch.maximum(lo[:, None, :], k), min=0.0)
            return torch.bmm(w, h), token_num                               # (N, U, D), (N,)

    class DecoderLayer(nn.Module):
        """FFN (with its own LayerNorm) -> FSMN self-memory -> cross-attention, pre-norm."""

        def __init__(self, with_attn: bool):
            super().__init__()
            d = c["d"]
            self.norm1 = nn.LayerNorm(d)
            self.ff_w_1, self.ff_norm = nn.Linear(d, c["units"]), nn.LayerNorm(c["units"])
            self.ff_w_2 = nn.Linear(c["units"], d, bias=False)
            self.with_attn = with_attn
            if with_attn:
                self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d)
                self.fsmn_block = nn.Conv1d(d, d, c["kernel"], groups=d, bias=False)
                self.src_linear_q, self.src_linear_k_v = nn.Linear(d, d), nn.Linear(d, 2 * d)
                self.src_linear_out = nn.Linear(d, d)

        def forward(self, x, tmask, memory, mbias):
            res = x
            y = self.ff_w_2(self.ff_norm(torch.relu(self.ff_w_1(self.norm1(x)))))
            if not self.with_attn:
                return y
            z = self.norm2(y) * tmask
            left = (c["kernel"] - 1) // 2
            f = self.fsmn_block(nn.functional.pad(z.transpose(1, 2), (left, c["kernel"] - 1 - left)))
            x = res + (f.transpose(1, 2) + z) * tmask
            b, u, d = x.shape
            h, dk = c["heads"], d // c["heads"]
            q = self.src_linear_q(self.norm3(x)).reshape(b, u, h, dk).transpose(1, 2) * dk ** -0.5
            kk, vv = torch.split(self.src_linear_k_v(memory), d, dim=-1)
            kk = kk.reshape(b, -1, h, dk).transpose(1, 2)
            vv = vv.reshape(b, -1, h, dk).transpose(1, 2)
            att = torch.softmax(torch.matmul(q, kk.transpose(-2, -1)) + mbias, dim=-1)
            return x + self.src_linear_out(torch.matmul(att, vv).transpose(1, 2).reshape(b, u, d))

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.decoders = nn.ModuleList([DecoderLayer(True) for _ in range(c["dec_blocks"])])
            self.decoders3 = nn.ModuleList([DecoderLayer(False)])
            self.after_norm = nn.LayerNorm(c["d"])
            self.output_layer = nn.Linear(c["d"], c["vocab"])

        def forward(self, memory, mbias, emb, tmask):
            x = emb
            for layer in self.decoders:
                x = layer(x, tmask, memory, mbias)
            for layer in self.decoders3:
                x = layer(x, tmask, memory, mbias)
            return self.output_layer(self.after_norm(x))

    class Paraformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder, self.predictor, self.decoder = Encoder(), Predictor(), Decoder()
            push = torch.zeros(c["vocab"])
            push[2] = 1e4
            self.register_buffer("eos_push", push)

        def forward(self, speech, speech_lengths):
            mask, bias = masks(speech_lengths, speech.shape[1])
            enc = self.encoder(speech, mask, bias)
            emb, token_num = self.predictor(enc, mask, speech_lengths)
            tmask, _ = masks(token_num.to(torch.int64), emb.shape[1])
            logits = self.decoder(enc, bias, emb, tmask)
            # positions past a stream's own token count (batch padding) read as </s>, where
            # sherpa-onnx's greedy search stops, as the trained model's padding does
            logits = logits + (1.0 - tmask) * self.eos_push
            return torch.log_softmax(logits, dim=-1), token_num.to(torch.int32)

    return torch, Paraformer()


def build_paraformer(out_dir: Path, seed: int = 20230914, log=print, tiny: bool = False) -> dict[str, Path]:
    """model.int8.onnx + tokens.txt with Paraformer large's official shapes, random weights
    (`tiny`: the same graph with a few small blocks, for a quick test of the export path)."""
    c = dict(PF, **PF_TINY) if tiny else PF
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch, model = _paraformer_module(c)
    _random_init(torch, model, seed)
    with torch.no_grad():
        model.predictor.cif_output.weight.normal_(0, 1e-3)
        model.predictor.cif_output.bias.fill_(math.log(PF_ALPHA / (1 - PF_ALPHA)))
        model.decoder.output_layer.bias[2] = -30.0     # </s> (greedy search stops at it) never wins inside
    model.eval()
    fp32 = out_dir / "model.fp32.onnx"
    args = (torch.randn(2, 60, SANM_IN), torch.tensor([40, 60], dtype=torch.int32))
    log(f"{PF_NAME}: exporting ({sum(p.numel() for p in model.parameters()) / 1e6:.0f} M parameters)")
    with torch.no_grad():
        torch.onnx.export(model, args, str(fp32), dynamo=False, opset_version=14,
                          input_names=["speech", "speech_lengths"], output_names=["logits", "token_num"],
                          dynamic_axes={"speech": {0: "batch_size", 1: "feats_length"},
                                        "speech_lengths": {0: "batch_size"},
                                        "logits": {0: "batch_size", 1: "logits_length"},
                                        "token_num": {0: "batch_size"}})
    neg_mean, inv_stddev = _cmvn()
    _add_meta(fp32, {
        "lfr_window_size": LFR_M, "lfr_window_shift": LFR_N, "neg_mean": neg_mean, "inv_stddev": inv_stddev,
        "vocab_size": c["vocab"], "model_type": "paraformer", "version": "1",
        "model_author": "callcue (random weights, Paraformer-large shapes)",
        "comment": "ESTIMATE ONLY: random weights with speech_paraformer-large-vocab8404 shapes", "seed": seed})
    log(f"{PF_NAME}: quantizing (MatMul, per channel, QUInt8, *output* nodes in float, as FunASR's export)")
    names = [n.name for n in onnx.load(str(fp32), load_external_data=False).graph.node]
    int8 = out_dir / "model.int8.onnx"
    quantize_dynamic(model_input=str(fp32), model_output=str(int8), op_types_to_quantize=["MatMul"],
                     per_channel=True, reduce_range=False, weight_type=QuantType.QUInt8,
                     nodes_to_exclude=[m for m in names if "output" in m])
    fp32.unlink()
    toks = _placeholder_tokens(c["vocab"], {0: "<blank>", 1: "<s>", 2: "</s>", c["vocab"] - 1: "<unk>"})
    return {"model": int8, "tokens": _write_tokens(out_dir, toks)}


# ------------------------------------------------------------------ streaming zipformer (icefall v1)

ZF_NAME = "streaming-zipformer-bilingual-zh-en-estimate"
# icefall pruned_transducer_stateless7_streaming with the settings of the bilingual zh-en
# 2023-02-20 model's own export script (export-onnx-stateless7-streaming-zh.sh in its
# Hugging Face upload: layers 2,4,3,2,4, FFN 1024,1024,1536,1536,1024, 8 heads, dims 384,
# attention 192, downsampling 1,2,4,8,2, kernels 31, decoder and joiner 512,
# decode_chunk_len 32: T = 39 with the subsampling look-ahead), 4 left chunks of context. Vocabulary 6254: what the official fp32 decoder (13.9 MB =
# 6254 x 512 embedding + the 512 x 512 projection) and joiner (12.8 MB = 512 x 6254 + bias)
# hold.
ZF = dict(layers=(2, 4, 3, 2, 4), ff=(1024, 1024, 1536, 1536, 1024), heads=(8, 8, 8, 8, 8),
          dims=(384, 384, 384, 384, 384), attn=(192, 192, 192, 192, 192), kernels=(31, 31, 31, 31, 31),
          ds=(1, 2, 4, 8, 2), pos_dim=4, decode_chunk_len=32, T=39, left_chunks=4,
          decoder_dim=512, joiner_dim=512, vocab=6254, context_size=2)
ZF_TINY = dict(layers=(1, 1, 1, 1, 1), ff=(64, 64, 64, 64, 64), heads=(2, 2, 2, 2, 2), dims=(32, 32, 32, 32, 32),
               attn=(16, 16, 16, 16, 16), decoder_dim=32, joiner_dim=32, vocab=300)


def _zipformer_modules(c: dict):
    torch = _torch()
    nn = torch.nn
    ds_out = 2
    chunk = c["decode_chunk_len"] // 2           # frames after the conv front end (20 ms)

    def double_swish(x):
        return x * torch.sigmoid(x - 1.0)

    class BasicNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.eps = nn.Parameter(torch.tensor(-1.0))

        def forward(self, x):
            return x * torch.rsqrt(torch.mean(x * x, dim=-1, keepdim=True) + torch.exp(self.eps))

    class FFN(nn.Module):
        def __init__(self, d, ff):
            super().__init__()
            self.in_proj, self.out_proj = nn.Linear(d, ff), nn.Linear(ff, d)

        def forward(self, x):
            return self.out_proj(double_swish(self.in_proj(x)))

    class Conv(nn.Module):
        """pointwise (2d, gated) -> causal depthwise (kernel, cached kernel-1 frames) -> pointwise."""

        def __init__(self, d, k):
            super().__init__()
            # icefall's pointwise convs are Conv1d (kernel 1): they stay float in the int8
            # export, which quantizes MatMul only
            self.pointwise_conv1 = nn.Conv1d(d, 2 * d, 1)
            self.depthwise_conv = nn.Conv1d(d, d, k, groups=d)
            self.pointwise_conv2 = nn.Conv1d(d, d, 1)

        def forward(self, x, cache):             # x (T, N, D); cache (N, D, k-1)
            a, b = self.pointwise_conv1(x.permute(1, 2, 0)).chunk(2, dim=1)
            y = torch.cat([cache, a * torch.sigmoid(b)], dim=2)  # (N, D, k-1+T)
            new_cache = y[:, :, y.shape[2] - cache.shape[2]:]
            y = self.pointwise_conv2(double_swish(self.depthwise_conv(y)))
            return y.permute(2, 0, 1), new_cache

    class Layer(nn.Module):
        def __init__(self, d, attn, heads, ff, k):
            super().__init__()
            self.h, self.att, self.pd = heads, attn, c["pos_dim"]
            self.feed_forward1, self.feed_forward2, self.feed_forward3 = FFN(d, ff), FFN(d, ff), FFN(d, ff)
            self.pooling = nn.Linear(d, d)
            self.in_proj = nn.Linear(d, 2 * attn + attn // 2 + heads * self.pd)
            self.linear_pos = nn.Linear(d, heads * self.pd, bias=False)
            self.out_proj = nn.Linear(attn // 2, d)
            self.in_proj2 = nn.Linear(d, attn // 2, bias=False)
            self.out_proj2 = nn.Linear(attn // 2, d)
            self.conv_module1, self.conv_module2 = Conv(d, k), Conv(d, k)
            self.norm_final = BasicNorm()
            self.bypass_scale = nn.Parameter(torch.tensor(0.5))

        def forward(self, x, pos, st):
            clen, cavg, ckey, cval, cval2, cconv1, cconv2 = st
            t, n, _ = x.shape
            left = ckey.shape[0]
            src = x
            x = x + self.feed_forward1(x)
            # pooling: running mean over the whole utterance so far
            cnt = clen.to(x.dtype)[None, :, None] + torch.arange(1, t + 1, dtype=x.dtype)[:, None, None]
            cum = torch.cumsum(x, dim=0) + (cavg * clen.to(x.dtype)[:, None])[None]
            avg = cum / cnt
            x = x + self.pooling(avg)
            new_avg = avg[-1]
            # relative-position attention over the cached left context and this chunk
            proj = self.in_proj(x)
            a, hh, pd = self.att, self.h, self.pd
            q, k, v, p = torch.split(proj, [a, a, a // 2, hh * pd], dim=-1)
            k = torch.cat([ckey, k], dim=0)
            v = torch.cat([cval, v], dim=0)
            new_key, new_val = k[k.shape[0] - left:], v[v.shape[0] - left:]
            L = k.shape[0]
            qh = q.reshape(t, n, hh, a // hh).permute(2, 1, 0, 3)           # (H, N, T, dk)
            kh = k.reshape(L, n, hh, a // hh).permute(2, 1, 3, 0)           # (H, N, dk, L)
            ph = p.reshape(t, n, hh, pd).permute(2, 1, 0, 3)                # (H, N, T, pd)
            pe = self.linear_pos(pos).reshape(L, hh, pd).permute(1, 2, 0)   # (H, pd, L)
            scores = torch.matmul(qh, kh) + torch.matmul(ph, pe[:, None])   # (H, N, T, L)
            # keys of the left context not filled yet (start of the utterance) are masked
            kpos = torch.arange(L)[None, :]
            valid = (kpos >= (left - torch.clamp(clen, max=left))[:, None]).to(x.dtype)   # (N, L)
            scores = scores + ((1.0 - valid) * -1000.0)[None, :, None, :]
            w = torch.softmax(scores, dim=-1)
            vh = v.reshape(L, n, hh, a // (2 * hh)).permute(2, 1, 0, 3)
            o = torch.matmul(w, vh).permute(2, 1, 0, 3).reshape(t, n, a // 2)
            x = x + self.out_proj(o)
            x = x + self.feed_forward2(x)
            y, new_conv1 = self.conv_module1(x, cconv1)
            x = x + y
            # the same attention weights, second value projection
            v2 = torch.cat([cval2, self.in_proj2(x)], dim=0)
            new_val2 = v2[v2.shape[0] - left:]
            v2h = v2.reshape(L, n, hh, a // (2 * hh)).permute(2, 1, 0, 3)
            x = x + self.out_proj2(torch.matmul(w, v2h).permute(2, 1, 0, 3).reshape(t, n, a // 2))
            y, new_conv2 = self.conv_module2(x, cconv2)
            x = x + y
            x = self.norm_final(x + self.feed_forward3(x))
            x = src + self.bypass_scale * (x - src)
            return x, (clen + t, new_avg, new_key, new_val, new_val2, new_conv1, new_conv2)

    class Downsample(nn.Module):
        """AttentionDownsample: a learned query weights each group of ds frames."""

        def __init__(self, d_in, d_out, ds):
            super().__init__()
            self.ds, self.query = ds, nn.Parameter(torch.randn(d_in) * d_in ** -0.5)

        def forward(self, x):
            t, n, d = x.shape
            x = x.reshape(t // self.ds, self.ds, n, d)
            w = torch.softmax((x * self.query).sum(-1, keepdim=True), dim=1)
            return (x * w).sum(1)

    class Stack(nn.Module):
        def __init__(self, i):
            super().__init__()
            self.ds = c["ds"][i]
            self.layers = nn.ModuleList([Layer(c["dims"][i], c["attn"][i], c["heads"][i], c["ff"][i],
                                               c["kernels"][i]) for _ in range(c["layers"][i])])
            self.downsample = Downsample(c["dims"][i], c["dims"][i], self.ds) if self.ds > 1 else None
            self.out_combiner = nn.Parameter(torch.tensor(0.5))

        def forward(self, x, pos, states):
            src = x
            if self.downsample is not None:
                x = self.downsample(x)
            new = []
            for j, layer in enumerate(self.layers):
                x, st = layer(x, pos, [s[j] for s in states])
                new.append(st)
            if self.ds > 1:
                x = x.repeat_interleave(self.ds, dim=0)          # SimpleUpsample
                x = src + self.out_combiner * (x - src)          # SimpleCombiner
            return x, [torch.stack([st[k] for st in new]) for k in range(7)]

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            d0 = c["dims"][0]
            # Conv2dSubsampling: 39 x 80 -> 16 x d0 (channels 8, 32, 128)
            self.conv = nn.Sequential(
                nn.Conv2d(1, 8, 3, padding=(0, 1)), nn.SiLU(),
                nn.Conv2d(8, 32, 3, stride=2), nn.SiLU(),
                nn.Conv2d(32, 128, 3, stride=(1, 2)), nn.SiLU())
            self.embed_out = nn.Linear(128 * (((FBANK - 1) // 2 - 1) // 2), d0)
            self.stacks = nn.ModuleList([Stack(i) for i in range(len(c["layers"]))])
            self.downsample_output = Downsample(c["dims"][-1], c["dims"][-1], ds_out)
            self.encoder_proj = nn.Linear(c["dims"][-1], c["joiner_dim"])

        def forward(self, x, *states):
            k = len(c["layers"])
            groups = [states[g * k:(g + 1) * k] for g in range(7)]
            y = self.conv(x.unsqueeze(1))                                    # (N, 128, 16, 19)
            n, ch, t, f = y.shape
            y = self.embed_out(y.permute(0, 2, 1, 3).reshape(n, t, ch * f)).permute(1, 0, 2)  # (16, N, D)
            outs = [[None] * k for _ in range(7)]
            for i, stack in enumerate(self.stacks):
                left = groups[2][i].shape[1]
                L = left + chunk // c["ds"][i]
                # sinusoidal relative positions (one per key), projected per layer
                d = c["dims"][i]
                pos_i = torch.arange(L, dtype=torch.float32)[:, None]
                inv = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))[None, :]
                pos = torch.cat([torch.sin(pos_i * inv), torch.cos(pos_i * inv)], dim=1)
                y, new = stack(y, pos, [groups[g][i] for g in range(7)])
                for g in range(7):
                    outs[g][i] = new[g]
            y = self.downsample_output(y)                                    # (8, N, D)
            enc = self.encoder_proj(y).permute(1, 0, 2)                      # (N, 8, joiner_dim)
            return (enc, *[s for g in outs for s in g])

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            dd = c["decoder_dim"]
            self.embedding = nn.Embedding(c["vocab"], dd)
            self.conv = nn.Conv1d(dd, dd, c["context_size"], groups=dd // 4, bias=False)
            self.decoder_proj = nn.Linear(dd, c["joiner_dim"])

        def forward(self, y):
            e = self.embedding(torch.clamp(y, min=0)).permute(0, 2, 1)      # (N, D, ctx)
            return self.decoder_proj(torch.relu(self.conv(e)).squeeze(-1))

    class Joiner(nn.Module):
        def __init__(self):
            super().__init__()
            self.output_linear = nn.Linear(c["joiner_dim"], c["vocab"])

        def forward(self, encoder_out, decoder_out):
            return self.output_linear(torch.tanh(encoder_out + decoder_out))

    return torch, Encoder(), Decoder(), Joiner()


def _zf_state_specs(c: dict):
    """(name, shape, dtype) of the encoder's 7 x stacks state tensors, batch 1, sherpa-onnx's order."""
    chunk = c["decode_chunk_len"] // 2
    specs = []
    for g, name in enumerate(("cached_len", "cached_avg", "cached_key", "cached_val", "cached_val2",
                              "cached_conv1", "cached_conv2")):
        for i in range(len(c["layers"])):
            nl, d, a, k = c["layers"][i], c["dims"][i], c["attn"][i], c["kernels"][i]
            left = c["left_chunks"] * chunk // c["ds"][i]
            shape = {"cached_len": (nl, 1), "cached_avg": (nl, 1, d), "cached_key": (nl, left, 1, a),
                     "cached_val": (nl, left, 1, a // 2), "cached_val2": (nl, left, 1, a // 2),
                     "cached_conv1": (nl, 1, d, k - 1), "cached_conv2": (nl, 1, d, k - 1)}[name]
            specs.append((f"{name}_{i}", shape, "int64" if name == "cached_len" else "float32"))
    return specs


def build_zipformer(out_dir: Path, seed: int = 20230220, log=print, tiny: bool = False) -> dict[str, Path]:
    """encoder/decoder/joiner int8 + tokens.txt in the layout of icefall's streaming zipformer
    export (model_type zipformer), random weights."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    c = dict(ZF, **ZF_TINY) if tiny else ZF
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch, enc, dec, join = _zipformer_modules(c)
    for m in (enc, dec, join):
        _random_init(torch, m, seed)
        m.eval()
    with torch.no_grad():
        for name, p in enc.named_parameters():
            if name.endswith("eps"):
                p.fill_(-1.0)
            elif name.endswith(("bypass_scale", "out_combiner")):
                p.fill_(0.5)
        # blank (id 0) wins most frames, as on real speech, so the decoder runs now and then
        join.output_linear.bias.zero_()
        join.output_linear.bias[0] = 3.5
    specs = _zf_state_specs(c)
    states = [torch.zeros(s, dtype=torch.int64 if dt == "int64" else torch.float32) for _, s, dt in specs]
    x = torch.randn(1, c["T"], FBANK)
    names = [n for n, _, _ in specs]
    files = {"encoder": "encoder-epoch-99-avg-1", "decoder": "decoder-epoch-99-avg-1",
             "joiner": "joiner-epoch-99-avg-1"}
    fp32 = {k: out_dir / f"{v}.onnx" for k, v in files.items()}
    log(f"{ZF_NAME}: exporting (encoder {sum(p.numel() for p in enc.parameters()) / 1e6:.0f} M parameters)")
    with torch.no_grad():
        # the encoder's batch axis: dim 0 of x, dim 1 of the states except cached_key/val/val2 (dim 2)
        axes = {"x": {0: "N"}, "encoder_out": {0: "N"}}
        for n_, (nm, shape, _) in zip(names, specs):
            b = 2 if nm.startswith(("cached_key", "cached_val")) else 1
            axes[nm] = {b: "N"}
            axes["new_" + nm] = {b: "N"}
        torch.onnx.export(enc, (x, *states), str(fp32["encoder"]), dynamo=False, opset_version=13,
                          input_names=["x", *names], output_names=["encoder_out", *["new_" + n for n in names]],
                          dynamic_axes=axes)
        torch.onnx.export(dec, (torch.zeros(1, c["context_size"], dtype=torch.int64),), str(fp32["decoder"]),
                          dynamo=False, opset_version=13, input_names=["y"], output_names=["decoder_out"],
                          dynamic_axes={"y": {0: "N"}, "decoder_out": {0: "N"}})
        torch.onnx.export(join, (torch.zeros(1, c["joiner_dim"]), torch.zeros(1, c["joiner_dim"])),
                          str(fp32["joiner"]), dynamo=False, opset_version=13,
                          input_names=["encoder_out", "decoder_out"], output_names=["logit"],
                          dynamic_axes={"encoder_out": {0: "N"}, "decoder_out": {0: "N"}, "logit": {0: "N"}})
    chunk = c["decode_chunk_len"] // 2
    csv = lambda v: ",".join(str(i) for i in v)  # noqa: E731
    _add_meta(fp32["encoder"], {
        "model_type": "zipformer", "version": "1", "model_author": "callcue (random weights, zipformer v1 shapes)",
        "decode_chunk_len": c["decode_chunk_len"], "T": c["T"], "num_encoder_layers": csv(c["layers"]),
        "encoder_dims": csv(c["dims"]), "attention_dims": csv(c["attn"]), "cnn_module_kernels": csv(c["kernels"]),
        "left_context_len": csv(c["left_chunks"] * chunk // d for d in c["ds"]),
        "zipformer_downsampling_factors": csv(c["ds"]),
        "comment": "ESTIMATE ONLY: random weights, icefall pruned_transducer_stateless7_streaming shapes",
        "seed": seed})
    _add_meta(fp32["decoder"], {"context_size": c["context_size"], "vocab_size": c["vocab"]})
    _add_meta(fp32["joiner"], {"joiner_dim": c["joiner_dim"]})
    log(f"{ZF_NAME}: quantizing (icefall's export-onnx: MatMul, QInt8; decoder and joiner too)")
    out = {}
    for k, p in fp32.items():
        q = out_dir / f"{files[k]}.int8.onnx"
        quantize_dynamic(model_input=str(p), model_output=str(q), op_types_to_quantize=["MatMul"],
                         weight_type=QuantType.QInt8)
        p.unlink()
        out[k] = q
    # cjkchar+bpe table: blank, specials, BPE pieces, then CJK characters
    toks = ["<blk>", "<sos/eos>", "<unk>"]
    i = 0
    while len(toks) < c["vocab"]:
        toks.append(chr(0x4E00 + i) if len(toks) > 500 else "\u2581" + "".join(
            chr(ord("A") + (i // 26 ** j) % 26) for j in range(2)) + str(i))
        i += 1
    out["tokens"] = _write_tokens(out_dir, toks)
    return out


# ------------------------------------------------------------------ CLI

BUILDS = {SV_NAME: build_sense_voice, PF_NAME: build_paraformer, ZF_NAME: build_zipformer}


def build_and_install(name: str, force: bool = False, models_dir: Path | None = None, log=print):
    from .install import build_and_install as _bi
    model, _ = _bi(name, lambda work: BUILDS[name](work, log=log), force=force, models_dir=models_dir,
                   log=log)
    return model


def add_parsers(msub) -> None:
    p = msub.add_parser("make-production-shapes",
                        help="build and install random-weight models with the official shapes of the production "
                             "ASR models (SenseVoice small, Paraformer, streaming zipformer), for sizing only")
    p.add_argument("names", nargs="*", metavar="NAME", help=f"which (default: all): {', '.join(BUILDS)}")
    p.add_argument("--models-dir", type=Path, default=None,
                   help="where models are installed (default: $CALLCUE_MODELS_DIR, else <repo>/models/installed)")
    p.add_argument("--force", action="store_true", help="replace an installed copy")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from .manifest import ModelError
    names = args.names or list(BUILDS)
    bad = [n for n in names if n not in BUILDS]
    if bad:
        print(f"callcue models make-production-shapes: unknown {', '.join(bad)} (choose from {', '.join(BUILDS)})",
              file=sys.stderr)
        return 2
    for name in names:
        try:
            m = build_and_install(name, args.force, args.models_dir, log=lambda s: print(s, file=sys.stderr))
        except (ModelError, RuntimeError, OSError) as exc:
            print(f"callcue models make-production-shapes: {exc}", file=sys.stderr)
            return 1
        print(f"{name}: installed in {m.directory} (random weights, official shapes: an estimate, not a recogniser)")
    return 0
