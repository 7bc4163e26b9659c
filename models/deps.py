"""Is a Python dependency here? The one probe the model tools use, so every build and
install says the same thing the same way when something is missing."""
from __future__ import annotations

import importlib
import importlib.metadata as md
from typing import Mapping


def missing_modules(needs: Mapping[str, str]) -> list[str]:
    """The pip requirement of each module in ``needs`` (module -> requirement) that cannot
    be imported here, in order; empty when all import."""
    missing = []
    for module, requirement in needs.items():
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(requirement)
    return missing


def installed_distribution(package: str) -> md.Distribution | None:
    """The installed distribution of the PyPI package ``package``, None when it is not
    installed in this environment."""
    try:
        return md.distribution(package)
    except md.PackageNotFoundError:
        return None
