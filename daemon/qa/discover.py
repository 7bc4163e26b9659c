"""Which recordings a bulk QA run covers, and what is known about each.

A recording is a stereo WAV (agent left, customer right unless told otherwise) or a pair
of mono WAVs named `<stem>{.,-,_}agent.wav` and `<stem>{.,-,_}customer.wav`; 8 or 16 kHz,
16-bit PCM (what `callcue replay` takes). Metadata, later sources winning:

1. defaults from the command line (`--site`, `--floor`, `--team`, `--lang`);
2. the file name, read with `--name-pattern`, e.g. `{date}_{time}_{agent}_{team}_{call_id}`
   (fields: call_id agent team date time intent lang site floor line box; date
   YYYY-MM-DD or YYYYMMDD, time HH:MM:SS, HH-MM-SS or HHMMSS);
3. a table given with `--meta FILE`: CSV with a header, or JSON (a list of objects, or an
   object keyed by file name); the `file` column/key is the recording's file name (for a
   mono pair, the agent file's or the stem) or its path relative to the folder given;
4. a sidecar `<stem>.meta.json` next to the recording.

Every source is validated (`CallMeta`, on the shared Strict base): an unknown field or a
malformed date is the recording's bad-file reason, not a guess.
"""
from __future__ import annotations

import csv
import json
import re
import wave
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from ..schema import Strict

FIELDS = ("call_id", "agent", "team", "date", "time", "intent", "lang", "site", "floor", "line", "box")
_PAIR = re.compile(r"^(?P<stem>.+?)[._-](?P<side>agent|customer)$", re.I)
_FIELD_RE = {"date": r"\d{4}-?\d{2}-?\d{2}", "time": r"\d{2}[-:]?\d{2}[-:]?\d{2}", "lang": r"en|zh"}


