"""The central store (daemon/warehouse) and the report's figures (daemon/report): a real
after-call summary becomes the right rows, a second copy changes nothing, one writer at
a time, the SQL stays portable, and every figure of the report (and its CSV) matches a
count made here from the summaries themselves."""
from __future__ import annotations

import ast
import csv
import json
import random
import re
import sqlite3
from collections import defaultdict
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

import pytest

from callcue.daemon.aftercall.finish import AfterCall
from callcue.daemon.aftercall.record import Alert, CallRecord, FlowRecord, OfferRecord, Step, Utterance
from callcue.daemon.assist.pack import default_pack_dir, load_pack
from callcue.daemon.bench.report import fake_summary
from callcue.daemon.report.build import build_report
from callcue.daemon.warehouse.records import parse_topic, rows_from_summary
from callcue.daemon.warehouse.store import StoreError, Warehouse

ROOT = Path(__file__).resolve().parent.parent


def aftercall_payload(call_id: str = "c-1") -> dict:
    """A summary as the line publishes it after issue 12 (AfterCall's output) plus the call block."""
    said = [("agent", "Thank you for calling Harbor Mutual, my name is Priya, how can I help you today?"),
            ("customer", "Hi, somebody rear ended my car yesterday and I want to make a claim."),
            ("agent", "I'm sorry to hear that. Can I have your policy number and date of birth?"),
            ("customer", "The policy number is H M 4 4 1 0 7, born fourth of June 1985."),
            ("agent", "I've opened the claim, your claim number is C 3 3 0 1 8."),
            ("customer", "Thanks."), ("agent", "Thanks for calling Harbor Mutual, have a great day.")]
    utts, t = [], 0.5
    for who, text in said:
        d = max(1.2, len(text.split()) / 2.6)
        utts.append(Utterance(who, text, round(t, 2), round(t + d, 2)))
        t += d + 0.7
    steps = ("greet", "verify", "claim_incident", "claim_number", "close")
    flow = FlowRecord("inbound-service-en", "en", tuple(Step(s, s, s != "claim_incident") for s in steps),
                      "claim_report", "Claim report", "customer")
    alerts = [Alert("talk_over", "agent", 3.0, 4.5, evidence={"interrupter": "agent", "overlap_s": 1.5}),
              Alert("agitation", "customer", 10.0, 14.0, evidence={"pitch_up_st": 4.0, "loudness_up_db": 3.0})]
    rec = CallRecord(call_id, date(2026, 3, 10), utts, alerts, lang="en", flow=flow,
                     offers=[OfferRecord("roadside-en", "Roadside", 20.0, None)], duration_s=t + 1.0, agent="Priya")
    out = AfterCall(load_pack(default_pack_dir())).finish(rec)
    return {"call_id": call_id, **out, "ts": "2026-03-10T09:05:00+00:00",
            "call": {"agent": "Priya", "team": "claims", "box": "nuc1", "started": "2026-03-10T10:03:00+01:00",
                     "duration_s": t + 1.0, "lang": "en", "ivr_intent": "claim",
                     "alerts": [{"kind": a.kind, "speaker": a.speaker, "severity": a.severity, "t_start": a.t_start,
                                 "t_end": a.t_end} for a in alerts]}}


def test_an_aftercall_summary_becomes_its_rows(tmp_path):
    p = aftercall_payload()
    rows = rows_from_summary(p, site="hq", floor="f3", line="301")
    c = rows.call
    sc = p["scorecard"]
    assert (c["call_id"], c["site"], c["floor"], c["line"], c["agent"], c["team"], c["box"]) == \
        ("c-1", "hq", "f3", "301", "Priya", "claims", "nuc1")
    assert c["started"] == "2026-03-10 10:03:00" and c["day"] == "2026-03-10"      # the site's wall clock
    assert c["qa_score"] == sc["score"] and c["qa_passed"] == int(sc["passed"])
    assert c["flow"] == "inbound-service-en" and c["flow_completion"] == pytest.approx(0.8)
    assert c["talk_ratio"] == sc["figures"]["talk_listen_ratio"]
    assert c["dead_air_share"] == sc["figures"]["dead_air_share"]
    assert c["agitation_s"] == sc["figures"]["agitation_s"]["customer"] == 4.0
    assert c["alerts"] == 2 and c["offers_fitted"] == 1 and c["offers_made"] == 0
    assert c["call_type"] == p["call_type"] and c["summary"] == p["summary"]
    assert json.loads(c["ticket"]) == p["ticket"]
    assert rows.offers == [("roadside-en", 1, 0)]
    assert ("inbound-service-en", "claim_incident", 4, 0) in rows.steps
    assert {i[0] for i in rows.score_items} == {i["id"] for i in sc["items"]}
    lost = {i["id"] for i in sc["items"] if i["applies"] and i["points"] < i["weight"]}
    assert {("qa", x) for x in lost} | {("alert", "talk_over"), ("alert", "agitation"), ("step", "claim_incident"),
                                        ("offer", "roadside-en")} == set(rows.issues)


