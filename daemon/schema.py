"""The base of every validated file model (site config, content packs, redaction...).

Kept apart from config.py so any module can build a schema without importing the
whole site configuration (and without import cycles)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Unknown fields are errors (a typo must not be silently ignored); values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)
