"""`callcue qa PATH... --store DIR`: the replay pipeline over folders of recorded calls, on
every core, into the central store (callcue.daemon.qa); resumable."""
from __future__ import annotations

import signal
import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("qa", help="check recorded calls in bulk (every core) into a central store; resumable",
                       description="Run the live pipeline (as callcue replay) over WAV recordings: stereo (agent "
                                   "left, customer right) or mono pairs NAME-agent.wav / NAME-customer.wav, 8 or "
                                   "16 kHz. Metadata from --name-pattern, --meta CSV/JSON and NAME.meta.json "
                                   "sidecars. A second run skips what is done.")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="recordings or folders of recordings")
    p.add_argument("--store", type=Path, required=True, help="central store folder (made if missing)")
    p.add_argument("--workers", type=int, default=0, help="worker processes, one recogniser each (default: one per core)")
    p.add_argument("--threads", type=int, default=0, help="recogniser threads per worker (default: cores / workers)")
    p.add_argument("--config", type=Path, help="site config (detector thresholds, asr, assist); default: built-in")
    p.add_argument("--asr-model", help="speech model (default: the config's, else whisper-tiny.en if installed)")
    p.add_argument("--no-asr", action="store_true", help="prosody only, no speech recognition")
    p.add_argument("--asr-model-for", action="append", default=[], metavar="LANG=MODEL",
                   help="speech model for the calls in LANG (repeatable), e.g. zh=whisper-base: Mandarin calls "
                        "then get transcripts, assist and a QA score instead of prosody only")
    p.add_argument("--content", type=Path, help="content pack folder (default: the config's, else flows/insurance)")
    p.add_argument("--name-pattern", help="file name fields, e.g. '{date}_{time}_{agent}_{team}_{call_id}'")
    p.add_argument("--meta", type=Path, help="metadata table: CSV with a header, or JSON; column 'file' names the recording")
    p.add_argument("--site", default="qa", help="site of calls whose metadata does not say (default qa)")
    p.add_argument("--floor", default="recordings", help="floor of calls whose metadata does not say")
    p.add_argument("--team", help="team of calls whose metadata does not say")
    p.add_argument("--lang", choices=("en", "zh"), help="language of calls whose metadata does not say")
    p.add_argument("--agent-channel", type=int, default=0, help="stereo files: the agent's channel (default 0, left)")
    p.add_argument("--customer-channel", type=int, default=1, help="stereo files: the customer's channel (default 1)")
    p.add_argument("--retry-bad", action="store_true", help="try again the recordings an earlier run found bad")
    p.add_argument("--no-progress", action="store_true", help="a line per call instead of the progress bar")
    p.add_argument("--limit", type=int, help="process at most N recordings this run")
    p.add_argument("--recycle", type=int, metavar="N", help="replace each worker after N calls (its memory back, "
                   "at the cost of loading the model again)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pydantic import ValidationError

    from ..config import default_config, load_config
    from ..qa.discover import CallMeta, load_table, name_pattern
    from ..qa.run import QaOptions, run_qa
    from ..replay import choose_asr
    from callcue.models.installed import ModelError

    from ..asr.engine import AsrError
    from ..warehouse.store import StoreError

    cfg = load_config(args.config) if args.config else default_config()
    cfg = choose_asr(cfg, args)
    if args.content:
        cfg = cfg.model_copy(update={"assist": cfg.assist.model_copy(update={"content": args.content})})
    try:
        if args.name_pattern:
            name_pattern(args.name_pattern)
        table = load_table(args.meta) if args.meta else None
        defaults = CallMeta(site=args.site, floor=args.floor, team=args.team, lang=args.lang)
        lang_models = _lang_models(args.asr_model_for)
    except (ValueError, OSError, ValidationError) as exc:
        print(f"callcue qa: {exc}", file=sys.stderr)
        return 2
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        print(f"callcue qa: not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    opts = QaOptions(paths=args.paths, store=args.store, cfg=cfg, workers=args.workers, threads=args.threads,
                     defaults=defaults, pattern=args.name_pattern, table=table, agent_channel=args.agent_channel,
                     customer_channel=args.customer_channel, retry_bad=args.retry_bad,
                     progress=False if args.no_progress else None, limit=args.limit,
                     recycle=args.recycle, lang_models=lang_models)
    # Ctrl-C and a service stop end the run cleanly (calls in flight are done again next time),
    # also when a shell started it in the background with SIGINT ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        res = run_qa(opts)
    except (StoreError, AsrError, ModelError) as exc:
        print(f"callcue qa: {exc}", file=sys.stderr)
        return 2
    h = res.audio_s / 3600
    rate = f"{res.done / max(res.wall_s / 60, 1e-9):.1f} calls/min, {h / max(res.wall_s / 3600, 1e-9):.1f} audio h/h" \
        if res.done else "nothing to do"
    print(f"callcue qa: {res.total} recording(s): {res.done} processed ({res.new_calls} new calls, {h:.2f} h of "
          f"audio in {res.wall_s:.0f} s: {rate}; {res.workers} worker(s) x {res.threads} thread(s)), "
          f"{res.skipped} done before, {len(res.bad)} bad", file=sys.stderr)
    for name, why in res.bad:
        print(f"  bad: {name}: {why}", file=sys.stderr)
    if res.bad_before:
        print(f"  {len(res.bad_before)} found bad by an earlier run (--retry-bad tries them again)", file=sys.stderr)
    if res.interrupted:
        print("callcue qa: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


def _lang_models(items: list[str]) -> dict[str, str]:
    """--asr-model-for LANG=MODEL ... -> {LANG: MODEL}."""
    out = {}
    for it in items:
        lang, sep, model = it.partition("=")
        if not sep or not lang.strip() or not model.strip():
            raise ValueError(f"--asr-model-for {it!r}: give LANG=MODEL, e.g. zh=whisper-base")
        out[lang.strip()] = model.strip()
    return out
