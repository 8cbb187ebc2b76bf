"""Helpers shared by ``test_passes*.py`` and ``test_symmetry*.py`` (and a few tests of the helpers).

``helpers.py`` and ``strategies.py`` belong to the language/API tests; what the
pass and symmetry tests need on top of them lives here:

* :func:`variant` — the float64 / int64 version of an example's source;
* :func:`canonical` / :func:`canonical_count` / :func:`poison` — the canonical
  triangle of a (partially) symmetric tensor, and an array whose non-canonical
  entries hold garbage;
* :func:`touched_points` — which elements of a tensor a program read;
* :func:`assert_stages_agree` — ``systec_ref.check`` with a readable failure;
* :func:`sym_kernels` — a Hypothesis strategy of kernels built around symmetric
  inputs (so the symmetry passes fire far more often than with
  ``strategies.kernels()``, where about one kernel in six has a permutable set).
"""

from __future__ import annotations

import itertools
import math
import re

import helpers
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import systec_ref
from systec_ref.errors import SourceError
from systec_ref.ir.printer import print_program

_DECL_LINE = re.compile(r"^\s*(in|out)\s")
_DTYPE = re.compile(r"\s*\b(float64|float32|int64)\b")


# -- source variants -------------------------------------------------------------


def variant(text: str, dtype: str) -> str | None:
    """``text`` with every declaration of element type ``dtype`` (``float64`` or
    ``int64``); None when the language does not allow it (e.g. ``fill inf`` has
    no int64 value, so bellman has no int64 version)."""
    out = []
    for line in text.split("\n"):
        if _DECL_LINE.match(line):
            code, hash_, comment = line.partition("#")
            code = _DTYPE.sub("", code).rstrip()
            if dtype != "float64":
                code += f" {dtype}"
            line = code + (f"  {hash_}{comment}" if hash_ else "")
        out.append(line)
    new = "\n".join(out)
    try:
        systec_ref.compile(new)
    except SourceError:
        return None
    return new


def example_text(name: str) -> str:
    return helpers.example(name).read_text(encoding="utf-8")


# -- canonical triangles -------------------------------------------------------------


def canonical(point: tuple[int, ...], groups: tuple[tuple[int, ...], ...]) -> bool:
    """Is ``point`` sorted (non-decreasing) within every symmetry group?"""
    return all(all(point[a] <= point[b] for a, b in zip(g, g[1:])) for g in groups)


def canonical_count(shape: tuple[int, ...], groups: tuple[tuple[int, ...], ...]) -> int:
    """Number of canonical elements: one multiset per group, times the free modes."""
    count = 1
    grouped = {q for g in groups for q in g}
    for g in groups:
        count *= math.comb(shape[g[0]] + len(g) - 1, len(g))
    for q, s in enumerate(shape):
        if q not in grouped:
            count *= s
    return count


def poison(arr: np.ndarray, groups: tuple[tuple[int, ...], ...], value) -> np.ndarray:
    """A copy of ``arr`` with ``value`` at every non-canonical element."""
    out = np.array(arr, copy=True)
    for p in itertools.product(*(range(s) for s in arr.shape)):
        if not canonical(p, groups):
            out[p] = value
    return out


def touched_points(counts, tensor: str, shape: tuple[int, ...]) -> set[tuple[int, ...]]:
    """The elements of ``tensor`` that a program run read (the interpreter records flat offsets)."""
    offsets = counts.touched.get(tensor, set())
    if not shape:
        return {()} if offsets else set()
    return {tuple(int(x) for x in np.unravel_index(o, shape)) for o in offsets}


def symmetric_inputs(kernel: systec_ref.Kernel) -> list:
    return [d for d in kernel.ast.inputs if d.symmetry]


# -- checking ------------------------------------------------------------------------


def describe(report, kernel: systec_ref.Kernel | None = None) -> str:
    lines = [f"kernel {report.kernel}:"]
    for s in report.stages:
        flag = "" if (s.vs_previous.ok and s.vs_definition.ok) else "   <-- DIFFERS"
        lines.append(f"  {s.name}: vs previous {s.vs_previous.detail or 'ok'}; vs definition "
                     f"{s.vs_definition.detail or 'ok'}{flag}")
    if kernel is not None:
        bad = next((s for s in report.stages if not s.vs_definition.ok), None)
        if bad is not None:
            lines.append(print_program(kernel.stage(bad.name).program))
    return "\n".join(lines)


def assert_stages_agree(kernel: systec_ref.Kernel, inputs: dict, context: str = ""):
    """Every stage agrees with the definition and with the stage before it."""
    report = systec_ref.check(kernel, inputs)
    assert [s.name for s in report.stages] == [s.name for s in kernel.stages]
    assert report.ok, f"{context}\n{describe(report, kernel)}"
    return report


def sizes(kernel: systec_ref.Kernel, n: int, r: int) -> dict[str, int]:
    return helpers.sizes_for(kernel, n, r)


# -- a strategy of symmetry-heavy kernels --------------------------------------------------


def _partition_groups(draw, order: int) -> str:
    """Symmetry clauses over ``order`` modes of one dim: full, or random disjoint groups."""
    if draw(st.booleans()):
        return "symmetric"
    modes = list(draw(st.permutations(range(order))))
    clauses = []
    while len(modes) >= 2:
        size = draw(st.integers(2, len(modes)))
        group, modes = sorted(modes[:size]), modes[size:]
        clauses.append("symmetric(" + ",".join(map(str, group)) + ")")
        if not draw(st.booleans()):
            break
    return " ".join(clauses)


