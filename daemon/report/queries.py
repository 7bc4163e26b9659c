"""Every aggregation of the report, in SQL that PostgreSQL runs as well as SQLite.

The report reads one or more central stores through views over them: `all_calls`,
`all_alerts`, ... (each row with `src`, the store's number), and `calls_f`, the calls of
the chosen period. Those views are set up per connection (`open_sources`; several SQLite
files are ATTACHed, which is the only SQLite-specific step, outside these queries; on
PostgreSQL each store would be a schema and the views the same UNION ALL). The queries
use only COUNT, SUM, AVG, MIN, MAX, COUNT(DISTINCT), CASE, COALESCE, NULLIF, `||`,
ROW_NUMBER() OVER (...), GROUP BY / ORDER BY; `?` parameters (DB-API qmark).
Memory stays bounded: every result is an aggregate (a row per day, agent, team, kind,
offer, step...), and the only per-call results are capped by LIMIT / ROW_NUMBER.
"""
from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..warehouse.store import StoreError, db_path

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
CHILDREN = ("alerts", "offers", "steps", "score_items", "issues")

QA_BUCKETS = [(None, 50, "<50"), (50, 60, "50-59"), (60, 70, "60-69"), (70, 80, "70-79"), (80, 90, "80-89"),
              (90, None, "90+")]
HANDLE_BUCKETS = [(None, 120, "<2"), (120, 240, "2-4"), (240, 360, "4-6"), (360, 600, "6-10"), (600, 900, "10-15"),
                  (900, None, "15+")]
RATIO_BUCKETS = [(None, 0.5, "<0.5"), (0.5, 1.0, "0.5-1"), (1.0, 1.5, "1-1.5"), (1.5, 2.0, "1.5-2"),
                 (2.0, 3.0, "2-3"), (3.0, None, "3+")]
SHARE_BUCKETS = [(None, 0.02, "<2%"), (0.02, 0.05, "2-5%"), (0.05, 0.10, "5-10%"), (0.10, 0.20, "10-20%"),
                 (0.20, None, "20%+")]


@dataclass
class Table:
    name: str                 # CSV file name and anchor
    headers: list[str]
    rows: list[tuple]


def open_sources(stores: list[Path], day_from: str | None = None, day_to: str | None = None) -> sqlite3.Connection:
    """A read-only connection with the report's views over every store: `all_<table>` (every
    row, with `src`) and `<table>_f` (the chosen days)."""
    for d in (day_from, day_to):
        if d is not None and not _DAY.match(d):
            raise ValueError(f"date {d!r} is not YYYY-MM-DD")
    db = sqlite3.connect(":memory:", uri=True, check_same_thread=False)
    names = []
    for i, folder in enumerate(stores):
        path = db_path(Path(folder))
        if not path.is_file():
            raise StoreError(f"{folder}: no central store here ({path.name} missing)")
        db.execute(f"ATTACH DATABASE ? AS s{i}", (f"file:{path.resolve()}?mode=ro",))
        names.append(f"s{i}")
    where = []
    if day_from:
        where.append(f"day >= '{day_from}'")
    if day_to:
        where.append(f"day <= '{day_to}'")
    cond = (" WHERE " + " AND ".join(where)) if where else ""
    for table in ("calls",) + CHILDREN:
        union = " UNION ALL ".join(f"SELECT {i} AS src, * FROM {n}.{table}" for i, n in enumerate(names))
        db.execute(f"CREATE TEMP VIEW all_{table} AS {union}")
        if table != "score_items":
            db.execute(f"CREATE TEMP VIEW {table}_f AS SELECT * FROM all_{table}{cond}")
    return db


class Parallel:
    """The report's big aggregations run at once, each on its own connection (its own views
    over the same stores), on a thread per core: SQLite gives up Python's lock while it scans,
    so two scans use two cores while the main thread draws charts and tables from the ones
    already done. A database server runs concurrent queries the same way. Results are
    aggregates (bounded by agents x kinds, not by calls)."""

    def __init__(self, stores: list[Path], day_from: str | None, day_to: str | None,
                 jobs: dict[str, Any], threads: int | None = None):
        import os
        from concurrent.futures import ThreadPoolExecutor

        self._args = (stores, day_from, day_to)
        self._pool = ThreadPoolExecutor(max(1, threads or os.cpu_count() or 1), thread_name_prefix="report-sql")
        # submitted biggest first: the one pass over the calls starts at once
        self._futures = {name: self._pool.submit(self._run, fn) for name, fn in jobs.items()}

    def _run(self, fn):
        db = open_sources(*self._args)
        try:
            return fn(db)
        finally:
            db.close()

    def get(self, name: str):
        return self._futures[name].result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def rows(db: sqlite3.Connection, sql: str, params: tuple = ()) -> list[tuple]:
    return db.execute(sql, params).fetchall()


