"""Reads of a packed input in C: the offset of a canonical entry, and the proof that a read is canonical.

A dense input passed packed (:mod:`systec_ref.storage.packed`; the program's ``packed`` fact) is one
flat array of its canonical entries.  Its element at subscripts sorted within every symmetry group is
at the layout's offset, which :func:`helper` writes as a small inline C function (the same formula as
:func:`systec_ref.storage.packed.offset`, whose numpy twin packs the array).  A read whose
subscripts are not sorted in a group must sort them first (the value is the same: the tensor is
symmetric there); sorting costs a few compares and branches per read, so it is done only where
:class:`Order` cannot prove the subscripts sorted from the loops around the read.

The proof is :class:`systec_ref.ir.order.Order`'s, from the loops around the read (the emitter keeps
one as it walks the program).  Inside a ``Permute`` the rearranged variables lose their constraints,
and a variable bound again (a sparse level's coordinate) starts afresh.  The symmetric passes read
only canonical entries of the symmetry a stage declares (a tested invariant:
``tests/test_passes_random.py``), and their loops say so: e.g. SSYMV's ``for j in i+1..n: ... A[i,j]``
or the unrolled ``A[i+3,j]`` in ``for j in i+4..n`` need no sort.  The naive nest's ``A[i,j]`` over the
full square sorts, and so do the few face reads ``A[k,k,i]`` (``i`` free) of a kernel whose ``gemm-form``
kept only part of the symmetry: the packed layout is the declared groups'.
"""

from __future__ import annotations

from ..ir.nodes import TensorInfo
from ..ir.order import Order
from ..lang.names import generated
from ..storage.packed import units

__all__ = ["Order", "helper", "helper_name", "sorted_subscripts"]


def _simplex(length: int, x: str) -> str:
    """C for ``C(x + length - 1, length)``: the product of ``length`` consecutive integers is divisible by
    ``length!``, and the division is exact."""
    if length == 1:
        return x
    product = " * ".join(f"({x} + {q})" if q else f"({x})" for q in range(length))
    fact = 1
    for q in range(2, length + 1):
        fact *= q
    return f"(({product}) / {fact})"


def sorted_subscripts(name: str, order: int, sort: tuple[tuple[int, ...], ...]) -> list[str]:
    """The head of an offset function ``name(d0.., s0..)`` (extents, then subscripts) that copies the
    subscripts into ``v`` and sorts those at the positions of each group in ``sort``: shared by the
    offset functions of packed inputs (:func:`helper`) and of sorted reads of full arrays (``emit/c.py``)."""
    params = [f"int64_t d{q}" for q in range(order)] + [f"int64_t s{q}" for q in range(order)]
    lines = [f"static inline int64_t {name}({', '.join(params)}) {{",
             f"    int64_t v[{order}] = {{{', '.join(f's{q}' for q in range(order))}}};"]
    for g in sort:
        # insertion sort of the group's positions: groups are tiny
        lines += [f"    {{ const int p[{len(g)}] = {{{', '.join(map(str, g))}}};",
                  f"      for (int a = 1; a < {len(g)}; ++a) {{",
                  "        int64_t x = v[p[a]]; int b = a - 1;",
                  "        while (b >= 0 && v[p[b]] > x) { v[p[b + 1]] = v[p[b]]; --b; }",
                  "        v[p[b + 1]] = x;",
                  "      } }"]
    return lines


def helper(name: str, t: TensorInfo, groups: tuple[tuple[int, ...], ...],
           sort: tuple[tuple[int, ...], ...]) -> str:
    """A C function ``name(d0.., s0..)``: the offset in ``t``'s packed array (symmetric in ``groups``) of
    the entry at subscripts ``s``, sorting those of each group in ``sort`` first."""
    k = t.order
    lines = [*sorted_subscripts(name, k, sort), "    int64_t off = 0;"]
    for u in units(k, groups):
        n = f"d{u[0]}"
        if len(u) == 1:
            lines.append(f"    off = off * {n} + v[{u[0]}];")
            continue
        # rank of the sorted subscripts a_1 <= ... <= a_k: sum over m of T(k-m+1, a_(m-1)) - T(k-m+1, a_m),
        # T(L, a) the sorted L-tuples over a..n-1 (see storage/packed.py); the last term is a_k - a_(k-1)
        size = _simplex(len(u), n)
        terms, prev = [], None
        for m, mode in enumerate(u, start=1):
            length = len(u) - m + 1
            if m == len(u):
                terms.append(f"(v[{mode}] - {prev if prev is not None else '0'})")
                break
            before = _simplex(length, n) if prev is None else _simplex(length, f"({n} - {prev})")
            terms.append(f"({before} - {_simplex(length, f'({n} - v[{mode}])')})")
            prev = f"v[{mode}]"
        lines.append(f"    off = off * {size} + {' + '.join(terms)};")
    lines += [f"    {' '.join(f'(void)d{q};' for q in range(k))}", "    return off;", "}"]
    return "\n".join(lines)


def helper_name(tensor: str, serial: int) -> str:
    return generated("pk", tensor, serial)
