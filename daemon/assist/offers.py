"""Offers: suggest one when the customer's words fit it, notice when the agent makes it.

Pitch rate = offers made / offers that fitted (per call here; summed per agent and
floor by whoever reads the call summaries). An offer the agent makes without a
suggestion counts as made (and as fitting: the agent saw the chance first).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .pack import Offer
from .rules import Heard


class CompiledOffers:
    def __init__(self, offers: list[Offer]):
        self.offers = {o.id: o for o in offers}

    def entries(self):
        """(group, phrase, item) for the content's one-pass PhraseIndex."""
        for o in self.offers.values():
            yield from ((("offer", "fit"), p, o.id) for p in o.when_any)
            yield from ((("offer", "made"), p, o.id) for p in o.made_when_any)
            yield from ((("offer", "stop"), p, o.id) for p in o.not_when_any)


@dataclass
class OfferCall:
    compiled: CompiledOffers
    lang: str | None = None
    fitted: dict[str, float] = field(default_factory=dict)    # offer id -> call time it was suggested
    made: dict[str, float] = field(default_factory=dict)      # offer id -> call time the agent made it
    blocked: set[str] = field(default_factory=set)

    def heard(self, h: Heard, hits: dict) -> list[tuple[Offer, str]]:
        """[(offer, trigger phrase)] to suggest now. Finals only: partial text still changes."""
        if not h.final:
            return []
        c = self.compiled
        for hit in hits.get(("offer", "stop"), ()):
            self.blocked.add(hit.item)
        if h.speaker == "agent":
            for hit in hits.get(("offer", "made"), ()):
                self.made.setdefault(hit.item, h.t_start)
            return []
        out = []
        for hit in hits.get(("offer", "fit"), ()):
            o = c.offers[hit.item]
            if o.id in self.fitted or o.id in self.made or o.id in self.blocked:
                continue
            if self.lang is not None and o.lang != self.lang:
                continue
            self.fitted[o.id] = h.t_start
            out.append((o, " ".join(h.text.split())))
        return out

    def scorecard(self) -> dict:
        fitted = set(self.fitted) | set(self.made)
        made = set(self.made)
        return {"suggested": sorted(self.fitted), "made": sorted(made),
                "made_after_suggestion": sorted(made & set(self.fitted)),
                "missed": sorted(set(self.fitted) - made),
                "pitch_rate": round(len(made) / len(fitted), 3) if fitted else None}
