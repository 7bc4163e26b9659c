"""`callcue bench tui`: render lag of the supervisor TUI under a busy floor.

Publishes a realistic mix of contract messages (partial and final transcripts, alerts,
call starts and ends) for N lines at a fixed event rate through a real Mosquitto into
the headless SupervisorApp, and times each message from publish to the first screen
refresh that drew it (Textual's call_after_refresh after the redraw that applied it).
The reference in the same run is a plain paho subscriber timing publish -> delivery.
Also reports whether the backlog (published but not yet on screen) grows.
"""
from __future__ import annotations

import asyncio
import json
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt

from callcue.daemon import contract
from callcue.daemon.bus.client import set_nodelay

KINDS = [("talk_over", "warning", "agent", {"overlap_s": 1.4, "interrupter": "agent"}),
         ("long_silence", "warning", None, {"silence_s": 5.2, "ongoing": True}),
         ("fast_speech", "info", "agent", {"rate_syl_s": 7.1}),
         ("agitation", "critical", "customer", {"pitch_up_st": 5.5, "loudness_up_db": 4.1}),
         ("sensitive_word", "warning", "agent", {"phrase": "guarantee", "heard": "I guarantee it"})]
WORDS = "policy claim premium deductible renewal payment cover accident repair photo number account".split()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


class Traffic:
    """The floor's message mix, published at a fixed rate from one thread."""

    def __init__(self, client: mqtt.Client, root: str, lines: int, rate: float, seed: int):
        self.client = client
        self.root = root
        self.lines = [f"{i + 1:03d}" for i in range(lines)]
        self.rate = rate
        self.rng = random.Random(seed)
        self.sent: dict[bytes, float] = {}      # payload -> perf_counter at publish
        self.published = 0
        self.calls: dict[str, tuple[str, int]] = {}   # line -> (call_id, seq)
        self.t_call: dict[str, float] = {}
        self.lock = threading.Lock()

    def _pub(self, msg: contract.Message, measured: bool = True) -> None:
        payload = msg.encode()
        if measured:
            self.sent[payload] = time.perf_counter()
        self.client.publish(f"{self.root}/{msg.subtopic}", payload, qos=msg.qos, retain=msg.retain)
        if measured:
            with self.lock:
                self.published += 1

    def setup(self) -> None:
        for n, line in enumerate(self.lines):
            self._start_call(line, measured=False, seq=n)

    def _start_call(self, line: str, measured: bool, seq: int = 0) -> None:
        call_id = f"{line}-{uuid.uuid4().hex[:8]}"
        self.calls[line] = (call_id, 0)
        self.t_call[line] = time.monotonic() - self.rng.uniform(0, 300)
        # `since` in ms resolution plus a unique call id keeps every state payload distinct
        self._pub(contract.line_state(line, f"Agent {line}", call_id, "in_call", contract.now_iso()), measured)

    def one(self) -> None:
        line = self.rng.choice(self.lines)
        call_id, seq = self.calls[line]
        t = time.monotonic() - self.t_call[line]
        r = self.rng.random()
        if r < 0.80:                     # 60% partials, 20% finals
            seq += 1
            self.calls[line] = (call_id, seq)
            text = " ".join(self.rng.choice(WORDS) for _ in range(self.rng.randint(3, 12)))
            self._pub(contract.transcript(line, call_id, self.rng.choice(("agent", "customer")), text,
                                          r >= 0.60, max(0.0, t - 2.0), t, seq))
        elif r < 0.95:
            kind, sev, who, ev = self.rng.choice(KINDS)
            self._pub(contract.alert(line, call_id, kind, sev, who, max(0.0, t - 2.0), t, f"bench {kind}", ev))
        elif r < 0.975:
            self._pub(contract.line_state(line, f"Agent {line}", None, "idle", contract.now_iso()))
            self.calls[line] = (call_id, seq)
        else:
            self._start_call(line, measured=True)

    def run(self, duration: float, stop: threading.Event) -> None:
        start = time.perf_counter()
        n = 0
        while not stop.is_set():
            due = start + n / self.rate
            if due - start >= duration:
                break
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            self.one()
            n += 1


