"""`callcue score`: precision / recall of detected alerts against synth labels
(callcue.daemon.eval.score_alerts)."""
from __future__ import annotations

import argparse
import json

from ..eval.score_alerts import TOLERANCE_S


def add_parser(sub) -> None:
    s = sub.add_parser(
        "score", help="score detected alerts against synth labels",
        description="Match alerts (JSON Lines, topic ending in /alert) to truth labels. Call X's labels "
                    "X.labels.json pair with X.events.jsonl in the events directory.")
    s.add_argument("--labels", required=True, help="a X.labels.json file or a directory of them")
    s.add_argument("--events", required=True, help="a X.events.jsonl file or a directory of them")
    s.add_argument("--tolerance", type=float, default=TOLERANCE_S, help="max |t_start| difference, seconds")
    s.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    s.set_defaults(func=run_score)


def run_score(args: argparse.Namespace) -> int:
    from ..eval.score_alerts import format_report, score_paths

    report = score_paths(args.labels, args.events, args.tolerance)
    if args.json:
        print(json.dumps({
            "calls": report.calls, "tolerance": report.tolerance, "ignored_alerts": report.ignored,
            "kinds": {k: {"tp": ks.tp, "fp": ks.fp, "fn": ks.fn, "precision": ks.precision, "recall": ks.recall,
                          "mean_abs_start_error": ks.mean_start_error, "mean_abs_end_error": ks.mean_end_error}
                      for k, ks in report.kinds.items()},
            "misses": [{"call": n, **e.as_dict()} for n, e in report.misses],
            "false_alarms": [{"call": n, **e.as_dict()} for n, e in report.false_alarms],
        }, indent=1))
    else:
        print(format_report(report))
    return 0
