"""`callcue demo`: the whole box on embedded defaults.

An embedded Mosquitto, the bundled demo calls replayed in real time on several
virtual lines, and a readable live log of what an agent desk or supervisor would
receive, read back from the broker over MQTT (so the demo shows the wire, too).
"""
from __future__ import annotations

import json
import logging
import signal
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path

import paho.mqtt.client as mqtt

from .. import contract
from ..bus.broker import free_port, port_is_open
from ..config import LineConfig, SourceConfig, default_config

DEMO_CALLS = Path(__file__).resolve().parents[2] / "flows" / "demo" / "calls"
DEMO_WORDS = Path(__file__).resolve().parents[2] / "flows" / "demo" / "sensitive_words.txt"
AGENTS = ("Alice Wong", "Bob Li", "Chen Jing", "Dana Smith", "Eli Zhang", "Fang Wu")


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="embedded broker + demo calls on virtual lines + live event log")
    p.add_argument("--lines", type=int, default=4, help="virtual lines (demo calls are reused round-robin)")
    p.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: until Ctrl-C)")
    p.add_argument("--port", type=int, default=0, help="embedded broker port (default: 1883 if free, else a free one)")
    p.add_argument("--data-dir", type=Path, help="call store and broker data (default: a temp dir)")
    p.add_argument("--calls", type=Path, default=DEMO_CALLS, help="folder of demo call WAVs")
    p.add_argument("--no-asr", action="store_true", help="prosody alerts only, no speech recognition")
    p.add_argument("--asr-model", help="speech model (default: whisper-tiny.en when installed)")
    p.add_argument("--rules", type=Path, default=DEMO_WORDS, help="sensitive words list")
    p.set_defaults(func=run)


def format_event(topic: str, payload: bytes) -> str | None:
    """One readable log line for a contract message, or None for noise (health, partials)."""
    parts = topic.split("/")
    rel = parts[4:]                     # after callcue/v1/site/floor
    if not rel:
        return None
    try:
        body = payload.decode()
        p = json.loads(body) if body[:1] in "{[" else body
    except (UnicodeDecodeError, json.JSONDecodeError):
        return f"{topic}: (unreadable payload)"
    clock = time.strftime("%H:%M:%S")
    if rel[0] == "box" and rel[-1] == "status":
        return f"{clock} box {rel[1]} is {p}"
    if rel[0] != "line" or len(rel) < 3:
        return None
    line, what = rel[1], rel[2]
    if what == "state":
        return f"{clock} line {line:7} {p['status']:8} agent={p['agent']!r} call={p['call_id']}"
    if what == "alert":
        who = p.get("speaker") or "-"
        return (f"{clock} line {line:7} ALERT {p['severity']:8} {p['kind']:13} {who:8} "
                f"{p['t_start']:6.1f}-{p['t_end']:6.1f}s  {p['message']}")
    if what == "transcript" and p.get("final"):
        return f"{clock} line {line:7} {p['speaker']:8}: {p['text']}"
    if what == "suggestion":
        label = {"knowledge": "ARTICLE", "next_step": "NEXT", "offer": "OFFER"}.get(p.get("kind"), "CUE")
        extra = f" (score {p['score']:.2f}, for “{p.get('question', '')[:50]}”)" if p.get("kind") == "knowledge" else ""
        return f"{clock} line {line:7} {label:7} {p.get('title', '')}{extra}"
    if what == "flow":
        if not p.get("flow"):
            return None
        steps = " ".join(("■" if s["done"] else "□") for s in p.get("steps", []))
        nxt = (p.get("next_step") or {}).get("title") or "-"
        kind = p.get("call_type") or "call type not known yet"
        return f"{clock} line {line:7} FLOW    {p['flow']} [{kind}] {steps} {round(100 * p['completion'])}% next: {nxt}"
    if what == "summary":
        return f"{clock} line {line:7} SUMMARY {p.get('summary', '')}"
    return None


def call_language(wav: Path) -> str | None:
    """The demo call's language, from the labels its script rendered next to it."""
    labels = wav.with_name(wav.stem + ".labels.json")
    try:
        return json.loads(labels.read_text(encoding="utf-8")).get("language")
    except (OSError, ValueError):
        return None


