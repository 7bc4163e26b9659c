"""`AfterCall`: one content pack's after-call logic; `finish(record)` for each call.

Built once per content version (the phrase sets of the ticket templates are compiled
here), shared by every line; `finish` is pure and keeps no state between calls.

    ac = AfterCall(content.pack)
    out = ac.finish(record, redact=redact, mask_personal=False)
    # out = {"summary": str, "ticket": {...} | None, "scorecard": {...}, "call_type": str | None}
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..assist.match import Heard, PhraseSet
from ..assist.redact import RedactionConfig, Redactor
from ..yamlfile import ConfigError
from .classify import Classifier
from .extract import CompiledTemplate, Extraction, FieldValue, ticket_payload
from .figures import call_figures
from .forms import DeadAirItem, InterruptionsItem, TicketSet, phrases_of
from .record import CallRecord, Step
from .scorecard import scorecard
from .summary import call_language, summarise

_DEFAULT_REDACTOR: Redactor | None = None


def default_redact(text: str) -> str:
    """The project's redactor with the default settings (what a site gets unless it changes them)."""
    global _DEFAULT_REDACTOR
    if _DEFAULT_REDACTOR is None:
        _DEFAULT_REDACTOR = Redactor(RedactionConfig())
    return _DEFAULT_REDACTOR.redact(text).text


def pack_articles(pack) -> list:
    """The pack's knowledge articles (their questions teach the call types' words); none
    when it has no knowledge folder or the folder does not load (load_content reports that)."""
    root = getattr(pack, "root", None)
    if root is None or not (Path(root) / "knowledge").is_dir():
        return []
    from ..assist.knowledge import load_articles
    try:
        return load_articles(Path(root) / "knowledge")
    except ConfigError:
        return []


class AfterCall:
    def __init__(self, pack, articles: list | None = None, encoder: Callable[[list[str]], Any] | None = None):
        """`pack`: a loaded ContentPack (assist/pack.py), with its tickets and QA form.
        `articles`: its knowledge articles (default: read from the pack's folder);
        `encoder`: the English sentence embedder's encode, optional (call type only)."""
        self.pack = pack
        tickets: TicketSet = getattr(pack, "tickets", None) or TicketSet()
        usable = tickets.usable()
        self.templates = {t.id: CompiledTemplate(t) for t in usable}
        self.classifier = Classifier(usable, pack.flows, pack_articles(pack) if articles is None else articles,
                                     encoder)
        self.qa = getattr(pack, "qa", None)
        self.required_ids = [r.id for r in pack.rules.required_phrases]
        # what a customer says when giving the reason of the call: branch intents and template words
        reason = [p for f in pack.flows for b in f.branches for p in b.intent]
        reason += [p for t in usable if not t.default for p in phrases_of(t.calls.phrases)]
        self.reason_cues = PhraseSet((p, p) for p in reason) if reason else None
        self.branch_steps = frozenset(s.id for f in pack.flows for b in f.branches for s in b.steps)
        items = self.qa.items if self.qa is not None else []
        self.min_gap_s = next((i.min_gap_s for i in items if isinstance(i, DeadAirItem)), 5.0)
        self.min_overlap_s = next((i.min_overlap_s for i in items if isinstance(i, InterruptionsItem)), 1.0)

    def finish(self, record: CallRecord, *, redact: Callable[[str], str] | None = None,
               mask_personal: bool = False, mask_char: str = "*") -> dict[str, Any]:
        """Summary, ticket, scorecard and call type of one ended call.

        `redact` masks personal numbers in every piece of evidence and in the summary (the
        line's redactor; default: the project's with default settings). `mask_personal`
        masks the personal fields' values in the ticket too (a site's choice; by default
        the agent gets them in full, since the agent files the ticket)."""
        redact = redact or default_redact
        lang = call_language(record)
        memo: dict[str, Heard] = {}         # each utterance is read for matching once per call

        def heard(text: str) -> Heard:
            h = memo.get(text)
            if h is None:
                h = memo[text] = Heard.of(text)
            return h

        kind = self.classifier.classify(record, heard)
        values: dict[str, FieldValue] = {}
        ticket = None
        required: list[str] = []
        if kind.template is not None:
            ct = self.templates[kind.template.id]
            steps = self._steps(kind, record)
            values = Extraction(ct, record, redact, lang, kind.call_type, kind.by, steps, heard).fill()
            ticket = ticket_payload(ct, values, lang, mask_personal, mask_char)
            ticket["call_type_by"] = kind.by
            ticket["call_type_confidence"] = kind.confidence
            required = [f.name for f in kind.template.fields if f.required]
        figures = call_figures(record, self.min_gap_s, self.min_overlap_s)
        card = scorecard(self.qa, record, figures, self.required_ids, ticket, required, lang)
        card.update(self._assist_card(record, lang))
        summary = summarise(record, lang, kind.template, values, self.reason_cues, redact, self.branch_steps)
        return {"summary": summary, "ticket": ticket, "scorecard": card, "call_type": kind.call_type}

    def _steps(self, kind, record: CallRecord) -> list[Step]:
        """Flow steps done that speak for a call of the chosen template: the flow's opening
        and closing steps, and the steps of the template's branches, the flow's when it ran
        one of them and those found again in what was said (the flow may have followed
        another branch, or none)."""
        t = kind.template
        fl = record.flow
        own = fl is not None and fl.branch in t.calls.branches
        out = [st for st in (fl.steps if fl else ()) if st.done and (own or st.id not in self.branch_steps)]
        have = {st.id for st in out}
        return out + [st for st in kind.steps if self.classifier.steps.get(st.id) == t.id and st.id not in have]

    def _assist_card(self, r: CallRecord, lang: str) -> dict[str, Any]:
        """The assist engine's scorecard figures (kept from contract v1's first summary)."""
        fl = r.flow
        fitted = {o.id for o in r.offers if o.fitted_t is not None}
        made = {o.id for o in r.offers if o.made_t is not None}
        return {
            "flow": fl.flow if fl else None, "completion": round(fl.completion, 3) if fl else 0.0,
            "steps_done": [s.id for s in fl.steps if s.done] if fl else [],
            "steps_missed": [s.id for s in fl.steps if not s.done] if fl else [],
            "missing_phrases": sorted({a.evidence.get("required") for a in r.alerts if a.kind == "missing_phrase"}),
            "sensitive_words": sum(1 for a in r.alerts if a.kind == "sensitive_word"),
            "knowledge_pushed": sorted({p.topic for p in r.knowledge}),
            "offers": {"suggested": sorted(fitted), "made": sorted(made),
                       "made_after_suggestion": sorted(made & fitted), "missed": sorted(fitted - made),
                       "pitch_rate": round(len(made) / len(fitted | made), 3) if fitted | made else None},
            "language": lang, "pack": r.pack or self.pack.rules.name,
        }
