"""Loading a content pack for the engine, and reloading it while the daemon runs.

`load_content` validates everything (rules, flows, offers, knowledge articles) and
compiles the phrase sets and example vectors; any mistake raises ConfigError naming
file, line and field, and nothing half-loaded is returned. `PackWatcher` re-loads
when a file of the pack changes; a broken edit is reported and the previous content
stays active, so a typo never takes the assistant down mid-shift.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..yamlfile import ConfigError
from .flowtrack import CompiledFlow
from .match import PhraseIndex
from .offers import CompiledOffers
from .pack import ContentPack, RulePack, SensitiveWord, load_pack
from .rules import CompiledRules

log = logging.getLogger(__name__)


class CachedEncoder:
    """The shared embedder with a small memo, so an utterance that feeds both flow matching
    and knowledge search is encoded once. One caller at a time (the engine's lock)."""

    def __init__(self, embedder, size: int = 64):
        self.embedder = embedder
        self.dim = embedder.dim
        self._memo: dict[str, np.ndarray] = {}
        self._size = size
        self.calls = 0
        self.seconds = 0.0

    def encode(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._memo]
        if missing:
            t0 = time.perf_counter()
            vecs = self.embedder.encode(missing)
            self.seconds += time.perf_counter() - t0
            self.calls += 1
            for t, v in zip(missing, vecs):
                self._memo[t] = v
            while len(self._memo) > max(self._size, len(missing)):
                self._memo.pop(next(iter(self._memo)))
        return np.stack([self._memo[t] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)


@dataclass
class Content:
    """Everything the engine needs from one version of the pack (immutable once built)."""

    pack: ContentPack
    rules: CompiledRules
    flows: list[CompiledFlow]
    offers: CompiledOffers
    kb: object | None                     # knowledge.KnowledgeBase
    index: PhraseIndex | None = None      # every rule, step, intent and offer phrase, for one pass per final
    aftercall: object | None = None       # aftercall.AfterCall: ticket, summary and scorecard at call end
    signature: tuple = ()
    loaded_at: float = field(default_factory=time.time)

    @property
    def name(self) -> str:
        return self.pack.rules.name


def pack_signature(root: Path) -> tuple:
    """Cheap change detector: every file's path, size and mtime."""
    items = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.name.startswith("."):
            st = p.stat()
            items.append((str(p.relative_to(root)), st.st_size, st.st_mtime_ns))
    return tuple(items)


def load_content(root: str | Path, encoder: CachedEncoder | None, grace_s: float,
                 extra_words: list[SensitiveWord] = (), knowledge: bool = True) -> Content:
    root = Path(root)
    sig = pack_signature(root) if root.is_dir() else ()
    pack = load_pack(root)
    rules_pack: RulePack = pack.rules
    if extra_words:
        rules_pack = rules_pack.model_copy(update={"sensitive_words": [*rules_pack.sensitive_words, *extra_words]})
    embed: Callable | None = encoder.encode if encoder is not None else None
    kb = None
    kdir = root / "knowledge"
    if knowledge and kdir.is_dir():
        from .knowledge import KnowledgeBase
        kb = KnowledgeBase.load(kdir, encoder)
    rules = CompiledRules(rules_pack, grace_s, embed)
    flows = [CompiledFlow(f, embed) for f in pack.flows]
    offers = CompiledOffers(pack.offers)
    index = PhraseIndex([*rules.entries(), *(e for f in flows for e in f.entries()), *offers.entries()])
    if kb is not None and pack.tickets is not None:
        pack.tickets.check_topics(set(kb.topics))
    from ..aftercall.finish import AfterCall
    articles = list(getattr(kb, "articles", ()) or ()) if kb is not None else None
    return Content(pack, rules, flows, offers, kb, index, signature=sig,
                   aftercall=AfterCall(pack, articles, encoder.embedder.encode if encoder is not None else None))


class PackWatcher:
    """Polls the pack folder; `check()` returns new Content when a valid edit landed."""

    def __init__(self, build: Callable[[], Content], current: Content):
        self.build = build
        self.current = current
        self.error: str | None = None
        self._seen = current.signature
        self.reloads = 0

    def check(self) -> Content | None:
        root = self.current.pack.root
        try:
            sig = pack_signature(root)
        except OSError as exc:
            sig = ("unreadable", str(exc))
        if sig == self._seen:
            return None
        self._seen = sig
        try:
            new = self.build()
        except ConfigError as exc:
            self.error = str(exc)
            log.error("content pack %s: edit rejected, keeping the previous version: %s", root, exc)
            return None
        self.error = None
        self.current = new
        self.reloads += 1
        log.info("content pack %s reloaded (%d flows, %d offers, %d sensitive words)", root,
                 len(new.flows), len(new.offers.offers), len(new.rules.pack.sensitive_words))
        return new
