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


def bucket_case(column: str, buckets: list[tuple]) -> str:
    """CASE expression numbering the bucket a value falls in (0, 1, ...)."""
    parts = []
    for i, (lo, hi, _) in enumerate(buckets):
        if hi is None:
            parts.append(f"ELSE {i}")
        else:
            parts.append(f"WHEN {column} < {hi} THEN {i}")
    return "CASE " + " ".join(parts) + " END"


@dataclass
class Table:
    name: str                 # CSV file name and anchor
    headers: list[str]
    rows: list[tuple]


def open_sources(stores: list[Path], day_from: str | None = None, day_to: str | None = None) -> sqlite3.Connection:
    """A read-only connection with the report's views over every store."""
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
    for table in ("calls",) + CHILDREN:
        union = " UNION ALL ".join(f"SELECT {i} AS src, * FROM {n}.{table}" for i, n in enumerate(names))
        db.execute(f"CREATE TEMP VIEW all_{table} AS {union}")
    where = []
    if day_from:
        where.append(f"day >= '{day_from}'")
    if day_to:
        where.append(f"day <= '{day_to}'")
    db.execute("CREATE TEMP VIEW calls_f AS SELECT * FROM all_calls" + (" WHERE " + " AND ".join(where) if where else ""))
    return db


def rows(db: sqlite3.Connection, sql: str, params: tuple = ()) -> list[tuple]:
    return db.execute(sql, params).fetchall()


# ---------------------------------------------------------------- the figures

AGITATED = "CASE WHEN agitation_s > 0 THEN 1 ELSE 0 END"


def headline(db) -> dict[str, Any]:
    r = db.execute(f"""
        SELECT COUNT(*), COUNT(DISTINCT agent), COUNT(DISTINCT team), COUNT(DISTINCT site || '/' || floor),
               SUM(duration_s), AVG(duration_s), AVG(qa_score), AVG(qa_passed), SUM(alerts),
               AVG(flow_completion), SUM(offers_made), 0,
               SUM({AGITATED}), COUNT(agitation_s), SUM(dead_air_s), SUM(CASE WHEN dead_air_s IS NULL THEN 0 ELSE duration_s END),
               AVG(talk_ratio), MIN(day), MAX(day), SUM(CASE WHEN alerts IS NULL THEN 0 ELSE 1 END)
        FROM calls_f""").fetchone()
    keys = ("calls", "agents", "teams", "floors", "audio_s", "avg_handle_s", "avg_qa", "pass_rate", "alerts",
            "flow_completion", "offers_made", "_", "agitated", "agitation_known", "dead_air_s", "dead_air_base_s",
            "talk_ratio", "first_day", "last_day", "alerts_known")
    h = dict(zip(keys, r))
    h.pop("_")
    # pitch rate over offer opportunities (fitted or made), as the scorecard counts it
    o = db.execute("SELECT COUNT(*), SUM(o.made) FROM all_offers o JOIN calls_f c ON c.src = o.src AND c.id = o.call").fetchone()
    h["offer_opportunities"], h["offers_made"] = o[0], o[1] or 0
    h["pitch_rate"] = (o[1] or 0) / o[0] if o[0] else None
    h["alerts_per_100"] = 100.0 * (h["alerts"] or 0) / h["alerts_known"] if h["alerts_known"] else None
    h["agitation_share"] = (h["agitated"] or 0) / h["agitation_known"] if h["agitation_known"] else None
    h["dead_air_share"] = (h["dead_air_s"] or 0) / h["dead_air_base_s"] if h["dead_air_base_s"] else None
    return h


def issues(db) -> Table:
    r = rows(db, """
        SELECT i.kind, i.issue, COUNT(*) AS calls, COUNT(DISTINCT c.agent) AS agents
        FROM all_issues i JOIN calls_f c ON c.src = i.src AND c.id = i.call
        GROUP BY i.kind, i.issue
        ORDER BY calls DESC, agents DESC, i.kind, i.issue""")
    return Table("issues", ["kind", "issue", "calls", "agents"], r)


def calls_by(db, keys: str) -> list[tuple]:
    """Per `keys` (e.g. 'team' or 'team, agent'): calls and the per-call figures."""
    return rows(db, f"""
        SELECT {keys}, COUNT(*) AS calls, AVG(qa_score), AVG(qa_passed), AVG(duration_s), AVG(talk_ratio),
               SUM(dead_air_s), SUM(CASE WHEN dead_air_s IS NULL THEN 0 ELSE duration_s END),
               SUM({AGITATED}), COUNT(agitation_s), SUM(agitation_s), SUM(CASE WHEN agitation_s IS NULL THEN 0 ELSE duration_s END),
               AVG(flow_completion), SUM(alerts), SUM(CASE WHEN alerts IS NULL THEN 0 ELSE 1 END)
        FROM calls_f GROUP BY {keys} ORDER BY {keys}""")


