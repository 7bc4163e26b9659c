"""`callcue replay CALL.wav`: the live pipeline over a recorded call (callcue.daemon.replay),
every message it would publish written as JSON Lines and/or sent to a broker."""
from __future__ import annotations

import logging
import sys
from datetime import date
from pathlib import Path
from typing import IO

from .. import contract
from ..audio import SourceError
from ..config import LineConfig, SourceConfig, default_config, load_config
from ..replay import choose_asr, replay_line, run_replay

log = logging.getLogger("callcue.daemon.replay")


def add_parser(sub) -> None:
    p = sub.add_parser("replay", help="run the pipeline over a recorded call, as fast as possible")
    p.add_argument("wav", type=Path, help="recorded call (16-bit PCM WAV; stereo = agent left, customer right)")
    p.add_argument("--config", type=Path, help="site config (detector thresholds, channel map, broker)")
    p.add_argument("--line", help="line id from the config to replay as (default: the first line)")
    p.add_argument("--events", type=Path, help="write every payload as JSON Lines here ('-' = stdout)")
    p.add_argument("--broker", help="also publish to this broker (mqtt://host:port); default: the config's broker")
    p.add_argument("--call-id", help="call id to use (default replay-<file name>)")
    p.add_argument("--rules", type=Path, help="sensitive words: one phrase per line (agent:/customer: prefix optional)")
    p.add_argument("--content", type=Path, help="content pack folder (default: the config's, else flows/insurance)")
    p.add_argument("--ivr", action="append", default=[], metavar="KEY=VALUE",
                   help="IVR context sent at call start, e.g. --ivr intent=claim (repeatable)")
    p.add_argument("--asr-model", help="speech model to use (default: the config's, else whisper-tiny.en if installed)")
    p.add_argument("--no-asr", action="store_true", help="prosody only, no speech recognition")
    p.add_argument("--record-model", help="installed Whisper for the call record's second pass (e.g. whisper-base; "
                                          "default: the config's asr.record_model, else the live model)")
    p.add_argument("--no-record", action="store_true", help="no second pass: the live finals are the call record")
    p.add_argument("--call-date", type=date.fromisoformat, metavar="YYYY-MM-DD",
                   help="the date the call was on: dates said relative to it ('yesterday', 'next Monday') in the "
                        "ticket (default: today, as live)")
    p.add_argument("--agent", help="agent name recorded with the call (default: the line's)")
    p.add_argument("--store", type=Path, metavar="DATA_DIR",
                   help="also record the call in the call store DATA_DIR/calls, as the daemon does "
                        "(`callcue calls show` prints it then)")
    p.set_defaults(func=run)


def run(args) -> int:
    cfg = load_config(args.config) if args.config else default_config()
    if args.line:
        matches = [l for l in cfg.lines if l.id == args.line]
        if not matches:
            print(f"callcue replay: no line {args.line!r} in {args.config}", file=sys.stderr)
            return 2
        line = matches[0]
    elif cfg.lines:
        line = cfg.lines[0]
    else:
        line = LineConfig(id="replay", source=SourceConfig(wav=args.wav))
    line = replay_line(cfg, line, args.wav)
    cfg = choose_asr(cfg, args)
    if args.content:
        cfg = cfg.model_copy(update={"assist": cfg.assist.model_copy(update={"content": args.content})})
    ivr = {}
    for item in args.ivr:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"callcue replay: --ivr {item!r}: expected KEY=VALUE", file=sys.stderr)
            return 2
        ivr[key] = value
    words = None
    rules = args.rules or (cfg.asr.sensitive_words if cfg.asr else None)
    if rules:
        from ..asr.words import load_words
        words = load_words(rules)
        if cfg.asr is None:
            print("callcue replay: --rules needs speech recognition, which is off", file=sys.stderr)
            return 2

    out: IO[str] | None = None
    if args.events:
        out = sys.stdout if str(args.events) == "-" else open(args.events, "w", encoding="utf-8")
    bus = None
    broker_url = args.broker or (cfg.broker.url if cfg.broker else None)
    if broker_url:
        from ..bus.client import Bus
        from ..config import BrokerConfig
        bcfg = cfg.broker if (cfg.broker and not args.broker) else BrokerConfig(url=broker_url)
        bus = Bus(cfg.topic_root, cfg.box, bcfg, outbox_path=None, client_id=f"callcue-replay-{contract.new_id()}")
        bus.start()

    def sink(msg: contract.Message) -> None:
        if out is not None:
            out.write(msg.jsonl(cfg.topic_root) + "\n")
        if bus is not None:
            bus.publish(msg)

    store = None
    if args.store:
        from ..store.calls import CallStore, StoreError
        try:
            store = CallStore(args.store / "calls")
            if store.knows(args.call_id or f"replay-{args.wav.stem}"):
                print(f"callcue replay: the store already has call {args.call_id or f'replay-{args.wav.stem}'!r}; "
                      f"give another --call-id", file=sys.stderr)
                store.close()
                return 2
        except StoreError as exc:
            print(f"callcue replay: {exc}", file=sys.stderr)
            return 2
    try:
        summary = run_replay(args.wav, cfg, line, sink, args.call_id, words, ivr or None,
                             call_date=args.call_date, store=store, agent=args.agent)
    except SourceError as exc:
        print(f"callcue replay: {exc}", file=sys.stderr)
        return 2
    finally:
        if out is not None and out is not sys.stdout:
            out.close()
        if store is not None:
            store.close()
        if bus is not None:
            if not bus.flush(10.0):
                log.error("replay: some messages were not acknowledged by the broker within 10 s")
            bus.stop()
    rt = summary["audio_s"] / max(summary["elapsed_s"], 1e-9)
    kinds = ", ".join(f"{k} x{v}" for k, v in sorted(summary["alerts"].items())) or "no alerts"
    print(f"{args.wav}: {summary['audio_s']:.1f} s of audio in {summary['elapsed_s']:.2f} s "
          f"({rt:.0f}x real time): {kinds}", file=sys.stderr)
    return 0
