"""How long the after-call work takes per call: ticket extraction, call type, summary and
QA scorecard (`AfterCall.finish`), on the labelled after-call calls.

Each call is first run through a real assist session on its script text (as
eval/aftercall_score.py does) to get the CallRecord the line would hand over; only
`finish` is timed. Two references from the same run, on the same calls:

- redaction: the project's redactor over every utterance of the call (what publishing
  the call's transcripts costs anyway);
- assist finals: the assist engine's `heard()` for every final utterance of the call (the
  per-utterance work of the live call, knowledge search included, no embeddings).

The first call of a process pays one-time costs (jieba's dictionary when Chinese
phrases are first matched on word edges, pinyin caches); that is printed apart.

    python -m callcue.daemon.bench.aftercall [--rounds N] [--one-core]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path


def _pin() -> str:
    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        return "pinned to one core"
    except (AttributeError, OSError):
        return "not pinned"


def bench_aftercall(calls: list[Path], rounds: int = 5, one_core: bool = False) -> dict:
    from ..aftercall.finish import default_redact
    from ..assist.engine import AssistEngine
    from ..config import AssistConfig
    from ..eval.aftercall_score import TUNED, HELDOUT, build_content, run_call, timeline
    from ..eval.synth.script import load_script

    pinned = _pin() if one_core else "not pinned"
    calls = calls or sorted(TUNED.glob("*.yaml")) + sorted(HELDOUT.glob("*.yaml"))
    content = build_content()
    scripts = [load_script(p) for p in calls]
    t0 = time.perf_counter()
    records = []
    first_ms = None
    for p, s in zip(calls, scripts):
        _, rec, secs = run_call(content, s, p.stem)
        if first_ms is None:
            first_ms = 1000 * secs
        records.append(rec)
    prep_s = time.perf_counter() - t0
    ac = content.aftercall
    for rec in records:                     # warm: every language's caches filled
        ac.finish(rec)
    finish_ms, redact_ms, heard_ms, finish_cpu = [], [], [], []
    turns = [timeline(s) for s in scripts]
    engine = AssistEngine(content, AssistConfig())
    for r in range(rounds):
        for k, rec in enumerate(records):
            t, c = time.perf_counter(), time.process_time()
            ac.finish(rec)
            finish_ms.append(1000 * (time.perf_counter() - t))
            finish_cpu.append(1000 * (time.process_time() - c))
            t = time.perf_counter()
            for u in rec.utterances:
                default_redact(u.text)
            redact_ms.append(1000 * (time.perf_counter() - t))
            sess = engine.session("bench", f"b{r}-{k}", None, dict(scripts[k].expect.ivr)
                                  if scripts[k].expect and scripts[k].expect.ivr else None)
            sess.start()
            t = time.perf_counter()
            for i, x in enumerate(turns[k]):
                sess.heard(x["speaker"], x["text"], True, x["t_start"], x["t_end"], i, x["t_end"])
            heard_ms.append(1000 * (time.perf_counter() - t))

    def stats(xs: list[float]) -> dict:
        xs = sorted(xs)
        return {"p50": round(statistics.median(xs), 2), "mean": round(statistics.fmean(xs), 2),
                "p95": round(xs[int(0.95 * (len(xs) - 1))], 2), "max": round(xs[-1], 2)}

    out = {"calls": len(records), "rounds": rounds, "pinned": pinned,
           "utterances_per_call": round(statistics.fmean(len(r.utterances) for r in records), 1),
           "finish_ms": stats(finish_ms), "finish_cpu_ms": stats(finish_cpu), "redaction_ms": stats(redact_ms), "assist_finals_ms": stats(heard_ms),
           "first_call_ms": round(first_ms or 0.0, 1), "prepare_s": round(prep_s, 1)}
    out["finish_vs_redaction"] = round(out["finish_ms"]["p50"] / max(out["redaction_ms"]["p50"], 1e-9), 2)
    out["finish_vs_assist_finals"] = round(out["finish_ms"]["p50"] / max(out["assist_finals_ms"]["p50"], 1e-9), 2)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench-aftercall", description=__doc__.split("\n\n")[0])
    ap.add_argument("calls", nargs="*", type=Path, help="labelled call scripts (default: the after-call eval sets)")
    ap.add_argument("--rounds", type=int, default=5, help="passes over the calls (default 5)")
    ap.add_argument("--one-core", action="store_true", help="pin the process to one core")
    args = ap.parse_args(argv)
    r = bench_aftercall(args.calls, args.rounds, args.one_core)
    f, red, hd = r["finish_ms"], r["redaction_ms"], r["assist_finals_ms"]
    print(f"after-call work, {r['calls']} labelled calls x {r['rounds']} rounds, "
          f"{r['utterances_per_call']} utterances per call, {r['pinned']}:")
    print(f"  AfterCall.finish (ticket, call type, summary, scorecard): p50 {f['p50']} ms, mean {f['mean']} ms, "
          f"p95 {f['p95']} ms, max {f['max']} ms per call   (target < 50 ms)")
    print(f"  same, CPU time of this process (other processes on the machine do not count): "
          f"p50 {r['finish_cpu_ms']['p50']} ms, mean {r['finish_cpu_ms']['mean']} ms")
    print(f"  reference, redaction of the call's utterances:           p50 {red['p50']} ms   "
          f"finish/redaction {r['finish_vs_redaction']}x")
    print(f"  reference, assist engine heard() on the call's finals:   p50 {hd['p50']} ms   "
          f"finish/assist {r['finish_vs_assist_finals']}x")
    print(f"  machine load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"  first call of the process (one-time caches, jieba): {r['first_call_ms']} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
