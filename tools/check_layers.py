"""Check the import layers of ``framework/`` (DESIGN.md §2): arrows go downward only, and nothing imports in a circle.

Every import counts: module level, inside functions and under ``TYPE_CHECKING``. A module may import modules of
its own layer or below. Only ``framework/plugins/`` may import the service clients (mlflow, kombu, pika, celery,
redis, amqp). Exit status 1 lists every upward import, circle and stray client import.

    python tools/check_layers.py            # prints "layers ok: N modules, M imports" or the violations
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "framework"
SERVICE_CLIENTS = {"mlflow", "kombu", "pika", "celery", "redis", "amqp"}

# Lowest first. A module matches the longest prefix listed; a package name covers its submodules.
LAYERS: list[tuple[str, ...]] = [
    ("framework", "framework.errors", "framework.config", "framework.records"),
    ("framework.plugins",),
    ("framework.metrics", "framework.models", "framework.figures", "framework.datasets", "framework.report"),
    ("framework.Experiment", "framework.FaultDetection", "framework.TimeSeriesAnalysis"),
    ("framework.store",),
    ("framework.streaming", "framework.monitoring"),
    ("framework.training", "framework.jobs"),
    ("framework.ExperimentHub",),
    ("framework.worker",),
    ("framework.cli", "framework.api", "framework.demo", "framework.devservices"),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int:
    best, best_len = -1, -1
    for rank, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and len(prefix) > best_len:
                best, best_len = rank, len(prefix)
    if best < 0:
        raise SystemExit(f"check_layers: {module} is in no layer; add it to LAYERS in {__file__}")
    return best


def imports_of(path: Path, known: set[str]) -> tuple[set[str], set[str]]:
    """(framework modules, top-level third-party packages) that ``path`` imports anywhere."""
    tree = ast.parse(path.read_text(), filename=str(path))
    internal, external = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top != PACKAGE:
                external.add(top)
                continue
            while name and name not in known:  # "framework.errors.HubError" -> "framework.errors"
                name = name.rpartition(".")[0]
            if name:
                internal.add(name)
    return internal, external


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def main() -> int:
    files = {module_name(p): p for p in sorted((ROOT / PACKAGE).rglob("*.py"))}
    known = set(files)
    graph: dict[str, set[str]] = {}
    problems: list[str] = []
    for module, path in files.items():
        internal, external = imports_of(path, known)
        graph[module] = {m for m in internal if m != module and m != PACKAGE}
        for target in sorted(graph[module]):
            if layer_of(target) > layer_of(module):
                problems.append(f"upward import: {module} -> {target}")
        if not module.startswith(f"{PACKAGE}.plugins") and (clients := sorted(external & SERVICE_CLIENTS)):
            problems.append(f"service client outside plugins/: {module} imports {', '.join(clients)}")
    for cycle in find_cycles(graph):
        problems.append(f"import circle: {' <-> '.join(cycle)}")
    if problems:
        print("\n".join(problems))
        print(f"check_layers: {len(problems)} problem(s)")
        return 1
    print(f"layers ok: {len(graph)} modules, {sum(map(len, graph.values()))} imports, no circles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
