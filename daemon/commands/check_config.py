"""`callcue check-config FILE`: validate a site file and the hardware profiles it uses."""
from __future__ import annotations

from ..config import load_config


def add_parser(sub) -> None:
    p = sub.add_parser("check-config", help="validate a site config file and report file:line: field errors")
    p.add_argument("config", help="site YAML file")
    p.set_defaults(func=run)
    add_reference_parser(sub)


def check_capture(path, cfg) -> None:
    """Channel maps, shared devices and rates against the hardware profiles; errors are
    re-worded as file:line: lines.N.source: ... like the schema errors."""
    import re

    from ..capture import load_profiles
    from ..capture.capture import plan_capture
    from ..yamlfile import ConfigError, load_yaml

    try:
        plan_capture(cfg, load_profiles(cfg))
    except ConfigError as exc:
        doc = load_yaml(path)
        index = {line.id: i for i, line in enumerate(cfg.lines)}
        out = []
        for msg in str(exc).splitlines():
            m = re.match(r"line (\S+): (.*)", msg)
            if m and m.group(1) in index:
                i = index[m.group(1)]
                out.append(f"{path}:{doc.line_of(('lines', i, 'source'))}: lines.{i}.source: {m.group(2)}")
            else:
                out.append(msg)
        raise ConfigError("\n".join(dict.fromkeys(out))) from None


def run(args) -> int:
    cfg = load_config(args.config)
    check_capture(args.config, cfg)
    print(f"{args.config}: OK: site {cfg.site}, floor {cfg.floor}, box {cfg.box}, {len(cfg.lines)} line(s), "
          f"broker {cfg.broker.url if cfg.broker else 'embedded'}")
    return 0


def reference_markdown() -> str:
    """The site file's fields as a Markdown table, straight from the pydantic models
    (the README's configuration reference is this text; a test keeps them equal)."""
    from pydantic import BaseModel
    from pydantic_core import PydanticUndefined

    from ..config import SiteConfig, SourceConfig, SpeakerTap

    rows: list[str] = ["| field | default | meaning |", "| --- | --- | --- |"]
    seen: set[type] = set()

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, f in model.model_fields.items():
            path = f"{prefix}{name}"
            if f.is_required():
                default = "required"
            elif f.default_factory is not None:
                val = f.default_factory()
                default = "[]" if val == [] else "(see below)" if isinstance(val, BaseModel) else repr(val)
            else:
                default = "" if f.default is PydanticUndefined else f"`{f.default!r}`" if f.default == "" else f"`{f.default}`"
            rows.append(f"| `{path}` | {default} | {f.description} |")
            ann = f.annotation
            subs = [a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)]
            for sub in subs:
                if sub is SpeakerTap and sub in seen:
                    continue
                seen.add(sub)
                walk(sub, f"{path}[]." if "list" in str(ann) else f"{path}.")

    walk(SiteConfig, "")
    return "\n".join(rows)


def add_reference_parser(sub) -> None:
    p = sub.add_parser("config-reference", help="print the site config fields as a Markdown table")
    p.set_defaults(func=lambda args: print(reference_markdown()) or 0)
