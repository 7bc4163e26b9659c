"""`callcue report --store DIR ... -o report.html`: one self-contained HTML report (and CSV
tables) from central stores (callcue.daemon.report)."""
from __future__ import annotations

import sys
import time
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="one offline HTML report (and CSV) from central stores",
                       description="Headline figures, issues, alerts per 100 calls, pitch rate, flow completion, QA "
                                   "scores, handle time, talk/listen, dead air, agitation, trends; agents -> calls -> "
                                   "timeline and scorecard. One file: no network, no scripts from elsewhere.")
    p.add_argument("--store", type=Path, action="append", required=True, help="central store folder (repeatable)")
    p.add_argument("--from", dest="day_from", metavar="YYYY-MM-DD", help="first day (call start, site time)")
    p.add_argument("--to", dest="day_to", metavar="YYYY-MM-DD", help="last day, included")
    p.add_argument("--lang", choices=("en", "zh"), default="en", help="report language (default en)")
    p.add_argument("-o", "--out", type=Path, required=True, help="the HTML file to write")
    p.add_argument("--csv", type=Path, metavar="DIR", help="also write every table as CSV into DIR")
    p.add_argument("--calls-per-agent", type=int, default=20, help="calls listed (with details) per agent, lowest "
                   "QA score first (default 20; fewer when --max-calls would be passed)")
    p.add_argument("--max-calls", type=int, default=3000, help="call detail sections at most (default 3000)")
    p.add_argument("--threads", type=int, default=0, help="aggregation queries run at once (default: one per core; "
                   "1: one after the other)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..report.build import build_report
    from ..warehouse.store import StoreError
    t0 = time.perf_counter()
    try:
        res = build_report(args.store, args.out, args.lang, args.day_from, args.day_to, args.csv,
                           args.calls_per_agent, args.max_calls, threads=args.threads or None)
    except (StoreError, ValueError) as exc:
        print(f"callcue report: {exc}", file=sys.stderr)
        return 2
    print(f"callcue report: {args.out}: {res['calls']} calls, {res['charts']} charts, {res['details']} call details, "
          f"{res['bytes'] / 1e6:.1f} MB in {time.perf_counter() - t0:.1f} s"
          + (f"; {len(res['csv'])} CSV tables in {args.csv}" if args.csv else ""), file=sys.stderr)
    return 0
