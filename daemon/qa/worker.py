"""One worker process of a bulk QA run: loads the recogniser and the assist engine once
(`init`), then replays recordings one at a time (`process`) through the same code as
`callcue replay` (replay.run_replay), returning the call's summary record for the store.

Runs in a `spawn` child (no state inherited from the parent's threads); SIGINT is left to
the parent, which ends the pool. Never raises for a bad recording: the reason comes back.
"""
from __future__ import annotations

import ctypes
import gc
import hashlib
import logging
import os
import signal
import time
import wave
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_W: dict[str, Any] = {}


def rss_kb() -> int:
    """Resident set size of this process (Linux /proc), kB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def release_memory() -> None:
    """Give the C heap's free memory back to the system (glibc's malloc_trim). A call's audio,
    VAD segments and decoder tensors are allocated and freed by onnxruntime and NumPy on
    several threads; glibc keeps what they free in per-thread arenas and reuses it only in
    part, so a worker's RSS crept up call after call (5-30 MB per English call) though no
    object outlived its call (the Python heap stays flat under tracemalloc). Trimming after
    each call keeps the RSS flat; MALLOC_ARENA_MAX (run.worker_env) keeps the arenas few."""
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL("libc.so.6")
            _LIBC.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):       # not glibc: nothing to trim
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)


_LIBC = None


def init(cfg, threads: int, quiet: bool = True, lang_models: dict[str, str] | None = None) -> None:
    """Pool initializer: `cfg` is the SiteConfig (its `asr` already chosen by the parent, which
    also ran the model's preflight once); `threads` recogniser threads in this worker;
    `lang_models`: {language: installed speech model} for calls in that language (`callcue qa
    --asr-model-for zh=whisper-base`), each loaded on this worker's first call in it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s")
    from ..assist.setup import build_assist
    results: list = []
    engine = None
    if cfg.asr is not None:
        from ..asr.setup import build_engine
        cfg = cfg.model_copy(update={"asr": cfg.asr.model_copy(update={"num_threads": threads})})
        engine = build_engine(cfg.asr, results.append, cfg.asr.models_dir, preflight=False)
    _W.update(cfg=cfg, engine=engine, results=results, assist=build_assist(cfg), ready=time.time(),
              lang_models=dict(lang_models or {}) if cfg.asr is not None else {}, by_lang={})


def _pipeline(lang: str | None) -> tuple[Any, Any, list, Any]:
    """(cfg, engine, results, assist) for a call in `lang`: the speech model given for that
    language (a Whisper fixed to it, and an assist engine that knows the model hears it), made
    on first use and kept; else the run's own."""
    model = _W["lang_models"].get(lang or "")
    if model is None:
        return _W["cfg"], _W["engine"], _W["results"], _W["assist"]
    got = _W["by_lang"].get(lang)
    if got is None:
        from ..assist.setup import build_assist
        from ..asr.setup import build_engine
        base = _W["cfg"]
        asr = base.asr.model_copy(update={"model": model, "language": lang, "record_model": None})
        cfg = base.model_copy(update={"asr": asr})
        results: list = []
        engine = build_engine(asr, results.append, asr.models_dir, preflight=False)
        got = _W["by_lang"][lang] = (cfg, engine, results, build_assist(cfg))
    return got


def _hash(files: list[Path]) -> str:
    h = hashlib.sha1()
    for f in files:
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()[:16]


def _channels(path: Path) -> int:
    with wave.open(str(path), "rb") as w:
        return w.getnchannels()


def process(task: dict[str, Any]) -> dict[str, Any]:
    """task: {key, files, size, mtime_ns, meta (CallMeta fields), agent_channel, customer_channel}.
    The result's rss_kb is the worker's RSS once the call's memory is given back."""
    res = _process(task)
    gc.collect()          # the call's cycles (assist session, analyzer) before the trim
    release_memory()
    res["rss_kb"] = rss_kb()
    return res


def _process(task: dict[str, Any]) -> dict[str, Any]:
    from ..audio import SourceError
    from ..config import LineConfig, SourceConfig, SpeakerTap
    from ..replay import run_replay
    from .aftercall import complete_summary, needs_aftercall
    from .discover import CallMeta

    t0 = time.perf_counter()
    out = {"key": task["key"], "size": task["size"], "mtime_ns": task["mtime_ns"], "pid": os.getpid(),
           "ready": _W.get("ready")}
    files = [Path(f) for f in task["files"]]
    try:
        meta = CallMeta(**task["meta"])
        if len(files) == 1:
            try:
                n = _channels(files[0])
            except (wave.Error, EOFError, OSError):
                n = 2        # let the live WAV reader say precisely what is wrong
            if n < 2:
                raise SourceError(f"{files[0]}: mono recording; needs a stereo file (agent, customer) or a pair "
                                  f"<name>-agent.wav / <name>-customer.wav")
            source = SourceConfig(wav=files[0], pace="fast", agent=task["agent_channel"],
                                  customer=task["customer_channel"])
        else:
            source = SourceConfig(pace="fast", agent=SpeakerTap(wav=files[0]), customer=SpeakerTap(wav=files[1]))
        call_id = meta.call_id or f"qa-{_hash(files)}"
        line = LineConfig(id="qa", agent=meta.agent or "", team=meta.team, source=source)
        ivr = {k: v for k, v in (("intent", meta.intent), ("lang", meta.lang)) if v}
        msgs: list = []
        cfg, engine, results, assist = _pipeline(meta.lang)
        results.clear()
        known = meta.start_time()
        info = run_replay(files[0], cfg, line, msgs.append, call_id, None, ivr or None, assist=assist,
                          engine=engine, results=results,
                          call_date=known.date() if known is not None else None, agent=meta.agent)
    except SourceError as exc:
        reason = str(exc)
        for f in files:                     # the file is named by the caller already
            reason = reason.removeprefix(f"{f}: ")
        return {**out, "ok": False, "reason": reason, "elapsed_s": time.perf_counter() - t0, "rss_kb": rss_kb()}
    except Exception as exc:     # a bug must cost one recording, not the run
        log.exception("qa: %s failed", files[0])
        return {**out, "ok": False, "reason": f"internal error: {type(exc).__name__}: {exc}",
                "elapsed_s": time.perf_counter() - t0, "rss_kb": rss_kb()}
    alerts = [{k: m.payload.get(k) for k in ("kind", "speaker", "severity", "t_start", "t_end")}
              for m in msgs if m.output == "alert" and isinstance(m.payload, dict)]
    summaries = [m.payload for m in msgs if m.output == "summary" and isinstance(m.payload, dict)]
    payload = dict(summaries[-1]) if summaries else {"call_id": call_id, "summary": None, "ticket": None,
                                                     "scorecard": {}, "call_type": None, "ts": None}
    started = meta.start_time()
    if started is None:   # no date known: the recording's modification time is taken as the call's end
        started = datetime.fromtimestamp(task["mtime_ns"] / 1e9) - timedelta(seconds=info["audio_s"])
    if summaries and assist.engine is not None and needs_aftercall(payload):
        payload = complete_summary(payload, msgs, assist.engine.content, assist.redact, started.date(),
                                   info["audio_s"], meta.agent, ivr or None)
    payload["call"] = {"agent": meta.agent, "team": meta.team, "box": meta.box,
                       "started": started.replace(microsecond=0).isoformat(),
                       "duration_s": round(info["audio_s"], 2), "lang": meta.lang, "ivr_intent": meta.intent,
                       "alerts": alerts}
    return {**out, "ok": True, "payload": payload, "site": meta.site, "floor": meta.floor, "line": meta.line,
            "file": str(files[0]), "audio_s": info["audio_s"], "elapsed_s": time.perf_counter() - t0,
            "rss_kb": rss_kb()}
