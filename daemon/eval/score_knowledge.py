"""`callcue score-knowledge`: knowledge retrieval against labelled customer questions.

Prints precision@1 (overall, per language, and with each signal alone), how chit-chat
labelled `topic: null` scores against the push threshold, how many questions the
question detector lets through, and search latency p50/p95 with the embedder's own
one-sentence encode measured in the same run as the reference.

Questions file (a pack's eval/knowledge_questions.yaml; flows/insurance/eval/ holds the sample pack's):

    questions:
      - {lang: en, topic: claim-filing, text: "how do i report an accident"}
      - {lang: zh, topic: null, text: "你吃饭了吗"}      # must stay below min_score
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from ..assist.knowledge import KnowledgeBase, looks_like_question
from ..schema import Strict
from ..yamlfile import ConfigError, load_yaml, validate_doc


class LabelledQuestion(Strict):
    """One customer utterance and the topic that answers it."""

    text: str = Field(min_length=1, description="what the customer said (as the recogniser wrote it)")
    lang: Literal["en", "zh"] = Field(description="language of the utterance")
    topic: str | None = Field(description="topic of the right article; null for chit-chat that must not push")


class QuestionSet(Strict):
    """A labelled question file."""

    questions: list[LabelledQuestion] = Field(min_length=1, description="the labelled utterances")


def load_questions(path: str | Path, topics: list[str] | None = None) -> list[LabelledQuestion]:
    """Read and validate a questions file; with ``topics``, every label must be one of them."""
    doc = load_yaml(path)
    qs = validate_doc(doc, QuestionSet).questions
    if topics is not None:
        known = set(topics)
        for i, q in enumerate(qs):
            if q.topic is not None and q.topic not in known:
                line = doc.line_of(("questions", i, "topic"))
                raise ConfigError(f"{doc.path}:{line}: questions.{i}.topic: {q.topic!r} is not a topic of the "
                                  f"knowledge base (known: {', '.join(sorted(known))})")
    return qs


@dataclass
class Ratio:
    hit: int = 0
    n: int = 0

    def add(self, ok: bool) -> None:
        self.hit += bool(ok)
        self.n += 1

    @property
    def value(self) -> float:
        return self.hit / self.n if self.n else 0.0

    def __str__(self) -> str:
        return f"{self.value:.3f} ({self.hit}/{self.n})"


@dataclass
class KnowledgeScore:
    min_score: float
    p1: Ratio = field(default_factory=Ratio)                    # hybrid, as search() ranks
    by_lang: dict[str, Ratio] = field(default_factory=dict)
    lexical: dict[str, Ratio] = field(default_factory=dict)     # lexical signal alone
    semantic: dict[str, Ratio] = field(default_factory=dict)    # semantic signal alone (embedder only)
    pushed_right: Ratio = field(default_factory=Ratio)          # top-1 correct and >= min_score
    pushed_wrong: int = 0                                       # top-1 wrong but >= min_score
    questions_detected: Ratio = field(default_factory=Ratio)    # looks_like_question on on-topic utterances
    off_topic: list[tuple[float, str, str]] = field(default_factory=list)   # (best score, topic, text)
    misses: list[str] = field(default_factory=list)
    tops: list[tuple[float, bool]] = field(default_factory=list)            # on-topic: (best score, correct)

    @property
    def off_topic_pushed(self) -> int:
        return sum(1 for s, _, _ in self.off_topic if s >= self.min_score)

    def at(self, threshold: float) -> tuple[int, int, int]:
        """(right pushes, wrong pushes, off-topic pushes) if min_score were ``threshold``."""
        return (sum(1 for s, ok in self.tops if ok and s >= threshold),
                sum(1 for s, ok in self.tops if not ok and s >= threshold),
                sum(1 for s, _, _ in self.off_topic if s >= threshold))


def evaluate(kb: KnowledgeBase, questions: list[LabelledQuestion], min_score: float | None = None) -> KnowledgeScore:
    """Score every labelled question as `kb.search` ranks it (and with each signal alone). Pure."""
    sc = KnowledgeScore(kb.min_score if min_score is None else min_score)
    for q in questions:
        # one encode per question: the hybrid hit is ranked from the same signals search() uses
        arts, lex, sem = kb.signals(q.text, q.lang)
        hits = kb.rank(arts, lex, sem, q.lang, 1)
        top = hits[0] if hits else None
        if q.topic is None:
            sc.off_topic.append((top.score if top else 0.0, top.article.topic if top else "-", q.text))
            continue
        ok = top is not None and top.article.topic == q.topic
        sc.p1.add(ok)
        sc.by_lang.setdefault(q.lang, Ratio()).add(ok)
        sc.questions_detected.add(looks_like_question(q.text, q.lang))
        sc.tops.append((top.score if top else 0.0, ok))
        if top is not None and top.score >= sc.min_score:
            if ok:
                sc.pushed_right.hit += 1
            else:
                sc.pushed_wrong += 1
        sc.pushed_right.n += 1
        if not ok:
            got = f"{top.article.topic} {top.score:.2f}" if top else "nothing"
            sc.misses.append(f"[{q.lang}] want {q.topic}, got {got}: {q.text}")
        if arts:
            sc.lexical.setdefault(q.lang, Ratio()).add(arts[int(np.argmax(lex))].topic == q.topic)
            if kb.embedder is not None:
                sc.semantic.setdefault(q.lang, Ratio()).add(arts[int(np.argmax(sem))].topic == q.topic)
    sc.off_topic.sort(reverse=True)
    return sc


def _total(parts: dict[str, Ratio]) -> Ratio:
    return Ratio(sum(r.hit for r in parts.values()), sum(r.n for r in parts.values()))


def latency(kb: KnowledgeBase, texts: list[tuple[str, str]], rounds: int = 3) -> dict[str, tuple[float, float]]:
    """Search latency (ms, p50 and p95) per language over the texts, after one untimed
    warm-up round; with an embedder also one encode of each English text alone, the
    reference the English search time is compared with."""
    for text, lang in texts:
        kb.search(text, lang, k=3)
    runs: dict[str, list[float]] = {}
    enc: list[float] = []
    for _ in range(rounds):
        for text, lang in texts:
            t0 = time.perf_counter()
            kb.search(text, lang, k=3)
            runs.setdefault(lang, []).append(1000 * (time.perf_counter() - t0))
            if kb.embedder is not None and lang == "en":
                t0 = time.perf_counter()
                kb.embedder.encode([text])
                enc.append(1000 * (time.perf_counter() - t0))
    out = {lang: (float(np.percentile(v, 50)), float(np.percentile(v, 95))) for lang, v in sorted(runs.items())}
    if enc:
        out["encode"] = (float(np.percentile(enc, 50)), float(np.percentile(enc, 95)))
    return out


def report(sc: KnowledgeScore, lat: dict[str, tuple[float, float]] | None, embedder: str | None, verbose: bool) -> str:
    lines = [f"embedder: {embedder or 'none (lexical only)'}; min_score {sc.min_score:.2f}",
             f"P@1 hybrid     {sc.p1}  " + "  ".join(f"{k} {v}" for k, v in sorted(sc.by_lang.items())),
             f"P@1 lexical    {_total(sc.lexical)}  " + "  ".join(f"{k} {v}" for k, v in sorted(sc.lexical.items()))]
    if sc.semantic:
        lines.append(f"P@1 semantic   {_total(sc.semantic)}  "
                     + "  ".join(f"{k} {v}" for k, v in sorted(sc.semantic.items())))
    lines.append(f"pushed at min_score: right {sc.pushed_right}, wrong {sc.pushed_wrong}")
    worst = ", ".join(f"{s:.2f} {t!r}" for s, _, t in sc.off_topic[:3])
    lines.append(f"off-topic: {sc.off_topic_pushed}/{len(sc.off_topic)} reach min_score; highest {worst}")
    sweep = []
    for th in (0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6):
        right, wrong, off = sc.at(th)
        sweep.append(f"{th:.2f}: {right}/{wrong}/{off}")
    lines.append("threshold: right/wrong/off-topic pushes  " + "  ".join(sweep))
    lines.append(f"question detector passes {sc.questions_detected} of the on-topic utterances")
    for lang, (p50, p95) in (lat or {}).items():
        if lang == "encode":
            continue
        line = f"search latency {lang}: p50 {p50:.2f} ms, p95 {p95:.2f} ms"
        if lang == "en" and "encode" in lat:
            e50, e95 = lat["encode"]
            line += f"; reference, the query's encode alone: p50 {e50:.2f} ms, p95 {e95:.2f} ms ({p50 / e50:.2f}x)"
        lines.append(line)
    if verbose:
        lines += [f"  miss {m}" for m in sc.misses]
        lines += [f"  off-topic {s:.2f} {topic}: {t}" for s, topic, t in sc.off_topic]
    return "\n".join(lines)


def default_questions(kb: Path | None = None) -> Path:
    """The labelled questions of the pack a knowledge folder belongs to (default: the sample pack)."""
    from ..assist.pack import default_pack_dir
    pack = Path(kb).parent if kb is not None else default_pack_dir()
    return pack / "eval" / "knowledge_questions.yaml"


def default_kb() -> Path:
    from ..assist.pack import default_pack_dir
    return default_pack_dir() / "knowledge"


def main(kb: Path | None = None, questions: Path | None = None, no_embed: bool = False,
         min_score: float | None = None, models_dir: Path | None = None, notes: bool = False) -> int:
    """`callcue score-knowledge`: score the labelled questions and print the report."""
    embedder = None
    if not no_embed:
        from ..assist.embed import EmbedError, Embedder
        try:
            embedder = Embedder.load(models_dir=models_dir)
        except EmbedError as exc:
            print(f"note: no embedder, lexical only ({str(exc).splitlines()[0]})")
    base = KnowledgeBase.load(kb or default_kb(), embedder)
    labelled = load_questions(questions or default_questions(kb), base.topics)
    sc = evaluate(base, labelled, min_score)
    lat = latency(base, [(q.text, q.lang) for q in labelled])
    name = f"{embedder.name} {embedder.precision}" if embedder is not None else None
    print(f"{len(base.articles)} articles, {len(base.topics)} topics; {sc.p1.n} labelled questions, "
          f"{len(sc.off_topic)} off-topic")
    print(report(sc, lat, name, notes))
    return 0
