"""The assist engine: what was heard in, alerts and suggestions out.

`AssistEngine` is shared by every line of the box: it holds the current content (rule
pack, flows, offers, knowledge base, one embedder). `AssistSession` is one call: it
keeps that call's progress and turns each recognised utterance into contract
messages. No I/O here; the daemon and `callcue replay` drive it the same way, so
live calls and replays behave alike. A session keeps the content version it started
with: a pack reloaded mid-call applies from the next call.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .. import contract
from ..config import AssistConfig, DetectorConfig
from ..text import dominant_lang
from .content import CachedEncoder, Content
from .flowtrack import FlowCall
from .match import Heard as Text, content_units
from .offers import OfferCall
from .rules import Finding, Heard, RuleCall

DEFAULT_KNOWLEDGE_MIN = 0.5   # used only when the knowledge module offers no calibrated value
REQUEST_VECTORS = 3           # customer utterances whose vectors the session keeps for the after-call call type


@dataclass
class EngineStats:
    events: int = 0
    seconds: float = 0.0
    pushes: dict[str, int] = field(default_factory=lambda: {"knowledge": 0, "next_step": 0, "offer": 0})
    alerts: dict[str, int] = field(default_factory=lambda: {"sensitive_word": 0, "missing_phrase": 0})

    def as_dict(self) -> dict[str, Any]:
        return {"events": self.events, "us_per_event": round(1e6 * self.seconds / self.events, 1) if self.events else None,
                "suggestions": dict(self.pushes), "alerts": dict(self.alerts)}


class AssistEngine:
    """Shared across lines. `lock` serialises the embedder and knowledge search (OpenVINO
    requests are not shared between threads here); pure matching needs no lock."""

    def __init__(self, content: Content, cfg: AssistConfig, encoder: CachedEncoder | None = None,
                 asr_model: str | None = None, asr_languages: tuple[str, ...] = ()):
        self.content = content
        self.cfg = cfg
        self.encoder = encoder
        self.asr_model = asr_model
        self.asr_languages = asr_languages      # what the speech model recognises; () = unknown
        self.lock = threading.Lock()
        self.stats = EngineStats()
        kb = content.kb
        self.knowledge_min = (cfg.knowledge_min_score if cfg.knowledge_min_score is not None
                              else getattr(kb, "min_score", None) or _module_min_score())

    def swap(self, content: Content) -> None:
        self.content = content      # new calls pick it up; running calls keep theirs

    def detectors_for(self, team: str | None, base: DetectorConfig) -> DetectorConfig:
        return self.content.rules.pack.detectors_for(team, base)

    def session(self, line: str, call_id: str, team: str | None = None,
                ivr: dict[str, Any] | None = None) -> "AssistSession":
        return AssistSession(self, self.content, line, call_id, team, ivr)

    def health(self) -> dict[str, Any]:
        c = self.content
        out = {"pack": c.name, "root": str(c.pack.root), "flows": len(c.flows), "offers": len(c.offers.offers),
               "articles": len(getattr(c.kb, "articles", ()) or ()), "embedder": self.encoder is not None,
               **self.stats.as_dict()}
        if self.encoder is not None and self.encoder.calls:
            out["embed_ms"] = round(1000 * self.encoder.seconds / self.encoder.calls, 2)
        return out


def _module_min_score() -> float:
    try:
        from . import knowledge
    except ImportError:
        return DEFAULT_KNOWLEDGE_MIN
    return float(getattr(knowledge, "MIN_SCORE", DEFAULT_KNOWLEDGE_MIN))


class AssistSession:
    def __init__(self, engine: AssistEngine, content: Content, line: str, call_id: str, team: str | None,
                 ivr: dict[str, Any] | None):
        self.engine = engine
        self.content = content
        self.line = line
        self.call_id = call_id
        self.team = team
        self.lang: str | None = None
        self.rules = RuleCall(content.rules)
        self.flow = FlowCall(content.flows)
        self.offers = OfferCall(content.offers)
        self.topics: dict[str, float] = {}          # knowledge topic -> call time pushed
        self.pushed: list[dict[str, Any]] = []       # every suggestion of this call (for the summary)
        self.findings: list[Finding] = []
        self._last_flow: tuple | None = None
        self.ivr_data: dict[str, Any] | None = dict(ivr) if ivr else None
        self.flow.ivr_intent = str(ivr["intent"]) if ivr and ivr.get("intent") else None
        self.off: str | None = None             # why this call gets no assist (language not recognised)
        # the sentence vectors of the customer's first final utterances (English, when the
        # embedder is loaded): the after-call call type reuses them instead of re-encoding
        self.request_vectors: list[tuple[float, Any]] = []
        self._check_language()

    def _check_language(self) -> None:
        """A call in a language the speech model does not know yields made-up text in the
        model's language: rules, flows and pushes on it would be wrong, so they stay off."""
        lang = self._ivr_lang()
        langs = self.engine.asr_languages
        if lang and langs and lang not in langs and "any" not in langs:
            self.off = f"speech model {self.engine.asr_model} does not recognise {lang} (it knows {', '.join(langs)})"
            self.lang = lang

    # ---- inputs ----
    def start(self) -> list[contract.Message]:
        """Messages at call start (the flow when the IVR already chose one)."""
        if self.flow.ivr_intent:
            self.flow.select(self._ivr_lang())
        return self._flow_messages(0.0, None)

    def set_ivr(self, data: dict[str, Any]) -> list[contract.Message]:
        self.ivr_data = dict(data)
        self._check_language()
        intent = data.get("intent")
        self.flow.ivr_intent = str(intent) if intent else None
        if self.flow.flow is None and self.flow.ivr_intent:
            self.flow.select(self._ivr_lang() or self.lang)
        return self._flow_messages(0.0, None)

    def heard(self, speaker: str, text: str, final: bool, t_start: float, t_end: float, utterance: int,
              now: float) -> list[contract.Message]:
        """One recognition result (text already redacted); `now` = call time it arrived."""
        if self.off:
            return []
        t0 = time.perf_counter()
        h = Heard(speaker, text, final, t_start, t_end, utterance, Text.of(text))
        out: list[contract.Message] = []
        hits = self.content.index.find(h.units) if final else None
        lang = dominant_lang(text) if final else None
        vec = self._vector(text, lang) if final else None
        if vec is not None and speaker == "customer" and len(self.request_vectors) < REQUEST_VECTORS:
            self.request_vectors.append((t_start, vec))
        hunits = content_units(text) if final else None
        for f in self.rules.heard(h, hits, hunits, vec):
            out.append(self._alert(f))
        if final:
            if self.lang is None and lang is not None:
                self.lang = lang
                self.offers.lang = lang
            if self.flow.flow is None:
                self.flow.select(self._ivr_lang() or self.lang)
            done = self.flow.heard(h, hunits, vec, hits)
            out += self._flow_messages(now, done)
            for offer, trigger in self.offers.heard(h, hits):
                out.append(self._suggest("offer", offer.title, offer.script, 1.0, now,
                                         {"offer": offer.id, "trigger": trigger, "utterance_end": round(t_end, 2)}))
            if speaker == "customer":
                out += self._knowledge(text, lang, t_end, now)
        st = self.engine.stats
        st.events += 1
        st.seconds += time.perf_counter() - t0
        return out

    def tick(self, now: float) -> list[contract.Message]:
        if self.off:
            return []
        return [self._alert(f) for f in self.rules.tick(now)]

    def close(self, now: float) -> list[contract.Message]:
        if self.off:
            card = {"assist": "off", "reason": self.off, "language": self.lang, "pack": self.content.name}
            self.scorecard = card
            return [contract.summary(self.line, self.call_id, f"No assist: {self.off}", None, card, None)]
        out = [self._alert(f) for f in self.rules.close(now)]
        state = self.flow.state()
        card = {"flow": state["flow"], "completion": round(state["completion"], 3),
                "steps_done": [s["id"] for s in state["steps"] if s["done"]],
                "steps_missed": [s["id"] for s in state["steps"] if not s["done"]],
                "missing_phrases": sorted(self.rules.raised),
                "sensitive_words": sum(1 for f in self.findings if f.kind == "sensitive_word"),
                "knowledge_pushed": sorted(self.topics), "offers": self.offers.scorecard(),
                "language": self.lang, "pack": self.content.name}
        call_type = state["extra"].get("call_type")
        parts = [call_type or "Call type not recognised",
                 f"flow {round(100 * state['completion'])}% complete" if state["flow"] else "no flow",
                 f"offers made {len(card['offers']['made'])}/{len(set(card['offers']['suggested']) | set(card['offers']['made']))}"]
        if card["missing_phrases"]:
            parts.append("missing: " + ", ".join(card["missing_phrases"]))
        out.append(contract.summary(self.line, self.call_id, "; ".join(parts), None, card, call_type))
        self.scorecard = card
        return out

    # ---- pieces ----
    def _ivr_lang(self) -> str | None:
        if not self.ivr_data:
            return None
        lang = self.ivr_data.get("lang") or self.ivr_data.get("language")
        return str(lang) if lang in ("en", "zh") else None

    def _vector(self, text: str, lang: str | None):
        enc = self.engine.encoder
        if enc is None or lang != "en" or not text.strip():
            return None
        with self.engine.lock:
            return enc.encode([text])[0]

    def _alert(self, f: Finding) -> contract.Message:
        self.findings.append(f)
        self.engine.stats.alerts[f.kind] = self.engine.stats.alerts.get(f.kind, 0) + 1
        return contract.alert(self.line, self.call_id, f.kind, f.severity, f.speaker, f.t_start, f.t_end,
                              f.message, f.evidence)

    def _suggest(self, kind: str, title: str, body: str, score: float, now: float,
                 detail: dict[str, Any]) -> contract.Message:
        self.engine.stats.pushes[kind] += 1
        self.pushed.append({"kind": kind, "title": title, "t": round(now, 2), **detail})
        return contract.suggestion(self.line, self.call_id, kind, title, body, score, now, detail)

    def _flow_messages(self, now: float, done: list[tuple[str, float]] | None) -> list[contract.Message]:
        state = self.flow.state()
        key = (state["flow"], tuple(s["done"] for s in state["steps"]), state["extra"].get("branch"))
        out: list[contract.Message] = []
        if key == self._last_flow:
            return out
        self._last_flow = key
        out.append(contract.flow_state(self.line, self.call_id, state["flow"], state["steps"], state["completion"],
                                       state["next_step"], state["extra"]))
        nxt = self.flow.next_step()
        if nxt is not None and nxt.id not in self.flow.suggested and (done or not self.flow.done):
            self.flow.suggested.add(nxt.id)
            score = max((s for _, s in done), default=1.0) if done else 1.0
            out.append(self._suggest("next_step", nxt.title, nxt.script, score, now,
                                     {"flow": state["flow"], "step": nxt.id,
                                      "after": [sid for sid, _ in done] if done else []}))
        return out

    def _knowledge(self, text: str, lang: str | None, t_end: float, now: float) -> list[contract.Message]:
        kb = self.content.kb
        cfg = self.engine.cfg
        if kb is None or not cfg.knowledge or lang is None:
            return []
        from .knowledge import looks_like_question
        if cfg.questions_only and not looks_like_question(text, lang):
            return []
        with self.engine.lock:
            hits = kb.search(text, lang=lang, k=1)
        if not hits:
            return []
        hit = hits[0]
        art = hit.article
        if hit.score < self.engine.knowledge_min or art.topic in self.topics:
            return []
        self.topics[art.topic] = now
        return [self._suggest("knowledge", art.title, art.body, hit.score, now,
                              {"article": art.id, "kb_topic": art.topic, "lang": art.lang,
                               "lexical": round(hit.lexical, 3), "semantic": round(hit.semantic, 3),
                               "question": text, "utterance_end": round(t_end, 2)})]
