"""Truth events of a rendered call, and scoring detected alerts against them.

Truth comes from the rendered timeline (turn boundaries measured in the audio), so
a label is exactly what a perfect detector with the documented thresholds would
report. Detections come from the JSON Lines event log (`callcue replay` output):
lines whose topic ends with ``/alert``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from ..yamlfile import ConfigError

KINDS = ("long_silence", "talk_over", "fast_speech", "agitation")
SILENCE_S = 5.0
OVERLAP_S = 1.0
TOLERANCE_S = 1.0
LABELS_SUFFIX = ".labels.json"
EVENTS_SUFFIX = ".events.jsonl"


@dataclass(frozen=True, slots=True)
class Event:
    kind: str
    speaker: str | None
    t_start: float
    t_end: float

    def as_dict(self) -> dict:
        return {"kind": self.kind, "speaker": self.speaker, "t_start": self.t_start, "t_end": self.t_end}


def _merged(intervals: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def derive_events(turns: Iterable[Mapping], silence_s: float = SILENCE_S,
                  overlap_s: float = OVERLAP_S) -> list[Event]:
    """Truth events from turns with speaker, style, t_start, t_end (seconds of real speech).

    long_silence: nobody speaks for >= silence_s between two speeches (not before the
    first or after the last). talk_over: both speak for >= overlap_s; the speaker is
    the one who started second. fast_speech: agent turns of style fast. agitation:
    turns of style agitated, either party.
    """
    turns = list(turns)
    r = lambda t: round(float(t), 3)  # noqa: E731
    events: list[Event] = []
    union = _merged((t["t_start"], t["t_end"]) for t in turns)
    for (_, end), (start, _) in zip(union, union[1:]):
        if start - end >= silence_s - 1e-9:
            events.append(Event("long_silence", None, r(end), r(start)))
    per = {sp: _merged((t["t_start"], t["t_end"]) for t in turns if t["speaker"] == sp)
           for sp in ("agent", "customer")}
    for a0, a1 in per["agent"]:
        for c0, c1 in per["customer"]:
            s, e = max(a0, c0), min(a1, c1)
            if e - s >= overlap_s - 1e-9:
                events.append(Event("talk_over", "customer" if c0 > a0 else "agent", r(s), r(e)))
    for t in turns:
        if t["style"] == "fast" and t["speaker"] == "agent":
            events.append(Event("fast_speech", "agent", r(t["t_start"]), r(t["t_end"])))
        elif t["style"] == "agitated":
            events.append(Event("agitation", t["speaker"], r(t["t_start"]), r(t["t_end"])))
    return sorted(events, key=lambda e: (e.t_start, e.kind))


# ---- scoring ---------------------------------------------------------------------

@dataclass
class KindScore:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    start_errors: list[float] = field(default_factory=list)
    end_errors: list[float] = field(default_factory=list)

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def mean_start_error(self) -> float | None:
        return sum(self.start_errors) / len(self.start_errors) if self.start_errors else None

    @property
    def mean_end_error(self) -> float | None:
        return sum(self.end_errors) / len(self.end_errors) if self.end_errors else None


@dataclass
class ScoreReport:
    tolerance: float
    kinds: dict[str, KindScore] = field(default_factory=lambda: {k: KindScore() for k in KINDS})
    misses: list[tuple[str, Event]] = field(default_factory=list)
    false_alarms: list[tuple[str, Event]] = field(default_factory=list)
    matches: list[tuple[str, Event, Event]] = field(default_factory=list)  # (call, truth, detected)
    ignored: int = 0          # alerts of kinds this scorer has no labels for (e.g. sensitive_word)
    calls: int = 0


def match_events(truth: list[Event], detected: list[Event], tolerance: float = TOLERANCE_S
                 ) -> tuple[list[tuple[Event, Event]], list[Event], list[Event]]:
    """Greedy one-to-one matching, closest t_start first. Returns (pairs, misses, false alarms).

    Same kind is required; same speaker too, except for long_silence (nobody speaks).
    """
    cands = []
    for i, t in enumerate(truth):
        for j, d in enumerate(detected):
            if d.kind != t.kind or (t.kind != "long_silence" and d.speaker != t.speaker):
                continue
            diff = abs(d.t_start - t.t_start)
            if diff <= tolerance + 1e-9:
                cands.append((diff, i, j))
    used_t: set[int] = set()
    used_d: set[int] = set()
    pairs = []
    for _, i, j in sorted(cands):
        if i in used_t or j in used_d:
            continue
        used_t.add(i)
        used_d.add(j)
        pairs.append((truth[i], detected[j]))
    misses = [t for i, t in enumerate(truth) if i not in used_t]
    false_alarms = [d for j, d in enumerate(detected) if j not in used_d]
    return pairs, misses, false_alarms


def score_call(name: str, truth: list[Event], detected: list[Event], report: ScoreReport) -> ScoreReport:
    """Add one call's results to ``report``; alerts of unlabelled kinds are only counted."""
    report.calls += 1
    known = [d for d in detected if d.kind in KINDS]
    report.ignored += len(detected) - len(known)
    for kind in KINDS:
        pairs, misses, fas = match_events([t for t in truth if t.kind == kind],
                                          [d for d in known if d.kind == kind], report.tolerance)
        ks = report.kinds[kind]
        ks.tp += len(pairs)
        ks.fn += len(misses)
        ks.fp += len(fas)
        for t, d in pairs:
            ks.start_errors.append(abs(d.t_start - t.t_start))
            if kind != "long_silence":
                ks.end_errors.append(abs(d.t_end - t.t_end))
            report.matches.append((name, t, d))
        report.misses += [(name, t) for t in misses]
        report.false_alarms += [(name, d) for d in fas]
    return report


