"""Fetching and unpacking model files without trusting them.

Downloads are streamed to disk and hashed on the way; archives are read member by
member and only the members asked for are written, always to paths we choose; any
member whose name or link target could escape the folder makes the whole archive
unusable (a release archive never has one, so it is a sign of tampering).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Callable, Iterable
from urllib.parse import urlparse

from .files import CHUNK, fsync_dir, unsafe_reason

Log = Callable[[str], None]

TAR_SUFFIXES = (".tar.bz2", ".tbz2", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar")
ZIP_SUFFIXES = (".zip", ".whl")


class ArchiveError(Exception):
    """An archive, folder or download cannot be used; the message says why."""


@dataclass(frozen=True)
class Extracted:
    """One file copied out of an archive or folder, hashed while it was written."""

    path: Path
    sha256: str
    size: int


def _quiet(_: str) -> None:
    pass


def is_url(text: str) -> bool:
    return urlparse(text).scheme in ("http", "https", "file")


def archive_kind(path: Path) -> str | None:
    """'tar', 'zip' or None (a plain file), from the file name."""
    name = path.name.lower()
    if name.endswith(TAR_SUFFIXES):
        return "tar"
    if name.endswith(ZIP_SUFFIXES):
        return "zip"
    return None


def copy_hashed(src: BinaryIO, dest: Path, max_bytes: int | None = None, what: str = "") -> Extracted:
    """Copy a stream to a new file, hashing it; fsync so a power cut cannot leave a torn file."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    size = 0
    with open(dest, "xb") as out:
        while chunk := src.read(CHUNK):
            size += len(chunk)
            if max_bytes is not None and size > max_bytes:
                raise ArchiveError(f"{what or dest.name}: larger than the {max_bytes} bytes expected")
            h.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return Extracted(dest, h.hexdigest(), size)


