"""Terms: the one base class under every tree of the compiler, and the walks over it.

Both trees, the kernel AST of :mod:`systec_ref.lang` and the loop-nest IR of
:mod:`systec_ref.ir`, are made of frozen dataclasses deriving from :class:`Node`.  A node's
*children* are the nodes among its fields, in field order, including those inside tuples
(``Add.args``) and tuples of tuples; every other field (a name, a number, a source position)
is an attribute.  ``rebuild`` makes the same node over new children, so one generic walk serves
every node type, and a pass written with :func:`postwalk` never needs to know the node types
it does not rewrite.

Walks:

* ``postwalk(f)`` rebuilds a term bottom-up, applying ``f`` to every node after its children
  (``f`` returns a replacement, or ``None`` for "keep");
* ``prewalk(f)`` applies ``f`` before descending into the (possibly replaced) node;
* ``chain(f, g)`` composes rewrites left to right; ``fixpoint(f)`` repeats one until nothing
  changes;
* ``nodes(t)`` yields every node of a term, pre-order.

Visitors that must handle every node type (printers, the interpreter, the emitter) dispatch
with ``match`` and end with ``case _: raise unknown(node, "who")``: a node type that a visitor
does not know is an :class:`~systec_ref.errors.InternalError` naming the node and the visitor,
never a fall-through into the wrong branch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from .errors import UnknownNode

T = TypeVar("T", bound="Node")
Rewrite = Callable[["Node"], "Node | None"]


class Node:
    """Base of every AST and IR node (subclasses are frozen dataclasses)."""

    __slots__ = ()

    def children(self) -> tuple[Node, ...]:
        """The nodes among this node's fields, in field order (tuples flattened)."""
        out: list[Node] = []
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            _collect(getattr(self, f.name), out)
        return tuple(out)

    def rebuild(self: T, children: Sequence[Node]) -> T:
        """This node with its children replaced, in order, by ``children``."""
        have, given = len(self.children()), len(children)
        if given != have:
            raise ValueError(f"{type(self).__name__}.rebuild: {given} children for a node that has {have}")
        it = iter(children)
        return self.map_children(lambda _: next(it))

    def map_children(self: T, fn: Callable[[Node], Node]) -> T:
        """This node with ``fn`` applied to each child (the same object when nothing changes)."""
        changes = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            nv = _map(v, fn)
            if nv is not v and nv != v:
                changes[f.name] = nv
        return dataclasses.replace(self, **changes) if changes else self  # type: ignore[type-var]


def _collect(v: object, out: list[Node]) -> None:
    if isinstance(v, Node):
        out.append(v)
    elif isinstance(v, tuple):
        for x in v:
            _collect(x, out)


def _map(v: object, fn: Callable[[Node], Node]) -> object:
    if isinstance(v, Node):
        return fn(v)
    if isinstance(v, tuple) and any(isinstance(x, (Node, tuple)) for x in v):
        new = tuple(_map(x, fn) for x in v)
        return v if all(a is b for a, b in zip(new, v)) else new
    return v


def unknown(node: object, visitor: str) -> UnknownNode:
    """The error a visitor raises on a node type it does not handle (``raise unknown(n, "C emitter")``)."""
    return UnknownNode(type(node).__name__, visitor)


# -- walks ------------------------------------------------------------------------


def postwalk(f: Rewrite) -> Callable[[object], object]:
    def walk(node: object) -> object:
        if not isinstance(node, Node):
            return node
        node = node.map_children(walk)
        r = f(node)
        return node if r is None else r
    return walk


def prewalk(f: Rewrite) -> Callable[[object], object]:
    def walk(node: object) -> object:
        if not isinstance(node, Node):
            return node
        r = f(node)
        node = node if r is None else r
        return node.map_children(walk) if isinstance(node, Node) else node
    return walk


def chain(*fs: Callable[[object], object]) -> Callable[[object], object]:
    def run(node: object) -> object:
        for f in fs:
            node = f(node)
        return node
    return run


def fixpoint(f: Callable[[object], object], limit: int = 100) -> Callable[[object], object]:
    def run(node: object) -> object:
        for _ in range(limit):
            new = f(node)
            if new == node:
                return new
            node = new
        return node
    return run


def nodes(node: object) -> Iterator[Node]:
    """Every node of a term (or of a tuple or list of terms), pre-order."""
    if isinstance(node, (tuple, list)):
        for x in node:
            yield from nodes(x)
        return
    if not isinstance(node, Node):
        return
    stack: list[Node] = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(n.children()))