# ---------------------------------------------------------------- the figures

AGITATED = "CASE WHEN agitation_s > 0 THEN 1 ELSE 0 END"
# sums and counts (never averages) per group, so groups add up exactly into teams, agents, the whole
SUMS = [
    ("calls", "COUNT(*)"), ("dur_sum", "SUM(duration_s)"), ("dur_n", "COUNT(duration_s)"),
    ("qa_sum", "SUM(qa_score)"), ("qa_n", "COUNT(qa_score)"), ("pass_sum", "SUM(qa_passed)"), ("pass_n", "COUNT(qa_passed)"),
    ("ratio_sum", "SUM(talk_ratio)"), ("ratio_n", "COUNT(talk_ratio)"),
    ("dead_sum", "SUM(dead_air_s)"), ("dead_base", "SUM(CASE WHEN dead_air_s IS NULL THEN 0 ELSE duration_s END)"),
    ("agitated", f"SUM({AGITATED})"), ("ag_n", "COUNT(agitation_s)"), ("ag_sum", "SUM(agitation_s)"),
    ("ag_base", "SUM(CASE WHEN agitation_s IS NULL THEN 0 ELSE duration_s END)"),
    ("flow_sum", "SUM(flow_completion)"), ("flow_n", "COUNT(flow_completion)"),
    ("flow_full", "SUM(CASE WHEN flow_completion >= 0.999 THEN 1 ELSE 0 END)"),
    ("alerts_sum", "SUM(alerts)"), ("alerts_n", "COUNT(alerts)"),
]
def _bucket_sums(column: str, buckets: list[tuple]) -> list[str]:
    out = []
    for lo, hi, _ in buckets:
        cond = " AND ".join(c for c in (f"{column} >= {lo}" if lo is not None else f"{column} IS NOT NULL",
                                        f"{column} < {hi}" if hi is not None else "") if c)
        out.append(f"SUM(CASE WHEN {cond} THEN 1 ELSE 0 END)")
    return out


BUCKETS = {"qa": ("qa_score", QA_BUCKETS), "handle": ("duration_s", HANDLE_BUCKETS),
           "ratio": ("talk_ratio", RATIO_BUCKETS), "dead": ("dead_air_share", SHARE_BUCKETS)}
KEYS = ("site", "floor", "box", "team", "agent", "flow")


def groups(db) -> list[dict[str, Any]]:
    """One pass over the calls: per (site, floor, box, team, agent, flow) the sums and counts of
    every per-call figure and the distribution buckets; first and last day."""
    cols = [e for _, e in SUMS] + ["MIN(day)", "MAX(day)"]
    for name, (column, buckets) in BUCKETS.items():
        cols += _bucket_sums(column, buckets)
    sql = f"SELECT {', '.join(KEYS)}, {', '.join(cols)} FROM calls_f GROUP BY {', '.join(KEYS)}"
    out = []
    for r in db.execute(sql):
        g = dict(zip(KEYS, r[:len(KEYS)]))
        vals = r[len(KEYS):]
        for (name, _), v in zip(SUMS, vals):
            g[name] = v or 0
        g["first_day"], g["last_day"] = vals[len(SUMS)], vals[len(SUMS) + 1]
        k = len(SUMS) + 2
        for name, (_, buckets) in BUCKETS.items():
            g[name] = [v or 0 for v in vals[k:k + len(buckets)]]
            k += len(buckets)
        out.append(g)
    return out


def merge(gs, key) -> dict[Any, dict[str, Any]]:
    """Add groups up by key(g) (e.g. team): sums add, buckets add, days min/max."""
    out: dict[Any, dict[str, Any]] = {}
    for g in gs:
        k = key(g)
        m = out.get(k)
        if m is None:
            out[k] = {**g, **{b: list(g[b]) for b in BUCKETS}}
            continue
        for name, _ in SUMS:
            m[name] += g[name]
        for b in BUCKETS:
            m[b] = [x + y for x, y in zip(m[b], g[b])]
        m["first_day"] = min(d for d in (m["first_day"], g["first_day"]) if d) if (m["first_day"] or g["first_day"]) else None
        m["last_day"] = max(d for d in (m["last_day"], g["last_day"]) if d) if (m["last_day"] or g["last_day"]) else None
    return out


def issues(db) -> Table:
    r = rows(db, """
        SELECT kind, issue, COUNT(*) AS calls, COUNT(DISTINCT agent) AS agents
        FROM issues_f GROUP BY kind, issue ORDER BY calls DESC, agents DESC, kind, issue""")
    return Table("issues", ["kind", "issue", "calls", "agents"], r)