def main(args) -> int:
    """args: broker, lines, rate, duration, size, seed (the options of `callcue bench tui`)."""
    from callcue.daemon.bus.broker import EmbeddedBroker, free_port
    from callcue.daemon.config import BrokerConfig
    from callcue.tui.app import LiveFloor, SupervisorApp
    from callcue.tui.mqtt import floor_filters, parse_broker

    try:
        cols, rows = (int(x) for x in args.size.lower().split("x"))
    except ValueError:
        print(f"callcue bench tui: --size must look like 120x40 (got {args.size!r})", file=sys.stderr)
        return 2
    if args.lines < 1 or args.rate <= 0 or args.duration <= 0:
        print("callcue bench tui: --lines, --rate and --duration must be positive", file=sys.stderr)
        return 2
    tmp = tempfile.TemporaryDirectory(prefix="callcue-bench-tui-")
    broker_proc = None
    try:
        if args.broker:
            try:
                broker = parse_broker(args.broker)
            except ValueError as exc:
                print(f"callcue bench tui: --broker: {exc}", file=sys.stderr)
                return 2
        else:
            port = free_port()
            broker_proc = EmbeddedBroker("127.0.0.1", port, Path(tmp.name)).start()
            broker = BrokerConfig(url=f"mqtt://127.0.0.1:{port}", keepalive_s=10)
        return asyncio.run(_bench(args, broker, cols, rows, LiveFloor, SupervisorApp, floor_filters))
    finally:
        if broker_proc is not None:
            broker_proc.stop()
        tmp.cleanup()


