"""File helpers shared by the model runtime and the model tools: the one sha256 of a
file, the sha256 text check, and the path-safety rule for names inside a model folder
or an archive. Standard library only, so the daemon's model lookup stays light."""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path, PurePosixPath, PureWindowsPath

CHUNK = 1 << 20
SHA_RE = re.compile(r"^[0-9a-f]{64}$")


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def check_sha256(value: str | None) -> str | None:
    """A sha256 as written by a person or a file: trimmed, lower case; ValueError when it is
    not 64 hex digits. None stays None (no checksum known)."""
    if value is None:
        return None
    value = value.strip().lower()
    if not SHA_RE.match(value):
        raise ValueError(f"{value!r} is not a sha256 (64 hex digits)")
    return value


def unsafe_reason(name: str) -> str | None:
    """Why a member name could land outside the folder, or None when it is safe."""
    if not name or "\x00" in name:
        return "empty or NUL in the name"
    posix, win = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or win.is_absolute() or win.drive or name.startswith(("/", "\\")):
        return "absolute path"
    if ".." in posix.parts or ".." in win.parts:
        return "'..' in the path"
    return None


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in ``path`` durable (a power cut cannot undo it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