def alerts_by(db, keys: str) -> list[tuple]:
    """(keys..., kind, alerts) for every group."""
    cols = ", ".join(f"c.{k.strip()}" for k in keys.split(","))
    return rows(db, f"""
        SELECT {cols}, a.kind, COUNT(*) FROM all_alerts a JOIN calls_f c ON c.src = a.src AND c.id = a.call
        GROUP BY {cols}, a.kind ORDER BY {cols}, a.kind""")


def offers_by_offer(db) -> Table:
    r = rows(db, """
        SELECT o.offer, COUNT(*) AS opportunities, SUM(o.fitted) AS fitted, SUM(o.made) AS made,
               1.0 * SUM(o.made) / COUNT(*) AS pitch_rate
        FROM all_offers o JOIN calls_f c ON c.src = o.src AND c.id = o.call
        GROUP BY o.offer ORDER BY opportunities DESC, o.offer""")
    return Table("pitch_rate_by_offer", ["offer", "opportunities", "fitted", "made", "pitch_rate"], r)


def offers_by_agent(db) -> Table:
    r = rows(db, """
        SELECT c.team, c.agent, o.offer, COUNT(*) AS opportunities, SUM(o.made) AS made,
               1.0 * SUM(o.made) / COUNT(*) AS pitch_rate
        FROM all_offers o JOIN calls_f c ON c.src = o.src AND c.id = o.call
        GROUP BY c.team, c.agent, o.offer ORDER BY c.team, c.agent, o.offer""")
    return Table("pitch_rate_by_agent", ["team", "agent", "offer", "opportunities", "made", "pitch_rate"], r)


def flows(db) -> Table:
    r = rows(db, """
        SELECT flow, COUNT(*) AS calls, AVG(flow_completion) AS completion,
               SUM(CASE WHEN flow_completion >= 0.999 THEN 1 ELSE 0 END) AS complete
        FROM calls_f WHERE flow IS NOT NULL GROUP BY flow ORDER BY calls DESC, flow""")
    return Table("flow_completion", ["flow", "calls", "completion", "complete_calls"], r)


def missed_steps(db) -> Table:
    r = rows(db, """
        SELECT s.flow, s.step, SUM(1 - s.done) AS missed, COUNT(*) AS calls,
               1.0 * SUM(1 - s.done) / COUNT(*) AS missed_share
        FROM all_steps s JOIN calls_f c ON c.src = s.src AND c.id = s.call
        GROUP BY s.flow, s.step ORDER BY missed DESC, s.flow, s.step""")
    return Table("missed_steps", ["flow", "step", "missed", "calls", "missed_share"], r)


def distribution(db, column: str, buckets: list[tuple], by: str = "team") -> list[tuple]:
    """(group, bucket number, calls) of a per-call figure."""
    return rows(db, f"""
        SELECT {by}, {bucket_case(column, buckets)} AS bucket, COUNT(*)
        FROM calls_f WHERE {column} IS NOT NULL GROUP BY {by}, bucket ORDER BY {by}, bucket""")


def days(db) -> Table:
    r = rows(db, f"""
        SELECT day, COUNT(*) AS calls, AVG(qa_score) AS avg_qa, AVG(duration_s) AS avg_handle_s,
               100.0 * SUM(alerts) / NULLIF(SUM(CASE WHEN alerts IS NULL THEN 0 ELSE 1 END), 0) AS alerts_per_100,
               1.0 * SUM({AGITATED}) / NULLIF(COUNT(agitation_s), 0) AS agitation_share,
               AVG(flow_completion) AS flow_completion
        FROM calls_f GROUP BY day ORDER BY day""")
    return Table("days", ["day", "calls", "avg_qa", "avg_handle_s", "alerts_per_100", "agitation_share",
                          "flow_completion"], r)


def agent_calls(db, per_agent: int) -> list[tuple]:
    """Each agent's calls, lowest QA score first, at most `per_agent` each."""
    return rows(db, """
        SELECT src, id, call_id, team, agent, started, duration_s, call_type, qa_score, alerts, n FROM (
            SELECT src, id, call_id, team, agent, started, duration_s, call_type, qa_score, alerts,
                   ROW_NUMBER() OVER (PARTITION BY team, agent
                                      ORDER BY CASE WHEN qa_score IS NULL THEN 1 ELSE 0 END, qa_score, started DESC) AS n
            FROM calls_f) ranked
        WHERE n <= ? ORDER BY team, agent, n""", (per_agent,))


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