async def _bench(args, broker, cols, rows, LiveFloor, SupervisorApp, floor_filters) -> int:
    site = f"bench{uuid.uuid4().hex[:6]}"
    root = contract.root(site, "f1")

    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{site}")
    pub.max_inflight_messages_set(1000)
    pub.connect(broker.host, broker.port)
    set_nodelay(pub)        # so the reference measures the broker hop, not the publisher's Nagle wait
    pub.loop_start()
    traffic = Traffic(pub, root, args.lines, args.rate, args.seed)

    # reference: the same messages to a bare paho subscriber in this process
    ref_lags: dict[str, list[float]] = {"alone": [], "app": []}
    phase = ["alone"]
    ref = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-ref-{site}")
    ref_ready = threading.Event()

    def ref_msg(client, userdata, msg):
        sent = traffic.sent.get(bytes(msg.payload))
        if sent is not None:
            ref_lags[phase[0]].append(time.perf_counter() - sent)
    ref.on_message = ref_msg
    ref.on_subscribe = lambda *a: ref_ready.set()
    ref.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{root}/#", qos=1)
    ref.connect(broker.host, broker.port)
    set_nodelay(ref)        # as the app's FeedClient does
    ref.loop_start()

    deadline = time.monotonic() + 10
    while not ref_ready.wait(0.05):
        if time.monotonic() > deadline:
            print("callcue bench tui: reference subscriber could not subscribe within 10 s", file=sys.stderr)
            return 1
    # phase 1: the broker and the bare subscriber alone, same traffic, no app in the process
    traffic.setup()
    ref_s = min(5.0, args.duration / 2)
    await asyncio.to_thread(traffic.run, ref_s, threading.Event())
    await asyncio.sleep(0.5)
    phase[0] = "app"
    traffic.published = 0
    traffic.sent = {}       # phase 1's messages (retained states included) are not measured again

    app_lag: list[tuple[float, float]] = []      # (publish time, lag)
    painted = [0]

    def on_painted(keys, t_paint):
        for k in keys:
            sent = traffic.sent.get(k)
            if sent is not None:
                app_lag.append((sent, t_paint - sent))
                painted[0] += 1

    live = LiveFloor(probe=lambda topic, payload: payload)
    app = SupervisorApp(broker, floor_filters(site, "f1", False), live=live, on_painted=on_painted,
                        user="bench", scope=f"{site}/f1")
    samples: list[tuple[float, int, int]] = []   # (t, published, painted)
    async with app.run_test(headless=True, size=(cols, rows)) as pilot:
        deadline = time.monotonic() + 10
        while len(live.model.lines) < args.lines:     # retained line states have arrived
            if time.monotonic() > deadline:
                print("callcue bench tui: the app did not connect and get the line states within 10 s",
                      file=sys.stderr)
                return 1
            await pilot.pause(0.05)
        await pilot.pause(0.5)
        cpu0 = time.process_time()
        refreshes0 = app.refreshes
        stop = threading.Event()
        t0 = time.perf_counter()
        thread = threading.Thread(target=traffic.run, args=(args.duration, stop), daemon=True)
        thread.start()
        while thread.is_alive():
            await pilot.pause(0.25)
            samples.append((time.perf_counter() - t0, traffic.published, painted[0]))
        t_end = time.perf_counter()
        drain_deadline = time.monotonic() + 10
        while painted[0] < traffic.published and time.monotonic() < drain_deadline:
            await pilot.pause(0.1)
        samples.append((time.perf_counter() - t0, traffic.published, painted[0]))
        cpu = time.process_time() - cpu0
        refreshes = app.refreshes - refreshes0
        screen_ok = len(app.board) == args.lines
    ref.loop_stop()
    ref.disconnect()
    pub.loop_stop()
    pub.disconnect()

    wall = t_end - t0
    n = traffic.published
    lags = [lag for _, lag in app_lag]
    half = t0 + args.duration / 2
    first = [lag for sent, lag in app_lag if sent < half]
    second = [lag for sent, lag in app_lag if sent >= half]
    run = [s for s in samples if s[0] <= args.duration]
    q = max(1, len(run) // 4)
    early = statistics.mean(p - d for _, p, d in run[q:2 * q]) if len(run) >= 4 else 0.0
    late = statistics.mean(p - d for _, p, d in run[-q:]) if run else 0.0
    growing = late > 2 * early + args.rate * 0.2 or pct(second, 0.95) > 2 * pct(first, 0.95) + 0.05

    def line(name, values):
        ms = [v * 1000 for v in values]
        print(f"  {name:28} {len(ms):6d} {pct(ms, .5):9.1f} {pct(ms, .95):9.1f} {max(ms, default=float('nan')):9.1f}")

    print(f"callcue bench tui: {args.lines} lines, {n} events in {wall:.1f} s ({n / wall:.0f}/s: partial and final "
          f"transcripts, alerts, call ends/starts) via mosquitto {broker.host}:{broker.port} into the headless "
          f"SupervisorApp at {cols}x{rows}")
    print(f"  {'':28} {'n':>6} {'p50 ms':>9} {'p95 ms':>9} {'max ms':>9}")
    line("reference: paho sub, no app", ref_lags["alone"])
    line("reference: paho sub, with app", ref_lags["app"])
    line("publish -> screen", lags)
    line("  first half", first)
    line("  second half", second)
    print(f"  on screen {painted[0]}/{n} ({n - painted[0]} never drawn); board rows {len(app.board)}"
          f"{'' if screen_ok else ' (expected ' + str(args.lines) + ')'}")
    print(f"  backlog (published - on screen), mean over the 2nd quarter {early:.1f}, last quarter {late:.1f}: "
          f"{'GROWING' if growing else 'not growing'}")
    print(f"  app: {refreshes / wall:.1f} redraws/s, process CPU {cpu / wall * 100:.0f}% of one core "
          f"(app + publisher + reference subscriber)")
    target = pct(lags, 0.95) < 0.200 and not growing and painted[0] == n
    print(f"  target p95 < 200 ms, no growing backlog: {'met' if target else 'NOT met'}")
    return 0