class CallMeta(Strict):
    """What is known about one recorded call."""

    call_id: str | None = Field(None, max_length=128)
    agent: str | None = Field(None, max_length=120)
    team: str | None = Field(None, max_length=120)
    date: str | None = None
    time: str | None = None
    started: str | None = None
    intent: str | None = Field(None, max_length=80)
    lang: Literal["en", "zh"] | None = None
    site: str | None = Field(None, max_length=64)
    floor: str | None = Field(None, max_length=64)
    line: str | None = Field(None, max_length=64)
    box: str | None = Field(None, max_length=64)

    @field_validator("date")
    @classmethod
    def _date(cls, v: str | None) -> str | None:
        if v is None:
            return v
        d = v.replace("-", "")
        try:
            return datetime.strptime(d, "%Y%m%d").date().isoformat()
        except ValueError:
            raise ValueError(f"date {v!r} is not YYYY-MM-DD or YYYYMMDD") from None

    @field_validator("time")
    @classmethod
    def _time(cls, v: str | None) -> str | None:
        if v is None:
            return v
        t = v.replace(":", "").replace("-", "")
        try:
            return datetime.strptime(t, "%H%M%S").time().isoformat()
        except ValueError:
            raise ValueError(f"time {v!r} is not HH:MM:SS, HH-MM-SS or HHMMSS") from None

    @field_validator("started")
    @classmethod
    def _started(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            datetime.fromisoformat(v)
        except ValueError:
            raise ValueError(f"started {v!r} is not an ISO date and time") from None
        return v

    def merged(self, other: "CallMeta") -> "CallMeta":
        """This, with every field `other` sets replaced by other's."""
        return self.model_copy(update=other.model_dump(exclude_none=True))

    def start_time(self) -> datetime | None:
        if self.started:
            return datetime.fromisoformat(self.started).replace(tzinfo=None)
        if self.date:
            return datetime.fromisoformat(f"{self.date}T{self.time or '00:00:00'}")
        return None


@dataclass
class Recording:
    key: str                           # ledger key: the path (a mono pair: agent path + '|' + customer path)
    files: tuple[Path, ...]            # (stereo,) or (agent, customer)
    size: int
    mtime_ns: int
    audio_s: float | None = None       # from the WAV header (None: unreadable; the worker says why)
    meta: CallMeta = field(default_factory=CallMeta)
    problem: str | None = None         # a bad file found before any audio is read
    meta_stem: str = ""                # the name metadata is looked up by (a mono pair: without -agent)

    @property
    def name(self) -> str:
        return str(self.files[0])


def _meta_error(where: str, exc: ValidationError) -> str:
    first = exc.errors()[0]
    loc = ".".join(str(x) for x in first["loc"]) or "(record)"
    msg = first["msg"].removeprefix("Value error, ")
    return f"{where}: {loc}: {msg}"


def name_pattern(pattern: str) -> re.Pattern:
    """`{date}_{time}_{agent}` -> a regex over the file stem."""
    out, pos = "^", 0
    for m in re.finditer(r"\{(\w+)\}", pattern):
        name = m.group(1)
        if name not in FIELDS:
            raise ValueError(f"--name-pattern: unknown field {{{name}}} (fields: {', '.join(FIELDS)})")
        out += re.escape(pattern[pos:m.start()]) + f"(?P<{name}>{_FIELD_RE.get(name, '.+?')})"
        pos = m.end()
    return re.compile(out + re.escape(pattern[pos:]) + "$")


def load_table(path: Path) -> dict[str, dict[str, Any]]:
    """--meta FILE: file name -> raw fields."""
    text = Path(path).read_text(encoding="utf-8-sig")
    rows: list[dict[str, Any]]
    if Path(path).suffix.lower() == ".json":
        data = json.loads(text)
        if isinstance(data, dict):
            rows = [{"file": k, **v} for k, v in data.items()]
        elif isinstance(data, list):
            rows = data
        else:
            raise ValueError(f"{path}: expected a list of objects or an object keyed by file name")
    else:
        rows = list(csv.DictReader(text.splitlines()))
    out = {}
    for i, r in enumerate(rows):
        if not isinstance(r, dict) or not r.get("file"):
            raise ValueError(f"{path}: record {i + 1} has no 'file'")
        out[str(r["file"])] = {k: (v if v != "" else None) for k, v in r.items() if k != "file"}
    return out


def _wav_seconds(path: Path) -> float | None:
    try:
        with wave.open(str(path), "rb") as w:
            return w.getnframes() / float(w.getframerate())
    except (wave.Error, EOFError, OSError, ZeroDivisionError):
        return None


def _candidates(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() == ".wav")
        else:
            out.append(p)
    seen, uniq = set(), []
    for p in out:
        r = p.resolve()
        if r not in seen:
            seen.add(r)
            uniq.append(p)
    return uniq


def discover(paths: list[Path], defaults: CallMeta | None = None, pattern: str | None = None,
             table: dict[str, dict[str, Any]] | None = None) -> list[Recording]:
    """Recordings under `paths` with their metadata; a file that cannot be one is returned
    with `problem` set (listed as bad, never silently dropped)."""
    defaults = defaults or CallMeta()
    regex = name_pattern(pattern) if pattern else None
    table = table or {}
    files = _candidates(paths)
    pairs: dict[tuple[Path, str], dict[str, Path]] = {}
    singles: list[Path] = []
    for f in files:
        m = _PAIR.match(f.stem)
        if m and f.suffix.lower() == ".wav":
            pairs.setdefault((f.parent, m.group("stem")), {})[m.group("side").lower()] = f
        else:
            singles.append(f)
    recs: list[Recording] = []
    for f in singles:
        recs.append(_recording((f,), f.stem))
    for (parent, stem), sides in sorted(pairs.items()):
        if set(sides) != {"agent", "customer"}:
            have, lack = next(iter(sides.items()))[0], ({"agent", "customer"} - set(sides)).pop()
            f = sides[have]
            r = _recording((f,), stem)
            r.problem = f"mono {have} channel without its {lack} file ({stem}-{lack}.wav or {stem}.{lack}.wav)"
            recs.append(r)
            continue
        recs.append(_recording((sides["agent"], sides["customer"]), stem))
    for r in recs:
        if r.problem:
            continue
        stem = r.meta_stem
        try:
            meta = defaults
            if regex is not None:
                m = regex.match(stem)
                if m:
                    meta = meta.merged(CallMeta(**{k: v for k, v in m.groupdict().items() if v}))
            for key in (r.files[0].name, stem, str(r.files[0])):
                if key in table:
                    meta = meta.merged(CallMeta(**table[key]))
                    break
            side = r.files[0].parent / f"{stem}.meta.json"
            if side.is_file():
                try:
                    raw = json.loads(side.read_text(encoding="utf-8"))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{side}: not JSON ({exc.msg} at line {exc.lineno})") from None
                if not isinstance(raw, dict):
                    raise ValueError(f"{side}: expected a JSON object")
                try:
                    meta = meta.merged(CallMeta(**raw))
                except ValidationError as exc:
                    raise ValueError(_meta_error(str(side), exc)) from None
            r.meta = meta
        except ValidationError as exc:
            r.problem = _meta_error("metadata", exc)
        except ValueError as exc:
            r.problem = str(exc)
    return recs


def _recording(files: tuple[Path, ...], stem: str) -> Recording:
    try:
        st = [f.stat() for f in files]
    except OSError as exc:
        return Recording(str(files[0]), files, 0, 0, problem=f"cannot read: {exc.strerror or exc}", meta_stem=stem)
    key = "|".join(str(f.resolve()) for f in files)
    return Recording(key, files, sum(s.st_size for s in st), max(s.st_mtime_ns for s in st),
                     _wav_seconds(files[0]), meta_stem=stem)
