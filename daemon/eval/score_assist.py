"""`callcue score-assist`: the assist engine against labelled calls.

Labelled calls are call scripts (daemon/eval/synth/script.py) whose turns carry `expect`
truth: the knowledge topic a question should push, the flow steps a turn completes,
offers, and the required phrases the agent skips. Two ways to run them:

- text (default): each turn is rendered with espeak-ng only to learn its real timing,
  and its script text goes to the engine as the final transcript at the turn's end.
  This scores the engine's logic alone, in both languages.
- audio (`--audio`): the rendered call is replayed through the whole pipeline with
  speech recognition (`callcue replay`), so recognition errors and delays count too.
  English only with the demo model (Whisper tiny.en).

Scores: knowledge precision@1 (the first push for a labelled question has its topic),
coverage (labelled questions that got a push) and push delay after the question ended;
flow step accuracy (each step of the call's path: marked done iff labelled done);
missing_phrase precision/recall; offers suggested/made as labelled.

The labelled calls live with the pack they measure: PACK/eval/assist_calls/ (the
sample pack's are flows/insurance/eval/assist_calls/).
"""
from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .. import contract

PUSH_WINDOW_S = 2.0     # a push counts for a question if it comes within this long after the question ended


@dataclass
class AssistScore:
    questions: int = 0
    answered: int = 0              # a knowledge push tied to the question
    correct: int = 0               # ... with the labelled topic
    late: int = 0                  # pushes later than PUSH_WINDOW_S after the question ended
    delays: list[float] = field(default_factory=list)
    stray_pushes: int = 0          # knowledge pushes for turns without a labelled question
    steps_total: int = 0
    steps_right: int = 0
    steps_false: int = 0           # marked done but not labelled
    steps_missed: int = 0          # labelled but not marked
    flows_right: int = 0
    flows_total: int = 0
    missing_tp: int = 0
    missing_fp: int = 0
    missing_fn: int = 0
    offers_fit_tp: int = 0
    offers_fit_fn: int = 0
    offers_fit_fp: int = 0
    offers_made_tp: int = 0
    offers_made_fn: int = 0
    offers_made_fp: int = 0
    notes: list[str] = field(default_factory=list)

    def figures(self) -> dict:
        r = lambda a, b: round(a / b, 3) if b else None
        d = sorted(self.delays)
        return {
            "knowledge_p_at_1": r(self.correct, self.answered), "knowledge_coverage": r(self.answered, self.questions),
            "knowledge_questions": self.questions, "knowledge_late": self.late, "knowledge_stray": self.stray_pushes,
            "push_delay_p50_s": round(d[len(d) // 2], 2) if d else None,
            "push_delay_max_s": round(d[-1], 2) if d else None,
            "flow_step_accuracy": r(self.steps_right, self.steps_total), "flow_steps": self.steps_total,
            "flow_false_done": self.steps_false, "flow_missed": self.steps_missed,
            "flow_choice": r(self.flows_right, self.flows_total),
            "missing_phrase_precision": r(self.missing_tp, self.missing_tp + self.missing_fp),
            "missing_phrase_recall": r(self.missing_tp, self.missing_tp + self.missing_fn),
            "offer_fit_recall": r(self.offers_fit_tp, self.offers_fit_tp + self.offers_fit_fn),
            "offer_fit_precision": r(self.offers_fit_tp, self.offers_fit_tp + self.offers_fit_fp),
            "offer_made_recall": r(self.offers_made_tp, self.offers_made_tp + self.offers_made_fn),
            "offer_made_precision": r(self.offers_made_tp, self.offers_made_tp + self.offers_made_fp),
        }


def text_events(session, turns: list[dict], tick_s: float = 0.5) -> list[dict]:
    """Drive a session with the script's turns as final transcripts (at each turn's end)."""
    out: list[contract.Message] = list(session.start())
    t = 0.0
    for i, turn in sorted(enumerate(turns), key=lambda it: it[1]["t_end"]):
        while t + tick_s <= turn["t_end"]:
            t += tick_s
            out += session.tick(t)
        out += session.heard(turn["speaker"], turn["text"], True, turn["t_start"], turn["t_end"], i, turn["t_end"])
    end = max((tt["t_end"] for tt in turns), default=0.0) + 1.0
    out += session.close(end)
    return [{"topic": m.subtopic, **m.payload} for m in out if isinstance(m.payload, dict)]


def _of(events: list[dict], suffix: str) -> list[dict]:
    return [e for e in events if e["topic"].endswith(suffix)]


def score_call(labels: dict, events: list[dict], score: AssistScore, name: str) -> None:
    turns = labels["turns"]
    expect = labels.get("expect") or {}
    pushes = [e for e in _of(events, "/suggestion") if e["kind"] == "knowledge"]
    used: set[int] = set()
    for turn in turns:
        ex = turn.get("expect") or {}
        if not ex.get("knowledge"):
            continue
        score.questions += 1
        # the push triggered by this question: its utterance ends within the turn
        cand = [i for i, p in enumerate(pushes) if i not in used
                and turn["t_start"] - 0.5 <= p["utterance_end"] <= turn["t_end"] + 1.5]
        if not cand:
            # the article may already be on the agent's screen: pushed earlier in the call
            # (at most one push per topic per call), e.g. when the customer first mentioned it
            early = [i for i, p in enumerate(pushes) if p["kb_topic"] == ex["knowledge"] and p["t"] <= turn["t_end"]]
            if early:
                used.add(early[0])
                score.answered += 1
                score.correct += 1
                score.delays.append(0.0)
                continue
            score.notes.append(f"{name}: no push for {turn['text'][:60]!r} (want {ex['knowledge']})")
            continue
        p = pushes[cand[0]]
        used.add(cand[0])
        score.answered += 1
        delay = p["t"] - turn["t_end"]
        score.delays.append(delay)
        if delay > PUSH_WINDOW_S:
            score.late += 1
            score.notes.append(f"{name}: push {delay:.1f} s after {turn['text'][:40]!r}")
        if p["kb_topic"] == ex["knowledge"]:
            score.correct += 1
        else:
            score.notes.append(f"{name}: pushed {p['kb_topic']} for {turn['text'][:60]!r} (want {ex['knowledge']})")
    for i, p in enumerate(pushes):
        if i not in used:
            score.stray_pushes += 1
            score.notes.append(f"{name}: unlabelled push {p['kb_topic']} for {p['question'][:60]!r}")

    flows = _of(events, "/flow")
    last = flows[-1] if flows else {"flow": None, "steps": []}
    if expect.get("flow"):
        score.flows_total += 1
        score.flows_right += last["flow"] == expect["flow"]
        if last["flow"] != expect["flow"]:
            score.notes.append(f"{name}: flow {last['flow']} (want {expect['flow']})")
    labelled = {s for t in turns for s in ((t.get("expect") or {}).get("steps") or [])}
    marked = {s["id"] for s in last["steps"] if s["done"]}
    path = {s["id"] for s in last["steps"]} | labelled
    for sid in sorted(path):
        score.steps_total += 1
        if (sid in labelled) == (sid in marked):
            score.steps_right += 1
        elif sid in marked:
            score.steps_false += 1
            score.notes.append(f"{name}: step {sid} marked done, not labelled")
        else:
            score.steps_missed += 1
            score.notes.append(f"{name}: step {sid} labelled, not marked")

    raised = {a["evidence"]["required"] for a in _of(events, "/alert") if a["kind"] == "missing_phrase"}
    want = set(expect.get("missing") or [])
    score.missing_tp += len(raised & want)
    score.missing_fp += len(raised - want)
    score.missing_fn += len(want - raised)
    for r in sorted(raised - want):
        score.notes.append(f"{name}: missing_phrase {r} raised, but it was said")
    for r in sorted(want - raised):
        score.notes.append(f"{name}: missing_phrase {r} not raised")

    summary = _of(events, "/summary")
    card = summary[-1]["scorecard"]["offers"] if summary else {"suggested": [], "made": []}
    fit_want = {(t.get("expect") or {}).get("offer_fits") for t in turns} - {None}
    made_want = {(t.get("expect") or {}).get("offer_made") for t in turns} - {None}
    fit_got, made_got = set(card["suggested"]), set(card["made"])
    score.offers_fit_tp += len(fit_got & fit_want)
    score.offers_fit_fn += len(fit_want - fit_got)
    score.offers_fit_fp += len(fit_got - fit_want)
    score.offers_made_tp += len(made_got & made_want)
    score.offers_made_fn += len(made_want - made_got)
    score.offers_made_fp += len(made_got - made_want)
    for o in sorted(fit_want ^ fit_got):
        score.notes.append(f"{name}: offer {o} {'suggested, not labelled' if o in fit_got else 'not suggested'}")
    for o in sorted(made_want ^ made_got):
        score.notes.append(f"{name}: offer {o} {'detected as made, not labelled' if o in made_got else 'made, not detected'}")


def render_labels(script_path: Path, out_dir: Path, rate: int = 16000) -> tuple[Path, dict]:
    from .synth.render import render_call, write_call
    from .synth.script import load_script
    script = load_script(script_path)
    wav = out_dir / f"{script_path.stem}.wav"
    write_call(render_call(script, rate=rate), wav)
    labels = json.loads(wav.with_name(f"{script_path.stem}.labels.json").read_text(encoding="utf-8"))
    return wav, labels


def run(calls: list[Path], audio: bool, content: Path | None, keep: Path | None = None) -> AssistScore:
    from ..assist.setup import build_assist
    from ..config import AsrConfig, default_config
    cfg = default_config()
    cfg = cfg.model_copy(update={"asr": cfg.asr or AsrConfig(),
                                 "assist": cfg.assist.model_copy(update={"content": content})})
    assist = build_assist(cfg)
    if not audio:
        # the script text stands in for a recogniser of the call's own language
        assist.engine.asr_languages = ()
    score = AssistScore()
    with tempfile.TemporaryDirectory(prefix="callcue-score-assist-") as tmp:
        for path in calls:
            wav, labels = render_labels(path, Path(tmp))
            ivr = (labels.get("expect") or {}).get("ivr")
            if audio:
                from ..replay import replay_line, run_replay
                from ..config import LineConfig, SourceConfig
                events: list[dict] = []
                line = replay_line(cfg, LineConfig(id="score", source=SourceConfig(wav=wav), sample_rate=16000), wav)
                run_replay(wav, cfg, line, lambda m: events.append({"topic": m.subtopic, **m.payload})
                           if isinstance(m.payload, dict) else None, f"score-{path.stem}", None, ivr, assist)
            else:
                session = assist.engine.session("score", f"score-{path.stem}", (labels.get("expect") or {}).get("team"), ivr)
                events = text_events(session, labels["turns"])
            score_call(labels, events, score, path.stem)
            if keep is not None:
                keep.mkdir(parents=True, exist_ok=True)
                (keep / f"{path.stem}.events.jsonl").write_text(
                    "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events), encoding="utf-8")
    return score


def default_calls(content: Path | None = None) -> list[Path]:
    """The labelled calls of a content pack (default: the sample pack): PACK/eval/assist_calls/*.yaml."""
    from ..assist.pack import default_pack_dir
    return sorted((Path(content or default_pack_dir()) / "eval" / "assist_calls").glob("*.yaml"))


def main(calls: list[Path], audio: bool = False, content: Path | None = None, lang: str | None = None,
         as_json: bool = False, notes: bool = False, keep: Path | None = None) -> int:
    """`callcue score-assist`: score the calls (default: the pack's labelled calls) and print the figures."""
    calls = calls or default_calls(content)
    if lang:
        from .synth.script import load_script
        calls = [c for c in calls if load_script(c).language == lang]
    if not calls:
        print(f"callcue score-assist: no labelled calls (none given, and none in "
              f"{Path(content or 'flows/insurance') / 'eval' / 'assist_calls'}"
              f"{' in that language' if lang else ''})", file=sys.stderr)
        return 2
    score = run(calls, audio, content, keep)
    figs = score.figures()
    if as_json:
        print(json.dumps(figs, indent=1))
    else:
        print(f"{len(calls)} call(s), {'audio + speech recognition' if audio else 'script text'}:")
        for k, v in figs.items():
            print(f"  {k:28s} {v}")
    if notes:
        for n in score.notes:
            print("  - " + n)
    return 0
