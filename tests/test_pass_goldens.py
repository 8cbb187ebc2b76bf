"""Per-pass golden tests: every pass of the pipeline (and ``lower``) on small hand-written programs.

Each case builds a small input program directly with the IR constructors — with the facts the pass
reads (``permutable``, ``output_symmetry``, ...) set by hand, not by running earlier passes — runs
that one pass alone (``PASS.run(program, options)``) and compares what it printed with
``tests/golden/passes/<pass>/<case>.txt``: the pass's one-line note and the ``print_program`` text of
the result.  So each golden documents one pass on one shape of program, and a change of one pass
shows up in its own goldens only.

A golden can never freeze a wrong program: in the same test the input and the output both pass the
IR verifier, and the interpreter gives the same outputs on both (exactly for int64 programs) on
random inputs at the case's sizes — chosen so that every assignment of both programs runs — and at
every dimension 0 and 1.  A case that says the pass does not apply also checks that the program
comes back unchanged.  (For ``lower`` the input is a parsed kernel and the reference is its
definition, :func:`~systec_ref.interp.definition.run_definition`.)

After an intended change of a pass's output, regenerate the goldens with the one command::

    python tests/golden/regen.py

and review ``git diff tests/golden``.
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from math import factorial, prod
from pathlib import Path

import numpy as np
import pytest

from systec_ref.dtypes import identity
from systec_ref.interp.definition import run_definition
from systec_ref.interp.loops import run_program
from systec_ref.ir.nodes import (
    Add,
    And,
    Assign,
    Block,
    Cmp,
    Const,
    DimSize,
    Elem,
    Facts,
    IConst,
    Idx,
    If,
    IPlus,
    Let,
    Local,
    Loop,
    Mul,
    Or,
    Permute,
    Program,
    Read,
    SparseLevel,
    SparseVal,
    TensorInfo,
)
from systec_ref.ir.printer import print_program
from systec_ref.ir.verify import verify
from systec_ref.lang import Kernel, parse
from systec_ref.rewrite import lower as lower_pass
from systec_ref.rewrite import pipeline
from systec_ref.rewrite.manager import DEFAULT_OPTIONS, Options
from systec_ref.rewrite.pipeline import BY_NAME, PASSES
from systec_ref.rewrite.replicate_output import mirror_nest
from systec_ref.storage import for_program
from systec_ref.storage.faces import symmetrize_index

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "passes"
REGEN = "python tests/golden/regen.py"
COMPACT = Options(faces="compact")

# -- a small language for writing IR by hand ------------------------------------------------------
#
# Strings are loop variables ("i", and "i+1" for IPlus); dimensions are the constants N, M, R;
# an int is an IConst in an index position and a Const in a value position.

N, M, R = DimSize("n"), DimSize("m"), DimSize("r")


def ix(e):
    if isinstance(e, int):
        return IConst(e)
    if isinstance(e, str):
        base, plus, off = e.partition("+")
        return IPlus(Idx(base), int(off)) if plus else Idx(e)
    return e


def val(e):
    return Const(e) if isinstance(e, (int, float)) else e


def rd(tensor: str, *subs, sort=()) -> Read:
    return Read(tensor, tuple(ix(s) for s in subs), sort)


def el(tensor: str, *subs) -> Elem:
    return Elem(tensor, tuple(ix(s) for s in subs))


def mul(*args) -> Mul:
    return Mul(tuple(val(a) for a in args))


def add(*args) -> Add:
    return Add(tuple(val(a) for a in args))


def times(c: int, x):
    """``c * x``, or ``x`` alone for c = 1 (as the passes write a coefficient)."""
    return x if c == 1 else mul(c, x)


def upd(target, value, op: str = "+") -> Assign:
    """``target op= value``; a str target is a scalar local."""
    return Assign(Local(target) if isinstance(target, str) else target, op, val(value))


def let(name: str, value) -> Let:
    return Let(name, val(value))


def loop(var: str, lo, hi, *body, comment: str = "") -> Loop:
    return Loop(var, ix(lo), ix(hi), Block(tuple(body), comment))


def nest(comment: str, *body) -> Block:
    return Block(tuple(body), comment)


def cond(text: str) -> And:
    """``"i < j == k"`` -> the condition ``define-assignments`` writes for that equality pattern."""
    words = text.split()
    return And(tuple(Cmp(op, Idx(a), Idx(b)) for a, op, b in zip(words[::2], words[1::2], words[2::2])))


def anyof(*texts: str) -> Or:
    return Or(tuple(cond(t) for t in texts))


def chain(*branches) -> If:
    """An if/elif chain of ``(condition, [statements])``."""
    node = None
    for c, body in reversed(branches):
        node = If(cond(c) if isinstance(c, str) else c, Block(tuple(body)), None if node is None else Block((node,)))
    return node


def tensor(name: str, role: str, *dims, sym=(), sparse=False, dtype="int64", init=None, reduction="+") -> TensorInfo:
    if init is None:
        init = identity(reduction, dtype) if role == "out" else 0
    return TensorInfo(name, role, dims, sym, "sparse" if sparse else "dense", 0, dtype, init)


def program(name: str, tensors, *body, reduction: str = "+", **facts) -> Program:
    return Program(name, tuple(tensors), Block(tuple(body)), reduction, Facts(**facts))


def patterns(vars_: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The equality patterns of a set (``define-assignments``' order: strict first, then by equalities)."""
    ops = sorted(itertools.product("<=", repeat=len(vars_) - 1),
                 key=lambda o: (o.count("="), [x == "=" for x in o]))
    return [tuple("==" if x == "=" else "<" for x in o) for o in ops]


def pattern_text(vars_, ops) -> str:
    return " ".join([vars_[0], *(f"{op} {v}" for op, v in zip(ops, vars_[1:]))])


def reps(vars_, ops) -> list[str]:
    """Each variable spelled by the first variable of its run of equal ones."""
    out = [vars_[0]]
    for op, v in zip(ops, vars_[1:]):
        out.append(out[-1] if op == "==" else v)
    return out


def run_factor(ops) -> int:
    """r1!·r2!·...: the product of the factorials of the run sizes of a pattern."""
    sizes = [1]
    for op in ops:
        if op == "==":
            sizes[-1] += 1
        else:
            sizes.append(1)
    return prod(factorial(s) for s in sizes)


def triangle(vars_, body, strict: bool, comment: str = ""):
    """``for v1 in 0..n: for v2 in v1(+1)..n: ...`` around ``body`` (a list of statements)."""
    node = None
    for t in reversed(range(len(vars_))):
        lo = 0 if t == 0 else vars_[t - 1] + ("+1" if strict else "")
        node = loop(vars_[t], lo, N, *(body if node is None else [node]))
    return nest(comment, node) if comment else node


