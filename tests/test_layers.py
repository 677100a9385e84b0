"""The layering of docs/ARCHITECTURE.md holds at import time: no import circle among the
project's modules, and nothing below the commands imports a command.

Module-level imports only (an import inside a function runs when called, not when the module is
imported); `kernelprop.X` and the repo folders it maps (kernels/, golden/, properties/, impls/)
are one namespace.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"kernelprop": "kernelprop", "golden": "kernelprop.golden", "kernels": "kernelprop.kernels",
           "properties": "kernelprop.properties", "impls": "kernelprop.impls"}
COMMANDS = "kernelprop.commands"


def _modules() -> dict[str, Path]:
    out = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([package, *parts])] = path
    return out


def _top_level_imports(tree: ast.Module) -> list[str]:
    """Modules named by imports that run when the module is imported (not inside a def)."""
    found, stack = [], list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        stack.extend(ast.iter_child_nodes(node))
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        deps = set()
        for target in _top_level_imports(ast.parse(path.read_text())):
            target = target if target.startswith("kernelprop") or target.split(".")[0] not in FOLDERS \
                else f"kernelprop.{target}"
            if target in modules and target != name:
                deps.add(target)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle():
    graph = import_graph()
    # a package's __init__ importing its own submodules is the package, not a circle
    assert not cycles(graph), cycles(graph)


def test_nothing_below_the_commands_imports_a_command():
    bad = sorted(f"{name} -> {dep}" for name, deps in import_graph().items()
                 if not name.startswith(COMMANDS) for dep in deps if dep.startswith(COMMANDS))
    assert not bad, bad


def test_the_graph_sees_the_project():
    graph = import_graph()
    assert "kernelprop.core.registry" in graph and "kernelprop.commands.pytest_plugin" in graph
    assert "kernelprop.core.verdict" in graph["kernelprop.core.evidence"]
