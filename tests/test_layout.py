"""The package's import graph, read from the source (nothing is imported): no import
cycles between modules, and runtime code never imports evaluation or benchmark code.

Every .py file of every package folder is parsed (and pyproject.toml must list each
folder, or an install leaves it out); relative imports are resolved to `callcue.*` names (`from . import x` counts as importing the module `x` when
there is one, else the package). Which imports count:

- Imports under `if TYPE_CHECKING:` never run and are not counted anywhere.
- Cycles: every import counts, function-local ones too. A loop of module-level imports
  can meet a half-initialised module at import time and always fails the test (its own
  test, for a clear message). A function-local import runs later, when both modules are
  loaded, so a loop through one does not break at import time; it still ties two modules
  to each other both ways (asr/engine.py and asr/preflight.py were such a pair), so it
  fails too. Function-local imports stay the way to defer heavy dependencies (numba,
  sherpa-onnx, textual) to the command that needs them, as long as they point one way.
  Importing a package runs its __init__ first; that implicit edge is not counted: a
  package importing its own submodules is the usual layout, not a loop.
- Runtime -> evaluation/benchmark: every import of a runtime module, function-local
  ones included, and from there whatever those modules load at import time. Runtime is
  all of callcue.daemon except eval, bench, commands and cli (capture, prosody, asr,
  assist, bus, store, app, line, replay, config, contract, ...), and all of callcue.tui.
- `importlib.import_module(name)` is not followed (cli.py registers the commands so).
"""
from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOP = "callcue"
EVAL_OR_BENCH = ("callcue.daemon.eval", "callcue.daemon.bench")
NOT_RUNTIME = EVAL_OR_BENCH + ("callcue.daemon.commands", "callcue.daemon.cli")


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def is_runtime(name: str) -> bool:
    return (_under(name, ("callcue.daemon",)) and name != "callcue.daemon" and not _under(name, NOT_RUNTIME)) \
        or _under(name, ("callcue.tui",))


def installed_packages() -> list[str]:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert cfg["package-dir"] == {TOP: "."}, "the test maps the repository root to `callcue`"
    return cfg["packages"]


def package_folders() -> list[str]:
    """Every folder with an __init__.py, as a callcue.* package name (the root is `callcue`)."""
    out = [TOP]
    for init in sorted(ROOT.glob("*/**/__init__.py")):
        parts = init.parent.relative_to(ROOT).parts
        if not parts[0].startswith((".", "tests")):
            out.append(".".join((TOP, *parts)))
    return out


def package_dir(package: str) -> Path:
    return ROOT.joinpath(*package.split(".")[1:])


def modules() -> dict[str, Path]:
    """callcue.* module name -> file, for every .py file of the packages (installed or not)."""
    out: dict[str, Path] = {}
    for pkg in sorted(set(installed_packages()) | set(package_folders())):
        for path in sorted(package_dir(pkg).glob("*.py")):
            out[pkg if path.name == "__init__.py" else f"{pkg}.{path.stem}"] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(name: str, source: str, known: set[str], is_package: bool) -> list[tuple[str, bool]]:
    """(imported callcue module, at module level?) for every import statement in the source."""
    package = name if is_package else name.rpartition(".")[0]
    out: list[tuple[str, bool]] = []

    def target(mod: str, attr: str | None) -> str | None:
        if attr is not None and f"{mod}.{attr}" in known:
            return f"{mod}.{attr}"
        while mod and mod not in known:         # `import callcue.x.y` of a name we do not know: its package
            mod = mod.rpartition(".")[0]
        return mod or None

    def visit(node: ast.AST, top: bool) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            top = False
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:           # the body is for type checkers only: never run
                visit(child, top)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _under(alias.name, (TOP,)):
                    t = target(alias.name, None)
                    if t:
                        out.append((t, top))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                if node.level > 1:
                    base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if _under(mod, (TOP,)):
                for alias in node.names:
                    t = target(mod, alias.name)
                    if t:
                        out.append((t, top))
        for child in ast.iter_child_nodes(node):
            visit(child, top)

    visit(ast.parse(source), True)
    return out


