"""Structure of the harness: no import cycle among its modules, and no module reaching into another's
private names (``from harness.x import _y`` or ``x._y``). Read from the source with ast, no import."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("harness", "sensor_models")


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(f.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = f
    return mods


MODULES = _modules()


def _target(module: str, node: ast.ImportFrom) -> str | None:
    if not node.level:
        return node.module
    base = module.split(".")
    if MODULES[module].name != "__init__.py":
        base = base[:-1]
    base = base[:len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _scan():
    """Edges ``{module: {(imported module, at module level, line)}}`` and private-name uses."""
    edges: dict[str, set] = {m: set() for m in MODULES}
    private: list[str] = []
    for mod, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        top = {id(n) for n in tree.body}
        aliases: dict[str, str] = {}
        for n in ast.walk(tree):
            if isinstance(n, ast.Import):
                for a in n.names:
                    if a.name in MODULES:
                        edges[mod].add((a.name, id(n) in top, n.lineno))
                        if a.asname:
                            aliases[a.asname] = a.name
            elif isinstance(n, ast.ImportFrom):
                tgt = _target(mod, n)
                if not tgt or tgt.split(".")[0] not in PACKAGES:
                    continue
                for a in n.names:
                    sub = f"{tgt}.{a.name}"
                    if sub in MODULES:   # a submodule imported by name
                        edges[mod].add((sub, id(n) in top, n.lineno))
                        aliases[a.asname or a.name] = sub
                        continue
                    if tgt in MODULES:
                        edges[mod].add((tgt, id(n) in top, n.lineno))
                    if a.name.startswith("_") and not a.name.startswith("__") and tgt != mod:
                        private.append(f"{path.relative_to(ROOT)}:{n.lineno}: from {tgt} import {a.name}")
        for n in ast.walk(tree):
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in aliases \
                    and n.attr.startswith("_") and not n.attr.startswith("__") and aliases[n.value.id] != mod:
                private.append(f"{path.relative_to(ROOT)}:{n.lineno}: {aliases[n.value.id]}.{n.attr}")
    return edges, private


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (or a self-import), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
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
            if len(comp) > 1 or v in graph.get(v, ()):
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _describe(cycle: list[str], edges) -> str:
    members = set(cycle)
    return "; ".join(f"{m} -> {t} (line {ln}{'' if top else ', in a function'})"
                     for m in cycle for t, top, ln in sorted(edges[m]) if t in members)


def test_the_cycle_finder_finds_cycles():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"a"}}) == [["a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_the_scan_sees_the_package_graph():
    edges, _ = _scan()
    assert "harness.faults.fault_set" in MODULES and "harness.targets.build" in MODULES
    assert ("harness.faults.fault_set", True) in {(t, top) for t, top, _ in edges["harness.faults"]}
    assert any(t == "harness.link" for t, _, _ in edges["harness.runner"])


def test_no_import_cycle_at_module_level():
    edges, _ = _scan()
    cycles = find_cycles({m: {t for t, top, _ in es if top} for m, es in edges.items()})
    assert not cycles, "import cycles: " + " | ".join(_describe(c, edges) for c in cycles)


def test_no_import_cycle_even_through_imports_inside_functions():
    """A lazy import that closes a cycle still ties the modules into one (issue 14: campaign.spec
    imported the CLI, which imports the campaign)."""
    edges, _ = _scan()
    cycles = find_cycles({m: {t for t, _, _ in es} for m, es in edges.items()})
    assert not cycles, "import cycles: " + " | ".join(_describe(c, edges) for c in cycles)


def test_no_private_name_is_imported_across_modules():
    _, private = _scan()
    assert not private, "private names used across modules (make them public or move them):\n" + "\n".join(private)