def alerts_by_agent(db) -> list[tuple]:
    """(team, agent, kind, alerts)."""
    return rows(db, "SELECT team, agent, kind, COUNT(*) FROM alerts_f GROUP BY team, agent, kind")


def offers_by_agent(db) -> list[tuple]:
    """(team, agent, offer, opportunities, fitted, made)."""
    return rows(db, """
        SELECT team, agent, offer, COUNT(*), SUM(fitted), SUM(made) FROM offers_f
        GROUP BY team, agent, offer ORDER BY team, agent, offer""")


def missed_steps(db) -> Table:
    r = rows(db, """
        SELECT flow, step, SUM(1 - done) AS missed, COUNT(*) AS calls, 1.0 * SUM(1 - done) / COUNT(*) AS missed_share
        FROM steps_f GROUP BY flow, step ORDER BY missed DESC, flow, step""")
    return Table("missed_steps", ["flow", "step", "missed", "calls", "missed_share"], r)


def days(db) -> Table:
    # grouped by an expression of the day, so SQLite sorts one scan instead of walking the day
    # index row by row (PostgreSQL takes the same query)
    r = rows(db, f"""
        SELECT day || '' AS d, COUNT(*) AS calls, AVG(qa_score) AS avg_qa, AVG(duration_s) AS avg_handle_s,
               100.0 * SUM(alerts) / NULLIF(COUNT(alerts), 0) AS alerts_per_100,
               1.0 * SUM({AGITATED}) / NULLIF(COUNT(agitation_s), 0) AS agitation_share,
               AVG(flow_completion) AS flow_completion
        FROM calls_f GROUP BY d ORDER BY d""")
    return Table("days", ["day", "calls", "avg_qa", "avg_handle_s", "alerts_per_100", "agitation_share",
                          "flow_completion"], r)


CALL_LIST = "src, id, call_id, team, agent, started, duration_s, call_type, qa_score, alerts"


def agent_calls(db, agents: list[tuple[str | None, str | None]], per_agent: int) -> list[tuple]:
    """Each agent's calls, lowest QA score first (then unscored ones, latest first), at most
    `per_agent` each: an index seek per agent (calls_agent_qa), never a sort of every call."""
    out = []
    for team, agent in agents:
        cond = " AND ".join(f"{col} IS NULL" if v is None else f"{col} = ?" for col, v in (("team", team), ("agent", agent)))
        args = tuple(v for v in (team, agent) if v is not None)
        got = rows(db, f"SELECT {CALL_LIST} FROM calls_f WHERE {cond} AND qa_score IS NOT NULL "
                       f"ORDER BY qa_score LIMIT ?", args + (per_agent,))
        if len(got) < per_agent:
            got += rows(db, f"SELECT {CALL_LIST} FROM calls_f WHERE {cond} AND qa_score IS NULL "
                            f"ORDER BY started DESC LIMIT ?", args + (per_agent - len(got),))
        out += got
    return out


def call_details(db, picked: list[tuple[int, int]]) -> dict[tuple[int, int], dict[str, Any]]:
    """The chosen calls in full: the call row, its alerts, scorecard items, steps, offers."""
    db.execute("CREATE TEMP TABLE IF NOT EXISTS picked (src INTEGER, id INTEGER)")
    db.execute("DELETE FROM picked")
    db.executemany("INSERT INTO picked (src, id) VALUES (?, ?)", picked)
    out: dict[tuple[int, int], dict[str, Any]] = {}
    cur = db.execute("""
        SELECT c.* FROM picked p JOIN all_calls c ON c.src = p.src AND c.id = p.id""")
    names = [d[0] for d in cur.description]
    for r in cur:
        row = dict(zip(names, r))
        out[(row["src"], row["id"])] = {"call": row, "alerts": [], "items": [], "steps": [], "offers": []}
    for table, key, cols, order in (
            ("all_alerts", "alerts", "x.kind, x.speaker, x.severity, x.t_start, x.t_end", "x.t_start"),
            ("all_score_items", "items", "x.item, x.title, x.weight, x.applies, x.points", "x.item"),
            ("all_steps", "steps", "x.flow, x.step, x.position, x.done", "x.position"),
            ("all_offers", "offers", "x.offer, x.fitted, x.made", "x.offer")):
        for r in db.execute(f"SELECT x.src, x.call, {cols} FROM picked p JOIN {table} x "
                            f"ON x.src = p.src AND x.call = p.id ORDER BY x.src, x.call, {order}"):
            d = out.get((r[0], r[1]))
            if d is not None:
                d[key].append(r[2:])
    return out
