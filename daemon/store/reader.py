"""Reading a call store's files without owning it (`callcue calls`), also while the
daemon runs and holds the store's lock.

Every file of the store is written whole and renamed into place (atomic.py), so each
file read here is complete; what the daemon has not flushed yet (at most its flush
interval, 0.5 s) is not seen. Nothing is ever written. The daemon itself reads through
CallStore (find_calls, get_call), which sees its own latest writes.
"""
from __future__ import annotations

import glob
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .atomic import read_json_file
from .calls import CALLS_TABLE, EVENTS_TABLE, day_of, file_stem, sort_key


class StoreReader:
    """Read-only view of the call store under `store_dir` (the daemon's DATA_DIR/calls)."""

    def __init__(self, store_dir: Path):
        self.dir = Path(store_dir)
        if not (self.dir / "calls.json").exists() and not (self.dir / "archive").is_dir():
            raise FileNotFoundError(f"{self.dir}: no call store here (the daemon keeps it in DATA_DIR/calls)")

    def _table(self, path: Path) -> list[dict[str, Any]]:
        data = read_json_file(path) or {}
        return list((data.get(CALLS_TABLE) or {}).values())

    def _archive_days(self) -> list[str]:
        folder = self.dir / "archive"
        return sorted((p.stem for p in folder.glob("????-??-??.json")), reverse=True) if folder.is_dir() else []

    def find_calls(self, line: str | None = None, agent: str | None = None, since: str | None = None,
                   limit: int = 200) -> list[dict[str, Any]]:
        """Call records (no events), newest first, filtered as CallStore.find_calls."""
        t0 = sort_key(since) if since else None
        first_day = (datetime.fromisoformat(since) - timedelta(days=1)).date().isoformat() if since else None

        def keep(d) -> bool:
            return (line is None or d.get("line") == line) and (agent is None or d.get("agent") == agent) \
                and (t0 is None or sort_key(d["started"]) >= t0)

        hot = self._table(self.dir / "calls.json")
        seen = {d["call_id"] for d in hot}
        rows = [d for d in hot if keep(d)]
        for day in self._archive_days():
            if len(rows) >= limit or (first_day is not None and day < first_day):
                break
            rows += [d for d in self._table(self.dir / "archive" / f"{day}.json")
                     if d["call_id"] not in seen and keep(d)]
        rows.sort(key=lambda r: sort_key(r["started"]), reverse=True)
        return rows[:limit]

    def get_call(self, call_id: str) -> dict[str, Any] | None:
        """The call record with its "events" (ordered by seq), or None."""
        rec = next((d for d in self._table(self.dir / "calls.json") if d.get("call_id") == call_id), None)
        if rec is None:
            days = [p.parent.name for p in (self.dir / "events").glob(f"*/{glob.escape(file_stem(call_id))}.0.json")]
            for day in days + [d for d in self._archive_days() if d not in days]:
                path = self.dir / "archive" / f"{day}.json"
                if path.exists():
                    rec = next((d for d in self._table(path) if d.get("call_id") == call_id), None)
                    if rec is not None:
                        break
        if rec is None:
            return None
        out = dict(rec)
        out["events"] = self.events(call_id, day_of(rec["started"]))
        return out

    def events(self, call_id: str, day: str) -> list[dict[str, Any]]:
        folder = self.dir / "events" / day
        stem = file_stem(call_id)
        pat = re.compile(rf"^{re.escape(stem)}\.(\d+)\.json$")
        segs = sorted((int(m.group(1)), p) for p in folder.glob(f"{glob.escape(stem)}.*.json")
                      if (m := pat.match(p.name))) if folder.is_dir() else []
        out: list[dict[str, Any]] = []
        for _, path in segs:
            out += list(((read_json_file(path) or {}).get(EVENTS_TABLE) or {}).values())
        out.sort(key=lambda e: e["seq"])
        return out