# -- shared programs --------------------------------------------------------------------------------

PAIR = (("i", "j"),)


def ssymv_tensors(sym=((0, 1),), sparse=False, dtype="int64"):
    return [tensor("A", "in", "n", "n", sym=sym, sparse=sparse, dtype=dtype),
            tensor("x", "in", "n", dtype=dtype), tensor("y", "out", "n", dtype=dtype)]


def ssymv_naive(sym=((0, 1),), **facts) -> Program:
    """``y[i] += A[i,j] * x[j]`` over the full square."""
    return program("ssymv", ssymv_tensors(sym), loop("i", 0, N, loop("j", 0, N, upd(el("y", "i"), mul(
        rd("A", "i", "j"), rd("x", "j"))))), **facts)


def ssymv_restricted() -> Program:
    """SSYMV after ``restrict-iteration``: the triangle j >= i, each point once per rearrangement."""
    return program("ssymv", ssymv_tensors(), loop("i", 0, N, loop("j", "i", N, Permute(PAIR, Block((
        upd(el("y", "i"), mul(rd("A", "i", "j"), rd("x", "j"))),))))), permutable=PAIR)


def ssymv_chain(normalized: bool = True) -> Program:
    """SSYMV after ``define-assignments`` (and ``normalize``): one branch per equality pattern."""
    swapped = rd("A", "i", "j") if normalized else rd("A", "j", "i")
    patterns_ = chain(("i < j", [upd(el("y", "i"), mul(rd("A", "i", "j"), rd("x", "j"))),
                                 upd(el("y", "j"), mul(swapped, rd("x", "i")))]),
                      ("i == j", [upd(el("y", "i"), mul(rd("A", "i", "i"), rd("x", "i")))]))
    return program("ssymv", ssymv_tensors(), loop("i", 0, N, loop("j", "i", N, patterns_)), permutable=PAIR)


def ssymv_split(sparse=False, dtype="int64") -> Program:
    """SSYMV after ``split-diagonals``: the strict part and the diagonal, no tests."""
    return program(
        "ssymv", ssymv_tensors(sparse=sparse, dtype=dtype),
        nest("strict part i < j", loop("i", 0, N, loop("j", "i+1", N,
             upd(el("y", "i"), mul(rd("A", "i", "j"), rd("x", "j"))),
             upd(el("y", "j"), mul(rd("A", "i", "j"), rd("x", "i")))))),
        nest("face i == j", loop("i", 0, N, upd(el("y", "i"), mul(rd("A", "i", "i"), rd("x", "i"))))),
        permutable=PAIR)


def ssyrk_tensors(dtype="int64"):
    return [tensor("A", "in", "n", "m", dtype=dtype), tensor("C", "out", "n", "n", dtype=dtype)]


def ssyrk_split() -> Program:
    """Float SSYRK after ``split-diagonals``: the strict part, then the diagonal (the mirror left out)."""
    return program(
        "ssyrk", ssyrk_tensors("float64"),
        nest("strict part i < j", loop("i", 0, N, loop("j", "i+1", N, loop("k", 0, M, upd(
            el("C", "i", "j"), mul(rd("A", "i", "k"), rd("A", "j", "k"))))))),
        nest("face i == j", loop("i", 0, N, loop("k", 0, M, upd(
            el("C", "i", "i"), mul(rd("A", "i", "k"), rd("A", "i", "k")))))),
        permutable=PAIR, output_symmetry=((0, 1),))


TILE2 = Options(tile=2)


def syr2k_split(diagonal: str = "scaled") -> Program:
    """Float SYR2K ``C[i,j] += A[i,k] * B[j,k] + B[i,k] * A[j,k]`` after ``split-diagonals``; its diagonal as
    ``2.0 * A[i,k] * B[i,k]`` (not the strict update at j = i: no dsyr2k, tiles) or as that sum (one dsyr2k)."""
    ts = [tensor("A", "in", "n", "m", dtype="float64"), tensor("B", "in", "n", "m", dtype="float64"),
          tensor("C", "out", "n", "n", dtype="float64")]
    return program(
        "syr2k", ts,
        nest("strict part i < j", loop("i", 0, N, loop("j", "i+1", N, loop("k", 0, M, upd(el("C", "i", "j"), add(
            mul(rd("A", "i", "k"), rd("B", "j", "k")), mul(rd("A", "j", "k"), rd("B", "i", "k")))))))),
        nest("face i == j", loop("i", 0, N, loop("k", 0, M, upd(el("C", "i", "i"), mul(
            2.0, rd("A", "i", "k"), rd("B", "i", "k")) if diagonal == "scaled" else add(
            mul(rd("A", "i", "k"), rd("B", "i", "k")), mul(rd("A", "i", "k"), rd("B", "i", "k"))))))),
        permutable=PAIR, output_symmetry=((0, 1),))


def tiled(build: Callable[[], Program]) -> Program:
    """``build()`` after ``tile`` in tiles of 2 x 2: what ``blas-calls`` sees."""
    return BY_NAME["tile"].run(build(), TILE2)[0]


def gemm_rectangle() -> Program:
    """Float ``C[i,j] += A[i,k] * A[j,k]`` over the whole square (the symmetry-off SSYRK)."""
    return program("gram", ssyrk_tensors("float64"), loop("i", 0, N, loop("j", 0, N, loop("k", 0, M, upd(
        el("C", "i", "j"), mul(2.0, rd("A", "i", "k"), rd("A", "j", "k")))))))


def gemv_columns() -> Program:
    """Float ``y[i] += A[j,i] * x[j]``, ``j`` outermost: a matrix-vector product with the matrix transposed."""
    return program("gemtv", [tensor("A", "in", "m", "n", dtype="float64"), tensor("x", "in", "m", dtype="float64"),
                             tensor("y", "out", "n", dtype="float64")],
                   loop("j", 0, M, loop("i", 0, N, upd(el("y", "i"), mul(rd("A", "j", "i"), rd("x", "j"))))))


def gemv_no_unit_stride() -> Program:
    """``y[i] += A[i,j,0] * x[j]``: the matrix runs along modes 0 and 1 of A, neither of stride 1."""
    return program("slab", [tensor("A", "in", "n", "n", "m", dtype="float64"), tensor("x", "in", "n", dtype="float64"),
                            tensor("y", "out", "n", dtype="float64")],
                   loop("i", 0, N, loop("j", 0, N, upd(el("y", "i"), mul(rd("A", "i", "j", 0), rd("x", "j"))))))


