"""`callcue bench qa`: bulk QA throughput on this machine over the qa corpus
(daemon/eval/qa_corpus.py: 50 varied calls, en and zh, 8 and 16 kHz, stereo and mono pairs).

1. the whole corpus on 2 workers (1 recogniser thread each): calls per minute, audio hours
   per hour, each worker's RSS over the run (flat = no leak);
2. the first N calls (default 20, half English) on 1 worker and on 2 workers: the speedup;
3. an interrupted run over the same N calls: `callcue qa` on 2 workers gets SIGINT after K
   calls, then runs again: the second run does only the rest, and no call finished before is
   done again.
Every run starts from an empty store (workdir/...); wall times include the model loads.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from statistics import median

from ..config import default_config
from ..eval.qa_corpus import NAME_PATTERN, make_corpus
from ..qa.discover import CallMeta, load_table
from ..qa.run import QaOptions, QaResult, run_qa
from ..replay import choose_asr


class _NoArgs:
    no_asr = False
    asr_model = None


def _opts(paths: list[Path], store: Path, workers: int, corpus: Path) -> QaOptions:
    cfg = choose_asr(default_config(), _NoArgs())
    return QaOptions(paths=paths, store=store, cfg=cfg, workers=workers, threads=1,
                     defaults=CallMeta(site="bench", floor="qa"), pattern=NAME_PATTERN,
                     table=load_table(corpus / "metadata.csv"), progress=False)


def _fresh(p: Path) -> Path:
    shutil.rmtree(p, ignore_errors=True)
    return p


def _line(name: str, r: QaResult) -> str:
    calls = r.new_calls
    return (f"{name:<28} {calls:>3} calls {r.audio_s / 3600:5.2f} h audio  wall {r.wall_s:6.1f} s  "
            f"{calls / (r.wall_s / 60):5.2f} calls/min  {r.audio_s / r.wall_s:5.1f} audio h/h  "
            f"(machine load average {os.getloadavg()[1]:.1f} on {os.cpu_count()} cores)")


def _ledger(store: Path) -> dict[str, str]:
    db = store / "calls.sqlite3"
    if not db.exists():
        return {}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return dict(con.execute("SELECT path, finished FROM qa_files WHERE status = 'done'"))
    except sqlite3.OperationalError:
        return {}
    finally:
        con.close()


def main(corpus: Path, calls: int, workdir: Path, subset: int, phases: str, interrupt_after: int,
         rounds: int = 3) -> int:
    corpus, workdir = Path(corpus), Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"bench qa: corpus {corpus} ({calls} calls; rendered once)", file=sys.stderr, flush=True)
    files = make_corpus(corpus, calls)
    good = sorted({f.parent / f.name.replace("-agent.wav", ".wav").replace("-customer.wav", ".wav") for f in files})
    print(f"bench qa: {len(good)} calls in {corpus}", file=sys.stderr, flush=True)
    out: list[str] = []

    def say(line: str) -> None:
        out.append(line)
        print(line, file=sys.stderr, flush=True)

    # the first calls in corpus order, alternating en and zh, 16 and 8 kHz (speedup and resume runs)
    pick = [f for f in files if int(re.search(r"_C(\d+)", f.name).group(1)) - 1000 < subset]
    if "full" in phases:
        r = run_qa(_opts([corpus], _fresh(workdir / "full"), 2, corpus))
        say(_line("all calls, 2 workers x 1", r))
        _rss(r, say)
        prss = r.parent_rss_kb
        if prss:
            say(f"  writer (parent): RSS {prss[0] / 1024:.0f} -> {prss[-1] / 1024:.0f} MB")
        say(f"  bad files listed: {len(r.bad)} ({'; '.join(Path(n).name + ': ' + w for n, w in r.bad)})")
    if "speedup" in phases:
        # alternating rounds (1 then 2 workers, then 2 then 1, ...): a change in the machine's
        # load hits both sides; the ratio of each round is taken, and the median of those
        ratios, steady, walls = [], [], {1: [], 2: []}
        for k in range(rounds):
            res = {}
            for w in ((1, 2) if k % 2 == 0 else (2, 1)):
                r = run_qa(_opts(pick, _fresh(workdir / f"sub{w}"), w, corpus))
                res[w] = r
                walls[w].append(r.wall_s)
                say(_line(f"round {k + 1}: first {subset} calls, {w} worker{'s' if w > 1 else ''} x 1", r))
                _rss(r, say)
            ratios.append(res[1].wall_s / res[2].wall_s)
            steady.append(_work_s(res[1]) / max(1e-9, _work_s(res[2])))
            say(f"  round {k + 1}: 2 workers over 1: {ratios[-1]:.2f}x (without the model loads {steady[-1]:.2f}x)")
        say(f"  speedup 2 workers over 1, median of {rounds} alternating rounds: {median(ratios):.2f}x "
            f"(rounds {', '.join(f'{x:.2f}' for x in ratios)}; target >= 1.7x); without the model loads "
            f"{median(steady):.2f}x; median wall 1 worker {median(walls[1]):.0f} s, 2 workers {median(walls[2]):.0f} s")
    if "resume" in phases:
        store = _fresh(workdir / "resume")
        cmd = [sys.executable, "-m", "callcue.daemon.cli", "qa", *map(str, pick), "--store", str(store), "--name-pattern",
               NAME_PATTERN, "--meta", str(corpus / "metadata.csv"), "--no-progress", "--workers", "2", "--threads", "1"]
        log1 = open(workdir / "resume-1.log", "w")
        proc = subprocess.Popen(cmd, stderr=log1, stdout=log1)
        while len(_ledger(store)) < interrupt_after and proc.poll() is None:
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        proc.wait(120)
        log1.close()
        first = _ledger(store)
        t0 = time.perf_counter()
        second = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        (workdir / "resume-2.log").write_text(second.stderr)
        after = _ledger(store)
        summary = [l for l in second.stderr.splitlines() if l.startswith("callcue qa:")]
        redone = [p for p, when in first.items() if after.get(p) != when]
        con = sqlite3.connect(f"file:{store / 'calls.sqlite3'}?mode=ro", uri=True)
        n, distinct = con.execute("SELECT COUNT(*), COUNT(DISTINCT call_id) FROM calls").fetchone()
        say(f"interrupted run: SIGINT after {len(first)} calls done (exit {proc.returncode}); the second run "
                   f"({wall:.0f} s): {summary[0].removeprefix('callcue qa: ') if summary else second.stderr[-300:]}")
        say(f"  calls finished before the interruption and done again: {len(redone)}; calls in the store "
                   f"{n} ({distinct} distinct) of {subset}")
    print("\n".join(out))
    return 0


def _work_s(r: QaResult) -> float:
    """The run's wall time from the first worker ready (its models loaded) to the last result."""
    return r.wall_s - (r.ready_s or 0.0)


def _rss(r: QaResult, say) -> None:
    """Each worker's RSS after its 1st call, a quarter, half, three quarters of its calls, and the last."""
    by_pid: dict[int, list[int]] = {}
    for smp in r.samples:
        if smp["ok"]:
            by_pid.setdefault(smp["pid"], []).append(smp["rss_kb"])
    for pid, rss in sorted(by_pid.items()):
        at = sorted({0, len(rss) // 4, len(rss) // 2, 3 * len(rss) // 4, len(rss) - 1})
        # growth per call past the warm-up (the first two calls size the decoders' buffers)
        slope = f"; {(rss[-1] - rss[2]) / 1024 / (len(rss) - 3):+.1f} MB per call over calls 3-{len(rss)}" \
            if len(rss) >= 4 else ""
        say(f"  worker {pid}: {len(rss)} calls, RSS after call " +
            ", ".join(f"{i + 1}: {rss[i] / 1024:.0f}" for i in at) + f" MB{slope}")
