"""Installed models: find one, prove it intact, list, verify and remove them.

Installed models live in the models directory (CALLCUE_MODELS_DIR, else
<repo>/models/installed), one folder per model with an installed.json that records
every file's sha256. This is the part of the model tooling the daemon uses at run
time (resolve() at start-up, to find a model and prove it intact): it imports no
download, archive or command-line code (install.py and command.py hold those).
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from pydantic import ValidationError

from .files import sha256_file, unsafe_reason
from .manifest import (INSTALLED_JSON, NAME_RE, InstalledRecord, Manifest, ModelEntry, ModelError,
                       install_hint, load_manifest)

__all__ = ["InstalledModel", "ModelError", "VerifyReport", "check_kind", "default_models_dir",
           "installed_names", "read_record", "remove", "resolve", "verify"]

REPO_ROOT = Path(__file__).resolve().parent.parent


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


# ---------------------------------------------------------------- locations

def default_models_dir() -> Path:
    """$CALLCUE_MODELS_DIR, else <repo>/models/installed."""
    env = os.environ.get("CALLCUE_MODELS_DIR")
    return Path(env).expanduser() if env else REPO_ROOT / "models" / "installed"


def models_dir_path(models_dir: str | Path | None) -> Path:
    """The models directory a caller gave, else the default one."""
    return Path(models_dir) if models_dir is not None else default_models_dir()


def installed_names(models_dir: str | Path | None = None) -> list[str]:
    mdir = models_dir_path(models_dir)
    if not mdir.is_dir():
        return []
    return sorted(p.name for p in mdir.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and (p / INSTALLED_JSON).is_file())


def read_record(name: str, models_dir: str | Path | None = None) -> InstalledRecord | None:
    """installed.json of an installed model, None when it is not installed."""
    path = models_dir_path(models_dir) / name / INSTALLED_JSON
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
        if unsafe_reason(f.path):
            raise ModelError(f"{path}: damaged install record (unsafe path {f.path!r})")
    return record


# ---------------------------------------------------------------- verify, resolve, remove

def check_install(entry: ModelEntry | None, name: str, mdir: Path,
                  full: bool) -> tuple[VerifyReport, InstalledRecord | None]:
    """Hold an install to its record and to the manifest: files present, sizes, and (when
    ``full``) every file re-hashed. Returns the problems found and the record read."""
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
            got = sha256_file(p)
            if got != r.sha256:
                report.problems.append(f"{r.path}: checksum mismatch: sha256 {got}, {r.sha256} when installed "
                                       f"(file corrupted or modified)")
    return report, record


def verify(names: Iterable[str] | None = None, *, manifest: Manifest | None = None,
           models_dir: str | Path | None = None) -> list[VerifyReport]:
    """Re-hash installed files against installed.json and the manifest (all installed models
    when ``names`` is empty)."""
    manifest = manifest or load_manifest()
    mdir = models_dir_path(models_dir)
    names = list(names or installed_names(mdir))
    return [check_install(manifest.get(n), n, mdir, full=True)[0] for n in names]


def installed_model(entry: ModelEntry, directory: Path, record: InstalledRecord | None) -> InstalledModel:
    """What an engine needs to load the model in ``directory`` (the files the record lists)."""
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
    mdir = models_dir_path(models_dir)
    report, record = check_install(entry, name, mdir, full=verify)
    if record is None:
        raise ModelError(f"model {name} is not installed (models directory {mdir}); {install_hint(entry)}")
    if report.problems:
        raise ModelError(f"model {name} in {mdir / name} is corrupt or incomplete:\n  "
                         + "\n  ".join(report.problems)
                         + f"\nreinstall it (add --force): {install_hint(entry)}")
    return installed_model(entry, mdir / name, record)


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
    mdir = models_dir_path(models_dir)
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
