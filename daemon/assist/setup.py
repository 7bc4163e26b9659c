"""Building the assist engine from the site config (the I/O side: files, the embedder).

Shared by `callcue run`, `callcue replay` and `callcue demo`, so they load content the
same way. Problems with the pack are start-up errors (ConfigError naming file, line and
field); a missing embedding model only turns embeddings off, with a log line saying
how to install it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..config import SiteConfig
from ..yamlfile import ConfigError
from .content import CachedEncoder, PackWatcher, load_content
from .engine import AssistEngine
from .pack import SensitiveWord, default_pack_dir
from .redact import Redactor

log = logging.getLogger(__name__)


@dataclass
class Assist:
    engine: AssistEngine | None
    redact: Callable[[str], str] | None
    watcher: PackWatcher | None


def words_to_rules(phrases) -> list[SensitiveWord]:
    """A plain word list (`--rules words.txt`, asr.sensitive_words) as rule-pack entries."""
    return [SensitiveWord(phrase=p.text, speaker=p.speaker or "any", severity=p.severity) for p in phrases]


def load_encoder(cfg: SiteConfig) -> CachedEncoder | None:
    a = cfg.assist
    if not a.embeddings:
        return None
    from callcue.models.installed import installed_names
    models_dir = cfg.asr.models_dir if cfg.asr else None
    if a.embedding_model not in installed_names(models_dir):
        log.warning("assist: sentence embeddings off: model %s is not installed "
                    "(`callcue models convert %s`, which hardware/provision.sh runs)", a.embedding_model,
                    a.embedding_model)
        return None
    from .embed import Embedder
    emb = Embedder.load(a.embedding_model, precision=a.embedding_precision, device=a.embedding_device,
                        threads=1, models_dir=models_dir)
    return CachedEncoder(emb)


def build_assist(cfg: SiteConfig, words=None, encoder: CachedEncoder | None = None) -> Assist:
    a = cfg.assist
    redactor = Redactor(a.redaction) if a.redaction.enabled else None
    redact = (lambda text: redactor.redact(text).text) if redactor is not None else None
    if not a.enabled or cfg.asr is None:
        return Assist(None, redact, None)
    root = Path(a.content) if a.content else default_pack_dir()
    if encoder is None:
        encoder = load_encoder(cfg)
    extra = words_to_rules(words or [])

    def build():
        return load_content(root, encoder, a.deadline_grace_s, extra, a.knowledge)

    try:
        content = build()
    except OSError as exc:
        raise ConfigError(f"{root}: content pack unreadable: {exc}") from None
    from callcue.models.manifest import load_manifest
    entry = load_manifest().get(cfg.asr.model)
    engine = AssistEngine(content, a, encoder, cfg.asr.model, tuple(entry.languages) if entry else ())
    log.info("assist: pack %s from %s: %d flows, %d offers, %d articles, embeddings %s", content.name, root,
             len(content.flows), len(content.offers.offers), len(getattr(content.kb, "articles", ()) or ()),
             "on" if encoder else "off")
    return Assist(engine, redact, PackWatcher(build, content))
