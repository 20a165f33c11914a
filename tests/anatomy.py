"""The code's shape, read from its syntax trees: who imports whom, and the longest functions and files.

`python -m tests.anatomy` prints the package import graph (every import statement of ours, module
level or inside a function, counted per edge), the imports that go up a layer, the count of imports
inside functions, and the ten longest functions and files. `tests/test_layers.py` holds the layering.

Layers, bottom up; a module may import its own role or any role of a lower rank, never one above,
and never a different role of its own rank (methods and tasks know nothing of each other; reports and
the harness meet only in the CLI):
  0 floor        benchmark.core: errors, typed settings, the Registry class, metric names, the cache,
                 the MLflow store reader
  1 methods      methods: each family on the floor, its registry included
  1 tasks        tasks: likewise
  2 definitions  benchmark.experiments: tables as data (rows, grids, presets)
  3 harness      the rest of benchmark: runner, study, models, scoring, measure, perf, tracking, ...
  3 reports      reports: records in, tables and figures out; never the harness, tasks or methods, never torch
  4 entry        benchmark.cli: the one module that sees everything
"""
from __future__ import annotations

import argparse
import ast
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("benchmark", "methods", "tasks", "reports")
ROLES: tuple[tuple[str, str], ...] = (  # module prefix -> role; the longest prefix wins
    ("benchmark", "harness"), ("benchmark.core", "floor"), ("benchmark.experiments", "definitions"),
    ("benchmark.cli", "entry"), ("methods", "methods"), ("tasks", "tasks"), ("reports", "reports"),
)
RANK = {"floor": 0, "methods": 1, "tasks": 1, "definitions": 2, "harness": 3, "reports": 3, "entry": 4}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module an ImportFrom names (relative ones resolved against the importer's package)."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    return ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))


def imports(module: str, path: Path, extra: tuple[str, ...] = ()) -> list[tuple[str, bool]]:
    """(imported module of ours, inside a function?) for every import statement in the file."""
    tree = ast.parse(path.read_text(), str(path))
    inner: set[int] = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inner.update(id(n) for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom)))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, path, node)  # `from pkg import module` imports pkg.module
            names = list(dict.fromkeys(f"{base}.{a.name}" if f"{base}.{a.name}" in _KNOWN else base for a in node.names))
        else:
            continue
        out += [(n, id(node) in inner) for n in names if n.split(".")[0] in PACKAGES + extra]
    return out


_KNOWN = set(sources()) | {f"tests.{p.stem}" for p in (ROOT / "tests").glob("*.py")}


def role(module: str) -> str | None:
    matches = [(len(prefix), name) for prefix, name in ROLES if module == prefix or module.startswith(prefix + ".")]
    return max(matches)[1] if matches else None


READS_ONLY = {"reports": {"floor", "definitions", "reports"}}  # reports: records and definitions, no task or method


def forbidden(src: str, dst: str) -> bool:
    """An import that goes up a rank, or sideways into another role of the same rank, or (reports) into a
    role below that is not theirs to read: a report renders from records on a fresh clone."""
    a, b = role(src), role(dst)
    return RANK[b] > RANK[a] or (RANK[b] == RANK[a] and a != b) or b not in READS_ONLY.get(a, {b})


def edges() -> list[tuple[str, str, bool]]:
    """(importer, imported, inside a function) over all our modules."""
    return [(m, dst, inner) for m, path in sources().items() for dst, inner in imports(m, path)]


def suite_sources() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((ROOT / "tests").glob("*.py"))}


def suite_edges() -> list[tuple[str, str, bool]]:
    """(test module, imported module of ours or of tests, inside a function)."""
    return [(m, dst, inner) for m, path in suite_sources().items() for dst, inner in imports(m, path, ("tests",))]


LABELS = {"floor": "benchmark.core", "definitions": "benchmark.experiments", "harness": "benchmark",
          "entry": "benchmark.cli"}


def group(module: str) -> str:
    """The node a module is drawn as: its role, named by its folder."""
    return LABELS.get(role(module), role(module))


def functions() -> list[tuple[int, str]]:
    """(lines, module:function) for every function and method."""
    out = []
    for module, path in sources().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append((node.end_lineno - node.lineno + 1, f"{module}:{node.name}"))
    return sorted(out, reverse=True)


def files() -> list[tuple[int, str]]:
    return sorted(((len(p.read_text().splitlines()), m) for m, p in sources().items()), reverse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args()
    all_edges = edges()
    counts = Counter((group(s), group(d)) for s, d, _ in all_edges if group(s) != group(d))
    wrong = {(group(s), group(d)) for s, d, _ in all_edges if forbidden(s, d)}
    print("import graph (role -> role: import statements)")
    for (s, d), n in sorted(counts.items()):
        print(f"  {s:22s} -> {d:22s} {n:3d}{'   UPWARD' if (s, d) in wrong else ''}")
    upward = [(s, d) for s, d, _ in all_edges if forbidden(s, d)]
    print(f"upward imports: {len(upward)}")
    for s, d in upward:
        print(f"  {s} -> {d}")
    print(f"imports of ours inside functions: {sum(inner for *_, inner in all_edges)}")
    print("longest functions (lines):")
    for n, name in functions()[: args.top]:
        print(f"  {n:4d} {name}")
    print("longest files (lines):")
    for n, name in files()[: args.top]:
        print(f"  {n:4d} {name}")


if __name__ == "__main__":
    main()