def download(url: str, dest: Path, *, max_bytes: int | None = None, log: Log = _quiet,
             timeout_s: float = 60.0) -> Extracted:
    """Stream ``url`` into ``dest`` (which must not exist) and return its sha256 and size."""
    req = urllib.request.Request(url, headers={"User-Agent": "callcue-models/1"})
    try:
        resp = urllib.request.urlopen(req, timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        raise ArchiveError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise ArchiveError(f"download of {url} failed: {exc.reason}") from None
    except (OSError, ValueError) as exc:
        raise ArchiveError(f"download of {url} failed: {exc}") from None
    with resp:
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        if total is not None and max_bytes is not None and total > max_bytes:
            raise ArchiveError(f"download of {url}: the server offers {total} bytes, "
                               f"the manifest expects {max_bytes}")
        log(f"downloading {url}" + (f" ({total / 1e6:.1f} MB)" if total else ""))
        h = hashlib.sha256()
        size = 0
        next_report = 0.1
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(dest, "xb") as out:
                while True:
                    try:
                        chunk = resp.read(CHUNK)
                    except OSError as exc:
                        raise ArchiveError(f"download of {url} broke off after {size} bytes: {exc}") from None
                    if not chunk:
                        break
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise ArchiveError(f"download of {url}: more than the {max_bytes} bytes expected")
                    h.update(chunk)
                    out.write(chunk)
                    if total and size / total >= next_report:
                        log(f"  {size / total:4.0%} of {total / 1e6:.1f} MB")
                        next_report += 0.1
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            raise ArchiveError(f"download of {url}: cannot write {dest}: {exc.strerror or exc}") from None
    if total is not None and size != total:
        raise ArchiveError(f"download of {url} is truncated: got {size} of {total} bytes")
    return Extracted(dest, h.hexdigest(), size)


def _normalize(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.rstrip("/")


def _candidates(name: str, wanted: set[str]) -> list[tuple[str, str]]:
    """(root, member) pairs this archive name could stand for: the name itself, or the
    name below its first folder (release archives put everything under one folder)."""
    out = []
    if name in wanted:
        out.append(("", name))
    top, sep, rest = name.partition("/")
    if sep and rest in wanted:
        out.append((top, rest))
    return out


def extract_wanted(archive: Path, wanted: Iterable[str], work: Path,
                   log: Log = _quiet) -> dict[tuple[str, str], Extracted]:
    """Copy the ``wanted`` members (paths relative to the archive's top folder, or to the
    archive itself) into ``work``. Returns {(root, member): Extracted}; the caller picks the
    root that holds everything. Raises ArchiveError for an unsafe or unreadable archive."""
    wanted = set(wanted)
    kind = archive_kind(archive)
    found: dict[tuple[str, str], Extracted] = {}
    log(f"reading {archive.name}")
    counter = 0

    def out_path() -> Path:
        nonlocal counter
        counter += 1
        return work / f"m{counter:04d}"

    if kind == "tar":
        try:
            # stream mode: one pass over a compressed archive, never seeking back
            with tarfile.open(archive, mode="r|*") as tf:
                for m in tf:
                    name = _normalize(m.name)
                    reason = unsafe_reason(m.name)
                    if reason:
                        raise ArchiveError(f"{archive.name}: refusing the archive: member {m.name!r} ({reason})")
                    if m.islnk() or m.issym():
                        target = m.linkname
                        if unsafe_reason(target) or (m.issym() and ".." in PurePosixPath(target).parts):
                            raise ArchiveError(f"{archive.name}: refusing the archive: link {m.name!r} "
                                               f"points to {target!r} (outside the folder)")
                    hits = _candidates(name, wanted)
                    if not hits:
                        continue
                    if not m.isreg():
                        raise ArchiveError(f"{archive.name}: member {m.name!r} is not a regular file "
                                           f"({'link' if m.issym() or m.islnk() else 'special entry'})")
                    src = tf.extractfile(m)
                    if src is None:
                        raise ArchiveError(f"{archive.name}: cannot read member {m.name!r}")
                    first = copy_hashed(src, out_path(), m.size, m.name)
                    for key in hits:
                        found[key] = first
        except tarfile.TarError as exc:
            raise ArchiveError(f"{archive.name}: not a readable tar archive ({exc})") from None
        except (EOFError, OSError) as exc:
            raise ArchiveError(f"{archive.name}: archive is damaged or truncated ({exc})") from None
        return found

    if kind == "zip":
        try:
            with zipfile.ZipFile(archive) as zf:
                infos = zf.infolist()
                for info in infos:
                    reason = unsafe_reason(info.filename)
                    if reason:
                        raise ArchiveError(f"{archive.name}: refusing the archive: member "
                                           f"{info.filename!r} ({reason})")
                for info in infos:
                    name = _normalize(info.filename)
                    hits = _candidates(name, wanted)
                    if not hits or info.is_dir():
                        continue
                    mode = info.external_attr >> 16
                    if stat.S_ISLNK(mode):
                        raise ArchiveError(f"{archive.name}: member {info.filename!r} is a link, not a file")
                    with zf.open(info) as src:
                        first = copy_hashed(src, out_path(), info.file_size, info.filename)
                    for key in hits:
                        found[key] = first
        except zipfile.BadZipFile as exc:
            raise ArchiveError(f"{archive.name}: not a readable zip archive ({exc})") from None
        except (EOFError, OSError, zipfile.LargeZipFile) as exc:
            raise ArchiveError(f"{archive.name}: archive is damaged ({exc})") from None
        return found

    raise ArchiveError(f"{archive}: not an archive (expected {', '.join(TAR_SUFFIXES + ZIP_SUFFIXES)})")


def copy_from_folder(folder: Path, roots: Iterable[str], wanted: Iterable[str], work: Path,
                     log: Log = _quiet) -> dict[tuple[str, str], Extracted]:
    """Like extract_wanted, for an unpacked folder: looks for each member under each root."""
    found: dict[tuple[str, str], Extracted] = {}
    base = folder.resolve()
    n = 0
    for root in roots:
        for member in wanted:
            src = folder / root / member if root else folder / member
            if not src.exists() and not src.is_symlink():
                continue
            if src.is_symlink():
                raise ArchiveError(f"{src}: is a symbolic link; copy the real file into the folder")
            if not src.is_file():
                raise ArchiveError(f"{src}: is not a regular file")
            if base not in src.resolve().parents:
                raise ArchiveError(f"{src}: resolves outside {folder}")
            n += 1
            with open(src, "rb") as f:
                found[(root, member)] = copy_hashed(f, work / f"f{n:04d}", None, str(src))
    if found:
        log(f"copied {len(found)} file(s) from {folder}")
    return found


def move_into(files: dict[str, Path], dest_dir: Path) -> None:
    """Move staged files to their final relative paths under dest_dir (same filesystem)."""
    for rel, src in files.items():
        target = dest_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            raise ArchiveError(f"two manifest files map to {rel}")
        try:
            os.link(src, target)  # the same extracted file may serve two roots; link, then drop
        except OSError:
            shutil.copyfile(src, target)
    for d in {dest_dir, *((dest_dir / rel).parent for rel in files)}:
        fsync_dir(d)