def wav_duration(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / w.getframerate()


def simulate_cti(client: mqtt.Client, root: str, lines: list[LineConfig], durations: dict[str, float],
                 done: threading.Event, languages: dict[str, str | None]) -> None:
    """Plays the PBX: call_start when a demo call's recording (re)starts, call_end at its end,
    through the real `cmd/cti` topics. The looping WAV lines start with the daemon."""
    start = time.monotonic()
    n: dict[str, int] = {line.id: 0 for line in lines}
    pending_end: dict[str, float] = {}
    while not done.is_set():
        now = time.monotonic() - start
        for line in lines:
            dur = durations[line.id]
            if line.id in pending_end and now >= pending_end[line.id]:
                client.publish(f"{root}/{contract.cmd_topic(line.id, 'cti')}", json.dumps({"op": "call_end"}), qos=1)
                del pending_end[line.id]
            if now >= n[line.id] * dur:
                call_id = f"{line.id}-{n[line.id] + 1:04d}"
                start_cmd = {"op": "call_start", "call_id": call_id, "agent": line.agent}
                if languages.get(line.id):    # the IVR's language menu, as a PBX would pass it on
                    start_cmd["ivr"] = {"lang": languages[line.id]}
                client.publish(f"{root}/{contract.cmd_topic(line.id, 'cti')}", json.dumps(start_cmd), qos=1)
                n[line.id] += 1
                pending_end[line.id] = n[line.id] * dur - 0.2
        done.wait(0.1)


def run(args) -> int:
    from ..app import Daemon
    from ..replay import choose_asr, wav_rate

    calls = sorted(args.calls.glob("*.wav"))
    if not calls:
        print(f"callcue demo: no demo calls in {args.calls}; render them with "
              f"`hardware/provision.sh setup` (or `callcue synth {args.calls}/<name>.yaml -o ...`)", file=sys.stderr)
        return 2
    port = args.port or (1883 if not port_is_open("127.0.0.1", 1883) else free_port())
    tmp = None
    if args.data_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="callcue-demo-")
        data_dir = Path(tmp.name)
    else:
        data_dir = args.data_dir
    lines = []
    for i in range(max(1, args.lines)):
        wav = calls[i % len(calls)]
        sr = wav_rate(wav)
        lines.append(LineConfig(id=f"demo{i + 1}", agent=AGENTS[i % len(AGENTS)], sample_rate=sr,
                                source=SourceConfig(wav=wav, pace="realtime", loop=True)))
    cfg = default_config(lines=lines, data_dir=data_dir)
    cfg = cfg.model_copy(update={
        "embedded_broker": cfg.embedded_broker.model_copy(update={"port": port}),
        # calls come from the simulated CTI below, as they would from a PBX integration
        "calls": cfg.calls.model_copy(update={"auto": False}),
    })
    cfg = choose_asr(cfg, args)
    if cfg.asr is not None and args.rules:
        cfg = cfg.model_copy(update={"asr": cfg.asr.model_copy(update={"sensitive_words": args.rules})})

    daemon = Daemon(cfg)
    daemon.start()
    print(f"callcue demo: embedded broker on 127.0.0.1:{port}; {len(lines)} virtual lines replaying "
          f"{len(calls)} demo call(s) in real time. Watch raw messages with:\n"
          f"  mosquitto_sub -h 127.0.0.1 -p {port} -t 'callcue/#' -v\nCtrl-C stops.", flush=True)

    log_client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"callcue-demo-log-{port}")

    def on_connect(client, userdata, flags, rc, props=None):
        client.subscribe(f"{cfg.topic_root}/#", qos=1)

    def on_message(client, userdata, msg):
        line = format_event(msg.topic, msg.payload)
        if line:
            print(line, flush=True)

    log_client.on_connect = on_connect
    log_client.on_message = on_message
    log_client.connect("127.0.0.1", port)
    log_client.loop_start()

    done = threading.Event()
    durations = {line.id: wav_duration(line.source.wav) for line in lines}
    languages = {line.id: call_language(line.source.wav) for line in lines}
    cti = threading.Thread(target=simulate_cti, args=(log_client, cfg.topic_root, lines, durations, done, languages),
                           name="demo-cti", daemon=True)
    cti.start()
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait(args.duration if args.duration > 0 else None)
    finally:
        daemon.stop()
        time.sleep(0.3)              # let the log print the final messages
        log_client.loop_stop()
        log_client.disconnect()
        if tmp is not None:
            tmp.cleanup()
    h = daemon.health()
    print(f"callcue demo: stopped; frames dropped {h['frames_dropped']}, errors {h['errors']}", flush=True)
    return 0
