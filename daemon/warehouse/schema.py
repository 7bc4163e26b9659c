"""The central store's tables, in SQL that SQLite and PostgreSQL both accept.

Portability rules (kept by tests/test_warehouse.py, which scans this file and
daemon/report/queries.py for SQLite-only words):
- types INTEGER, DOUBLE PRECISION, TEXT only; booleans are INTEGER 0/1; times are ISO
  8601 TEXT ('YYYY-MM-DD HH:MM:SS', the site's local time at call start) and `day` is the
  'YYYY-MM-DD' TEXT of it, so ranges and grouping need no date functions;
- `calls.id` is INTEGER PRIMARY KEY assigned by the one writer (no AUTOINCREMENT, no
  SERIAL): in SQLite it is the rowid, in PostgreSQL an ordinary key;
- inserts are `INSERT ... ON CONFLICT (call_id) DO NOTHING` (both since SQLite 3.24);
- no JSON functions, no date functions, no `strftime`, `julianday`, `ifnull`, `iif`,
  `group_concat`, `printf`, no `INSERT OR ...`; parameters are `?` (DB-API qmark; a
  PostgreSQL driver takes `%s`).
Child rows point at `calls.id` and repeat the call's `day` (and `team`/`agent` where a report
groups by them), so that every aggregate of a report is one scan of one table with no join per
row (a million calls have several million child rows); the call detail joins by `call`.
`ticket` is kept as JSON text for the call detail only.
"""
from __future__ import annotations

VERSION = 2

TABLES = [
    """CREATE TABLE IF NOT EXISTS calls (
        id INTEGER PRIMARY KEY,
        call_id TEXT NOT NULL UNIQUE,
        site TEXT, floor TEXT, box TEXT, line TEXT,
        agent TEXT, team TEXT,
        started TEXT, day TEXT,
        duration_s DOUBLE PRECISION,
        lang TEXT, call_type TEXT, ivr_intent TEXT,
        flow TEXT, flow_completion DOUBLE PRECISION,
        qa_score DOUBLE PRECISION, qa_passed INTEGER,
        talk_agent_s DOUBLE PRECISION, talk_customer_s DOUBLE PRECISION, talk_ratio DOUBLE PRECISION,
        silence_share DOUBLE PRECISION, dead_air_s DOUBLE PRECISION, dead_air_share DOUBLE PRECISION,
        agitation_s DOUBLE PRECISION, agitation_agent_s DOUBLE PRECISION,
        interruptions INTEGER, alerts INTEGER,
        offers_fitted INTEGER, offers_made INTEGER,
        summary TEXT, ticket TEXT,
        source TEXT, file TEXT, received TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS alerts (
        call INTEGER NOT NULL REFERENCES calls (id), day TEXT, team TEXT, agent TEXT,
        kind TEXT NOT NULL, speaker TEXT, severity TEXT,
        t_start DOUBLE PRECISION, t_end DOUBLE PRECISION
    )""",
    """CREATE TABLE IF NOT EXISTS offers (
        call INTEGER NOT NULL REFERENCES calls (id), day TEXT, team TEXT, agent TEXT,
        offer TEXT NOT NULL, fitted INTEGER NOT NULL, made INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS steps (
        call INTEGER NOT NULL REFERENCES calls (id), day TEXT,
        flow TEXT, step TEXT NOT NULL, position INTEGER NOT NULL, done INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS score_items (
        call INTEGER NOT NULL REFERENCES calls (id),
        item TEXT NOT NULL, title TEXT, weight DOUBLE PRECISION, applies INTEGER NOT NULL,
        points DOUBLE PRECISION
    )""",
    # what went wrong in a call, one row per (call, issue): alert kinds, missed steps,
    # missing phrases, missed offers, QA items that lost points
    """CREATE TABLE IF NOT EXISTS issues (
        call INTEGER NOT NULL REFERENCES calls (id), day TEXT, agent TEXT,
        kind TEXT NOT NULL, issue TEXT NOT NULL
    )""",
    # the bulk run's ledger (callcue qa): a recording is done or bad; resume skips both
    """CREATE TABLE IF NOT EXISTS qa_files (
        path TEXT PRIMARY KEY,
        size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
        status TEXT NOT NULL, reason TEXT, call_id TEXT,
        audio_s DOUBLE PRECISION, elapsed_s DOUBLE PRECISION, finished TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS meta (
        name TEXT PRIMARY KEY, value TEXT
    )""",
]

INDEXES = [
    "CREATE INDEX IF NOT EXISTS calls_day ON calls (day)",
    "CREATE INDEX IF NOT EXISTS calls_agent ON calls (agent, day)",
    "CREATE INDEX IF NOT EXISTS calls_team ON calls (team, day)",
    "CREATE INDEX IF NOT EXISTS alerts_call ON alerts (call)",
    "CREATE INDEX IF NOT EXISTS offers_call ON offers (call)",
    "CREATE INDEX IF NOT EXISTS steps_call ON steps (call)",
    "CREATE INDEX IF NOT EXISTS score_items_call ON score_items (call)",
    "CREATE INDEX IF NOT EXISTS issues_call ON issues (call)",
    "CREATE INDEX IF NOT EXISTS alerts_day ON alerts (day)",
    "CREATE INDEX IF NOT EXISTS offers_day ON offers (day)",
    "CREATE INDEX IF NOT EXISTS steps_day ON steps (day)",
    "CREATE INDEX IF NOT EXISTS issues_day ON issues (day)",
    # in the order the report groups by, with every column it reads: the grouping is a walk of
    # the index (no sort of millions of rows, no table read), and an agent's worst calls a seek
    "CREATE INDEX IF NOT EXISTS issues_group ON issues (kind, issue, agent, day)",
    "CREATE INDEX IF NOT EXISTS steps_group ON steps (flow, step, done, day)",
    "CREATE INDEX IF NOT EXISTS alerts_group ON alerts (team, agent, kind, day)",
    "CREATE INDEX IF NOT EXISTS offers_group ON offers (team, agent, offer, fitted, made, day)",
    "CREATE INDEX IF NOT EXISTS calls_agent_qa ON calls (team, agent, qa_score)",
]

CALL_COLUMNS = ("id", "call_id", "site", "floor", "box", "line", "agent", "team", "started", "day", "duration_s",
                "lang", "call_type", "ivr_intent", "flow", "flow_completion", "qa_score", "qa_passed",
                "talk_agent_s", "talk_customer_s", "talk_ratio", "silence_share", "dead_air_s", "dead_air_share",
                "agitation_s", "agitation_agent_s", "interruptions", "alerts", "offers_fitted", "offers_made",
                "summary", "ticket", "source", "file", "received")
CHILD_TABLES = ("alerts", "offers", "steps", "score_items", "issues")