def ssyrk_naive(**facts) -> Program:
    """``C[i,j] += A[i,k] * A[j,k]``: the output is visibly symmetric."""
    return program("ssyrk", ssyrk_tensors(), loop("i", 0, N, loop("j", 0, N, loop("k", 0, M, upd(
        el("C", "i", "j"), mul(rd("A", "i", "k"), rd("A", "j", "k")))))), **facts)


def ssyrk_restricted() -> Program:
    return program("ssyrk", ssyrk_tensors(), loop("i", 0, N, loop("j", "i", N, Permute(PAIR, Block((
        loop("k", 0, M, upd(el("C", "i", "j"), mul(rd("A", "i", "k"), rd("A", "j", "k")))),))))),
        permutable=PAIR, visible_output_symmetry=((0, 1),))


def ssyrk_grouped() -> Program:
    """SSYRK after ``group-assignments``: both writes of a strict point in one block."""
    aa = mul(rd("A", "i", "k"), rd("A", "j", "k"))
    patterns_ = chain(("i < j", [loop("k", 0, M, upd(el("C", "i", "j"), aa), upd(el("C", "j", "i"), aa))]),
                      ("i == j", [loop("k", 0, M, upd(el("C", "i", "i"), mul(rd("A", "i", "k"), rd("A", "i", "k"))))]))
    return program("ssyrk", ssyrk_tensors(), loop("i", 0, N, loop("j", "i", N, patterns_)),
                   permutable=PAIR, visible_output_symmetry=((0, 1),))


def scalar_sym(order: int):
    """Tensors of ``s += A[i,j,...]`` with A fully symmetric of ``order``."""
    return [tensor("A", "in", *["n"] * order, sym=(tuple(range(order)),)), tensor("s", "out")]


def scalar_chain(vars_: tuple[str, ...]) -> Program:
    """``s += A[vars]`` after ``group-assignments``: the pattern chain, each face ``s += c * A[reps]``
    with c its number of distinct rearrangements."""
    k = len(vars_)
    branches = [(pattern_text(vars_, ops), [upd(el("s"), times(factorial(k) // run_factor(ops),
                                                               rd("A", *reps(vars_, ops))))])
                for ops in patterns(vars_)]
    return program(f"sym{k}", scalar_sym(k), triangle(vars_, [chain(*branches)], strict=False),
                   permutable=(vars_,))


