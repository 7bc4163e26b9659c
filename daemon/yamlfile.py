"""YAML loading that remembers where every value came from.

Operations staff edit the site file, hardware profiles and rule packs by hand, so a
mistake must be reported as ``file:line: field: what is wrong``. PyYAML's node tree
carries line marks; we keep them in a side table keyed by the value's path.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

Loc = tuple[str | int, ...]


class ConfigError(Exception):
    """A config or data file is unusable; the message names file, line and field."""


@dataclass
class LocatedDoc:
    path: Path
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)

    def line_of(self, loc: Iterable[str | int]) -> int | None:
        """Line (1-based) of the deepest known prefix of ``loc``."""
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), None)


def _construct(node: yaml.Node, loc: Loc, lines: dict[Loc, int], loader: yaml.SafeLoader) -> Any:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if isinstance(key, (list, dict)):
                raise ConfigError(f"line {key_node.start_mark.line + 1}: a mapping key must be a plain value")
            out[key] = _construct(value_node, loc + (key,), lines, loader)
            # a missing/unknown field error points at its key line
            lines.setdefault(loc + (key,), key_node.start_mark.line + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, loc + (i,), lines, loader) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def load_yaml(path: str | Path) -> LocatedDoc:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_yaml(text, path)


def parse_yaml(text: str, path: Path, what: str = "") -> LocatedDoc:
    """YAML text of `path` (or a part of it: pad `text` with blank lines so its line marks
    are the file's) with the line of every field; `what` names the part in syntax errors."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        lines: dict[Loc, int] = {}
        data = {} if node is None else _construct(node, (), lines, loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: YAML syntax error{what}: {exc.problem or exc.context}") from None
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    finally:
        loader.dispose()
    return LocatedDoc(path, data, lines)


def format_validation_error(doc: LocatedDoc, exc: ValidationError, base: Loc = ()) -> str:
    """One line per problem: ``file:line: dotted.field: message``."""
    out = []
    for err in exc.errors():
        loc = base + tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        # pydantic adds union-member tags like 'int' / 'SpeakerTap' to loc; keep only real keys
        real: list[str | int] = []
        probe: Any = doc.data
        for part in loc:
            if isinstance(probe, dict) and part in probe:
                real.append(part)
                probe = probe[part]
            elif isinstance(probe, list) and isinstance(part, int) and part < len(probe):
                real.append(part)
                probe = probe[part]
            elif err["type"] in ("missing", "extra_forbidden") and part == loc[-1]:
                real.append(part)
        line = doc.line_of(real)
        dotted = ".".join(str(p) for p in real) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see the documented fields)"
        elif err["type"] == "missing":
            msg = "required field is missing"
        where = f"{doc.path}:{line}" if line else str(doc.path)
        out.append(f"{where}: {dotted}: {msg}")
    # unions report one error per member; the same text twice helps no one
    return "\n".join(dict.fromkeys(out))


def validate_doc(doc: LocatedDoc, model: type[M], context: dict | None = None) -> M:
    try:
        return model.model_validate(doc.data, context=context)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(doc, exc)) from None


def load_model(path: str | Path, model: type[M], context: dict | None = None) -> M:
    """Load a YAML file into a pydantic model, or raise ConfigError naming file:line: field."""
    return validate_doc(load_yaml(path), model, context)
