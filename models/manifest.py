"""The model manifest (models/manifest.yaml) and the install record (installed.json):
their schema, the manifest loader, and the error every model problem raises.

The manifest names every supported model: its kind, languages, sample rate, files by
role, and where the official bytes come from with their sha256 where one is known.
Each installed model's folder holds an installed.json that records every file's sha256
(written by install.py, read by installed.py).
"""
from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath
from typing import Literal
from urllib.parse import urlparse

from pydantic import Field, field_validator, model_validator

from ..daemon.schema import Strict
from ..daemon.yamlfile import ConfigError, load_model
from .files import check_sha256, unsafe_reason

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


class ModelError(ConfigError):
    """A model is unknown, missing, corrupt, of the wrong kind, or cannot be installed.

    A ConfigError, so a daemon that cannot start for want of a model says so at start-up
    in the same way as any other configuration problem."""


def _relpath(value: str) -> str:
    if unsafe_reason(value) or "\\" in value or value.endswith("/"):
        raise ValueError(f"{value!r} must be a relative path with '/' separators and no '..'")
    parts = PurePosixPath(value).parts
    if any(p in (".", "") for p in parts) or value != str(PurePosixPath(value)):
        raise ValueError(f"{value!r} must be a plain relative path (no '.', no '//')")
    return value


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
        return check_sha256(v)

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
        return check_sha256(v)

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
    estimate: bool = Field(False, description="random weights with an official model's shapes, built for sizing "
                                              "(`callcue bench asr --model`): never a recogniser")

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


# ---------------------------------------------------------------- loading

def load_manifest(path: str | Path | None = None) -> Manifest:
    """Load and validate the manifest; errors name file:line: field."""
    if path is None:
        path = os.environ.get("CALLCUE_MODELS_MANIFEST") or MANIFEST_PATH
    return load_model(path, Manifest)


def manifest_entry(manifest: Manifest, name: str) -> ModelEntry:
    """The entry ``name``, or ModelError listing the known models."""
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
