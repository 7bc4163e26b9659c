"""The production-model estimates (models/production_shapes.py): random-weight models with
the official shapes load in sherpa-onnx and decode audio without error (the text is
gibberish). The quick tests build the same graphs with a few small blocks; the slow ones
build the full-size models (minutes each) and check the official shapes."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")
sherpa_onnx = pytest.importorskip("sherpa_onnx")

from callcue.models import production_shapes as ps  # noqa: E402


def _speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    x = 0.1 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(len(t))
    return x.astype(np.float32)


def _decode(rec, lengths=(2.0, 0.7, 3.1)):
    streams = []
    for i, s in enumerate(lengths):
        st = rec.create_stream()
        st.accept_waveform(16000, _speechlike(s, i))
        streams.append(st)
    rec.decode_streams(streams)          # a batch of different lengths, as the engine decodes
    one = rec.create_stream()
    one.accept_waveform(16000, _speechlike(1.5, 9))
    rec.decode_stream(one)
    return [st.result for st in streams + [one]]


def _meta(path):
    import onnx
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def _sense_voice(d):
    return sherpa_onnx.OfflineRecognizer.from_sense_voice(
        model=str(d / "model.int8.onnx"), tokens=str(d / "tokens.txt"), num_threads=1, language="auto", use_itn=True)


def _paraformer(d):
    return sherpa_onnx.OfflineRecognizer.from_paraformer(
        paraformer=str(d / "model.int8.onnx"), tokens=str(d / "tokens.txt"), num_threads=1)


def test_sense_voice_graph_loads_and_decodes(tmp_path):
    paths = ps.build_sense_voice(tmp_path, log=lambda s: None, tiny=True)
    meta = _meta(paths["model"])
    assert meta["model_type"] == "sense_voice_ctc" and meta["lfr_window_size"] == "7"
    assert len(meta["neg_mean"].split(",")) == 560
    results = _decode(_sense_voice(tmp_path))
    assert all(isinstance(r.text, str) for r in results)
    assert any(r.tokens for r in results)


def test_paraformer_graph_loads_and_decodes(tmp_path):
    paths = ps.build_paraformer(tmp_path, log=lambda s: None, tiny=True)
    meta = _meta(paths["model"])
    assert meta["model_type"] == "paraformer" and meta["lfr_window_shift"] == "6"
    results = _decode(_paraformer(tmp_path))
    # the CIF predictor fires about PF_ALPHA per 60 ms frame: token counts follow the audio length
    n = [len(r.tokens) for r in results]
    assert n[2] > n[0] > n[1] > 0


def test_estimates_are_marked_in_the_manifest():
    from callcue.models.manifest import load_manifest
    m = load_manifest()
    for name, kind in ((ps.SV_NAME, "offline_sense_voice"), (ps.PF_NAME, "offline_paraformer"),
                       (ps.ZF_NAME, "online_transducer")):
        e = m.get(name)
        assert e is not None and e.estimate and e.kind == kind and e.source.type == "build"
        assert "ESTIMATE" in e.notes
    assert not any(e.estimate for e in m.models if not e.name.endswith("-estimate"))


@pytest.mark.slow
@pytest.mark.parametrize("name", [ps.SV_NAME, ps.PF_NAME])
def test_full_size_estimate_builds_loads_and_decodes(tmp_path, name):
    """Minutes: the full-size model, its official shapes, decoded by sherpa-onnx."""
    paths = ps.BUILDS[name](tmp_path, log=lambda s: None)
    import onnx
    g = onnx.load(str(paths["model"]), load_external_data=False).graph
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in g.input}
    if name == ps.SV_NAME:
        assert dims == {"x": ["N", "T", 560], "x_length": ["N"], "language": ["N"], "text_norm": ["N"]}
        assert _meta(paths["model"])["vocab_size"] == "25055"
        results = _decode(_sense_voice(tmp_path))
    else:
        assert list(dims) == ["speech", "speech_lengths"] and dims["speech"][2] == 560
        assert _meta(paths["model"])["vocab_size"] == "8404"
        results = _decode(_paraformer(tmp_path))
    assert any(r.tokens for r in results)
    # int8 like the official files (239 MB SenseVoice, about 230 MB Paraformer large)
    assert 200e6 < paths["model"].stat().st_size < 260e6


def test_streaming_zipformer_graph_loads_and_decodes(tmp_path):
    paths = ps.build_zipformer(tmp_path, log=lambda s: None, tiny=True)
    meta = _meta(paths["encoder"])
    assert meta["model_type"] == "zipformer" and meta["T"] == "39" and meta["decode_chunk_len"] == "32"
    rec = sherpa_onnx.OnlineRecognizer.from_transducer(
        encoder=str(paths["encoder"]), decoder=str(paths["decoder"]), joiner=str(paths["joiner"]),
        tokens=str(paths["tokens"]), num_threads=1)
    streams = []
    for i, secs in enumerate((2.0, 3.3)):
        st = rec.create_stream()
        st.accept_waveform(16000, _speechlike(secs, i))
        st.input_finished()
        streams.append(st)
    chunks = 0
    while any(rec.is_ready(s) for s in streams):     # batched, states stacked and unstacked
        rec.decode_streams([s for s in streams if rec.is_ready(s)])
        chunks += 1
    assert chunks >= 8
    assert all(isinstance(rec.get_result(s), str) for s in streams)


@pytest.mark.slow
def test_full_size_streaming_zipformer_builds_loads_and_decodes(tmp_path):
    """Minutes: the full-size stand-in; its decoder and joiner match the official int8 files
    (13.1 MB and 3.23 MB), and sherpa-onnx streams audio through it."""
    paths = ps.build_zipformer(tmp_path, log=lambda s: None)
    assert abs(paths["decoder"].stat().st_size - 13.1e6) < 0.2e6
    assert abs(paths["joiner"].stat().st_size - 3.23e6) < 0.05e6
    rec = sherpa_onnx.OnlineRecognizer.from_transducer(
        encoder=str(paths["encoder"]), decoder=str(paths["decoder"]), joiner=str(paths["joiner"]),
        tokens=str(paths["tokens"]), num_threads=1)
    st = rec.create_stream()
    st.accept_waveform(16000, _speechlike(3.0))
    st.input_finished()
    while rec.is_ready(st):
        rec.decode_stream(st)
    assert isinstance(rec.get_result(st), str)
