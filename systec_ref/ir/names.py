"""Names in a program: the ones it uses, and fresh ones no part of it uses.

Every name a pass invents (a hoisted read ``_a0``, a workspace ``_w0``, a position ``_q0``) comes
from :func:`namer`, so it can never collide with a tensor, dimension, loop variable or local of
the program — names of the kernel's source reach C unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

from ..term import nodes
from .nodes import Program


def used_names(p: Program) -> set[str]:
    """Every name of ``p`` — tensors, dimensions, locals, loop variables — that one C function sees."""
    used = {getattr(n, "name", None) for n in nodes(p.body)} | {getattr(n, "var", None) for n in nodes(p.body)}
    used |= {t.name for t in p.tensors} | {d for t in p.tensors for d in t.dims if isinstance(d, str)}
    return used - {None}


def namer(p: Program, prefix: str) -> Callable[[], str]:
    """A generator of names ``<prefix>0, <prefix>1, ...`` unused anywhere in ``p``."""
    used = used_names(p)
    counter = [0]

    def fresh() -> str:
        while f"{prefix}{counter[0]}" in used:
            counter[0] += 1
        name = f"{prefix}{counter[0]}"
        used.add(name)
        return name
    return fresh
