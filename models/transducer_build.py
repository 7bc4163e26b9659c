"""A tiny streaming transducer with random weights, for testing the streaming ASR path.

`make_test_transducer(out_dir)` writes encoder.onnx, decoder.onnx, joiner.onnx, tokens.txt
and bpe.vocab that sherpa-onnx's `OnlineRecognizer.from_transducer` loads as an icefall
LSTM transducer (encoder metadata model_type=lstm). The graphs have exactly the inputs,
outputs, shapes and metadata sherpa-onnx's OnlineLstmTransducerModel reads:

- encoder: x (N, T=39, 80), state0 (layers, N, d_model), state1 (layers, N, rnn_hidden)
  -> encoder_out (N, 8, joiner_dim), new_state0, new_state1; metadata model_type,
  decode_chunk_len, T, num_encoder_layers, d_model, rnn_hidden_size.
- decoder: y (N, context_size) int64 -> decoder_out (N, joiner_dim); metadata
  context_size, vocab_size.
- joiner: encoder_out (N, joiner_dim), decoder_out (N, joiner_dim) -> logit (N, vocab).

The encoder is a real streaming network (a strided convolution subsampling by 4, as
sherpa-onnx assumes for timestamps and endpoints, then stacked ONNX LSTMs carrying state
between chunks). Weights are random, so the text is gibberish, but one encoder channel
follows the frame energy and pushes the joiner away from blank, so speech yields tokens
now and then and silence yields blanks, which endpoint detection needs.

Build-time tool: needs the `onnx` package (optional dependency group "convert").
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

FEATURE_DIM = 80
# Feature frames (10 ms) per chunk: sherpa-onnx feeds T frames and then advances by
# decode_chunk_len; the extra frames are the subsampling convolution's look-ahead.
DECODE_CHUNK_LEN = 32
T = 39
CONV_KERNEL = 11
SUBSAMPLING = 4           # sherpa-onnx hard-codes 4 for token timestamps and endpointing
NUM_LAYERS = 2
HIDDEN = 64               # d_model == rnn_hidden_size: ONNX LSTM has no projection
JOINER_DIM = 64           # the last channel is the speech-energy channel
EMBED_DIM = 32
CONTEXT_SIZE = 2
OPSET = 13
IR_VERSION = 8            # old enough for any onnxruntime sherpa-onnx >= 1.10 bundles

# Mean log-mel energy (sherpa-onnx fbank of samples in [-1, 1]) above which a frame
# counts as speech (measured with OnlineStream.get_frames): espeak speech has a median
# of -5, -60 dBFS noise sits at -9.5, digital silence at -16.
SPEECH_LOGMEL = -8.5
FEAT_MEAN = -6.0
FEAT_STD = 3.0
SPEECH_SLOPE = 4.0
SPEECH_GAIN = 3.0
# Joiner biases: on silence blank must win by so much that modified beam search, which
# log-adds all alignments of a token sequence, still prefers the empty one; on speech the
# energy channel removes BLANK_SPEECH_PUSH from the blank logit, so random tokens win
# about half the frames.
BLANK_BIAS = 17.0
BLANK_SPEECH_PUSH = 12.0
TOKEN_WEIGHT_STD = 0.35
TOKEN_BIAS_STD = 0.3

SPECIALS = ["<blk>", "<sos/eos>", "<unk>"]
# Whole-word pieces, roughly what a call-centre English BPE model learns early.
WORDS = """
THE AND YOU I TO A OF IS IT THAT FOR YOUR ON IN MY WE CAN HAVE THIS BE WITH ME NOT
ARE SO WILL DO IF WHAT NO YES OKAY PLEASE THANK THANKS HELLO HI BYE SORRY HELP
CALL CALLING NUMBER ACCOUNT CARD PAYMENT BILL ORDER REFUND CANCEL PASSWORD CODE
BANK CREDIT DEBIT TRANSFER BALANCE CHARGE FEE PHONE EMAIL ADDRESS NAME DATE TIME
TODAY TOMORROW WEEK MONTH DAY MINUTE AGENT MANAGER CUSTOMER SERVICE SUPPORT ISSUE
PROBLEM CHECK VERIFY CONFIRM UPDATE CHANGE CLOSE OPEN SEND RECEIVE WAIT HOLD
MOMENT SURE RIGHT GOOD GREAT FINE ABOUT NEED WANT KNOW THINK SEE LOOK GET GO
TELL SAY ASK UNDERSTAND PROCESS DELIVERY PACKAGE PLAN UPGRADE CONTRACT LOAN RATE
""".split()
SUFFIXES = ["S", "ED", "ING", "ER", "LY", "TION", "'S", "'T", "'M", "'LL", "'RE",
            "EST", "MENT", "NESS", "ABLE", "CUE", "TEL", "NET", "PLUS", "PRO"]
LETTERS = [chr(c) for c in range(ord("A"), ord("Z") + 1)]
# Frequent characters of Mandarin customer-service speech.
CJK = ("你好您谢请问有什么可以帮助的吗是我不在这个了一下们就要没对会电话号码账户密码"
       "银行卡信用转账余额费用订单退款取消投诉客服人工经理时间今天明天地址名字邮件"
       "确认修改查询办理业务套餐升级合同贷款利率快递包裹收到发送等待稍后马上好的"
       "明白知道需要想问题系统网络手机短信验证开通关闭服务满意再见感")


def vocabulary() -> list[str]:
    """Token table: blank first (sherpa-onnx assumes id 0), then BPE-style pieces, then CJK."""
    pieces = ["\u2581" + w for w in WORDS] + ["\u2581" + c for c in LETTERS] + LETTERS + SUFFIXES
    return list(dict.fromkeys(SPECIALS + pieces + list(CJK)))


def _onnx():
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as exc:
        raise RuntimeError("generating the test transducer needs the `onnx` package: "
                           "pip install 'callcue[convert]' (or pip install onnx)") from exc
    return onnx, TensorProto, helper, numpy_helper


def _save(model, path: Path, meta: dict[str, object]) -> None:
    onnx, *_ = _onnx()
    for key, value in meta.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, str(value)
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def _encoder(rng: np.random.Generator):
    _, TensorProto, helper, numpy_helper = _onnx()
    inits = []

    def const(name: str, arr) -> str:
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def rand(name: str, shape, scale: float) -> str:
        return const(name, (rng.standard_normal(shape) * scale).astype(np.float32))

    H = HIDDEN
    nodes = [
        # rough global normalisation of log-mel features (speech sits near -6 +- 3)
        helper.make_node("Sub", ["x", const("feat_mean", np.float32(FEAT_MEAN))], ["xc"]),
        helper.make_node("Mul", ["xc", const("feat_scale", np.float32(1 / FEAT_STD))], ["xs"]),
        helper.make_node("Transpose", ["xs"], ["xt"], perm=[0, 2, 1]),
        # stride-4 convolution over time: T=39 frames -> 8 output frames per chunk
        helper.make_node("Conv", ["xt", rand("conv_w", (H, FEATURE_DIM, CONV_KERNEL),
                                             1 / np.sqrt(FEATURE_DIM * CONV_KERNEL)),
                                  rand("conv_b", (H,), 0.1)],
                         ["conv"], kernel_shape=[CONV_KERNEL], strides=[SUBSAMPLING]),
        helper.make_node("Transpose", ["conv"], ["conv_t"], perm=[2, 0, 1]),   # (8, N, H)
        helper.make_node("Tanh", ["conv_t"], ["h_in0"]),
    ]
    h_outs, c_outs = [], []
    prev = "h_in0"
    for i in range(NUM_LAYERS):
        starts, ends, axes = (const(f"s{i}_{k}", np.array([v], dtype=np.int64))
                              for k, v in (("start", i), ("end", i + 1), ("axis", 0)))
        bias = np.zeros((1, 8 * H), dtype=np.float32)
        bias[0, H:2 * H] = 1.0  # forget-gate bias: keep memory across chunks
        nodes += [
            helper.make_node("Slice", ["state0", starts, ends, axes], [f"h{i}"]),
            helper.make_node("Slice", ["state1", starts, ends, axes], [f"c{i}"]),
            helper.make_node("LSTM", [prev, rand(f"lstm{i}_w", (1, 4 * H, H), 1 / np.sqrt(H)),
                                      rand(f"lstm{i}_r", (1, 4 * H, H), 1 / np.sqrt(H)),
                                      const(f"lstm{i}_b", bias), "", f"h{i}", f"c{i}"],
                             [f"y{i}", f"yh{i}", f"yc{i}"], hidden_size=H),
            helper.make_node("Squeeze", [f"y{i}", const(f"sq{i}", np.array([1], dtype=np.int64))],
                             [f"ys{i}"]),
            helper.make_node("Add", [prev, f"ys{i}"], [f"h_in{i + 1}"]),   # residual
        ]
        prev = f"h_in{i + 1}"
        h_outs.append(f"yh{i}")
        c_outs.append(f"yc{i}")
    nodes += [
        helper.make_node("Concat", h_outs, ["new_state0"], axis=0),
        helper.make_node("Concat", c_outs, ["new_state1"], axis=0),
        helper.make_node("Transpose", [prev], ["enc"], perm=[1, 0, 2]),   # (N, 8, H)
        helper.make_node("MatMul", ["enc", rand("proj_w", (H, JOINER_DIM - 1), 1 / np.sqrt(H))],
                         ["proj_mm"]),
        helper.make_node("Add", ["proj_mm", rand("proj_b", (JOINER_DIM - 1,), 0.1)], ["proj"]),
        # speech channel: mean log-mel pooled like the convolution, squashed to 0..1
        helper.make_node("ReduceMean", ["x"], ["energy"], axes=[2], keepdims=1),   # (N, T, 1)
        helper.make_node("Transpose", ["energy"], ["energy_t"], perm=[0, 2, 1]),
        helper.make_node("AveragePool", ["energy_t"], ["energy_p"],
                         kernel_shape=[CONV_KERNEL], strides=[SUBSAMPLING]),
        helper.make_node("Transpose", ["energy_p"], ["energy_f"], perm=[0, 2, 1]),  # (N, 8, 1)
        helper.make_node("Sub", ["energy_f", const("speech_level", np.float32(SPEECH_LOGMEL))],
                         ["energy_c"]),
        helper.make_node("Mul", ["energy_c", const("speech_slope", np.float32(SPEECH_SLOPE))],
                         ["energy_s"]),
        helper.make_node("Sigmoid", ["energy_s"], ["speech"]),
        helper.make_node("Mul", ["speech", const("speech_gain", np.float32(SPEECH_GAIN))],
                         ["speech_ch"]),
        helper.make_node("Concat", ["proj", "speech_ch"], ["encoder_out"], axis=2),
    ]
    f = TensorProto.FLOAT
    graph = helper.make_graph(
        nodes, "callcue_test_lstm_encoder",
        [helper.make_tensor_value_info("x", f, ["N", T, FEATURE_DIM]),
         helper.make_tensor_value_info("state0", f, [NUM_LAYERS, "N", H]),
         helper.make_tensor_value_info("state1", f, [NUM_LAYERS, "N", H])],
        [helper.make_tensor_value_info("encoder_out", f, ["N", DECODE_CHUNK_LEN // SUBSAMPLING,
                                                          JOINER_DIM]),
         helper.make_tensor_value_info("new_state0", f, [NUM_LAYERS, "N", H]),
         helper.make_tensor_value_info("new_state1", f, [NUM_LAYERS, "N", H])],
        inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                             producer_name="callcue-make-test-transducer")


def _decoder(rng: np.random.Generator, vocab_size: int):
    _, TensorProto, helper, numpy_helper = _onnx()
    emb = (rng.standard_normal((vocab_size, EMBED_DIM)) * 0.5).astype(np.float32)
    emb[0] = 0.0  # blank context contributes nothing, like icefall's padding_idx
    w1 = (rng.standard_normal((CONTEXT_SIZE * EMBED_DIM, JOINER_DIM)) /
          np.sqrt(CONTEXT_SIZE * EMBED_DIM)).astype(np.float32)
    w2 = (rng.standard_normal((JOINER_DIM, JOINER_DIM)) / np.sqrt(JOINER_DIM)).astype(np.float32)
    w2[:, -1] = 0.0  # the speech channel belongs to the encoder alone
    inits = [numpy_helper.from_array(a, n) for n, a in (
        ("embedding", emb), ("w1", w1), ("b1", np.zeros(JOINER_DIM, np.float32)),
        ("w2", w2), ("b2", np.zeros(JOINER_DIM, np.float32)),
        ("flat", np.array([0, CONTEXT_SIZE * EMBED_DIM], dtype=np.int64)))]
    nodes = [
        helper.make_node("Gather", ["embedding", "y"], ["e"], axis=0),   # (N, ctx, E)
        helper.make_node("Reshape", ["e", "flat"], ["ef"]),
        helper.make_node("MatMul", ["ef", "w1"], ["m1"]),
        helper.make_node("Add", ["m1", "b1"], ["a1"]),
        helper.make_node("Relu", ["a1"], ["r1"]),
        helper.make_node("MatMul", ["r1", "w2"], ["m2"]),
        helper.make_node("Add", ["m2", "b2"], ["decoder_out"]),
    ]
    graph = helper.make_graph(
        nodes, "callcue_test_decoder",
        [helper.make_tensor_value_info("y", TensorProto.INT64, ["N", CONTEXT_SIZE])],
        [helper.make_tensor_value_info("decoder_out", TensorProto.FLOAT, ["N", JOINER_DIM])],
        inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                             producer_name="callcue-make-test-transducer")


def _joiner(rng: np.random.Generator, vocab_size: int):
    _, TensorProto, helper, numpy_helper = _onnx()
    w = (rng.standard_normal((JOINER_DIM, vocab_size)) * TOKEN_WEIGHT_STD).astype(np.float32)
    b = (rng.standard_normal(vocab_size) * TOKEN_BIAS_STD).astype(np.float32)
    w[:, 0] *= 0.3   # keep the blank logit close to its designed level
    w[-1, :] = 0.0
    w[-1, 0] = -BLANK_SPEECH_PUSH / np.tanh(SPEECH_GAIN)
    b[0] = BLANK_BIAS
    b[1:len(SPECIALS)] = -10.0   # <sos/eos> and <unk> are never spoken
    inits = [numpy_helper.from_array(w, "out_w"), numpy_helper.from_array(b, "out_b")]
    nodes = [
        helper.make_node("Add", ["encoder_out", "decoder_out"], ["s"]),
        helper.make_node("Tanh", ["s"], ["t"]),
        helper.make_node("MatMul", ["t", "out_w"], ["m"]),
        helper.make_node("Add", ["m", "out_b"], ["logit"]),
    ]
    f = TensorProto.FLOAT
    graph = helper.make_graph(
        nodes, "callcue_test_joiner",
        [helper.make_tensor_value_info("encoder_out", f, ["N", JOINER_DIM]),
         helper.make_tensor_value_info("decoder_out", f, ["N", JOINER_DIM])],
        [helper.make_tensor_value_info("logit", f, ["N", vocab_size])],
        inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                             producer_name="callcue-make-test-transducer")


def make_test_transducer(out_dir: Path, seed: int = 0) -> dict[str, Path]:
    """Write the test model into ``out_dir`` (created if needed); return its file paths.

    Keys: encoder, decoder, joiner, tokens, bpe_vocab. The same seed gives the same weights.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    toks = vocabulary()
    paths = {name: out_dir / fname for name, fname in (
        ("encoder", "encoder.onnx"), ("decoder", "decoder.onnx"), ("joiner", "joiner.onnx"),
        ("tokens", "tokens.txt"), ("bpe_vocab", "bpe.vocab"))}
    _save(_encoder(rng), paths["encoder"], {
        "model_type": "lstm", "version": 1, "model_author": "callcue (random test weights)",
        "decode_chunk_len": DECODE_CHUNK_LEN, "T": T, "num_encoder_layers": NUM_LAYERS,
        "d_model": HIDDEN, "rnn_hidden_size": HIDDEN, "seed": seed})
    _save(_decoder(rng, len(toks)), paths["decoder"],
          {"context_size": CONTEXT_SIZE, "vocab_size": len(toks)})
    _save(_joiner(rng, len(toks)), paths["joiner"], {"joiner_dim": JOINER_DIM})
    paths["tokens"].write_text("".join(f"{t} {i}\n" for i, t in enumerate(toks)), encoding="utf-8")
    # sentencepiece-style vocab (piece, log-prob) so hotwords in English can be split
    # into pieces (modeling_unit bpe or cjkchar+bpe); longer pieces are preferred.
    bpe = [t for t in toks if t.isascii() or t.startswith("\u2581")]
    paths["bpe_vocab"].write_text(
        "".join(f"{t}\t{0.0 if t in SPECIALS else -1.0 - 0.001 * i:.4f}\n"
                for i, t in enumerate(bpe)), encoding="utf-8")
    return paths


def add_parsers(msub) -> None:
    p = msub.add_parser("make-test-transducer",
                        help="write a tiny random-weight streaming transducer (sherpa-onnx LSTM layout) for tests")
    p.add_argument("--out", required=True, type=Path, help="output directory (created if missing)")
    p.add_argument("--seed", type=int, default=0, help="random seed for the weights (default 0)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        paths = make_test_transducer(args.out, args.seed)
    except (RuntimeError, OSError) as exc:
        print(f"callcue models make-test-transducer: {exc}", file=sys.stderr)
        return 1
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0