@st.composite
def sym_kernels(draw, max_order: int = 4) -> str:
    """Source text of a kernel around a symmetric tensor ``S`` (order 2..max_order,
    full or partial symmetry), read once or twice with random (possibly repeated)
    indices, times or plus vectors, a factor matrix and a second symmetric matrix."""
    dtype = draw(st.sampled_from(["float64", "int64"]))
    op = draw(st.sampled_from(["+=", "+=", "=", "min=", "max="]))
    nvars = ["i", "j", "k", "l"][: draw(st.integers(2, 4))]
    rvar = "p" if draw(st.booleans()) else None
    order = draw(st.integers(2, max_order))
    idx = st.sampled_from(nvars)

    decls = [f"in S[{', '.join(['n'] * order)}] {_partition_groups(draw, order)}"]
    if draw(st.booleans()):
        # structured, like MTTKRP / SYPRD / the cubic form: S at distinct indices, and one factor
        # (a vector, or a matrix row along p) at each of several of them, so that rearrangements
        # coincide and group-assignments / replicate-output have something to merge
        svars = list(draw(st.permutations(["i", "j", "k", "l", "m"])))[:order]
        leaves = [f"S[{', '.join(svars)}]"]
        factored = list(draw(st.permutations(svars)))[: draw(st.integers(1, order))]
        if rvar is not None and draw(st.booleans()):
            decls.append("in B[n, r]")
            leaves += [f"B[{v}, {rvar}]" for v in factored]
        else:
            rvar = None
            decls.append("in x[n]")
            leaves += [f"x[{v}]" for v in factored]
    else:
        leaves = [f"S[{', '.join(draw(idx) for _ in range(order))}]" for _ in range(draw(st.integers(1, 2)))]
        if draw(st.booleans()):
            decls.append("in x[n]")
            leaves += [f"x[{draw(idx)}]" for _ in range(draw(st.integers(1, 3)))]
        if rvar is not None:
            decls.append("in B[n, r]")
            leaves += [f"B[{draw(idx)}, {rvar}]" for _ in range(draw(st.integers(1, 2)))]
    if draw(st.integers(0, 3)) == 0:
        decls.append("in M[n, n] symmetric")
        leaves.append(f"M[{draw(idx)}, {draw(idx)}]")
    if draw(st.integers(0, 3)) == 0:
        leaves.append(str(draw(st.integers(2, 3))))
    leaves = list(draw(st.permutations(leaves)))
    if op in ("min=", "max=") and draw(st.booleans()):
        rhs = " + ".join(leaves)  # tropical
    elif len(leaves) >= 3 and draw(st.integers(0, 3)) == 0:
        cut = draw(st.integers(1, len(leaves) - 1))
        rhs = f"{' * '.join(leaves[:cut])} - {' * '.join(leaves[cut:])}"
    else:
        rhs = " * ".join(leaves)

    used = list(dict.fromkeys(re.findall(r"\b[ijklmp]\b", rhs)))
    out_idx = list(draw(st.permutations(used)))[: draw(st.integers(0, min(3, len(used))))]
    out_dims = ["r" if v == "p" else "n" for v in out_idx]
    decls.append("out Y" + (f"[{', '.join(out_dims)}]" if out_idx else ""))
    if dtype == "int64":
        decls = [d + " int64" for d in decls]
    lines = [f"kernel s{draw(st.integers(0, 99))}", *decls]
    if draw(st.booleans()):
        lines.append("order " + " ".join(draw(st.permutations(used))))
    lhs = "Y" + (f"[{', '.join(out_idx)}]" if out_idx else "")
    lines.append(f"{lhs} {op} {rhs}")
    text = "\n".join(lines) + "\n"
    if draw(st.integers(0, 2)) == 0:
        text = helpers.set_sparse(text, {"S"})
    systec_ref.compile(text)  # valid by construction
    return text


# -- tests of the helpers themselves --------------------------------------------------


@pytest.mark.parametrize("path", helpers.EXAMPLES, ids=lambda p: p.stem)
def test_variants_parse_and_keep_the_assignment(path):
    text = path.read_text(encoding="utf-8")
    f64 = variant(text, "float64")
    assert f64 is not None
    i64 = variant(text, "int64")
    k64 = systec_ref.compile(f64)
    assert {d.dtype for d in k64.ast.decls} == {"float64"}
    if path.stem == "bellman":
        assert i64 is None  # 'fill inf' has no int64 value
    else:
        assert i64 is not None
        k = systec_ref.compile(i64)
        assert {d.dtype for d in k.ast.decls} == {"int64"}
        assert i64.strip().splitlines()[-1] == text.strip().splitlines()[-1]  # the assignment is untouched


def test_canonical_count_matches_enumeration():
    for shape, groups in [((4, 4), ((0, 1),)), ((3, 3, 3), ((0, 1, 2),)), ((3, 3, 3, 3), ((0, 1), (2, 3))),
                          ((3, 2, 3), ((0, 2),)), ((2, 2, 2, 2, 2), ((0, 1, 2, 3, 4),))]:
        n = sum(canonical(p, groups) for p in itertools.product(*(range(s) for s in shape)))
        assert canonical_count(shape, groups) == n


@settings(max_examples=60, deadline=None)
@given(text=sym_kernels())
def test_sym_kernels_parse(text):
    k = systec_ref.compile(text)
    assert any(d.symmetry for d in k.ast.inputs)
