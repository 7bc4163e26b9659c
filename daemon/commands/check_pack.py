"""`callcue check-pack DIR`: validate a content pack the way the daemon loads it."""
from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("check-pack", help="validate a content pack (rules, flows, offers, knowledge, tickets, QA form); file:line: field errors")
    p.add_argument("pack", nargs="?", type=Path, help="content pack folder (default: flows/insurance)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..assist.content import load_content
    from ..assist.pack import default_pack_dir

    root = args.pack or default_pack_dir()
    # knowledge articles are validated too; embeddings are not needed to check a pack
    c = load_content(root, None, 0.0)
    steps = sum(len(f.steps) for f in c.flows)
    print(f"{root}: OK: pack {c.name!r}: {len(c.rules.pack.sensitive_words)} sensitive words, "
          f"{len(c.rules.pack.required_phrases)} required phrases, {len(c.rules.pack.teams)} team(s), "
          f"{len(c.flows)} flow(s) with {steps} steps, {len(c.offers.offers)} offer(s), "
          f"{len(getattr(c.kb, 'articles', ()) or ())} knowledge article(s), "
          f"{len(c.pack.tickets.usable()) if c.pack.tickets else 0} ticket template(s), "
          f"QA form {'with ' + str(len(c.pack.qa.items)) + ' items' if c.pack.qa else 'none'}")
    return 0
