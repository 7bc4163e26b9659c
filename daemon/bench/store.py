"""`callcue bench store`: write throughput of CallStore.add_event against plain TinyDB,
in one run (also `python -m callcue.daemon.bench.store [--events N] [--lines L]`).

Both sides store the same events durably (fsync): plain TinyDB with its default
JSONStorage inserts each event into one file (rewritten and fsynced per insert,
as TinyDB does); CallStore's time runs from the first add_event until close()
returns, so its batched flushes are included. Not a test: figures depend on the
disk.
"""
from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from tinydb import TinyDB
from tinydb.storages import JSONStorage

from ..store.calls import CallStore


def make_events(n: int, lines: int) -> list[tuple[str, str, dict]]:
    out = []
    for i in range(n):
        line = i % lines
        kind = "alert" if i % 4 == 0 else "transcript"
        payload = ({"id": f"a{i}", "kind": "talk_over", "severity": "warn", "speaker": "agent", "t_start": i * 0.5,
                    "t_end": i * 0.5 + 1.2, "message": "agent talked over the customer",
                    "evidence": {"overlap_s": 1.2}}
                   if kind == "alert" else
                   {"speaker": "customer", "text": "I was charged twice for the same order last month", "final": True,
                    "t_start": i * 0.5, "t_end": i * 0.5 + 2.0, "seq": i})
        out.append((f"call-{line:02d}", kind, payload))
    return out


def bench_callstore(folder: Path, events: list[tuple[str, str, dict]], lines: int) -> tuple[float, float]:
    """(seconds until everything is on disk, seconds spent inside add_event calls)"""
    store = CallStore(folder)
    for k in range(lines):
        store.start_call(f"L{k:02d}", f"call-{k:02d}", f"agent{k}", "2024-05-01T09:00:00+08:00", "auto")
    store.flush()
    t0 = time.perf_counter()
    in_call = 0.0
    for call_id, kind, payload in events:
        while True:
            t = time.perf_counter()
            ok = store.add_event(call_id, kind, payload)
            in_call += time.perf_counter() - t
            if ok:
                break
            time.sleep(0.001)  # queue full: wait, so both sides store every event
    store.close()
    return time.perf_counter() - t0, in_call


def bench_plain_tinydb(path: Path, events: list[tuple[str, str, dict]]) -> float:
    db = TinyDB(path, storage=JSONStorage)
    table = db.table("events")
    t0 = time.perf_counter()
    for call_id, kind, payload in events:
        table.insert({"call_id": call_id, "kind": kind, "payload": payload})
    db.close()
    return time.perf_counter() - t0


def run(n: int, lines: int) -> dict[str, float]:
    events = make_events(n, lines)
    with tempfile.TemporaryDirectory(prefix="callcue-bench-") as tmp:
        t_store, t_calls = bench_callstore(Path(tmp) / "store", events, lines)
        t_plain = bench_plain_tinydb(Path(tmp) / "plain.json", events)
    store_rate, plain_rate = n / t_store, n / t_plain
    return {"events": n, "lines": lines, "callstore_s": t_store, "plain_s": t_plain,
            "callstore_events_per_s": store_rate, "plain_events_per_s": plain_rate,
            "ratio": store_rate / plain_rate, "add_event_us": t_calls / n * 1e6}


def main(events: int = 2000, lines: int = 20) -> int:
    # the producer here outruns the writer on purpose and retries; drop warnings are noise
    logging.getLogger("callcue.daemon.store").setLevel(logging.ERROR)
    r = run(events, lines)
    print(f"{r['events']} events over {r['lines']} calls")
    print(f"  CallStore.add_event (batched, until close): {r['callstore_events_per_s']:10.0f} events/s "
          f"({r['callstore_s']:.3f} s)")
    print(f"  plain TinyDB + JSONStorage insert:          {r['plain_events_per_s']:10.0f} events/s "
          f"({r['plain_s']:.3f} s)")
    print(f"  ratio: {r['ratio']:.1f}x")
    print(f"  caller cost of one add_event (validate + enqueue): {r['add_event_us']:.1f} us")
    return 0


if __name__ == "__main__":
    import sys

    from ..cli import main as cli
    raise SystemExit(cli(["bench", "store", *sys.argv[1:]]))
