"""The layering of the packages, checked on the source: every module is parsed with ``ast``.

Imports go one way, from the bottom to the top:

    verifier.ir <- verifier.settings <- frontends <- verifier.bounds <- verifier.attack <- backends
    <- verifier.bab <- verifier.certificates <- verifier.training <- verifier.methods <- verifier.api
    <- verifier.robustness <- verifier.bench <- verifier.cli

A module may import its own layer and the layers below it, never one above. Imports inside functions
are for optional dependencies only (a missing one must not break the rest).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("verifier", "frontends", "backends")
LAYERS = ("verifier.ir", "verifier.settings", "frontends", "verifier.bounds", "verifier.attack", "backends",
          "verifier.bab", "verifier.certificates", "verifier.training", "verifier.methods", "verifier.api",
          "verifier.robustness", "verifier.bench", "verifier.cli")
OPTIONAL = {"gurobipy", "pulp", "ray", "cvxpy", "clarabel", "matplotlib", "sklearn", "threadpoolctl"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for p in sorted((ROOT / pkg).rglob("*.py")):
            out[module_name(p)] = p
    return out


def layer_of(mod: str) -> int | None:
    """Index of the layer that ``mod`` belongs to (the longest matching prefix); None outside every layer."""
    best = None
    for k, prefix in enumerate(LAYERS):
        if mod == prefix or mod.startswith(prefix + "."):
            if best is None or len(prefix) > len(LAYERS[best]):
                best = k
    return best


def imports(path: Path, mod: str):
    """(line, imported module, inside a function or class) for each import of ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    nested = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for sub in ast.walk(node):
                if sub is not node:
                    nested.add(id(sub))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name, id(node) in nested
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = mod.split(".") if is_pkg else mod.split(".")[:-1]
                pkg = pkg[:len(pkg) - node.level + 1]
                base = ".".join(pkg + ([base] if base else []))
            yield node.lineno, base, id(node) in nested


def test_every_module_belongs_to_a_layer():
    outside = [m for m in modules() if m != "verifier" and layer_of(m) is None]
    assert not outside, f"modules outside every layer of {LAYERS}: {outside}"


def test_imports_follow_the_layers():
    bad = []
    for mod, path in modules().items():
        own = layer_of(mod)
        for line, target, _ in imports(path, mod):
            if target.split(".")[0] not in PACKAGES:
                continue
            if mod == "verifier":
                bad.append(f"{path.relative_to(ROOT)}:{line}: the root package imports {target}")
                continue
            other = layer_of(target)
            if other is None or other > own:
                bad.append(f"{path.relative_to(ROOT)}:{line}: {mod} ({LAYERS[own]}) imports {target} "
                           f"({'no layer' if other is None else LAYERS[other]}), a layer above it")
    assert not bad, "\n".join(bad)


def test_no_import_inside_a_function_except_optional_dependencies():
    bad = []
    for mod, path in modules().items():
        for line, target, inside in imports(path, mod):
            if inside and target.split(".")[0] not in OPTIONAL:
                bad.append(f"{path.relative_to(ROOT)}:{line}: import of {target} inside a function or class")
    assert not bad, "\n".join(bad)


def test_no_import_cycle_between_modules():
    graph = {}
    mods = modules()
    for mod, path in mods.items():
        deps = set()
        for _, target, inside in imports(path, mod):
            if inside:
                continue
            while target and target not in mods:  # `from pkg import name`: the module pkg.name, else pkg
                target = target.rpartition(".")[0]
            if target and target != mod:
                deps.add(target)
        graph[mod] = deps
    state, cycle = {}, []

    def visit(m, stack):
        state[m] = 1
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1 and not cycle:
                cycle.extend(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d, stack + [d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycle, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("target, layer", [("verifier.ir.graph", 0), ("verifier.cli.main", len(LAYERS) - 1),
                                            ("backends.milp", LAYERS.index("backends")),
                                            ("verifier.bounds.crown", LAYERS.index("verifier.bounds"))])
def test_layer_of(target, layer):
    assert layer_of(target) == layer