def scalar_compact(vars_: tuple[str, ...], strict_coef: int | None = None, consolidated: bool = False,
                   kept_face=None) -> Program:
    """``s += c * A[vars]`` as ``split-diagonals`` leaves it under ``faces: compact``: the strict-part
    nest, then one nest over the triangle holding the chain of diagonal faces, each with the body
    ``define-assignments`` gave it (``s += c' * A[reps]``, c' its number of distinct rearrangements).

    ``consolidated``: as ``consolidate-blocks`` leaves it instead — each face adds the strict update
    divided by its run factor, written in the variables of the nest, and faces of equal bodies share
    one branch; a face whose factor would be a fraction has the body ``kept_face``."""
    k = len(vars_)
    c = factorial(k) if strict_coef is None else strict_coef
    a = rd("A", *vars_)
    strict = triangle(vars_, [upd(el("s"), mul(c, a))], strict=True, comment="strict part")
    branches: list[tuple[list[str], list]] = []
    for ops in patterns(vars_)[1:]:
        text, rf = pattern_text(vars_, ops), run_factor(ops)
        if not consolidated:
            branches.append(([text], [upd(el("s"), times(factorial(k) // rf, rd("A", *reps(vars_, ops))))]))
            continue
        if c % rf:
            branches.append(([text], [kept_face]))
            continue
        body = [upd(el("s"), times(c // rf, a))]
        same = [texts for texts, b in branches if b == body]
        if same:
            same[0].append(text)
        else:
            branches.append(([text], body))
    diag = triangle(vars_, [chain(*((t[0] if len(t) == 1 else anyof(*t), b) for t, b in branches))],
                    strict=False, comment="diagonal faces")
    return program(f"sym{k}", scalar_sym(k), strict, diag, permutable=(vars_,))


def vector3_tensors():
    return [tensor("A", "in", "n", "n", "n", sym=((0, 1, 2),)), tensor("x", "in", "n"), tensor("y", "out", "n")]


def vector3_compact() -> Program:
    """``y[i] += A[i,j,k] * x[j] * x[k]`` after ``split-diagonals`` (compact faces) on the set {i,j,k}:
    the all-equal face's strict updates would need the fraction 2/3! = 1/3 each."""
    v = ("i", "j", "k")
    a = rd("A", "i", "j", "k")
    strict = triangle(v, [upd(el("y", "i"), mul(2, a, rd("x", "j"), rd("x", "k"))),
                          upd(el("y", "j"), mul(2, a, rd("x", "i"), rd("x", "k"))),
                          upd(el("y", "k"), mul(2, a, rd("x", "i"), rd("x", "j")))], strict=True,
                      comment="strict part")
    diag = triangle(v, [chain(
        ("i < j == k", [upd(el("y", "i"), mul(rd("A", "i", "j", "j"), rd("x", "j"), rd("x", "j"))),
                        upd(el("y", "j"), mul(2, rd("A", "i", "j", "j"), rd("x", "i"), rd("x", "j")))]),
        ("i == j < k", [upd(el("y", "i"), mul(2, rd("A", "i", "i", "k"), rd("x", "i"), rd("x", "k"))),
                        upd(el("y", "k"), mul(rd("A", "i", "i", "k"), rd("x", "i"), rd("x", "i")))]),
        ("i == j == k", [upd(el("y", "i"), mul(rd("A", "i", "i", "i"), rd("x", "i"), rd("x", "i")))]))],
        strict=False, comment="diagonal faces")
    return program("vec3", vector3_tensors(), strict, diag, permutable=(v,))


# -- the cases of each pass ---------------------------------------------------------------------------


def concordize_transposed() -> Program:
    """``y[i] += A[j,i] * x[j]`` in loop order i j: A is read against it."""
    return program("gemtv", [tensor("A", "in", "m", "n"), tensor("x", "in", "m"), tensor("y", "out", "n")],
                   loop("i", 0, N, loop("j", 0, M, upd(el("y", "i"), mul(rd("A", "j", "i"), rd("x", "j"))))))


def concordize_symmetric() -> Program:
    """The same read of a symmetric A: never copied (``normalize`` sorts its subscripts instead)."""
    return program("ssymv", ssymv_tensors(), loop("i", 0, N, loop("j", 0, N, upd(
        el("y", "i"), mul(rd("A", "j", "i"), rd("x", "j"))))))


def triangles_naive() -> Program:
    """``s += A[i,j] * A[j,k] * A[i,k]`` (A symmetric): symmetric in all three reduced variables."""
    return program("triangles", [tensor("A", "in", "n", "n", sym=((0, 1),)), tensor("s", "out")],
                   loop("i", 0, N, loop("j", 0, N, loop("k", 0, N, upd(el("s"), mul(
                       rd("A", "i", "j"), rd("A", "j", "k"), rd("A", "i", "k")))))))


def scalar3_restricted() -> Program:
    v = ("i", "j", "k")
    return program("sym3", scalar_sym(3), triangle(v, [Permute((v,), Block((upd(el("s"), rd("A", *v)),)))],
                                                   strict=False), permutable=(v,))


def normalize_runtime_sort() -> Program:
    """No permutable set: a symmetric read is sorted at run time; constants fold into one factor."""
    return program("ssymv", ssymv_tensors(), loop("i", 0, N, loop("j", 0, N, upd(
        el("y", "i"), mul(rd("x", "j"), mul(3, mul(rd("A", "j", "i"), 2)))))))


def syprd_strict(updates, dtype="int64", reduction="+") -> Program:
    """``s op= ...`` over the strict triangle of a symmetric A: ``updates`` is the body of the j loop."""
    return program("syprd", [tensor("A", "in", "n", "n", sym=((0, 1),), dtype=dtype),
                             tensor("x", "in", "n", dtype=dtype),
                             tensor("s", "out", dtype=dtype, reduction=reduction)],
                   loop("i", 0, N, loop("j", "i+1", N, *updates)), reduction=reduction, permutable=PAIR)


def axij():
    return mul(rd("A", "i", "j"), rd("x", "i"), rd("x", "j"))


def quad_chain() -> Program:
    return scalar_chain(("i", "j", "k", "l"))


def mttkrp3_strict() -> Program:
    """MTTKRP-3's strict part: each update multiplies all but one of B[i,j], B[k,j], B[l,j]."""
    a = rd("A", "i", "k", "l")
    b = {v: rd("B", v, "j") for v in ("i", "k", "l")}
    return program(
        "mttkrp3", [tensor("A", "in", "n", "n", "n", sym=((0, 1, 2),)), tensor("B", "in", "n", "r"),
                    tensor("C", "out", "n", "r")],
        loop("i", 0, N, loop("k", "i+1", N, loop("l", "k+1", N, loop(
            "j", 0, R,
            upd(el("C", "i", "j"), mul(2, a, b["k"], b["l"])),
            upd(el("C", "k", "j"), mul(2, a, b["i"], b["l"])),
            upd(el("C", "l", "j"), mul(2, a, b["i"], b["k"])))))),
        permutable=(("i", "k", "l"),))


def scalar_min() -> Program:
    t = [tensor("A", "in", "n", "n"), tensor("x", "in", "n"), tensor("s", "out", reduction="min")]
    return program("minprod", t, loop("i", 0, N, loop("j", 0, N, upd(el("s"), mul(rd("A", "i", "j"), rd("x", "j")),
                                                                       "min"))), reduction="min")


def column_updates() -> Program:
    """``y[j] += A[i,j] * x[i]``: the target moves with the inner loop."""
    return program("gemtv", ssymv_tensors(sym=()), loop("i", 0, N, loop("j", 0, N, upd(
        el("y", "j"), mul(rd("A", "i", "j"), rd("x", "i"))))))


def ssymv_strict_row(lo: str = "i+1") -> Program:
    """SSYMV's strict part as ``hoist-reads`` leaves it: row i updates y along j."""
    return program("ssymv", ssymv_tensors(), loop("i", 0, N, let("_h0", rd("x", "i")), loop(
        "j", lo, N, upd(el("y", "j"), mul(Local("_h0"), rd("A", "i", "j"))))), permutable=PAIR)


def syprd_partials() -> Program:
    """float64 SYPRD's strict part after ``workspace``: one accumulator defined outside the row loop."""
    t = [tensor("A", "in", "n", "n", sym=((0, 1),), dtype="float64"), tensor("x", "in", "n", dtype="float64"),
         tensor("s", "out", dtype="float64")]
    return program("syprd", t, let("_t0", 0.0), loop("i", 0, N, let("_h0", rd("x", "i")), loop(
        "j", "i+1", N, upd("_t0", mul(Local("_h0"), rd("A", "i", "j"), rd("x", "j"))))),
        upd(el("s"), Local("_t0")), permutable=PAIR)


def sparse_dense_nest(value) -> Program:
    return program("spmv", ssymv_tensors(sym=(), sparse=True), loop("i", 0, N, loop("j", 0, N, upd(
        el("y", "i"), value))))


def two_sparse(value) -> Program:
    """``y[i] += value`` over the square, reading sparse A and B (full storage): a merge of the two."""
    tensors = [tensor("A", "in", "n", "n", sparse=True), tensor("B", "in", "n", "n", sparse=True),
               tensor("x", "in", "n"), tensor("y", "out", "n")]
    return program("merge", tensors, loop("i", 0, N, loop("j", 0, N, upd(el("y", "i"), value))))


def sparse_triangle() -> Program:
    """A symmetric sparse A over ``j in i..n``: the bounds do not pin one face."""
    return program("ssymv", ssymv_tensors(sparse=True), loop("i", 0, N, loop("j", "i", N, upd(
        el("y", "i"), mul(rd("A", "i", "j"), rd("x", "j"))))), permutable=PAIR)


def ssymv_stored(fmt: str) -> Program:
    """Sparse SSYMV after ``sparse-iterate`` with A handed over in format ``fmt``."""
    return BY_NAME["sparse-iterate"].run(ssymv_split(sparse=True), Options(tensor_formats=(("A", fmt),)))[0]


def outer_tensors(sparse: bool):
    return [tensor("A", "in", "n", "n", sym=((0, 1),), sparse=sparse), tensor("x", "in", "m"),
            tensor("C", "out", "n", "n")]


def outer_mirrored(sparse: bool) -> Program:
    """``C[i,j] += A[i,j] * x[k]`` over the canonical triangle (C symmetric), after ``replicate-output`` and
    (``sparse``) ``sparse-iterate``: the strict part and the diagonal, then the mirror over all of C."""
    tensors = outer_tensors(sparse)
    mirror = mirror_nest(tensors[2], ((0, 1),))
    if not sparse:
        return program("outer", tensors,
                       nest("strict part i < j", loop("i", 0, N, loop("j", "i+1", N, loop("k", 0, M, upd(
                           el("C", "i", "j"), mul(rd("A", "i", "j"), rd("x", "k"))))))),
                       nest("face i == j", loop("i", 0, N, loop("k", 0, M, upd(
                           el("C", "i", "i"), mul(rd("A", "i", "i"), rd("x", "k")))))),
                       mirror, permutable=PAIR, output_symmetry=((0, 1),))
    strict = SparseLevel("i", "_q0", "A", (0,), 0, None, Block((SparseLevel(
        "j", "_q1", "A", (0,), 1, Idx("_q0"), Block((loop("k", 0, M, upd(
            el("C", "i", "j"), mul(SparseVal("A", (0,), Idx("_q1")), rd("x", "k")))),))),)))
    diagonal = SparseLevel("i", "_q2", "A", (1,), 0, None, Block((loop("k", 0, M, upd(
        el("C", "i", "i"), mul(SparseVal("A", (1,), Idx("_q2")), rd("x", "k")))),)))
    return program("outer", tensors, nest("strict part i < j", strict), nest("face i == j", diagonal), mirror,
                   permutable=PAIR, output_symmetry=((0, 1),), sparse_storage=(("A", "canonical"),))


def gram_faces(value=mul, copy: bool = False) -> Program:
    """Sparse SSYRK after ``split-diagonals``, ``k`` outermost: both faces of (i,j) under the k loop, each
    reading one fiber of A at two places; ``copy``: reading ``concordize``'s transposed copy of A[n,m]."""
    a = "A_T" if copy else "A"
    body = [nest("strict part i < j", loop("i", 0, N, loop("j", "i+1", N,
                 upd(el("C", "i", "j"), value(rd(a, "k", "i"), rd(a, "k", "j")))))),
            nest("face i == j", loop("i", 0, N, upd(el("C", "i", "i"), value(rd(a, "k", "i"), rd(a, "k", "i")))))]
    main = loop("k", 0, M, *body)
    c = tensor("C", "out", "n", "n")
    if not copy:
        return program("ssyrk", [tensor("A", "in", "m", "n", sparse=True), c], main, permutable=PAIR)
    build = nest("transposed copy of A (concordize)",
                 loop("_c0", 0, N, loop("_c1", 0, M, Assign(el("A_T", "_c1", "_c0"), "=", rd("A", "_c0", "_c1")))))
    return program("ssyrk", [tensor("A", "in", "n", "m", sparse=True), c, tensor("A_T", "temp", "m", "n")],
                   build, main, permutable=PAIR)


def gustavson_faces() -> Program:
    """Sparse SSYRK after ``split-diagonals`` in loop order ``i k j``: the strict part reads A by rows and the
    transposed copy by columns from ``j = i+1`` on (k looked up in it); the diagonal reads the copy at
    ``A_T[k,i]``, which is A[i,k] itself."""
    c = tensor("C", "out", "n", "n")
    build = nest("transposed copy of A (concordize)",
                 loop("_c0", 0, N, loop("_c1", 0, M, Assign(el("A_T", "_c1", "_c0"), "=", rd("A", "_c0", "_c1")))))
    strict = nest("strict part i < j", loop("i", 0, N, loop("k", 0, M, loop("j", "i+1", N, upd(
        el("C", "i", "j"), mul(rd("A", "i", "k"), rd("A_T", "k", "j")))))))
    diagonal = nest("face i == j", loop("i", 0, N, loop("k", 0, M, upd(
        el("C", "i", "i"), mul(rd("A", "i", "k"), rd("A_T", "k", "i"))))))
    return program("ssyrk", [tensor("A", "in", "n", "m", sparse=True), c, tensor("A_T", "temp", "m", "n")],
                   build, strict, diagonal, permutable=PAIR)


def gustavson_stored() -> Program:
    """:func:`gustavson_faces` after ``sparse-iterate``: two sweeps over the same stored rows of A."""
    return BY_NAME["sparse-iterate"].run(gustavson_faces())[0]


def ssymv_swept(fmt: str) -> Program:
    """Sparse SSYMV after ``workspace`` (A in format ``fmt``): what ``reverse-sweep`` sees."""
    prog = ssymv_stored(fmt)
    for name in ("fuse-faces", "hoist-reads", "workspace"):
        prog = BY_NAME[name].run(prog, DEFAULT_OPTIONS)[0]
    return prog


SSYMV_EIN = "kernel ssymv\nin A[n, n] symmetric int64\nin x[n] int64\nout y[n] int64\ny[i] += A[i, j] * x[j]\n"
GEMTV_EIN = "kernel gemtv\nin A[m, n] int64\nin x[m] int64\nout y[n] int64\ny[i] += A[j, i] * x[j]\n"
TTM_EIN = "kernel ttm\nin A[n, n, n] symmetric\nin B[n, r]\nout C[r, n, n]\nC[i, j, l] += A[k, j, l] * B[k, i]\n"
MTTKRP3_EIN = ("kernel mttkrp3\nin A[n, n, n] symmetric\nin B[n, r]\nout C[n, r]\n"
               "C[i, j] += A[i, k, l] * B[l, j] * B[k, j]\n")


#: a set of four with two summed indices and two kept: the full set saves a factor 2 over either part
TWO_TWO_EIN = "kernel two\nin A[n, n, n, n] symmetric\nin B[n, n]\nout C[n, n]\nC[i, j] += A[i, j, k, l] * B[k, l]\n"


def lowered(text: str) -> Program:
    """The naive nest of the kernel ``text``."""
    return lower_pass.lower(parse(text))


def before_pass(text: str, name: str, options: Options) -> Program:
    """The program ``name`` sees when the kernel ``text`` is compiled with ``options``."""
    stages = pipeline.compile_stages(parse(text), options)
    return stages[[s.name for s in stages].index(name) - 1].program


#: MTTKRP-3 with A passed packed: after gemm-form, blas-calls copies the slabs of A it multiplies
PACKED = Options(packed=("A",))


SPARSE_SSYRK_EIN = "kernel ssyrk\nin A[n, m] sparse int64\nout C[n, n] int64\nC[i, j] += A[i, k] * A[j, k]\n"
WIDEST_EIN = ("kernel widest\nin A[n, n] int64\nin B[n, n] int64\nout C[n, n] int64\norder j k i\n"
              "C[i, k] max= A[i, j] * B[j, k]\n")


@dataclass(frozen=True)
class Case:
    pass_name: str
    name: str
    build: Callable[[], Program | Kernel]
    #: sizes that run every assignment of the input and of the output (every dimension is also tried at 0 and 1)
    sizes: dict[str, int]
    #: does the pass change the program (False: it must come back unchanged, the note says why)
    applies: bool = True
    options: Options = DEFAULT_OPTIONS
    #: probability that an entry of a sparse input is stored, in the second random run
    density: float = 0.5
    #: the output chooses between alternatives at run time (``mirror-written``): each run enters one, so
    #: every assignment must run in one of the runs at the case's sizes (density 1 and ``density``)
    alternatives: bool = False

    @property
    def id(self) -> str:
        return f"{self.pass_name}/{self.name}"


CASES: list[Case] = [
    # concordize
    Case("concordize", "transposed-read", concordize_transposed, {"n": 3, "m": 2}),
    Case("concordize", "reads-follow-loop-order", lambda: ssymv_naive(sym=()), {"n": 3}, applies=False),
    Case("concordize", "symmetric-read-not-copied", concordize_symmetric, {"n": 3}, applies=False),
    # identify-symmetry
    Case("identify-symmetry", "input-symmetry", ssymv_naive, {"n": 3}),
    Case("identify-symmetry", "visible-output-symmetry", ssyrk_naive, {"n": 3, "m": 2}),
    Case("identify-symmetry", "symmetric-reduction", triangles_naive, {"n": 3}),
    Case("identify-symmetry", "no-symmetry", lambda: ssymv_naive(sym=()), {"n": 3}, applies=False),
    # restrict-iteration
    Case("restrict-iteration", "pair", lambda: ssymv_naive(permutable=PAIR), {"n": 3}),
    Case("restrict-iteration", "set-above-inner-loop",
         lambda: ssyrk_naive(permutable=PAIR, visible_output_symmetry=((0, 1),)), {"n": 3, "m": 2}),
    Case("restrict-iteration", "no-permutable-set", ssymv_naive, {"n": 3}, applies=False),
    Case("restrict-iteration", "already-restricted", ssymv_restricted, {"n": 3}, applies=False),
    # define-assignments
    Case("define-assignments", "pair", ssymv_restricted, {"n": 3}),
    Case("define-assignments", "shared-inner-loop", ssyrk_restricted, {"n": 3, "m": 2}),
    Case("define-assignments", "triple", scalar3_restricted, {"n": 5}),
    Case("define-assignments", "no-permute", lambda: ssymv_naive(permutable=PAIR), {"n": 3}, applies=False),
    # normalize
    Case("normalize", "sort-by-rank", lambda: ssymv_chain(normalized=False), {"n": 3}),
    Case("normalize", "runtime-sort-and-fold", normalize_runtime_sort, {"n": 3}),
    Case("normalize", "already-normal", ssymv_chain, {"n": 3}, applies=False),
    # group-assignments
    Case("group-assignments", "merge-sum", lambda: syprd_strict([upd(el("s"), axij()), upd(el("s"), axij())]),
         {"n": 3}),
    Case("group-assignments", "min-idempotent", lambda: syprd_strict(
        [upd(el("s"), axij(), "min"), upd(el("s"), axij(), "min")], reduction="min"), {"n": 3}),
    Case("group-assignments", "int64-cancel", lambda: syprd_strict(
        [upd(el("s"), mul(2, rd("A", "i", "j"))), upd(el("s"), mul(-2, rd("A", "i", "j")))]), {"n": 3}),
    Case("group-assignments", "float64-zero-kept", lambda: syprd_strict(
        [upd(el("s"), mul(2.0, rd("A", "i", "j"))), upd(el("s"), mul(-2.0, rd("A", "i", "j")))], dtype="float64"),
        {"n": 3}),
    Case("group-assignments", "no-identical-updates", ssymv_chain, {"n": 3}, applies=False),
    # replicate-output
    Case("replicate-output", "visible-ssyrk", ssyrk_grouped, {"n": 3, "m": 2}),
    Case("replicate-output", "vector-output", ssymv_chain, {"n": 3}, applies=False),
    # split-diagonals
    Case("split-diagonals", "pair", ssymv_chain, {"n": 3}),
    Case("split-diagonals", "pair-compact-stays-split", ssymv_chain, {"n": 3}, options=COMPACT),
    Case("split-diagonals", "quad-compact", quad_chain, {"n": 5}, options=COMPACT),
    Case("split-diagonals", "no-chain", lambda: ssymv_naive(permutable=PAIR), {"n": 3}, applies=False),
    # consolidate-blocks
    Case("consolidate-blocks", "scalar-triple", lambda: scalar_compact(("i", "j", "k")), {"n": 5}, options=COMPACT),
    Case("consolidate-blocks", "fraction-face-collapsed", vector3_compact, {"n": 5}, options=COMPACT),
    Case("consolidate-blocks", "faces-split", lambda: scalar_compact(("i", "j", "k")), {"n": 5}, applies=False),
    # lookup-table
    Case("lookup-table", "order5", lambda: scalar_compact(("i", "j", "k", "l", "m"), consolidated=True), {"n": 5},
         options=COMPACT),
    Case("lookup-table", "order5-fraction-face-kept", lambda: scalar_compact(
        ("i", "j", "k", "l", "m"), strict_coef=24, consolidated=True,
        kept_face=upd(el("s"), rd("A", "i", "j", "k", "l", "m"))), {"n": 5}, options=COMPACT),
    Case("lookup-table", "faces-split", lambda: scalar_compact(("i", "j", "k", "l", "m"), consolidated=True),
         {"n": 5}, applies=False),
    Case("lookup-table", "order3-too-small", lambda: scalar_compact(("i", "j", "k")), {"n": 5}, applies=False,
         options=COMPACT),
    # sparse-iterate
    Case("sparse-iterate", "strict-and-diagonal", lambda: ssymv_split(sparse=True), {"n": 3}),
    Case("sparse-iterate", "full-storage", lambda: sparse_dense_nest(mul(rd("A", "i", "j"), rd("x", "j"))),
         {"n": 3}),
    Case("sparse-iterate", "fill-not-annihilated", lambda: sparse_dense_nest(add(rd("A", "i", "j"), rd("x", "j"))),
         {"n": 3}, applies=False),
    Case("sparse-iterate", "bounds-pin-no-face", sparse_triangle, {"n": 3}, applies=False),
    Case("sparse-iterate", "shared-fiber", gram_faces, {"n": 3, "m": 2}),
    Case("sparse-iterate", "stored-transposed-copy", lambda: gram_faces(copy=True), {"n": 3, "m": 2}),
    Case("sparse-iterate", "shared-fiber-sum", lambda: gram_faces(add, copy=True), {"n": 3, "m": 2}, applies=False),
    Case("sparse-iterate", "merge-intersect",
         lambda: two_sparse(mul(rd("A", "i", "j"), rd("B", "i", "j"), rd("x", "j"))), {"n": 3}),
    Case("sparse-iterate", "merge-union", lambda: two_sparse(add(rd("A", "i", "j"), rd("B", "i", "j"))), {"n": 3}),
    Case("sparse-iterate", "merge-transposed-read-looked-up",
         lambda: two_sparse(mul(rd("A", "i", "j"), rd("B", "j", "i"))), {"n": 3}),
    Case("sparse-iterate", "gustavson-lookup-and-low-bound", gustavson_faces, {"n": 4, "m": 3}),
    # fuse-faces
    Case("fuse-faces", "dense-first-levels", lambda: ssymv_stored("csf[pos=int32,crd=int32,dense=f0+f1]"), {"n": 3}),
    Case("fuse-faces", "compressed-first-level", lambda: ssymv_stored("csf[pos=int32,crd=int32,dense=f1]"),
         {"n": 3}, applies=False),
    Case("fuse-faces", "dense-diagonal-joins-rows", ssymv_split, {"n": 3}),
    Case("fuse-faces", "dense-diagonal-with-a-loop", ssyrk_split, {"n": 3, "m": 2}, applies=False),
    Case("fuse-faces", "same-stored-first-level", gustavson_stored, {"n": 4, "m": 3}),
    # reverse-sweep
    Case("reverse-sweep", "fused-rows", lambda: ssymv_swept("csf[pos=int32,crd=int32,dense=f0+f1]"), {"n": 3}),
    Case("reverse-sweep", "compressed-rows", lambda: ssymv_swept("csf[pos=int32,crd=int32]"), {"n": 3},
         applies=False),
    Case("reverse-sweep", "dense-matrix", ssymv_split, {"n": 3}, applies=False),
    # tile
    Case("tile", "ssyrk-one-syrk", ssyrk_split, {"n": 5, "m": 2}, applies=False, options=TILE2),
    Case("tile", "straight-line-triangle", lambda: ssymv_split(dtype="float64"), {"n": 5}, applies=False,
         options=TILE2),
    Case("tile", "syr2k-with-diagonal", syr2k_split, {"n": 5, "m": 2}, options=TILE2),
    Case("tile", "int64", ssymv_split, {"n": 5}, applies=False, options=TILE2),
    Case("tile", "no-triangle", lambda: gemm_rectangle(), {"n": 3, "m": 2}, applies=False, options=TILE2),
    # gemm-form
    Case("gemm-form", "ttm", lambda: lowered(TTM_EIN), {"n": 3, "r": 2}),
    Case("gemm-form", "mttkrp3", lambda: lowered(MTTKRP3_EIN), {"n": 3, "r": 2}),
    Case("gemm-form", "two-summed-two-kept", lambda: lowered(TWO_TWO_EIN), {"n": 3}, applies=False),
    Case("gemm-form", "order-line", lambda: lowered(TTM_EIN.replace("C[i", "order k i j l\nC[i")),
         {"n": 3, "r": 2}, applies=False),
    Case("gemm-form", "blas-off", lambda: lowered(TTM_EIN), {"n": 3, "r": 2}, applies=False,
         options=Options(blas=False)),
    # blas-calls
    Case("blas-calls", "ssyrk-triangle-and-diagonal", ssyrk_split, {"n": 5, "m": 2}),
    Case("blas-calls", "syr2k-tiles", lambda: tiled(syr2k_split), {"n": 5, "m": 2}),
    Case("blas-calls", "syr2k-triangle-and-diagonal", lambda: syr2k_split(diagonal="sum"), {"n": 5, "m": 2}),
    Case("blas-calls", "gemm-rectangle", gemm_rectangle, {"n": 3, "m": 2}),
    Case("blas-calls", "gemv-transposed", gemv_columns, {"n": 3, "m": 2}),
    Case("blas-calls", "no-unit-stride", gemv_no_unit_stride, {"n": 3, "m": 2}, applies=False),
    Case("blas-calls", "int64", ssyrk_naive, {"n": 3, "m": 2}, applies=False),
    Case("blas-calls", "packed-slab", lambda: before_pass(MTTKRP3_EIN, "blas-calls", PACKED), {"n": 4, "r": 2},
         options=PACKED),
    Case("blas-calls", "packed-no-slabs", lambda: before_pass(MTTKRP3_EIN, "blas-calls", PACKED), {"n": 4, "r": 2},
         applies=False, options=Options(packed=("A",), slabs=False)),
    # hoist-reads
    Case("hoist-reads", "ssymv-split", ssymv_split, {"n": 3}),
    Case("hoist-reads", "shared-products", mttkrp3_strict, {"n": 5, "r": 2}),
    Case("hoist-reads", "nothing-to-hoist", lambda: ssymv_naive(sym=()), {"n": 3}, applies=False),
    # workspace
    Case("workspace", "row-accumulator", lambda: ssymv_naive(sym=()), {"n": 3}),
    Case("workspace", "scalar-min", scalar_min, {"n": 3}),
    Case("workspace", "target-moves", column_updates, {"n": 3}, applies=False),
    # unroll-and-jam
    Case("unroll-and-jam", "triangular-rows", ssymv_strict_row, {"n": 8}),
    Case("unroll-and-jam", "float-partials", syprd_partials, {"n": 8}),
    Case("unroll-and-jam", "rectangular", lambda: ssymv_strict_row(lo=0), {"n": 8}, applies=False),
    # mirror-written
    Case("mirror-written", "stored-entries", lambda: outer_mirrored(sparse=True), {"n": 4, "m": 3},
         alternatives=True, density=0.3),
    Case("mirror-written", "dense-work", lambda: outer_mirrored(sparse=False), {"n": 4, "m": 3}, applies=False),
    # lower
    Case("lower", "ssymv", lambda: parse(SSYMV_EIN), {"n": 3}),
    Case("lower", "order-for-transposed-read", lambda: parse(GEMTV_EIN), {"n": 3, "m": 2}),
    Case("lower", "order-line-max", lambda: parse(WIDEST_EIN), {"n": 3}),
    Case("lower", "order-for-shared-fiber", lambda: parse(SPARSE_SSYRK_EIN), {"n": 3, "m": 2}),
]

BY_ID = {c.id: c for c in CASES}
assert len(BY_ID) == len(CASES), "two cases with one name"


# -- running a case -----------------------------------------------------------------------------------


def run_case(case: Case) -> tuple[Program | Kernel, Program, str]:
    """(input, output, note) of the case's pass on its input."""
    src = case.build()
    if case.pass_name == "lower":
        out = lower_pass.lower(src)
        return src, out, f"naive loop nest, loop order {out.facts.loop_order}"
    out, note = BY_NAME[case.pass_name].run(src, case.options)
    return src, out, note


def golden_text(case: Case) -> str:
    """The golden file of ``case``: what the pass did, then the program it produced."""
    _, out, note = run_case(case)
    head = f"# {case.pass_name} on {case.name} (faces: {case.options.faces})\n# note: {note}\n"
    return head + print_program(out)


def golden_path(case: Case) -> Path:
    return GOLDEN / case.pass_name / f"{case.name}.txt"


def random_arrays(p: Program, dims: dict[str, int], seed: int, density: float) -> dict[str, np.ndarray]:
    """Inputs of ``p``: exactly symmetric in their groups; int64 values nonzero in [-9, 9] (so a ``min`` or
    ``max`` that misses a point likely differs); a sparse input keeps each entry with probability
    ``density`` (the fill elsewhere)."""
    rng = np.random.default_rng(seed)
    out = {}
    for t in p.tensors:
        if t.role != "in":
            continue
        shape = tuple(dims[d] if isinstance(d, str) else d for d in t.dims)
        if t.dtype == "int64":
            a = rng.integers(1, 10, size=shape) * rng.choice([-1, 1], size=shape)
        else:
            a = rng.uniform(-1.0, 1.0, size=shape)
        if t.format == "sparse":
            a = np.where(rng.random(size=shape) < density, a, t.fill)
        if t.symmetry and a.size:
            a = a[symmetrize_index(shape, t.symmetry)]
        out[t.name] = np.asarray(a, dtype=np.int64 if t.dtype == "int64" else np.float64)
    return out


def also_symmetric(p: Program, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``arrays`` made symmetric in ``p``'s groups too: a pass may declare a subgroup of an input's symmetry
    (``gemm-form``), and the data is that of the input program (symmetric in the whole group)."""
    out = dict(arrays)
    for t in p.tensors:
        if t.role == "in" and t.symmetry and out[t.name].size:
            out[t.name] = np.ascontiguousarray(out[t.name][symmetrize_index(out[t.name].shape, t.symmetry)])
    return out


def interpret(p: Program, arrays: dict, dims: dict[str, int]):
    outs, counts = run_program(p, arrays, dims, for_program(p, arrays))
    return {t.name: outs[t.name] for t in p.tensors if t.role == "out"}, counts


def check_same_results(case: Case, src: Program | Kernel, out: Program) -> None:
    """The interpreter agrees on ``src`` and ``out`` at the case's sizes (every assignment of both runs: of the
    output, on full inputs or on one of the two at the case's density — a union of sparse inputs runs its
    branches for a coordinate only some of them store only there), and with every dimension 0 and 1."""
    runs = [(case.sizes, 0, 1.0, True), (case.sizes, 1, case.density, False), (case.sizes, 2, case.density, False),
            ({d: 0 for d in case.sizes}, 3, case.density, False), ({d: 1 for d in case.sizes}, 4, case.density, False)]
    never_ran: set[int] | None = None
    for dims, seed, density, every in runs:
        arrays = random_arrays(out, dims, seed, density)
        if isinstance(src, Program):
            arrays = also_symmetric(src, arrays)
        got, got_counts = interpret(out, arrays, dims)
        if isinstance(src, Kernel):
            value, _ = run_definition(src, arrays, dims)
            want = {src.output.name: value}
        else:
            want, want_counts = interpret(src, arrays, dims)
            if every:
                assert not want_counts.never_ran, \
                    f"{case.id}: input assignments {want_counts.never_ran} never ran at {dims}: raise the sizes"
        if dims == case.sizes:
            never_ran = set(got_counts.never_ran) if never_ran is None else never_ran & set(got_counts.never_ran)
        assert want.keys() == got.keys()
        for name in want:
            if out.tensor(name).dtype == "int64":
                same = np.array_equal(want[name], got[name])
            else:
                same = np.allclose(want[name], got[name], rtol=1e-12, atol=1e-12)
            assert same, f"{case.id}: {name} differs at {dims} (seed {seed}):\ninput  {want[name]}\noutput {got[name]}"
    assert not never_ran, f"{case.id}: output assignments {sorted(never_ran)} never ran at {case.sizes}: raise sizes"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_pass_case(case: Case) -> None:
    src, out, note = run_case(case)
    if isinstance(src, Program):
        assert verify(src) is None, f"{case.id}: the hand-written input is invalid: {verify(src)}"
        assert (out != src) == case.applies, f"{case.id}: expected the pass {'to' if case.applies else 'not to'} " \
                                             f"change the program; note: {note}"
    problem = verify(out)
    assert problem is None, f"{case.id}: the pass produced an invalid program: {problem}"
    check_same_results(case, src, out)

    path = golden_path(case)
    if not path.exists():
        pytest.fail(f"no golden file {path.relative_to(ROOT)}: run '{REGEN}' and review it")
    want, got = path.read_text(), golden_text(case)
    if got != want:
        diff = "".join(difflib.unified_diff(want.splitlines(True), got.splitlines(True), "golden", "now", n=2))
        pytest.fail(f"{case.id} changed; if intended, run '{REGEN}' and review the diff:\n{diff[:4000]}")


def test_every_pass_has_cases() -> None:
    """Each pass (and ``lower``) has a case where it applies and one where it does not; the passes whose
    result depends on ``faces`` have a ``faces: compact`` case."""
    for name in ["lower", *(p.name for p in PASSES)]:
        mine = [c for c in CASES if c.pass_name == name]
        assert len(mine) >= 2, name
        assert any(c.applies for c in mine), name
        if name != "lower":  # lower always builds the naive nest
            assert any(not c.applies for c in mine), name
    for name in ("split-diagonals", "consolidate-blocks", "lookup-table"):
        assert any(c.pass_name == name and c.options.faces == "compact" for c in CASES), name
    assert set(BY_NAME) | {"lower"} == {c.pass_name for c in CASES}


def test_no_stray_goldens() -> None:
    """Every golden under tests/golden/passes belongs to a case (regen removes the others)."""
    want = {golden_path(c) for c in CASES}
    stray = sorted(str(p.relative_to(ROOT)) for p in GOLDEN.rglob("*.txt") if p not in want)
    assert not stray, f"goldens of no case: {stray}; run '{REGEN}'"
