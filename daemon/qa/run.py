"""The bulk QA run: recordings -> worker processes -> the central store (one writer: this
process). Resumable: a recording whose path, size and modification time the store's
ledger (`qa_files`) already has as done (or as bad, unless `retry_bad`) is skipped, and a
call is written together with its ledger row, so an interrupted run loses at most the
calls in flight.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from ..warehouse.records import rows_from_summary
from ..warehouse.store import Warehouse
from .discover import CallMeta, Recording, discover
from .worker import rss_kb


@dataclass
class QaOptions:
    paths: list[Path]
    store: Path
    cfg: Any                                   # SiteConfig, its `asr` chosen (None: prosody only)
    workers: int = 0                           # 0: one per core
    threads: int = 0                           # recogniser threads per worker; 0: cores // workers
    defaults: CallMeta = field(default_factory=CallMeta)
    pattern: str | None = None
    table: dict[str, dict[str, Any]] | None = None
    agent_channel: int = 0
    customer_channel: int = 1
    retry_bad: bool = False
    progress: bool | None = None               # None: a bar when stderr is a terminal, else a line per call
    limit: int | None = None                   # at most this many recordings this run
    recycle: int | None = None                 # a worker is replaced (model loaded again) after this many calls
    lang_models: dict[str, str] = field(default_factory=dict)   # language -> speech model for its calls


@dataclass
class QaResult:
    total: int = 0                             # recordings found
    done: int = 0                              # processed into the store this run
    new_calls: int = 0
    skipped: int = 0                           # done (or bad) in an earlier run
    bad: list[tuple[str, str]] = field(default_factory=list)   # (file, reason) found this run
    bad_before: list[tuple[str, str]] = field(default_factory=list)
    audio_s: float = 0.0
    wall_s: float = 0.0
    first_result_s: float | None = None
    ready_s: float | None = None               # the first worker's models loaded, after the pool's start
    interrupted: bool = False
    samples: list[dict[str, Any]] = field(default_factory=list)   # per call: t, pid, rss_kb, audio_s, elapsed_s
    parent_rss_kb: list[int] = field(default_factory=list)
    workers: int = 0
    threads: int = 0


# every native thread pool a worker could start, sized before the worker imports anything:
# OpenMP (onnxruntime's and OpenVINO's builds), OpenBLAS/MKL/Accelerate under NumPy, NumExpr,
# Numba's threading layer. The recogniser's and the embedder's threads are set in code
# (asr.num_threads, Embedder threads=1); without these a worker's NumPy alone would start
# one BLAS thread per core, and 2 workers on 2 cores would fight over 4 spinning threads.
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
              "VECLIB_MAXIMUM_THREADS", "NUMBA_NUM_THREADS")


@contextmanager
def worker_env(threads: int):
    """The environment the pool's workers are spawned with (each worker's share of the cores),
    for as long as the pool lives (a worker replaced by --recycle is spawned with it too); the
    parent's own environment back afterwards."""
    old = {k: os.environ.get(k) for k in THREAD_ENV + ("MALLOC_ARENA_MAX",)}
    os.environ.update({k: str(threads) for k in THREAD_ENV})
    # glibc: at most two malloc arenas per worker instead of eight per core, so memory a
    # decode thread frees is found again by the next call (worker.release_memory)
    os.environ["MALLOC_ARENA_MAX"] = "2"
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def plan(workers: int, threads: int) -> tuple[int, int]:
    cores = os.cpu_count() or 1
    w = workers or cores
    t = threads or max(1, cores // w)
    return w, t


class _Lines:
    """Progress without a terminal: one line per finished recording."""

    def __init__(self, total_calls: int, total_audio: float):
        self.n, self.total, self.t0 = 0, total_calls, time.monotonic()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False

    def update(self, res: dict[str, Any], audio_done: float) -> None:
        self.n += 1
        wall = time.monotonic() - self.t0
        what = f"{res['audio_s']:.1f} s of audio in {res['elapsed_s']:.1f} s" if res["ok"] else f"BAD: {res['reason']}"
        print(f"[{self.n}/{self.total}] {res['key'].split('|')[0]}: {what}; "
              f"{audio_done / 3600 / max(wall / 3600, 1e-9):.1f} audio h/h", file=sys.stderr, flush=True)


class _Bar:
    """A rich progress bar: calls done, audio hours per hour, ETA (by audio still to do)."""

    def __init__(self, total_calls: int, total_audio: float):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
        self.total_calls, self.n, self.t0 = total_calls, 0, time.monotonic()
        self.p = Progress(TextColumn("[bold]qa"), BarColumn(), TextColumn("{task.fields[calls]}"),
                          TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"),
                          TimeRemainingColumn(), transient=False)
        self.task = self.p.add_task("qa", total=max(total_audio, 1e-6), calls=f"0/{total_calls} calls",
                                    rate="- audio h/h")

    def __enter__(self):
        self.p.start()
        return self

    def __exit__(self, *a):
        self.p.stop()
        return False

    def update(self, res: dict[str, Any], audio_done: float) -> None:
        self.n += 1
        wall = time.monotonic() - self.t0
        self.p.update(self.task, completed=audio_done, calls=f"{self.n}/{self.total_calls} calls",
                      rate=f"{audio_done / max(wall, 1e-9):.1f} audio h/h")
        if not res["ok"]:
            self.p.console.print(f"[red]bad[/red] {res['key'].split('|')[0]}: {res['reason']}")


def run_qa(opts: QaOptions, on_result: Callable[[dict[str, Any]], None] | None = None) -> QaResult:
    t_start = time.monotonic()
    recs = discover(opts.paths, opts.defaults, opts.pattern, opts.table)
    out = QaResult(total=len(recs))
    out.workers, out.threads = plan(opts.workers, opts.threads)
    with Warehouse(opts.store) as wh:
        ledger = wh.ledger()
        todo: list[Recording] = []
        for r in recs:
            prev = ledger.get(r.key)
            if prev is not None and prev[0] == r.size and prev[1] == r.mtime_ns and \
                    (prev[2] == "done" or not opts.retry_bad):
                out.skipped += 1
                if prev[2] == "bad":
                    out.bad_before.append((r.name, prev[3] or ""))
                continue
            if r.problem:
                wh.mark_file(r.key, r.size, r.mtime_ns, status="bad", reason=r.problem, call_id=None)
                out.bad.append((r.name, r.problem))
                continue
            todo.append(r)
        todo.sort(key=lambda r: -(r.audio_s or 0.0))          # longest first: no long call left for the end
        if opts.limit is not None:
            todo = todo[: opts.limit]
        if not todo:
            out.wall_s = time.monotonic() - t_start
            return out
        cfg = opts.cfg
        if cfg.asr is not None:                               # the model's trial load, once for every worker
            from ..asr.engine import AsrError
            from ..asr.factory import resolve_models
            from ..asr.preflight import run_preflight
            resolve_models(cfg.asr, cfg.asr.models_dir)
            problem = run_preflight(cfg.asr)
            if problem:
                raise AsrError(f"model {cfg.asr.model}: {problem}")
            for lang, model in opts.lang_models.items():
                asr = cfg.asr.model_copy(update={"model": model, "language": lang, "record_model": None})
                resolve_models(asr, asr.models_dir)
                problem = run_preflight(asr)
                if problem:
                    raise AsrError(f"model {model} (for {lang} calls): {problem}")
        tasks = [{"key": r.key, "files": [str(f) for f in r.files], "size": r.size, "mtime_ns": r.mtime_ns,
                  "meta": r.meta.model_dump(exclude_none=True), "agent_channel": opts.agent_channel,
                  "customer_channel": opts.customer_channel} for r in todo]
        total_audio = sum(r.audio_s or 0.0 for r in todo)
        show = sys.stderr.isatty() if opts.progress is None else opts.progress
        ui = (_Bar if show else _Lines)(len(tasks), total_audio)
        ctx = mp.get_context("spawn")
        env = worker_env(out.threads)
        env.__enter__()
        pool = ctx.Pool(out.workers, initializer=_init, initargs=(cfg, out.threads, opts.lang_models),
                        maxtasksperchild=opts.recycle)
        t0, t0_epoch = time.monotonic(), time.time()
        try:
            with ui:
                for res in pool.imap_unordered(_process, tasks, chunksize=1):
                    now = time.monotonic() - t0
                    if out.first_result_s is None:
                        out.first_result_s = now
                    if res.get("ready") is not None:
                        ready = res["ready"] - t0_epoch
                        out.ready_s = ready if out.ready_s is None else min(out.ready_s, ready)
                    if res["ok"]:
                        payload = res["payload"]
                        rows = rows_from_summary(payload, site=res["site"] or opts.defaults.site,
                                                 floor=res["floor"] or opts.defaults.floor, line=res["line"],
                                                 source="qa", file=res["file"],
                                                 received=datetime.now().isoformat(sep=" ", timespec="seconds"))
                        if wh.ingest(rows, qa_file=(res["key"], res["size"], res["mtime_ns"], res["audio_s"],
                                                    res["elapsed_s"])):
                            out.new_calls += 1
                        out.audio_s += res["audio_s"]
                    else:
                        wh.mark_file(res["key"], res["size"], res["mtime_ns"], None, res["elapsed_s"], status="bad",
                                     reason=res["reason"], call_id=None)
                        out.bad.append((res["key"].split("|")[0], res["reason"]))
                    out.done += 1
                    out.samples.append({"t": round(now, 2), "pid": res["pid"], "rss_kb": res["rss_kb"],
                                        "audio_s": res.get("audio_s"), "elapsed_s": res["elapsed_s"],
                                        "ok": res["ok"]})
                    out.parent_rss_kb.append(rss_kb())
                    ui.update(res, out.audio_s)
                    if on_result is not None:
                        on_result(res)
            pool.close()
        except KeyboardInterrupt:
            out.interrupted = True
            pool.terminate()
        finally:
            pool.join()
            env.__exit__(None, None, None)
        out.wall_s = time.monotonic() - t0
    return out


# top-level names for the spawn pool (the child imports this module by name)
def _init(cfg, threads, lang_models=None):
    from .worker import init
    init(cfg, threads, lang_models=lang_models)


def _process(task):
    from .worker import process
    return process(task)
