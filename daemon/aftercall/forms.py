"""The content pack's after-call files: ticket templates (`tickets/*.yaml`) and the QA
form (`qa.yaml`). Operations and QA staff edit them; they are validated like the rest of
the pack (unknown fields refused, every mistake as ``file:line: field: problem``) and
checked against the pack's flows, offers, required phrases and knowledge topics, so a
template can not name a branch or step that does not exist. flows/README.md documents
both formats with examples.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, Field, field_validator, model_validator

from ..schema import Id, Phrases, Strict, Who
from ..yamlfile import ConfigError, LocatedDoc, format_validation_error, load_yaml

Lang = Literal["en", "zh"]
LANGS: tuple[str, ...] = ("en", "zh")
FieldType = Literal["text", "enum", "date", "phone", "number", "money", "id"]
Source = Literal["said", "promise", "branch", "steps", "knowledge", "offers"]
ACTIONS = ("file_claim", "claim_status", "payment", "policy_change", "cancel", "renew", "information", "complaint")
RESOLUTIONS = ("resolved", "follow_up", "escalated", "unresolved")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

# A text shown to people: one string, or one per language ({en: ..., zh: ...}).
LocalText = Union[str, dict[Lang, str]]
# Phrases: one list (any language: a phrase only ever matches its own language), or one
# list per language ({en: [...], zh: [...]}).
LocalPhrases = Union[Phrases, dict[Lang, Phrases]]


def text_in(t: LocalText | None, lang: str | None) -> str:
    """`t` in `lang` (else English, else any)."""
    if t is None:
        return ""
    if isinstance(t, str):
        return t
    return t.get(lang or "en") or t.get("en") or next(iter(t.values()), "")


def phrases_of(p: LocalPhrases | None) -> list[str]:
    """Every phrase, all languages (matching keeps languages apart by itself)."""
    if not p:
        return []
    if isinstance(p, dict):
        return [x for v in p.values() for x in v]
    return list(p)


def _name(v: str) -> str:
    if not _NAME.match(v):
        raise ValueError(f"{v!r} is not a valid field name (lower case letters, digits and _, starting with a letter)")
    return v


Name = Annotated[str, AfterValidator(_name)]


class CallsFor(Strict):
    """Which calls a template is for. The call type is scored from all of it at call end
    (aftercall/classify.py): the customer's words (earlier ones weigh more) against the
    examples, phrases and articles below, the IVR intent (strong), the flow branch (weak)."""

    branches: list[Id] = Field(default_factory=list, description="flow branch ids (any flow of the pack) whose calls it files")
    ivr: list[str] = Field(default_factory=list, description="IVR intents (cmd ivr_context `intent`) whose calls it files")
    phrases: LocalPhrases = Field(default_factory=list, description=(
        "customer words that make a call this type (with the listed branches' intent phrases) when neither "
        "flow nor IVR decides, or when the flow took a stray phrase"))
    knowledge: list[Id] = Field(default_factory=list, description=(
        "knowledge topics whose push points to this type (a customer asking how to claim); their articles' "
        "questions and titles also teach the call type's words"))
    examples: LocalPhrases = Field(default_factory=list, description=(
        "how customers of this type say why they call, in their own words (whole sentences, varied wording): "
        "the word and character n-grams the call type is scored on; not matched as phrases"))


class Option(Strict):
    """One value of an enum field and what makes it the value."""

    value: Name = Field(description="the value stored in the ticket")
    title: LocalText | None = Field(None, description="shown to people (default: the value)")
    phrases: LocalPhrases = Field(default_factory=list, description="words that point to this value")
    speaker: Who | None = Field(None, description="whose words count (default: the field's speaker)")
    branches: list[Id] = Field(default_factory=list, description="flow branches that make it this value")
    call_types: list[Id] = Field(default_factory=list, description=(
        "call types (template ids) that point to this value when the call type came from the customer's words"))
    ivr: list[str] = Field(default_factory=list, description="IVR intents that make it this value")
    steps: list[Id] = Field(default_factory=list, description="flow steps that, once done, point to this value")
    knowledge: list[Id] = Field(default_factory=list, description="knowledge topics that, once pushed, point to it")
    offers: list[Id] = Field(default_factory=list, description="offers that, once made, point to it")
    agent_gave: list[Name] = Field(default_factory=list, description=(
        "fields of the ticket whose value the agent said (a claim number given: the claim is filed)"))
    agent_done: bool = Field(False, description=(
        "the agent saying something is done points to it: a completed action in any wording "
        "('I've updated ...', 'payment accepted', 'the repair is booked', 已经...好了, 扣款成功), not asked, "
        "negated or still to come"))


class TicketField(Strict):
    """One field of a ticket template and how its value is found."""

    name: Name = Field(description="field name in the ticket (policy_number, callback_number, ...)")
    title: LocalText = Field(description="label shown on the desk")
    type: FieldType = Field(description="text, enum, date, phone, number, money or id")
    source: Source = Field("said", description=(
        "where the value comes from: said (found in what was said, both channels), promise (what the agent "
        "committed to, with the date), branch (the flow branch's title), steps (titles of the steps done), "
        "knowledge (titles of the articles pushed), offers (titles of the offers made)"))
    required: bool = Field(False, description="the ticket is incomplete without it (missing_required)")
    personal: bool = Field(False, description="personal data: masked in the ticket when the site asks for it")
    speaker: Who = Field("customer", description="who usually says the value; the other side's read-back confirms it")
    cues: LocalPhrases = Field(default_factory=list, description=(
        "words said next to the value, before it or right after it, or asked just before it "
        "('policy number', '保单号'); for promise fields the agent's words of a commitment"))
    not_cues: LocalPhrases = Field(default_factory=list,
                                   description="words that, when nearer to a value than any cue, say it is not this field's")
    pattern: str | None = Field(None, description=(
        "id: regular expression the value (capital letters and digits, separators dropped) must match in full"))
    digits: tuple[int, int] | None = Field(None, description="id, phone: fewest and most digits the value has")
    tense: Literal["past", "future", "any"] = Field("any", description=(
        "date: whether a bare weekday or day of the month is in the past (an incident) or the future (a promise)"))
    options: list[Option] = Field(default_factory=list, description="enum: the values and what points to each")
    pick: Literal["best", "first"] = Field("best", description=(
        "enum: best = the option with the most evidence; first = the first option (in order) with enough"))
    otherwise: str | None = Field(None, description="enum: value when no option has enough evidence (default: empty)")
    min_confidence: float = Field(0.5, ge=0, le=1, description="a value less sure than this stays empty")

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return v

    @field_validator("digits")
    @classmethod
    def _digits(cls, v: tuple[int, int] | None) -> tuple[int, int] | None:
        if v is not None and not 1 <= v[0] <= v[1] <= 30:
            raise ValueError("give [fewest, most] digits, 1 <= fewest <= most <= 30")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "TicketField":
        if self.type == "enum":
            if not self.options:
                raise ValueError(f"field {self.name!r}: an enum needs options")
            values = [o.value for o in self.options]
            dup = sorted({v for v in values if values.count(v) > 1})
            if dup:
                raise ValueError(f"field {self.name!r}: option values listed twice: {', '.join(dup)}")
            if self.otherwise is not None and self.otherwise not in values:
                raise ValueError(f"field {self.name!r}: otherwise {self.otherwise!r} is not one of the options")
        else:
            if self.options or self.otherwise is not None:
                raise ValueError(f"field {self.name!r}: options and otherwise are for enum fields")
        if self.source != "said" and self.type != "text":
            raise ValueError(f"field {self.name!r}: source {self.source} gives text; set type: text")
        if self.source in ("said", "promise") and self.type in ("text",) and not phrases_of(self.cues):
            raise ValueError(f"field {self.name!r}: a text field found in what was said needs cues")
        if self.pattern is not None and self.type != "id":
            raise ValueError(f"field {self.name!r}: pattern is for id fields")
        if self.name == "requested_action" and self.type == "enum":
            bad = [o.value for o in self.options if o.value not in ACTIONS]
            if bad:
                raise ValueError(f"requested_action: {', '.join(bad)} not one of {', '.join(ACTIONS)}")
        if self.name == "resolution" and self.type == "enum":
            bad = [o.value for o in self.options if o.value not in RESOLUTIONS]
            if bad:
                raise ValueError(f"resolution: {', '.join(bad)} not one of {', '.join(RESOLUTIONS)}")
        return self


class TicketTemplate(Strict):
    """tickets/*.yaml: the ticket a call of one type files."""

    id: Id = Field(description="template id; also the call type it files (claim_report, billing, ...)")
    title: LocalText = Field(description="name shown to people, e.g. {en: Claim report, zh: 报案}")
    extends: Id | None = Field(None, description="another template whose fields come first (same name = replaced)")
    abstract: bool = Field(False, description="only a base for others (extends); never chosen for a call")
    default: bool = Field(False, description="files calls that no other template fits (call type stays unknown)")
    calls: CallsFor = Field(default_factory=CallsFor, alias="for", description="which calls it files")
    fields: list[TicketField] = Field(default_factory=list, description="the ticket's fields, in the order shown")

    @model_validator(mode="after")
    def _unique(self) -> "TicketTemplate":
        names = [f.name for f in self.fields]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"field names listed twice: {', '.join(dup)}")
        if self.abstract and self.default:
            raise ValueError("an abstract template can not be the default one")
        return self


# ---------------- QA form ----------------

class _Item(Strict):
    id: Id = Field(description="stable id of the item (reports count by it)")
    title: LocalText = Field(description="what is checked, shown to QA staff")
    weight: float = Field(gt=0, le=100, description="share of the score (weights of items that apply are scaled to 100)")


class FlowStepsItem(_Item):
    judge: Literal["flow_steps"] = Field(description="flow steps done: share of the call's path done")
    full_at: float = Field(1.0, gt=0, le=1, description="completion at or above which the item gets all its points")
    zero_at: float = Field(0.5, ge=0, lt=1, description="completion at or below which it gets none (linear between)")


class RequiredPhrasesItem(_Item):
    judge: Literal["required_phrases"] = Field(description="required phrases (rules.yaml) said on time: no missing_phrase alert")
    phrases: list[Id] = Field(default_factory=list, description="required phrase ids judged (default: all of rules.yaml)")


class SensitiveWordsItem(_Item):
    judge: Literal["sensitive_words"] = Field(description="no sensitive words (sensitive_word alerts of `speaker`)")
    speaker: Who = Field("agent", description="whose sensitive words cost points")
    per_hit: float = Field(0.5, gt=0, le=1, description="share of the item lost per hit (a critical one counts twice)")


class InterruptionsItem(_Item):
    judge: Literal["interruptions"] = Field(description="the agent talking over the customer")
    allowed: int = Field(0, ge=0, le=20, description="talk-overs by the agent that cost nothing")
    per_extra: float = Field(0.5, gt=0, le=1, description="share of the item lost per talk-over beyond `allowed`")
    min_overlap_s: float = Field(1.0, gt=0, le=10, description=(
        "overlap of two utterances that counts as a talk-over when no talk_over alert covers it"))


class DeadAirItem(_Item):
    judge: Literal["dead_air"] = Field(description="share of the call in silences of at least min_gap_s")
    min_gap_s: float = Field(5.0, gt=0, le=120, description="a silence at least this long is dead air")
    full_at: float = Field(0.05, ge=0, lt=1, description="dead-air share at or below which the item gets all its points")
    zero_at: float = Field(0.20, gt=0, le=1, description="dead-air share at or above which it gets none")


class SpeakingRateItem(_Item):
    judge: Literal["speaking_rate"] = Field(description="the agent's speaking rate and fast_speech alerts")
    max_syl_s: dict[Lang, float] = Field(default_factory=lambda: {"en": 5.0, "zh": 5.5},
                                         description="highest mean agent rate, syllables per second, per language")
    per_alert: float = Field(0.25, gt=0, le=1, description="share of the item lost per fast_speech alert")


class AgitationItem(_Item):
    judge: Literal["agitation_handled"] = Field(description=(
        "an agitated customer is calmer at the end than at the peak (applies only when the customer was agitated)"))
    calm_s: float = Field(20.0, ge=0, le=600, description="the customer's last agitation ended at least this long before the end")


class OffersItem(_Item):
    judge: Literal["offers"] = Field(description="offers made where one fitted (pitch rate; applies when one fitted)")


class TicketItem(_Item):
    judge: Literal["ticket_complete"] = Field(description="share of the ticket's required fields filled")


QaItem = Annotated[Union[FlowStepsItem, RequiredPhrasesItem, SensitiveWordsItem, InterruptionsItem, DeadAirItem,
                         SpeakingRateItem, AgitationItem, OffersItem, TicketItem], Field(discriminator="judge")]


class QaForm(Strict):
    """qa.yaml: the QA form every call is scored on."""

    id: Id = Field(description="form id, kept in every scorecard")
    title: LocalText = Field(description="name shown to QA staff")
    pass_mark: float = Field(80, ge=0, le=100, description="score (0-100) at or above which a call passes")
    items: list[QaItem] = Field(min_length=1, description="what is judged, with weights")

    @model_validator(mode="after")
    def _unique(self) -> "QaForm":
        ids = [i.id for i in self.items]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"item ids listed twice: {', '.join(dup)}")
        return self


# ---------------- loading ----------------

@dataclass
class TicketSet:
    """The pack's ticket templates, `extends` applied (abstract ones kept for reference)."""

    templates: list[TicketTemplate] = field(default_factory=list)
    where: dict[str, LocatedDoc] = field(default_factory=dict)        # template id -> its file

    def usable(self) -> list[TicketTemplate]:
        return [t for t in self.templates if not t.abstract]

    def get(self, tid: str) -> TicketTemplate | None:
        return next((t for t in self.templates if t.id == tid), None)

    def check_topics(self, topics: set[str]) -> None:
        """Knowledge topics named by options exist (the knowledge base loads after the pack)."""
        for t in self.templates:
            doc = self.where[t.id]
            for ki, topic in enumerate(t.calls.knowledge):
                if topic not in topics:
                    line = doc.line_of(("for", "knowledge", ki))
                    raise ConfigError(f"{doc.path}:{line}: for.knowledge.{ki}: no knowledge article has topic {topic!r}")
            for fi, f in enumerate(_own_fields(doc)):
                for oi, o in enumerate(f.get("options") or []):
                    for ki, topic in enumerate(o.get("knowledge") or []):
                        if topic not in topics:
                            line = doc.line_of(("fields", fi, "options", oi, "knowledge", ki))
                            raise ConfigError(f"{doc.path}:{line}: fields.{fi}.options.{oi}.knowledge.{ki}: "
                                              f"no knowledge article has topic {topic!r}")


def _own_fields(doc: LocatedDoc) -> list[dict]:
    data = doc.data if isinstance(doc.data, dict) else {}
    fields = data.get("fields")
    return [f if isinstance(f, dict) else {} for f in fields] if isinstance(fields, list) else []


def _err(doc: LocatedDoc, loc: tuple, msg: str) -> ConfigError:
    return ConfigError(f"{doc.path}:{doc.line_of(loc) or 1}: {'.'.join(map(str, loc)) or '(top level)'}: {msg}")


def _validate(doc: LocatedDoc, model: type) -> Any:
    from pydantic import ValidationError
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(doc, exc)) from None


def load_tickets(folder: Path, flows: list, offers: list) -> TicketSet:
    """tickets/*.yaml of a pack, validated and checked against its flows and offers."""
    out = TicketSet()
    if not folder.is_dir():
        return out
    raw: dict[str, TicketTemplate] = {}
    for path in sorted(folder.glob("*.yaml")):
        doc = load_yaml(path)
        t = _validate(doc, TicketTemplate)
        if t.id in raw:
            raise _err(doc, ("id",), f"template id {t.id!r} is already used by {out.where[t.id].path}")
        raw[t.id] = t
        out.where[t.id] = doc
    branches = {b.id for f in flows for b in f.branches}
    steps = {s.id for f in flows for s in [*f.steps, *f.closing, *(s for b in f.branches for s in b.steps)]}
    offer_ids = {o.id for o in offers}
    for t in raw.values():
        doc = out.where[t.id]
        for i, b in enumerate(t.calls.branches):
            if b not in branches:
                raise _err(doc, ("for", "branches", i), f"no flow has a branch {b!r}")
        for fi, f in enumerate(t.fields):
            for oi, o in enumerate(f.options):
                for key, known, what in (("branches", branches, "branch"), ("steps", steps, "step"),
                                         ("offers", offer_ids, "offer")):
                    for ki, v in enumerate(getattr(o, key)):
                        if v not in known:
                            raise _err(doc, ("fields", fi, "options", oi, key, ki), f"no {what} {v!r} in the pack")
        if t.extends is not None:
            if t.extends not in raw:
                raise _err(doc, ("extends",), f"no template {t.extends!r} in {folder}")
    for t in raw.values():
        out.templates.append(_resolved(t, raw, out.where))
    defaults = [t.id for t in out.templates if t.default]
    if len(defaults) > 1:
        raise _err(out.where[defaults[1]], ("default",), f"only one default template (also {defaults[0]!r})")
    return out


def _resolved(t: TicketTemplate, raw: dict[str, TicketTemplate], where: dict[str, LocatedDoc]) -> TicketTemplate:
    chain = [t]
    while chain[-1].extends is not None:
        base = raw[chain[-1].extends]
        if base in chain:
            raise _err(where[t.id], ("extends",), f"templates extend each other in a circle ({t.id} ... {base.id})")
        chain.append(base)
    fields: dict[str, TicketField] = {}
    for tpl in reversed(chain):
        for f in tpl.fields:
            fields[f.name] = f
    return t.model_copy(update={"fields": list(fields.values())})


def load_qa(path: Path, rules, flows: list) -> QaForm | None:
    """qa.yaml of a pack (None when the pack has none), checked against rules.yaml."""
    if not path.exists():
        return None
    doc = load_yaml(path)
    form = _validate(doc, QaForm)
    known = {r.id for r in rules.required_phrases}
    for ii, item in enumerate(form.items):
        if isinstance(item, RequiredPhrasesItem):
            for pi, pid in enumerate(item.phrases):
                if pid not in known:
                    raise _err(doc, ("items", ii, "phrases", pi), f"no required phrase {pid!r} in rules.yaml")
    return form
