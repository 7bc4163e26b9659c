"""Content pack files: rule pack, call flows, offers (YAML that operations staff edit).

A content pack is a folder:

    rules.yaml          sensitive words, required phrases, per-team thresholds
    flows/*.yaml        guided call flows (one flow per file)
    offers/*.yaml       offers / upsells (one offer per file)
    knowledge/*.md      knowledge articles (see knowledge.py)
    tickets/*.yaml      ticket templates filled after the call (aftercall/forms.py)
    qa.yaml             the QA form every call is scored on (aftercall/forms.py)

Every file is validated here (pydantic, extra fields refused); a mistake is reported as
``file:line: field: problem`` and the pack is refused as a whole, so a half-edited pack
never goes live. flows/README.md documents the schema with examples.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..config import DetectorConfig
from ..schema import Id, Phrases, Strict, Who
from ..yamlfile import ConfigError, load_model, load_yaml

Severity = Literal["info", "warning", "critical"]


class SensitiveWord(Strict):
    """A word or phrase that must not be said (or that signals risk when the customer says it)."""

    phrase: str = Field(min_length=1, description="what is matched; Chinese also by pinyin, English by normalised words")
    speaker: Who = Field("agent", description="whose speech is checked: agent, customer or any")
    severity: Severity = Field("warning", description="alert severity: info, warning or critical")
    reason: str = Field("", description="why it matters, shown to the agent and supervisor")


class RequiredPhrase(Strict):
    """Something the agent must say, with a deadline; when it is not met -> missing_phrase."""

    id: Id = Field(description="stable id, used in alerts and reports")
    title: str = Field(description="short name shown to people, e.g. 'Greeting'")
    say_any: Phrases = Field(min_length=1, description="any one of these phrases counts as said")
    examples: Phrases = Field(default_factory=list,
                              description="typical whole utterances; one close enough counts as said (as for flow steps)")
    speaker: Who = Field("agent", description="who has to say it")
    within_s: float | None = Field(None, gt=0, le=3600, description="deadline in seconds from the call start")
    before_any: Phrases = Field(default_factory=list,
                                  description="must be said before any of these phrases is heard (e.g. account details)")
    before_speaker: Who = Field("agent", description="whose speech is checked for the before_any phrases")
    at_end: bool = Field(False, description="must be said before the call ends (e.g. the closing line)")
    severity: Severity = Field("warning", description="severity of the missing_phrase alert")


    @model_validator(mode="after")
    def _one_deadline(self) -> "RequiredPhrase":
        kinds = [self.within_s is not None, bool(self.before_any), self.at_end]
        if sum(kinds) != 1:
            raise ValueError("give exactly one deadline: within_s, before_any or at_end")
        return self


class RulePack(Strict):
    """rules.yaml of a content pack."""

    name: str = Field(description="pack name shown in logs and alerts")
    sensitive_words: list[SensitiveWord] = Field(default_factory=list, description="words that raise sensitive_word")
    required_phrases: list[RequiredPhrase] = Field(default_factory=list, description="phrases that raise missing_phrase when skipped")
    teams: dict[str, dict[str, float | bool]] = Field(
        default_factory=dict,
        description="team name -> detector threshold overrides (any field of the site's `detectors` section)")

    @field_validator("teams")
    @classmethod
    def _teams(cls, v: dict) -> dict:
        for team, over in v.items():
            unknown = sorted(set(over) - set(DetectorConfig.model_fields))
            if unknown:
                raise ValueError(f"team {team!r}: unknown threshold(s) {', '.join(unknown)}; "
                                 f"known: {', '.join(DetectorConfig.model_fields)}")
            try:
                DetectorConfig(**over)   # range checks with the site config's own rules
            except ValidationError as exc:
                e = exc.errors()[0]
                raise ValueError(f"team {team!r}: {'.'.join(map(str, e['loc']))}: {e['msg']}") from None
        return v

    @model_validator(mode="after")
    def _unique(self) -> "RulePack":
        ids = [r.id for r in self.required_phrases]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"required_phrases: duplicate id(s) {', '.join(sorted(dup))}")
        return self

    def detectors_for(self, team: str | None, base: DetectorConfig) -> DetectorConfig:
        over = self.teams.get(team or "", {})
        return base.model_copy(update=over) if over else base


class Step(Strict):
    """One step of a call flow."""

    id: Id = Field(description="stable id within the flow")
    title: str = Field(description="short name shown on the flow bar")
    script: str = Field("", description="the standard line the agent should say (sent as the next_step suggestion)")
    speaker: Who = Field("agent", description="whose speech marks the step done")
    keywords: Phrases = Field(default_factory=list, description="any of these phrases heard marks the step done")
    examples: Phrases = Field(default_factory=list,
                                description="typical utterances of the step; a close enough utterance marks it done")


    @model_validator(mode="after")
    def _something(self) -> "Step":
        if not self.keywords and not self.examples:
            raise ValueError(f"step {self.id!r}: give keywords or examples (else it can never be done)")
        return self


class Branch(Strict):
    """A path through the flow chosen by what the customer wants."""

    id: Id = Field(description="stable id within the flow")
    title: str = Field(description="call type shown to people, e.g. 'Claim report'")
    intent: Phrases = Field(default_factory=list, description="customer phrases that choose this branch")
    ivr: list[str] = Field(default_factory=list, description="IVR intents (cmd ivr_context `intent`) that choose it")
    steps: list[Step] = Field(min_length=1, description="steps of this branch, in order")



class Flow(Strict):
    """flows/*.yaml: a guided call flow."""

    id: Id = Field(description="stable id of the flow")
    title: str = Field(description="name shown to people")
    lang: Literal["en", "zh"] = Field(description="language the flow's phrases are in")
    default: bool = Field(False, description="used for calls of this language that no IVR intent assigns")
    ivr: list[str] = Field(default_factory=list, description="IVR intents that select this flow at call start")
    steps: list[Step] = Field(default_factory=list, description="opening steps, before the branch")
    branches: list[Branch] = Field(default_factory=list, description="alternative middles, chosen by intent")
    closing: list[Step] = Field(default_factory=list, description="steps after the branch")


    @model_validator(mode="after")
    def _unique(self) -> "Flow":
        ids = [s.id for s in self.steps + self.closing] + [s.id for b in self.branches for s in b.steps]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"step ids must be unique in a flow: {', '.join(dup)}")
        if not ids:
            raise ValueError("a flow needs at least one step")
        bids = [b.id for b in self.branches]
        if len(set(bids)) != len(bids):
            raise ValueError("branch ids must be unique")
        return self


class Offer(Strict):
    """offers/*.yaml: something to offer when the conversation fits."""

    id: Id = Field(description="stable id, used for pitch-rate counts")
    title: str = Field(description="name shown to the agent")
    lang: Literal["en", "zh"] = Field(description="language of the phrases")
    when_any: Phrases = Field(min_length=1, description="customer phrases that make the offer fit")
    script: str = Field(description="what the agent can say to make the offer")
    made_when_any: Phrases = Field(min_length=1, description="agent phrases that count as having made the offer")
    not_when_any: Phrases = Field(default_factory=list,
                                    description="phrases (either side) after which the offer no longer fits")



class ContentPack(BaseModel):
    """A loaded, validated content pack (knowledge base attached by the engine)."""

    # Not a Strict file schema: load_pack() builds it in code from the validated files
    # (each of those is Strict), and it holds a Path; frozen all the same.
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    root: Path
    rules: RulePack
    flows: list[Flow]
    offers: list[Offer]
    tickets: Any = None         # aftercall.forms.TicketSet: tickets/*.yaml, `extends` applied
    qa: Any = None              # aftercall.forms.QaForm: qa.yaml, or None


def _load_dir(folder: Path, model: type, what: str) -> list:
    items = []
    if not folder.is_dir():
        return items
    for path in sorted(folder.glob("*.yaml")):
        items.append(load_model(path, model))
    ids: dict[str, Path] = {}
    for item, path in zip(items, sorted(folder.glob("*.yaml"))):
        if item.id in ids:
            line = load_yaml(path).line_of(("id",))
            raise ConfigError(f"{path}:{line}: id: {what} id {item.id!r} is already used by {ids[item.id]}")
        ids[item.id] = path
    return items


def load_pack(root: str | Path) -> ContentPack:
    """Load and validate a whole pack; ConfigError (file:line: field: problem) on the first mistake."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root}: content pack folder not found")
    rules_path = root / "rules.yaml"
    rules = load_model(rules_path, RulePack) if rules_path.exists() else RulePack(name=root.name)
    flows = _load_dir(root / "flows", Flow, "flow")
    offers = _load_dir(root / "offers", Offer, "offer")
    # after-call files (ticket templates, QA form) name flows, offers and required phrases
    from ..aftercall.forms import load_qa, load_tickets
    return ContentPack(root=root, rules=rules, flows=flows, offers=offers,
                       tickets=load_tickets(root / "tickets", flows, offers),
                       qa=load_qa(root / "qa.yaml", rules, flows))


def default_pack_dir() -> Path:
    """The sample insurance pack shipped in flows/ (used when a site configures none)."""
    return Path(__file__).resolve().parents[2] / "flows" / "insurance"
