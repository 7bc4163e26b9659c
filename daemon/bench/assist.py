"""`callcue bench assist`: how many events per second the assist engine handles on one core.

The events are the transcripts of the labelled calls (partials of growing length and
finals, both speakers, English and Chinese), fed through one session per call as the
daemon does. Three figures from the same run, on the same events:

- rule engine: sensitive words, required phrases, flows, offers (lexical matching), no
  knowledge search or embeddings: the part that runs on every event;
- a plain reference: a loop that lower-cases each text and tests every rule phrase with
  Python's `in` (what a naive implementation does), as the same-run yardstick;
- full engine: knowledge search and sentence embeddings included (finals only pay them).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def _events(calls: list[Path]) -> list[list[tuple]]:
    """Per call: (speaker, text, final, t_start, t_end, utterance) with 3 partials before each final."""
    import tempfile

    from ..eval.score_assist import render_labels
    out = []
    with tempfile.TemporaryDirectory(prefix="callcue-bench-assist-") as tmp:
        for path in calls:
            _, labels = render_labels(path, Path(tmp))
            evs = []
            for i, t in enumerate(sorted(labels["turns"], key=lambda t: t["t_end"])):
                text = t["text"]
                for k in (1, 2, 3):
                    cut = text[: max(1, len(text) * k // 4)]
                    evs.append((t["speaker"], cut, False, t["t_start"], t["t_start"] + (t["t_end"] - t["t_start"]) * k / 4, i))
                evs.append((t["speaker"], text, True, t["t_start"], t["t_end"], i))
            out.append(evs)
    return out


def _run_engine(engine, calls_events, repeat: int) -> tuple[int, float]:
    n = 0
    t0 = time.perf_counter()
    for r in range(repeat):
        for c, evs in enumerate(calls_events):
            s = engine.session("bench", f"b{r}-{c}")
            s.start()
            for (spk, text, final, ts, te, utt) in evs:
                s.heard(spk, text, final, ts, te, utt, te)
                s.tick(te)
                n += 1
            s.close(evs[-1][4] + 1 if evs else 0.0)
    return n, time.perf_counter() - t0


def _run_naive(phrases: list[str], calls_events, repeat: int) -> tuple[int, float]:
    n = 0
    hits = 0
    t0 = time.perf_counter()
    for _ in range(repeat):
        for evs in calls_events:
            for (_, text, _, _, _, _) in evs:
                low = text.lower()
                hits += sum(1 for p in phrases if p in low)
                n += 1
    return n, time.perf_counter() - t0


def bench_assist(calls: list[Path], min_time: float, content: Path | None) -> int:
    """calls: labelled call scripts (empty: the pack's eval/assist_calls, else the sample pack's:
    here they are only load, so any pack's calls do)."""
    if not calls:
        from ..eval.score_assist import default_calls
        calls = default_calls(content) or default_calls()
    if not calls:
        print("callcue bench assist: no labelled calls", file=sys.stderr)
        return 2
    from ..assist.setup import build_assist, load_encoder
    from ..config import AsrConfig, default_config

    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        pinned = "pinned to one core"
    except (AttributeError, OSError):
        pinned = "not pinned"
    cfg = default_config()
    cfg = cfg.model_copy(update={"asr": AsrConfig(), "assist": cfg.assist.model_copy(update={"content": content})})
    lexical = build_assist(cfg.model_copy(update={"assist": cfg.assist.model_copy(
        update={"knowledge": False, "embeddings": False})})).engine
    encoder = load_encoder(cfg)
    full = build_assist(cfg, encoder=encoder).engine
    events = _events(calls)
    total = sum(len(e) for e in events)
    c = lexical.content
    phrases = sorted({p.lower() for w in c.rules.pack.sensitive_words for p in [w.phrase]}
                     | {p.lower() for r in c.rules.pack.required_phrases for p in r.say_any + r.before_any}
                     | {k.lower() for f in c.flows for s in f.steps.values() for k in s.keywords + s.examples}
                     | {p.lower() for o in c.offers.offers.values() for p in o.when_any + o.made_when_any})

    def measure(fn, *args) -> float:
        fn(*args, 1)    # warm-up (caches, first-call costs)
        rep = 1
        while True:
            n, dt = fn(*args, rep)
            if dt >= min_time:
                return n / dt
            rep = max(rep * 2, int(rep * min_time / max(dt, 1e-6)) + 1)

    rule_eps = measure(_run_engine, lexical, events)
    naive_eps = measure(_run_naive, phrases, events)
    full_eps = measure(_run_engine, full, events)
    emb = full.health().get("embed_ms")
    print(f"assist engine, {len(calls)} labelled calls, {total} transcript events per pass "
          f"({sum(1 for e in events for x in e if x[2])} finals), {len(phrases)} rule phrases, {pinned}:")
    print(f"  rule engine (rules, flows, offers):     {rule_eps:10.0f} events/s   (target >= 10000)")
    print(f"  naive substring reference, same events: {naive_eps:10.0f} events/s   ratio engine/naive {rule_eps / naive_eps:.2f}")
    print(f"  full engine (+knowledge, embeddings):   {full_eps:10.0f} events/s"
          + (f"   mean embedding {emb:.2f} ms per new utterance" if emb else "   (embedding model not installed)"))
    return 0
