"""After-call extraction against labelled calls: per ticket field, is the value right
when the call states it, and is it left empty when the call does not; call type right.

Labelled calls are call scripts (eval/synth/script.py) whose `expect` adds
`call_date`, `call_type` and `ticket` (field -> the value the call states; any field
of the template not listed is NOT stated and must stay empty):

    expect:
      ivr: {intent: claim, lang: en}
      call_date: 2026-03-10
      call_type: claim_report
      ticket:
        policy_number: HM55302
        claim_type: auto
        incident_date: 2026-03-10
        follow_up: {say: [adjuster], due: 2026-03-12}
        resolution: resolved

On script text (default) each turn's words go, redacted as the line would, through a
real assist session (flow, branch, steps, pushes, offers, rules), with turn times
estimated from syllables; then the unredacted turns and the session go to AfterCall
exactly as the line hands them at call end. Audio (phase B) replaces the script text by
what the recogniser heard.

    python -m callcue.daemon.eval.aftercall_score [CALLS_OR_FOLDERS...] [--set NAME]... [--embed | --both] [--notes] [--json]

Without CALLS or --set both sets are scored: flows/insurance/eval/aftercall (the pack's
templates were tuned on it) and flows/insurance/eval/aftercall_heldout (never tuned on);
`--set aftercall_heldout5` scores flows/insurance/eval/aftercall_heldout5 alone (a new
held-out set is scored once, by name, never by default). `--embed` runs the calls with
the English sentence embedder loaded, as a box with the model installed does; `--both`
scores every set both ways in the one run.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from ..text import syllables

PACK = Path(__file__).resolve().parents[2] / "flows" / "insurance"
TUNED = PACK / "eval" / "aftercall"
HELDOUT = PACK / "eval" / "aftercall_heldout"
DEV = PACK / "eval" / "aftercall_dev"          # the developer's own calls (tuned on): --set aftercall_dev
RATE = {"en": 4.0, "zh": 4.6}          # syllables per second at the scripts' normal speed
STYLE = {"normal": 1.0, "fast": 2.0, "agitated": 1.1}
DEFAULT_GAP = 0.6


def timeline(script) -> list[dict[str, Any]]:
    """The turns with start and end times estimated from their syllables (no rendering)."""
    out = []
    latest = 0.0
    for i, turn in enumerate(script.turns):
        dur = 0.25 + syllables(turn.text) / (RATE[script.language] * STYLE[turn.style])
        if turn.at is not None:
            start = turn.at
        else:
            gap = DEFAULT_GAP if turn.gap is None else turn.gap
            start = max(0.0, latest + gap) if i else (turn.gap or 0.0)
        out.append({"speaker": turn.speaker, "text": turn.text, "t_start": round(start, 2),
                    "t_end": round(start + dur, 2), "style": turn.style})
        latest = max(latest, start + dur)
    return out


def build_content(root: Path | None = None, embed: bool = False):
    """The pack as the daemon loads it; `embed`: with the English sentence embedder (as a box
    with the model installed runs; the call type then also uses the customer's sentence vectors)."""
    from ..assist.content import CachedEncoder, load_content
    encoder = None
    if embed:
        from ..assist.embed import Embedder
        encoder = CachedEncoder(Embedder.load())
    return load_content(root or PACK, encoder, 30.0)


def call_files(items: list[Path]) -> list[Path]:
    """Call scripts: files as given, folders as their *.yaml (sorted)."""
    out: list[Path] = []
    for p in items:
        out += sorted(p.glob("*.yaml")) if p.is_dir() else [p]
    return out


def run_call(content, script, call_id: str, redact=None, call_date: date | None = None) -> tuple[dict, Any, float]:
    """(AfterCall output, the CallRecord, seconds AfterCall took) for one script, on its text."""
    from ..aftercall.finish import default_redact
    from ..aftercall.record import Alert, CallRecord, Utterance
    from ..assist.engine import AssistEngine
    from ..config import AssistConfig
    redact = redact or default_redact
    ex = script.expect
    engine = AssistEngine(content, AssistConfig(knowledge=content.kb is not None))
    ivr = dict(ex.ivr) if ex is not None and ex.ivr else None
    session = engine.session("eval", call_id, ex.team if ex is not None else None, ivr)
    msgs = list(session.start())
    turns = timeline(script)
    t = 0.0
    for k, turn in sorted(enumerate(turns), key=lambda it: it[1]["t_end"]):
        while t + 0.5 <= turn["t_end"]:
            t += 0.5
            msgs += session.tick(t)
        msgs += session.heard(turn["speaker"], redact(turn["text"]), True, turn["t_start"], turn["t_end"], k,
                              turn["t_end"])
    end = max((x["t_end"] for x in turns), default=0.0) + script.tail
    msgs += session.close(end)
    alerts = [Alert.from_payload(m.payload) for m in msgs
              if m.subtopic.endswith("/alert") and isinstance(m.payload, dict)]
    utts = [Utterance(x["speaker"], x["text"], x["t_start"], x["t_end"], script.language) for x in turns]
    day = call_date or (ex.call_date if ex is not None and ex.call_date else date(2026, 3, 10))
    record = CallRecord.from_assist(session, utts, alerts, call_date=day, duration_s=end)
    t0 = time.perf_counter()
    out = content.aftercall.finish(record, redact=redact)
    return out, record, time.perf_counter() - t0


# ---------------- comparing values ----------------

def _norm_id(v: Any) -> str:
    return re.sub(r"[^A-Z0-9]", "", str(v).upper())


def same(ftype: str, want: Any, got: dict[str, Any]) -> bool:
    v = got.get("value") if got else None
    if v is None:
        return False
    if ftype == "id":
        return _norm_id(want) == _norm_id(v)
    if ftype == "phone":
        return re.sub(r"\D", "", str(want)) == re.sub(r"\D", "", str(v))
    if ftype in ("money", "number"):
        try:
            return abs(float(want) - float(v)) < 0.005
        except (TypeError, ValueError):
            return False
    if ftype == "date":
        return str(want) == str(v)
    if ftype == "text":
        if isinstance(want, dict):
            words = want.get("say") or []
            words = [words] if isinstance(words, str) else words
            ok = all(w.lower() in str(v).lower() for w in words)
            if want.get("due") is not None:
                ok = ok and str(want["due"]) == str(got.get("due"))
            return ok
        return str(want).lower() in str(v).lower()
    return str(want) == str(v)


@dataclass
class FieldTally:
    stated: int = 0
    right: int = 0
    filled_wrong: int = 0           # stated, a different value given
    not_stated: int = 0
    false_fill: int = 0


@dataclass
class Score:
    fields: dict[str, FieldTally] = field(default_factory=dict)
    calls: int = 0
    type_right: int = 0
    seconds: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def tally(self, name: str) -> FieldTally:
        return self.fields.setdefault(name, FieldTally())

    def totals(self) -> dict[str, Any]:
        st = sum(t.stated for t in self.fields.values())
        ri = sum(t.right for t in self.fields.values())
        ns = sum(t.not_stated for t in self.fields.values())
        ff = sum(t.false_fill for t in self.fields.values())
        s = sorted(self.seconds)
        return {"calls": self.calls, "call_type_accuracy": round(self.type_right / self.calls, 3) if self.calls else None,
                "stated_fields": st, "stated_right": round(ri / st, 3) if st else None,
                "not_stated_fields": ns, "false_fill_rate": round(ff / ns, 3) if ns else None,
                "wrong_values": sum(t.filled_wrong for t in self.fields.values()),
                "aftercall_ms_p50": round(1000 * s[len(s) // 2], 2) if s else None,
                "aftercall_ms_max": round(1000 * s[-1], 2) if s else None}


def score_call(content, path: Path, score: Score) -> None:
    from .synth.script import load_script
    script = load_script(path)
    ex = script.expect
    if ex is None or ex.call_type is None or ex.ticket is None:
        raise SystemExit(f"{path}: no after-call labels (expect.call_type and expect.ticket)")
    tickets = content.pack.tickets
    tpl = tickets.get(ex.call_type)
    if tpl is None:
        raise SystemExit(f"{path}: expect.call_type {ex.call_type!r} is not a ticket template")
    names = {f.name: f for f in tpl.fields}
    unknown = sorted(set(ex.ticket) - set(names))
    if unknown:
        raise SystemExit(f"{path}: expect.ticket names fields the template {tpl.id} lacks: {', '.join(unknown)}")
    out, _, secs = run_call(content, script, path.stem)
    score.calls += 1
    score.seconds.append(secs)
    if out["call_type"] == ex.call_type:
        score.type_right += 1
    else:
        score.notes.append(f"{path.stem}: call type {out['call_type']} (want {ex.call_type})")
    got_fields = (out["ticket"] or {}).get("fields") or {}
    for name, f in names.items():
        want = ex.ticket.get(name)
        got = got_fields.get(name) or {}
        t = score.tally(name)
        if want is None:
            t.not_stated += 1
            if got.get("value") is not None:
                t.false_fill += 1
                score.notes.append(f"{path.stem}: {name} = {got['value']!r} but the call does not state it "
                                   f"({got.get('evidence')!r})")
            continue
        if f.type == "enum" and want not in {o.value for o in f.options}:
            raise SystemExit(f"{path}: expect.ticket.{name}: {want!r} is not one of its options")
        t.stated += 1
        if same(f.type, want, got):
            t.right += 1
        else:
            if got.get("value") is not None:
                t.filled_wrong += 1
            extra = f", due {got.get('due')}" if f.type == "text" else ""
            score.notes.append(f"{path.stem}: {name} = {got.get('value')!r}{extra} (want {want!r})")


def score_set(content, calls: list[Path]) -> Score:
    score = Score()
    for p in calls:
        score_call(content, p, score)
    return score


def report(name: str, score: Score, notes: bool) -> None:
    tot = score.totals()
    print(f"{name}: {tot['calls']} call(s), script text")
    print(f"  {'field':20s} {'stated':>6s} {'right':>6s} {'wrong':>6s} {'empty':>6s} {'unstated':>8s} {'filled':>6s}")
    for fname, t in sorted(score.fields.items()):
        empty = t.stated - t.right - t.filled_wrong
        print(f"  {fname:20s} {t.stated:6d} {t.right:6d} {t.filled_wrong:6d} {empty:6d} {t.not_stated:8d} {t.false_fill:6d}")
    print(f"  stated fields right: {tot['stated_right']} of {tot['stated_fields']}; "
          f"false fills: {tot['false_fill_rate']} of {tot['not_stated_fields']} unstated; "
          f"call type: {tot['call_type_accuracy']}; AfterCall.finish p50 {tot['aftercall_ms_p50']} ms, "
          f"max {tot['aftercall_ms_max']} ms")
    if notes:
        for n in score.notes:
            print("  - " + n)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="aftercall_score", description=__doc__.split("\n\n")[0])
    ap.add_argument("calls", nargs="*", type=Path,
                    help="labelled call scripts or folders of them (default: the tuned and held-out sets)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME",
                    help="score the folder flows/insurance/eval/NAME (repeatable), e.g. --set aftercall_heldout5")
    ap.add_argument("--content", type=Path, help="content pack (default: flows/insurance)")
    ap.add_argument("--embed", action="store_true",
                    help="load the English sentence embedder (installed MiniLM), as a box with it runs")
    ap.add_argument("--both", action="store_true",
                    help="score every set twice in this one run: words only, then with the embedder")
    ap.add_argument("--notes", action="store_true", help="list every miss and false fill")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)
    sets: list[tuple[str, list[Path]]] = []
    for name in args.sets:
        folder = PACK / "eval" / name
        if not folder.is_dir():
            raise SystemExit(f"no folder {folder}")
        sets.append((name, sorted(folder.glob("*.yaml"))))
    if args.calls:
        sets.append(("given", call_files(args.calls)))
    if not sets:
        sets = [("tuned", sorted(TUNED.glob("*.yaml"))), ("held-out", sorted(HELDOUT.glob("*.yaml")))]
    figs = {}
    modes = [False, True] if args.both else [args.embed]
    for embed in modes:
        content = build_content(args.content, embed=embed)
        for name, calls in sets:
            if not calls:
                continue
            label = f"{name}, with the embedder" if embed and args.both else name
            s = score_set(content, calls)
            figs[label] = s.totals()
            if not args.json:
                report(label, s, args.notes)
    if args.json:
        print(json.dumps(figs, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
