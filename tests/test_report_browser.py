"""The report in a real browser: Debian's Chromium, headless, driven over its DevTools
protocol (tests/cdp.py). The page loads from a file with no other request, logs no error,
draws its charts, sorts a table on a click, leads from an agent to a call's timeline and
scorecard, and its headline figures are what a recount from the store gives."""
from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from callcue.daemon.bench.report import fake_summary
from callcue.daemon.warehouse.records import rows_from_summary
from callcue.daemon.warehouse.store import Warehouse
from cdp import Chromium, available
from conftest import missing

CALLCUE = [sys.executable, "-m", "callcue.daemon.cli"]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("central") / "store"
    rng = random.Random(11)
    with Warehouse(path) as wh:
        for i in range(600):
            p, site, floor, line = fake_summary(rng, i, 16, 4, 2, datetime(2026, 3, 2), 10)
            wh.ingest(rows_from_summary(p, site=site, floor=floor, line=line))
    return path


def recount(store: Path) -> dict[str, float]:
    """The headline figures counted here, straight from the store's tables."""
    db = sqlite3.connect(f"file:{store / 'calls.sqlite3'}?mode=ro", uri=True)
    rows = db.execute("SELECT agent, team, site, floor, duration_s, qa_score, qa_passed, alerts, agitation_s FROM calls").fetchall()
    n = len(rows)
    offers = db.execute("SELECT made FROM offers").fetchall()
    return {"calls": n, "agents": len({r[0] for r in rows}), "teams": len({r[1] for r in rows}),
            "floors": len({(r[2], r[3]) for r in rows}), "avg_qa": sum(r[5] for r in rows) / n,
            "pass_rate": sum(r[6] for r in rows) / n, "alerts_100": 100 * sum(r[7] for r in rows) / n,
            "avg_handle": sum(r[4] for r in rows) / n, "agitation_share": sum(1 for r in rows if r[8] > 0) / n,
            "pitch_rate": sum(o[0] for o in offers) / len(offers)}


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_report_opens_offline_in_chromium(store, tmp_path, lang):
    if not available():
        missing("chromium is not installed (hardware/provision.sh test installs Debian's chromium)")
    out = tmp_path / f"report-{lang}.html"
    subprocess.run([*CALLCUE, "report", "--store", str(store), "-o", str(out), "--lang", lang], check=True,
                   capture_output=True)
    url = out.resolve().as_uri()
    with Chromium(tmp_path) as browser:
        page = browser.open(url)
        # nothing but the file itself was requested, and nothing went wrong
        assert page.requests == [url]
        assert page.console_errors == [] and page.exceptions == []
        # the charts are there and drawn (inline SVG with a size)
        charts = page.evaluate("Array.from(document.querySelectorAll('.chart svg')).map(s => s.getBoundingClientRect().width)")
        assert len(charts) >= 10 and all(w > 200 for w in charts)
        assert page.evaluate("document.querySelectorAll('svg.timeline').length") > 0
        shot = page.screenshot(tmp_path / f"report-{lang}.png")
        assert shot.stat().st_size > 20000
        page.evaluate("document.getElementById('issues').scrollIntoView()")
        page.screenshot(tmp_path / f"report-{lang}-issues.png")
        # the headline figures are the store's
        want = recount(store)
        for key, v in want.items():
            got = page.evaluate(f"document.getElementById('h-{key}').getAttribute('data-v')")
            assert float(got) == pytest.approx(v), key
        # a click sorts the agents table by calls, most first
        before = page.evaluate("Array.from(document.querySelectorAll('#t-agents tbody tr')).map(r => +r.cells[2].dataset.v)")
        page.evaluate("document.querySelectorAll('#t-agents th')[2].click()")
        after = page.evaluate("Array.from(document.querySelectorAll('#t-agents tbody tr')).map(r => +r.cells[2].dataset.v)")
        assert sorted(before, reverse=True) == after
        # from an agent to their calls, and from a call to its timeline and scorecard
        target = page.evaluate("document.querySelector('#t-agents tbody tr a').getAttribute('href')")
        assert page.evaluate(f"document.querySelector('{target}').querySelectorAll('a').length") > 0
        call = page.evaluate(f"document.querySelector('{target} tbody a').getAttribute('href')")
        assert page.evaluate(f"!!document.querySelector('{call} svg.timeline')")
        text = page.evaluate(f"document.querySelector('{call}').textContent")
        assert ("质检评分表" if lang == "zh" else "Scorecard") in text and "flow steps" in text
        page.evaluate(f"location.hash = '{call}'")
        page.screenshot(tmp_path / f"report-{lang}-call.png")
        assert page.requests == [url]
        assert page.console_errors == [] and page.exceptions == []
