"""The code's shape: imports point one way (core <- methods <- harness) with no cycle, counting
imports inside functions; no module over 300 lines and no function over 60."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "ijepa", "baselines", "bench")
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 300, 60


def modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `name` imports anywhere in its file (top level or inside a function):
    `from a.b import c` counts a.b.c when that is a module, else a.b."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative
                package = name.split(".")[: len(name.split(".")) - node.level + (path.name == "__init__.py")]
                base = ".".join([*package, *([base] if base else [])])
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        found |= {t for t in targets if t in known and t != name}
    return found


def graph() -> dict[str, set[str]]:
    """Module -> the project modules importing it runs: those it imports, and for each of them the
    packages above it (importing a.b.c runs a/__init__.py and a/b/__init__.py first)."""
    found = modules()
    edges = {}
    for name, path in found.items():
        targets = imported(name, path, set(found))
        parents = {".".join(t.split(".")[:i]) for t in targets for i in range(1, t.count(".") + 1)}
        edges[name] = (targets | parents) & set(found) - {name, *ancestors(name)}
    return edges


def ancestors(name: str) -> set[str]:
    """A module's own packages: importing it has run them already, so they are no edge of its."""
    return {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}


def test_the_module_graph_has_no_cycle():
    edges, done, path = graph(), set(), []

    def visit(node: str) -> None:
        if node in path:
            cycle = path[path.index(node) :] + [node]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if node in done:
            return
        path.append(node)
        for nxt in sorted(edges[node]):
            visit(nxt)
        path.pop()
        done.add(node)

    for node in sorted(edges):
        visit(node)


def test_imports_point_one_way():
    """core imports nothing of the project's but core; the methods import core and themselves only."""
    allowed = {"core": ("core",), "ijepa": ("core", "ijepa"), "baselines": ("core", "baselines")}
    wrong = [
        f"{name} imports {target}"
        for name, targets in graph().items()
        for target in sorted(targets)
        if name.split(".")[0] in allowed and target.split(".")[0] not in allowed[name.split(".")[0]]
    ]
    assert not wrong, wrong


def test_results_read_run_folders_without_the_launcher_or_the_engine():
    """bench.results is functions over run folders: the CLI hands it what the cluster's queue says."""
    wrong = [
        f"{name} imports {target}"
        for name, targets in graph().items()
        for target in sorted(targets)
        if name.startswith("bench.results") and target.startswith(("bench.launch", "bench.train"))
    ]
    assert not wrong, wrong


def test_no_module_over_300_lines_and_no_function_over_60():
    too_long = []
    for name, path in modules().items():
        source = path.read_text()
        lines = len(source.splitlines())
        if lines > MAX_MODULE_LINES:
            too_long.append(f"{name}: {lines} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}.{node.name}: {length} lines")
    assert not too_long, "\n".join(too_long)