def test_missing_fields_are_null_not_guesses():
    rows = rows_from_summary({"call_id": "x", "ts": "2026-03-10T09:05:00+00:00", "scorecard": {"assist": "off"}},
                             site="s", floor="f", line="1")
    c = rows.call
    assert c["agent"] is None and c["qa_score"] is None and c["talk_ratio"] is None and c["alerts"] is None
    assert c["day"] is not None            # from ts, the one fallback
    with pytest.raises(ValueError):
        rows_from_summary({"summary": "no id"}, site="s", floor="f", line="1")
    assert parse_topic("callcue/v1/hq/f3/line/301/summary") == ("hq", "f3", "301")
    assert parse_topic("callcue/v1/hq/f3/line/301/alert") is None


def test_ingest_is_idempotent_and_one_writer_at_a_time(tmp_path):
    p = aftercall_payload()
    with Warehouse(tmp_path / "s") as wh:
        assert wh.ingest(rows_from_summary(p, site="hq", floor="f3", line="301"))
        assert not wh.ingest(rows_from_summary(p, site="hq", floor="f3", line="301"))   # a QoS 1 redelivery
        with pytest.raises(StoreError, match="another process is writing"):
            Warehouse(tmp_path / "s")
        assert wh.count() == 1
    db = sqlite3.connect(tmp_path / "s" / "calls.sqlite3")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT COUNT(*) FROM alerts").fetchone()[0] == 2
    assert db.execute("SELECT COUNT(*) FROM issues WHERE call = 1").fetchone()[0] == len(
        rows_from_summary(p, site="hq", floor="f3", line="301").issues)
    with Warehouse(tmp_path / "s") as wh:      # reopened: ids go on
        assert wh.ingest(rows_from_summary(aftercall_payload("c-2"), site="hq", floor="f3", line="302"))
    assert [r[0] for r in db.execute("SELECT id FROM calls ORDER BY id")] == [1, 2]


SQLITE_ONLY = r"\b(strftime|julianday|datetime|date\(|ifnull|iif|group_concat|printf|json_\w+|instr|substr|glob|" \
              r"AUTOINCREMENT|INSERT OR|REPLACE INTO|WITHOUT ROWID|PRAGMA|rowid)\b"


def sql_strings(path: Path) -> list[str]:
    """Every string (f-string parts too) of the module that reads as SQL; docstrings left out."""
    tree = ast.parse(path.read_text())
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs:
            if re.search(r"\b(SELECT|INSERT|CREATE|UPDATE|DELETE|WHERE|GROUP BY|CASE|WHEN)\b", n.value):
                out.append(n.value)
    return out


@pytest.mark.parametrize("path", ["daemon/warehouse/schema.py", "daemon/warehouse/store.py", "daemon/report/queries.py"])
def test_the_sql_is_portable(path):
    """The schema and queries are SQL PostgreSQL runs too: no SQLite-only functions or words.
    (store.py's PRAGMAs and queries.py's ATTACH set up the SQLite connection; they are no part
    of the schema or of a query.)"""
    found = set()
    strings = sql_strings(ROOT / path)
    assert strings
    for sql in strings:
        if sql.lstrip().upper().startswith(("PRAGMA", "ATTACH")):
            continue
        found |= {m.group(0) for m in re.finditer(SQLITE_ONLY, sql, re.I)}
    assert not found, f"SQLite-only SQL in {path}: {found}"


# ---------------------------------------------------------------- the report's figures

