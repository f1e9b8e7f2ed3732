"""The import graph of ``stnet`` has no cycles, and the deployment layers import downward only.

Every ``import`` / ``from ... import`` in every module counts, including the ones inside functions
(a lazy import hides a cycle from the interpreter, not from the reader) and those under
``if TYPE_CHECKING:`` (a type-only import is still a dependency the reader follows).
``from pkg import name`` is an edge to ``pkg.name`` when that is a module, else to ``pkg``.
Importing a submodule also runs its package's ``__init__``; that implicit edge is not counted (a
package that re-exports its submodules would otherwise always be a cycle).
"""
from __future__ import annotations

import ast
from pathlib import Path

import stnet

ROOT = Path(stnet.__file__).resolve().parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> set[str]:
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {name for name in found if name in known and name != module}


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: _imports(ast.parse(path.read_text(encoding="utf-8")), name, path.name == "__init__.py", known)
            for name, path in mods.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return cycles


def test_the_graph_is_read():
    graph = import_graph()
    assert "stnet.model_files" in graph["stnet.inference.model"]
    assert "stnet.engine.train" in graph


def test_type_checking_imports_count():
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from stnet.b import X\n")
    assert _imports(tree, "stnet.a", False, {"stnet.a", "stnet.b"}) == {"stnet.b"}


#: Layers, lowest first: a module may import its own layer and the ones before it, never a later one.
LAYERS = [
    ("base", ("stnet.constants", "stnet.io", "stnet.config", "stnet.cpuinfo")),
    ("card", ("stnet.card", "stnet.model_files")),
    ("models", ("stnet.models",)),
    ("codecs", ("stnet.codecs",)),
    ("export", ("stnet.export",)),
    ("backends", ("stnet.backends",)),
    ("inference", ("stnet.inference",)),
    ("apps", ("stnet.apps", "stnet.cli", "stnet.__main__")),
]


def _layer(module: str) -> int | None:
    for i, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    return None


def test_the_deployment_layers_import_downward_only():
    graph = import_graph()
    upward = []
    for mod, deps in graph.items():
        lm = _layer(mod)
        for dep in deps:
            ld = _layer(dep)
            if lm is not None and ld is not None and ld > lm:
                upward.append(f"{mod} ({LAYERS[lm][0]}) -> {dep} ({LAYERS[ld][0]})")
    assert not upward, "imports against the layering: " + "; ".join(sorted(upward))


def test_nothing_imports_apps_and_export_never_imports_inference():
    graph = import_graph()
    bad = [f"{m} -> {d}" for m, deps in graph.items() for d in deps
           if (d.startswith("stnet.apps") and not m.startswith(("stnet.apps", "stnet.cli", "stnet.__main__")))
           or (m.startswith("stnet.export") and d.startswith(("stnet.inference", "stnet.backends")))]
    assert not bad, "; ".join(sorted(bad))


def test_no_import_cycles():
    graph = import_graph()
    cycles = find_cycles(graph)
    detail = "; ".join(" <-> ".join(c) + " (" + ", ".join(
        f"{a} -> {b}" for a in c for b in sorted(graph[a] & set(c))) + ")" for c in cycles)
    assert not cycles, f"import cycles in stnet: {detail}"


def test_the_checker_sees_a_cycle():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_models_load_without_opencv():
    import subprocess
    import sys

    code = "import sys, stnet.models; assert 'cv2' not in sys.modules, sorted(m for m in sys.modules if 'cv2' in m)"
    subprocess.run([sys.executable, "-c", code], check=True)