def import_graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(module-level edges, all edges) between callcue modules."""
    mods = modules()
    known = set(mods)
    top: dict[str, set[str]] = {m: set() for m in mods}
    every: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        for t, at_top in imports_of(name, path.read_text(encoding="utf-8"), known, path.name == "__init__.py"):
            if t == name:
                continue
            every[name].add(t)
            if at_top:
                top[name].add(t)
    return top, every


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each strongly connected group of more than one module (Tarjan), as one loop through it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def strongconnect(v: str) -> None:         # recursion depth is bounded by the module count
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return [_loop_in(graph, set(g)) for g in sorted(groups)]


def _loop_in(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """A concrete loop a -> b -> ... -> a inside a strongly connected group (for the message)."""
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph.get(v, ())):
                if w == start:
                    return paths[v] + [start]
                if w in group and w not in paths:
                    paths[w] = paths[v] + [w]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no loop through {start} in {sorted(group)}")


def reached(graph_top: dict[str, set[str]], first: set[str]) -> dict[str, list[str]]:
    """Modules loaded by importing each of `first` (following module-level imports), with the path."""
    paths = {m: [m] for m in first}
    frontier = sorted(first)
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph_top.get(v, ())):
                if w not in paths:
                    paths[w] = paths[v] + [w]
                    nxt.append(w)
        frontier = nxt
    return paths


def eval_imports_of_runtime(top: dict[str, set[str]], every: dict[str, set[str]]) -> list[str]:
    problems = []
    for mod in sorted(m for m in every if is_runtime(m)):
        for target, path in sorted(reached(top, every[mod]).items()):
            if _under(target, EVAL_OR_BENCH):
                problems.append(f"{mod} -> {' -> '.join(path)}")
                break
    return problems


# ---------------------------------------------------------------- the checks themselves


def test_the_checker_finds_cycles_and_resolves_imports():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e2"}, "e2": {"e"}, "f": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"], ["e", "e2", "e"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []
    known = {"callcue.daemon", "callcue.daemon.asr", "callcue.daemon.asr.engine", "callcue.daemon.asr.words",
             "callcue.daemon.config", "callcue.daemon.eval", "callcue.daemon.eval.wer"}
    src = ("from . import words\nfrom ..config import X\nfrom .. import eval\nimport callcue.daemon.asr.gone\n"
           "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..eval import wer\n"
           "class K:\n    from .words import Y\n"
           "def f():\n    from ..eval.wer import Tally\n")
    got = imports_of("callcue.daemon.asr.engine", src, known, is_package=False)
    assert got == [("callcue.daemon.asr.words", True), ("callcue.daemon.config", True),
                   ("callcue.daemon.eval", True), ("callcue.daemon.asr", True),
                   ("callcue.daemon.asr.words", True), ("callcue.daemon.eval.wer", False)]
    assert imports_of("callcue.daemon.asr", "from .engine import E\n", known, is_package=True) == \
        [("callcue.daemon.asr.engine", True)]
    # a runtime module reaching eval through a function-local import, then a module-level one
    top = {"callcue.daemon.line": set(), "callcue.daemon.x": {"callcue.daemon.eval.wer"},
           "callcue.daemon.eval.wer": set(), "callcue.tui.app": set(), "callcue.daemon.commands.c": set()}
    every = {**top, "callcue.daemon.line": {"callcue.daemon.x"}, "callcue.daemon.commands.c": {"callcue.daemon.eval.wer"}}
    assert eval_imports_of_runtime(top, every) == [
        "callcue.daemon.line -> callcue.daemon.x -> callcue.daemon.eval.wer",
        "callcue.daemon.x -> callcue.daemon.eval.wer"]
    assert is_runtime("callcue.tui.app") and is_runtime("callcue.daemon.replay")
    assert not is_runtime("callcue.daemon.commands.replay") and not is_runtime("callcue.models.whisper_check")


@pytest.fixture(scope="module")
def graph():
    return import_graph()


def test_every_package_folder_is_installed():
    listed, folders = set(installed_packages()), set(package_folders())
    assert folders <= listed, f"packages missing from pyproject.toml's packages list: {sorted(folders - listed)}"


def test_no_import_cycles_among_module_level_imports(graph):
    top, _ = graph
    assert len(top) > 100          # the walk found the package
    cycles = find_cycles(top)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_import_cycles_through_function_local_imports_either(graph):
    _, every = graph
    cycles = find_cycles(every)
    assert not cycles, "import cycles (some import inside a function):\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_runtime_never_imports_evaluation_or_benchmark_code(graph):
    top, every = graph
    assert any(is_runtime(m) for m in every) and any(_under(m, EVAL_OR_BENCH) for m in every)
    problems = eval_imports_of_runtime(top, every)
    assert not problems, "runtime modules importing evaluation/benchmark code:\n" + "\n".join(problems)