def make_stores(tmp_path: Path, n: int = 400) -> tuple[list[Path], list[tuple[dict, str, str, str]]]:
    """Two stores of generated summaries (two floors each), like two sites' collectors."""
    rng = random.Random(5)
    made, stores = [], []
    for k in range(2):
        store = tmp_path / f"store{k}"
        with Warehouse(store) as wh:
            for i in range(n // 2):
                p, site, floor, line = fake_summary(rng, k * 100000 + i, 12, 3, 2, datetime(2026, 3, 2), 6)
                site = f"site{k}"
                wh.ingest(rows_from_summary(p, site=site, floor=floor, line=line))
                made.append((p, site, floor, line))
        stores.append(store)
    return stores, made


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_the_report_figures_match_a_count_of_the_summaries(tmp_path):
    stores, made = make_stores(tmp_path)
    day_from, day_to = "2026-03-03", "2026-03-06"
    res = build_report(stores, tmp_path / "r.html", "en", day_from, day_to, tmp_path / "csv")
    inside = [m for m in made if day_from <= m[0]["call"]["started"][:10] <= day_to]
    assert res["calls"] == len(inside) and 0 < len(inside) < len(made)
    head = {r["figure"]: r["value"] for r in read_csv(tmp_path / "csv" / "headline.csv")}
    assert int(head["calls"]) == len(inside)
    assert int(head["agents"]) == len({m[0]["call"]["agent"] for m in inside})
    assert int(head["floors"]) == len({(m[1], m[2]) for m in inside}) == 4
    scores = [m[0]["scorecard"]["score"] for m in inside]
    assert float(head["avg_qa"]) == pytest.approx(sum(scores) / len(scores))
    alerts = sum(len(m[0]["call"]["alerts"]) for m in inside)
    assert float(head["alerts_100"]) == pytest.approx(100 * alerts / len(inside))
    opp = sum(len(set(m[0]["scorecard"]["offers"]["suggested"])) for m in inside)
    made_ = sum(len(m[0]["scorecard"]["offers"]["made"]) for m in inside)
    assert float(head["pitch_rate"]) == pytest.approx(made_ / opp)
    agit = sum(1 for m in inside if m[0]["scorecard"]["figures"]["agitation_s"]["customer"] > 0)
    assert float(head["agitation_share"]) == pytest.approx(agit / len(inside))
    # issues: calls and distinct agents per issue
    calls, agents = defaultdict(int), defaultdict(set)
    for p, *_ in inside:
        rows = rows_from_summary(p, site="x", floor="y", line="z")
        for kind, issue in rows.issues:
            calls[(kind, issue)] += 1
            agents[(kind, issue)].add(p["call"]["agent"])
    got = {(r["kind"], r["issue"]): (int(r["calls"]), int(r["agents"])) for r in read_csv(tmp_path / "csv" / "issues.csv")}
    assert got == {k: (calls[k], len(agents[k])) for k in calls}
    # pitch rate per offer
    per = defaultdict(lambda: [0, 0])
    for p, *_ in inside:
        for o in set(p["scorecard"]["offers"]["suggested"]):
            per[o][0] += 1
            per[o][1] += o in p["scorecard"]["offers"]["made"]
    got = {r["offer"]: (int(r["opportunities"]), int(r["made"])) for r in read_csv(tmp_path / "csv" / "pitch_rate_by_offer.csv")}
    assert got == {k: tuple(v) for k, v in per.items()}
    # alerts per 100 calls, per team and kind
    team_calls, team_kind = defaultdict(int), defaultdict(int)
    for p, *_ in inside:
        team_calls[p["call"]["team"]] += 1
        for a in p["call"]["alerts"]:
            team_kind[(p["call"]["team"], a["kind"])] += 1
    for r in read_csv(tmp_path / "csv" / "alerts_per_100_by_team.csv"):
        for kind in ("talk_over", "long_silence", "agitation"):
            assert float(r[kind]) == pytest.approx(100 * team_kind[(r["team"], kind)] / team_calls[r["team"]])
    # days and QA distribution
    per_day = defaultdict(int)
    for p, *_ in inside:
        per_day[p["call"]["started"][:10]] += 1
    assert {r["day"]: int(r["calls"]) for r in read_csv(tmp_path / "csv" / "days.csv")} == per_day
    # floors and boxes: calls and agents per (site, floor, box)
    box_calls, box_agents = defaultdict(int), defaultdict(set)
    for p, site, floor, _ in inside:
        box_calls[(site, floor, p["call"]["box"])] += 1
        box_agents[(site, floor, p["call"]["box"])].add(p["call"]["agent"])
    got = {(r["site"], r["floor"], r["box"]): (int(r["calls"]), int(r["agents"]))
           for r in read_csv(tmp_path / "csv" / "floors.csv")}
    assert got == {k: (n, len(box_agents[k])) for k, n in box_calls.items()} and len(got) == 4
    dist = read_csv(tmp_path / "csv" / "qa_distribution_by_team.csv")
    assert sum(int(v) for r in dist for k, v in r.items() if k != "team") == len(inside)


def test_the_report_is_one_offline_file(tmp_path):
    stores, _ = make_stores(tmp_path, 120)
    for lang in ("en", "zh"):
        out = tmp_path / f"r-{lang}.html"
        build_report(stores, out, lang)
        html = out.read_text(encoding="utf-8")
        assert "<svg" in html and html.count('class="chart"') >= 8
        # nothing fetched from anywhere: no external URL in a src/href/url(), no <link>, no remote script
        assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', html)
        assert not re.search(r"url\(\s*['\"]?(https?:)?//", html)
        assert "<link" not in html and "<script src" not in html
        assert ("通话质检报告" in html) == (lang == "zh")