def load_truth(path: str | Path) -> list[Event]:
    """The events of a labels JSON file written by render.write_call."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: labels file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a labels JSON file: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("events"), list):
        raise ConfigError(f"{path}: not a labels file (no 'events' list)")
    out = []
    for i, e in enumerate(doc["events"]):
        try:
            out.append(Event(e["kind"], e["speaker"], float(e["t_start"]), float(e["t_end"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: events[{i}]: needs kind, speaker, t_start, t_end ({exc!r})") from None
    return out


def load_alerts(path: str | Path) -> list[Event]:
    """Alerts from a JSON Lines event log: every line whose topic ends with /alert."""
    path = Path(path)
    out = []
    try:
        f = path.open(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: events file not found") from None
    with f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}:{n}: not JSON: {exc.msg}") from None
            if not isinstance(obj, dict) or not isinstance(obj.get("topic"), str):
                raise ConfigError(f"{path}:{n}: each line must be a JSON object with a 'topic' string")
            if not obj["topic"].endswith("/alert"):
                continue
            try:
                out.append(Event(str(obj["kind"]), obj["speaker"], float(obj["t_start"]), float(obj["t_end"])))
            except (KeyError, TypeError, ValueError) as exc:
                raise ConfigError(f"{path}:{n}: alert needs kind, speaker, t_start, t_end ({exc!r})") from None
    return out


def call_name(labels_path: Path) -> str:
    n = labels_path.name
    return n[: -len(LABELS_SUFFIX)] if n.endswith(LABELS_SUFFIX) else labels_path.stem


def pair_files(labels: str | Path, events: str | Path) -> list[tuple[str, Path, Path]]:
    """(call name, labels file, events file) for every call.

    Call X has labels X.labels.json and events X.events.jsonl. A labels directory
    means every *.labels.json in it; an events directory is searched for X.events.jsonl.
    A single events file is only accepted with a single labels file.
    """
    labels, events = Path(labels), Path(events)
    if labels.is_dir():
        lfiles = sorted(labels.glob("*" + LABELS_SUFFIX))
        if not lfiles:
            raise ConfigError(f"{labels}: no *{LABELS_SUFFIX} files in this directory")
    elif labels.exists():
        lfiles = [labels]
    else:
        raise ConfigError(f"{labels}: labels file or directory not found")
    out = []
    missing = []
    for lf in lfiles:
        name = call_name(lf)
        if events.is_dir():
            ef = events / (name + EVENTS_SUFFIX)
        elif len(lfiles) == 1:
            ef = events
        else:
            raise ConfigError(f"{events}: with a labels directory, --events must be a directory "
                              f"holding <call>{EVENTS_SUFFIX} files")
        if not ef.exists():
            missing.append(str(ef))
        out.append((name, lf, ef))
    if missing:
        raise ConfigError("events file(s) not found (call X needs X" + EVENTS_SUFFIX + "):\n  " + "\n  ".join(missing))
    return out


def score_paths(labels: str | Path, events: str | Path, tolerance: float = TOLERANCE_S) -> ScoreReport:
    report = ScoreReport(tolerance=tolerance)
    for name, lf, ef in pair_files(labels, events):
        score_call(name, load_truth(lf), load_alerts(ef), report)
    return report


def _f(x: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if x is None else fmt.format(x)


def _ev(name: str, e: Event, width: int) -> str:
    who = e.speaker or "-"
    return f"  {name:<{width}}  {e.kind:<13} {who:<9} {e.t_start:8.2f} .. {e.t_end:8.2f}"


def format_report(report: ScoreReport) -> str:
    lines = [f"{report.calls} call(s), tolerance {report.tolerance:g} s on t_start",
             f"{'kind':<13} {'TP':>4} {'FP':>4} {'FN':>4} {'prec':>6} {'recall':>6} {'|dt_start|':>10} {'|dt_end|':>9}"]
    tot = KindScore()
    for kind, ks in report.kinds.items():
        tot.tp += ks.tp
        tot.fp += ks.fp
        tot.fn += ks.fn
        lines.append(f"{kind:<13} {ks.tp:>4} {ks.fp:>4} {ks.fn:>4} {_f(ks.precision):>6} {_f(ks.recall):>6} "
                     f"{_f(ks.mean_start_error, '{:.2f}s'):>10} {_f(ks.mean_end_error, '{:.2f}s'):>9}")
    lines.append(f"{'all':<13} {tot.tp:>4} {tot.fp:>4} {tot.fn:>4} {_f(tot.precision):>6} {_f(tot.recall):>6}")
    if report.ignored:
        lines.append(f"({report.ignored} alert(s) of other kinds not scored)")
    width = max((len(n) for n, _ in report.misses + report.false_alarms), default=0)
    if report.misses:
        lines.append(f"misses ({len(report.misses)}):")
        lines += [_ev(n, e, width) for n, e in sorted(report.misses, key=lambda x: (x[0], x[1].t_start))]
    if report.false_alarms:
        lines.append(f"false alarms ({len(report.false_alarms)}):")
        lines += [_ev(n, e, width) for n, e in sorted(report.false_alarms, key=lambda x: (x[0], x[1].t_start))]
    return "\n".join(lines)
