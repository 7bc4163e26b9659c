"""`callcue bench report`: `callcue report` over a central store of N generated call
summaries (default 1,000,000): the time it takes and its peak memory.

The summaries are made by `fake_summary` in the contract's shape (what a box's
line/{line}/summary carries, with the `call` block) and stored through the same
records.py/store.py code as `callcue collect`; past the first 20,000 the calls are copies of
those made inside SQLite (see `generate`). The store is generated once per (N, seed) and
reused from its folder.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ..warehouse.records import rows_from_summary
from ..warehouse.store import Warehouse

KINDS = ("long_silence", "talk_over", "fast_speech", "agitation", "sensitive_word", "missing_phrase")
KIND_RATE = (0.35, 0.30, 0.15, 0.12, 0.05, 0.10)
FLOWS = {
    "inbound-service-en": ["greet", "verify", "listen", "resolve", "anything_else", "close"],
    "inbound-service-zh": ["greet", "verify", "listen", "resolve", "anything_else", "close"],
    "outbound-renewal-en": ["greet", "verify", "renewal_terms", "offer", "confirm", "close"],
}
OFFERS = ("annual-pay", "home-contents", "paperless", "roadside", "travel")
ITEMS = (("flow_steps", 20), ("required_phrases", 15), ("no_sensitive_words", 15), ("no_interrupting", 10),
         ("dead_air", 10), ("speaking_rate", 5), ("agitation_handled", 10), ("offers", 5), ("ticket", 10))
CALL_TYPES = ("Claim status", "Claim report", "Billing", "Policy change", "Cancellation", "General")


def fake_summary(rng: random.Random, i: int, agents: int, teams: int, floors: int, day0: datetime,
                 days: int) -> tuple[dict[str, Any], str, str, str]:
    """(payload, site, floor, line) of one generated call."""
    a = rng.randrange(agents)
    team = f"team-{a % teams:02d}"
    floor = a % floors
    skill = 0.6 + 0.4 * ((a * 7919) % 100) / 100.0          # some agents are better than others
    started = day0 + timedelta(days=rng.randrange(days), seconds=rng.randrange(8 * 3600, 20 * 3600))
    dur = max(30.0, rng.lognormvariate(5.6, 0.5))
    alerts = []
    for k, rate in zip(KINDS, KIND_RATE):
        for _ in range(int(rng.random() < rate * (1.6 - skill)) + int(rng.random() < rate * 0.2)):
            t0 = rng.uniform(0, dur - 3)
            alerts.append({"kind": k, "speaker": "customer" if k == "agitation" and rng.random() < 0.8 else "agent",
                           "severity": "warning", "t_start": round(t0, 2), "t_end": round(t0 + rng.uniform(1, 6), 2)})
    flow = rng.choice(list(FLOWS))
    steps = FLOWS[flow]
    done = [s for s in steps if rng.random() < 0.7 + 0.3 * skill]
    offers = [o for o in OFFERS if rng.random() < 0.12]
    made = [o for o in offers if rng.random() < skill * 0.7]
    items, got, total = [], 0.0, 0.0
    for item, w in ITEMS:
        applies = item not in ("agitation_handled", "offers") or rng.random() < 0.3
        share = min(1.0, max(0.0, rng.gauss(skill, 0.2)))
        items.append({"id": item, "title": item.replace("_", " "), "judge": item, "weight": w, "applies": applies,
                      "points": round(w * share, 2) if applies else None, "evidence": {}})
        if applies:
            got += w * share
            total += w
    score = round(100 * got / total, 1)
    talk_a = dur * rng.uniform(0.3, 0.6)
    talk_c = dur * rng.uniform(0.2, 0.5)
    dead = sum(a_["t_end"] - a_["t_start"] for a_ in alerts if a_["kind"] == "long_silence")
    agit = sum(a_["t_end"] - a_["t_start"] for a_ in alerts if a_["kind"] == "agitation" and a_["speaker"] == "customer")
    lang = "zh" if flow.endswith("zh") else "en"
    payload = {
        "call_id": f"gen-{i:08d}", "summary": f"Reason: generated call {i}", "ticket": None,
        "call_type": rng.choice(CALL_TYPES), "ts": started.isoformat(),
        "scorecard": {
            "form": "insurance-qa", "score": score, "passed": score >= 80, "items": items,
            "figures": {"duration_s": round(dur, 1), "talk_s": {"agent": round(talk_a, 1), "customer": round(talk_c, 1)},
                        "talk_listen_ratio": round(talk_a / talk_c, 2), "silence_share": round(rng.uniform(0.05, 0.3), 3),
                        "dead_air_s": round(dead, 1), "dead_air_share": round(dead / dur, 3),
                        "interruptions": {"agent": sum(a_["kind"] == "talk_over" for a_ in alerts), "customer": 0},
                        "agitation_s": {"agent": 0.0, "customer": round(agit, 1)}},
            "flow": flow, "completion": round(len(done) / len(steps), 3), "steps_done": done,
            "steps_missed": [s for s in steps if s not in done],
            "missing_phrases": ["closing"] if "close" not in done else [],
            "offers": {"suggested": offers, "made": made}, "language": lang, "pack": "insurance-sample"},
        "call": {"agent": f"agent-{a:04d}", "team": team, "box": f"nuc-{floor}", "started": started.isoformat(),
                 "duration_s": round(dur, 1), "lang": lang, "ivr_intent": None, "alerts": alerts},
    }
    return payload, "hq", f"f{floor}", str(100 + a % 40)


def _chunk(args) -> list:
    """The rows of calls [start, stop), from a generator seeded by (seed, start): the same
    store whatever the number of processes."""
    seed, start, stop, agents, teams, floors, days = args
    rng = random.Random(seed * 1_000_003 + start)
    day0 = datetime(2026, 1, 5)
    out = []
    for i in range(start, stop):
        p, site, floor, line = fake_summary(rng, i, agents, teams, floors, day0, days)
        out.append(rows_from_summary(p, site=site, floor=floor, line=line, source="bench"))
    return out


def generate(store: Path, n: int, seed: int = 1, agents: int = 1000, teams: int = 40, floors: int = 4,
             days: int = 30, batch: int = 5000, procs: int | None = None, base: int = 20000) -> float:
    """N calls into the store: the first `base` generated (summaries made and turned into rows
    on every core, one writer storing them, as the collector would), the rest copies of them
    made inside SQLite (new ids and call ids; same figures), because a million calls through
    Python take an hour on this machine and the report's work depends on the rows, not on how
    they were made."""
    import multiprocessing as mp
    import os
    t0 = time.perf_counter()
    base = min(base, n)
    with Warehouse(store) as wh:
        have = wh.count()
        if have < base:
            jobs = [(seed, i, min(i + batch, base), agents, teams, floors, days)
                    for i in range(have - have % batch, base, batch)]
            with mp.get_context("spawn").Pool(procs or os.cpu_count() or 1) as pool:
                done = have
                for chunk in pool.imap(_chunk, jobs):
                    with wh.batch():
                        for rows in chunk:
                            wh.ingest(rows)
                    done += len(chunk)
                    print(f"  generated {done:,} calls ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
        db = wh.db
        from ..warehouse.schema import CALL_COLUMNS
        cols = ", ".join(CALL_COLUMNS)
        picked = ", ".join({"id": "id + ?", "call_id": "call_id || ?"}.get(c, c) for c in CALL_COLUMNS)
        children = {
            "alerts": "call, day, team, agent, kind, speaker, severity, t_start, t_end",
            "offers": "call, day, team, agent, offer, fitted, made",
            "steps": "call, day, flow, step, position, done",
            "score_items": "call, item, title, weight, applies, points",
            "issues": "call, day, agent, kind, issue",
        }
        k = (wh.count() - 1) // base + 1 if wh.count() > base else 1
        while k * base < n:
            off, upto = k * base, min(base, n - k * base)
            db.execute("BEGIN")
            db.execute(f"INSERT INTO calls ({cols}) SELECT {picked} FROM calls WHERE id <= ?", (off, f"~{k}", upto))
            for table, c in children.items():
                rest = c.split(", ", 1)[1]
                db.execute(f"INSERT INTO {table} ({c}) SELECT call + ?, {rest} FROM {table} WHERE call <= ?", (off, upto))
            db.execute("COMMIT")
            k += 1
            if (k * base) % 100000 < base:
                print(f"  copied up to {min(k * base, n):,} calls ({time.perf_counter() - t0:.0f} s)", file=sys.stderr,
                      flush=True)
        wh._next_id = n + 1
    return time.perf_counter() - t0


def main(n: int, store: Path, out: Path, seed: int, lang: str) -> int:
    store = Path(store)
    marker = store / f".generated-{n}-{seed}"
    if not marker.exists():
        if store.exists() and any(store.iterdir()):
            print(f"bench report: {store} holds another store; give an empty --store-dir", file=sys.stderr)
            return 2
        print(f"bench report: generating {n:,} call summaries into {store} (once; reused next time)", file=sys.stderr)
        gen = generate(store, n, seed)
        marker.write_text(f"{gen:.1f}\n")
        print(f"bench report: generated in {gen:.0f} s", file=sys.stderr)
    size = sum(p.stat().st_size for p in store.glob("calls.sqlite3*"))
    # the store read once first, so neither run pays for the disk (both find it in the page cache)
    for f in store.glob("calls.sqlite3*"):
        with open(f, "rb") as fh:
            while fh.read(1 << 24):
                pass
    # the report in a child of its own: its peak RSS is the report's alone. The reference in the
    # same run: the same report with its aggregations one after the other (--threads 1)
    runs = {}
    for name, threads in (("parallel", 0), ("one query at a time", 1)):
        cmd = [sys.executable, "-m", "callcue.daemon.cli", "report", "--store", str(store), "-o", str(out),
               "--lang", lang, "--csv", str(out.with_suffix("")) + "-csv", "--threads", str(threads)]
        runs[name] = r = _child(cmd)
        if r["rc"] != 0:
            print(r["stderr"], file=sys.stderr)
            return r["rc"]
        print(r["stderr"].strip())
    par, ref = runs["parallel"], runs["one query at a time"]
    print(f"calls in store        {n:,} ({size / 1e9:.2f} GB, SQLite WAL)")
    print(f"report wall time      {par['wall']:.1f} s (target < 30 s; includes interpreter start and matplotlib "
          f"import); reference, one query at a time: {ref['wall']:.1f} s: {ref['wall'] / par['wall']:.2f}x")
    print(f"report CPU time       {par['cpu']:.1f} s (user + system; reference {ref['cpu']:.1f} s; on a shared machine "
          f"the wall time is the CPU time spread over the cores plus the wait for a core)")
    print(f"report peak RSS       {par['rss_mb']:.0f} MB (reference {ref['rss_mb']:.0f} MB)")
    print(f"report size           {out.stat().st_size / 1e6:.1f} MB ({out})")
    print(f"machine load average  {os.getloadavg()[1]:.1f} on {os.cpu_count()} cores (5 min)")
    return 0


def _child(cmd: list[str]) -> dict[str, Any]:
    """Run a command; its own wall time, CPU time and peak RSS (os.wait4: this child only)."""
    import tempfile
    with tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return {"rc": proc.returncode, "wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "rss_mb": ru.ru_maxrss / 1024,
                "stderr": err.read()}
