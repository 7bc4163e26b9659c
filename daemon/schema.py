"""The base of every validated file model (site config, content packs, redaction...).

Kept apart from config.py so any module can build a schema without importing the
whole site configuration (and without import cycles)."""
from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict


class Strict(BaseModel):
    """Unknown fields are errors (a typo must not be silently ignored); values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# Field types shared by the content pack (assist/pack.py) and the after-call forms
# (aftercall/forms.py): here, so neither imports the other for them.
Who = Literal["agent", "customer", "any"]
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


def _phrases(v: list[str]) -> list[str]:
    out = [p.strip() for p in v]
    if any(not p for p in out):
        raise ValueError("phrases must not be empty")
    return out


def _check_id(v: str) -> str:
    if not _ID.match(v):
        raise ValueError(f"{v!r} is not a valid id (lower case letters, digits, - _ .)")
    return v


Id = Annotated[str, AfterValidator(_check_id)]
Phrases = Annotated[list[str], AfterValidator(_phrases)]
