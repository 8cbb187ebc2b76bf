"""The package's rooms import only downward, and no module imports itself round a circle.

The layers, lowest first (a module may import from its own package and from lower layers only;
``interp`` and ``rewrite`` are siblings and never import each other)::

    errors, dtypes, term          foundation: exceptions, element types, the term base and walks
    storage                       formats of stored tensors, face geometry, SparseTensor
    lang                          the kernel language: lexer, parser, AST, checks
    ir                            the loop-nest IR: nodes, printer, verifier, index and name helpers
    interp | rewrite              the interpreter | lower and the passes
    emit                          C: emitter, calling convention, build, runtime
    driver modules                api, check, compare, reference, sizes, tensors, bundled (examples)
    viz                           explain, drawings
    cli, bench, __init__          entry points

Every import is counted, including those inside functions: a function-level import is still a
dependency (it was how the old circles were hidden).
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

PKG = Path(__file__).resolve().parents[1] / "systec_ref"

LAYERS: dict[str, int] = {
    "errors": 0, "dtypes": 0, "term": 0,
    "storage": 1,
    "lang": 2,
    "ir": 3,
    "interp": 4, "rewrite": 4,
    "emit": 5,
    "api": 6, "check": 6, "compare": 6, "reference": 6, "sizes": 6, "tensors": 6, "einsum": 6,
    "bundled": 6,
    "viz": 7,
    "cli": 8, "bench": 8, "__main__": 8, "__init__": 8,
}
#: same-layer rooms that must not import each other
SIBLINGS = {frozenset({"interp", "rewrite"})}


def _module(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[tuple[str, int]]:
    """(absolute module imported, line) for every import of ``systec_ref`` in the file."""
    tree = ast.parse(path.read_text(), str(path))
    here = _module(path)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("systec_ref"):
                continue
            out += [(_defining(target, alias.name), node.lineno) for alias in node.names]
        elif isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name.startswith("systec_ref")]
    return out


def _path(module: str) -> Path:
    return PKG.parent / module.replace(".", "/")


def _defining(target: str, name: str) -> str:
    """The module ``from <target> import <name>`` really uses: the submodule ``name`` if there is one,
    else, for a package, the module its ``__init__`` re-exports ``name`` from (followed to its end), else
    ``target`` itself.  Without this a re-export would hide a circle through a package's ``__init__``."""
    sub = f"{target}.{name}"
    if _path(sub).with_suffix(".py").exists() or _path(sub).is_dir():
        return sub
    init = _path(target) / "__init__.py"
    if not init.exists():
        return target
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            if any((a.asname or a.name) == name for a in node.names):
                original = next(a.name for a in node.names if (a.asname or a.name) == name)
                return _defining(f"{target}.{node.module}", original)
    return target


def _graph() -> tuple[nx.DiGraph, list[str]]:
    g = nx.DiGraph()
    problems = []
    for path in sorted(PKG.rglob("*.py")):
        src = _module(path)
        g.add_node(src)
        for target, line in _imports(path):
            g.add_edge(src, target, line=line)
            a, b = _room(src), _room(target)
            if a == b:
                continue
            if a not in LAYERS or b not in LAYERS:
                problems.append(f"{path.relative_to(PKG.parent)}:{line}: room {a if a not in LAYERS else b} "
                                f"has no layer in this test")
            elif LAYERS[b] > LAYERS[a]:
                problems.append(f"{path.relative_to(PKG.parent)}:{line}: {src} (layer {LAYERS[a]}) imports "
                                f"{target} (layer {LAYERS[b]}): an upward import")
            elif frozenset({a, b}) in SIBLINGS:
                problems.append(f"{path.relative_to(PKG.parent)}:{line}: {src} imports its sibling {target}")
            elif LAYERS[b] == LAYERS[a] and LAYERS[a] == 0:
                continue  # the foundation modules may use each other (term raises errors' UnknownNode)
    return g, problems


def test_no_upward_or_sibling_import():
    _, problems = _graph()
    assert not problems, "\n".join(problems)


def test_no_import_circle():
    g, _ = _graph()  # an import of a re-exported name counts as an import of the module defining it
    cycles = list(nx.simple_cycles(g))
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join(c + [c[0]]) for c in cycles[:10])


def test_the_layer_table_covers_every_room():
    rooms = {_room(_module(p)) for p in PKG.rglob("*.py")}
    assert rooms <= set(LAYERS), sorted(rooms - set(LAYERS))
