"""The package's map as a test: data flows one way and no module imports one above it, with no cycle."""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "pipeline"

# Lowest first. A module may import modules of its own layer or of a lower one, never of a higher one.
# The stages (from "pipeline.corpus" to "pipeline.report.*") are in the order the data flows; frontmatter/
# is the front-matter format itself (parsed when the corpus is read, written at the end), so it sits below.
LAYERS: list[list[str]] = [
    [
        "pipeline",
        "pipeline._signals",
        "pipeline.errors",
        "pipeline.text",
        "pipeline.hostkey",
        "pipeline.models",
        "pipeline.runreport",
        "pipeline.spool",
        "pipeline.packed",
        "pipeline.memory",
    ],
    # Settings, and the rules read with them (status acceptance, ignore files, the cron line).
    [
        "pipeline.cron",
        "pipeline.accept",
        "pipeline.ignore",
        "pipeline.engineconfig",
        "pipeline.config",
        "pipeline.configfile",
    ],
    ["pipeline.console"],
    ["pipeline.lock"],
    ["pipeline.frontmatter", "pipeline.frontmatter.*"],
    ["pipeline.corpus"],
    ["pipeline.links"],
    ["pipeline.plan"],
    ["pipeline.check", "pipeline.check.*", "pipeline.checkprocess", "pipeline.checkchild"],
    ["pipeline.extract", "pipeline.extract.*"],
    ["pipeline.health", "pipeline.health.*"],
    # The distributed engine: the check, page reading and the shared history, sent to worker processes.
    ["pipeline.distributed", "pipeline.distributed.*"],
    ["pipeline.decide", "pipeline.flags"],
    ["pipeline.report", "pipeline.report.*"],
    ["pipeline.reftable"],
    ["pipeline.readpass"],
    ["pipeline.runstate"],
    ["pipeline.reuse"],
    ["pipeline.checkpass", "pipeline.write", "pipeline.overlap"],
    ["pipeline.runner"],
    ["pipeline.job", "pipeline.validate", "pipeline.scheduler"],
    ["pipeline.tools", "pipeline.tools.*"],
    ["pipeline.workercli", "pipeline.cli"],
    ["pipeline.__main__"],
]


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(path: Path, modules: dict[str, Path], *, top_level_only: bool) -> set[str]:
    """Modules of the package that ``path`` imports when it runs (``if TYPE_CHECKING:`` blocks left out)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()

    def visit(node: ast.AST, depth: int) -> None:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            return
        if isinstance(node, ast.ImportFrom) and node.module and not (top_level_only and depth):
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if submodule in modules:
                    found.add(submodule)  # `from pipeline.check import soft404`: the submodule
                elif node.module in modules:
                    found.add(node.module)
        elif isinstance(node, ast.Import) and not (top_level_only and depth):
            found.update(alias.name for alias in node.names if alias.name in modules)
        inner = depth + isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, 0)
    return found


def _layer(module: str) -> int:
    for index, patterns in enumerate(LAYERS):
        if any(fnmatch.fnmatchcase(module, pattern) for pattern in patterns):
            return index
    raise AssertionError(f"{module} has no layer in LAYERS: place it on the map")


def test_every_module_is_on_the_map() -> None:
    """Each module of the package has a place in the layer list (a new module must be placed)."""
    for module in _modules():
        _layer(module)


def test_no_module_imports_one_above_it() -> None:
    """Imports only go down the layers: a stage never imports a later stage, the CLI or the runner."""
    modules = _modules()
    upward = sorted(
        f"{module} -> {target}"
        for module, path in modules.items()
        for target in _imports(path, modules, top_level_only=False)
        if _layer(target) > _layer(module)
    )
    assert upward == []


def test_no_import_cycle() -> None:
    """The modules' import-time graph has no cycle (a package's own __init__ aside, which Python allows)."""
    modules = _modules()
    graph = {m: _imports(p, modules, top_level_only=True) - {m} for m, p in modules.items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def walk(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append([*trail[trail.index(target) :], target])
            elif target not in state:
                walk(target, [*trail, target])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])
    assert cycles == []


def test_the_guard_sees_an_upward_import() -> None:
    """The layer check is not vacuous: it sees the check pass import the check stage, which is below it."""
    modules = _modules()
    assert _layer("pipeline.checkpass") > _layer("pipeline.check")
    assert "pipeline.check" in _imports(modules["pipeline.checkpass"], modules, top_level_only=True)
