"""Two reads of one sparse tensor: walking one fiber, or one looked up at the other's coordinates; stored
transposed copies.

Sparse SSYRK (``C[i,j] += A[i,k] * A[j,k]``, A sparse and not symmetric) reads A by rows and by columns:
``lower`` chooses Gustavson's order ``i k j``, ``concordize`` reads the transposed copy ``A_T[k,j]``,
``identify-symmetry`` sees through the copy (C is symmetric), and ``sparse-iterate`` iterates A's rows,
looks each ``k`` up in ``A_T`` (``SparseLocate``) and walks its fiber from ``j >= i+1`` on
(``SparseLevel.low``, a binary search); the copy is stored outside the kernel (the ``sparse_copies``
fact).  Given ``order k i j``, each fiber ``k`` of ``A_T`` is walked twice instead — ``i``, then ``j``
from ``i``'s position on (``SparseLevel.start``).  SDDMM (``C[i,j] += S[i,j] * X[i,k] * X[j,k]``, S
sparse symmetric) iterates S's canonical storage.  Both examples, every stage, in the interpreter and in C, against the
definition; then one test per piece: the loop order, the pass (start positions, soundness for either
read, the split of an outer loop, all-or-nothing copies, the note naming why a tensor stays dense),
the interpreter, the verifier, the printer, the graph, the C and the storage.
"""

from __future__ import annotations

import dataclasses

import helpers
import numpy as np
import pytest
from test_c_stages import Compiled
from test_passes_support import variant

import systec_ref
from systec_ref.emit import abi
from systec_ref.emit.c import emit_c
from systec_ref.emit.runtime import CFunction
from systec_ref.interp.loops import InterpError, run_program
from systec_ref.ir.graph import to_graph
from systec_ref.ir.nodes import (
    Add,
    Assign,
    Block,
    DimSize,
    Elem,
    Facts,
    IConst,
    Idx,
    IPlus,
    Loop,
    Mul,
    Program,
    Read,
    SparseLevel,
    SparseLocate,
    SparseVal,
    TensorInfo,
)
from systec_ref.ir.printer import print_program
from systec_ref.ir.verify import verify
from systec_ref.lang import parse
from systec_ref.rewrite import sparse_iterate
from systec_ref.rewrite.lower import choose_order
from systec_ref.storage import SparseTensor, for_program
from systec_ref.term import nodes, postwalk

pytestmark = pytest.mark.usefixtures("private_c_cache")

EXAMPLES = {name: helpers.EXAMPLES_DIR / "sparse" / f"{name}.ein" for name in ("ssyrk", "sddmm")}
#: SSYRK with the shared mode outermost: both reads walk one fiber of the transposed copy
SSYRK_KIJ = "kernel ssyrk_kij\nin A[n, m] sparse\nout C[n, n]\norder k i j\nC[i, j] += A[i, k] * A[j, k]\n"
# n = 0, 1 and sizes past the largest symmetric set (2) that are not multiples of unroll-and-jam's 4;
# the second size is m (SSYRK) or r (SDDMM), 0 included
SIZES = [(0, 2), (1, 1), (5, 3), (7, 2), (5, 0)]
DENSITIES = (0.0, 0.1, 1.0)


def _stored_entry_loops(p: Program) -> list[SparseLevel]:
    return [n for n in nodes(p.body) if isinstance(n, SparseLevel)]


# -- the examples, every stage, interpreter and C ------------------------------------------------

@pytest.mark.parametrize("symmetry", [True, False], ids=["symmetric", "baseline"])
@pytest.mark.parametrize("dtype", ["float64", "int64"])
@pytest.mark.parametrize("name", [*sorted(EXAMPLES), "ssyrk-kij"])
def test_every_stage_agrees_with_definition_in_interpreter_and_c(name, dtype, symmetry):
    source = SSYRK_KIJ if name == "ssyrk-kij" else EXAMPLES[name].read_text(encoding="utf-8")
    text = variant(source, dtype)
    assert text is not None
    k = systec_ref.compile(text, name, symmetry=symmetry)
    stages = [(s.name, s.program) for s in k.stages]
    funcs = Compiled(stages).get()
    out, bad = k.ast.output.name, []
    for n, r in SIZES:
        for density in DENSITIES:
            inputs = k.random_inputs(helpers.sizes_for(k, n, r), seed=n + 10 * r, density=density)
            report = systec_ref.check(k, inputs)  # every stage against the definition and the stage before
            assert report.ok, f"{name} {dtype} n={n} r={r} density={density}: {report.notes()}"
            want = k.definition(inputs).value
            arrays, dims = k.bind(inputs)
            for label, prog in stages:
                got = funcs[label](arrays, dims, for_program(prog, arrays))[out]
                for what, ref in (("interpreter", k.interpret(inputs, prog).value), ("definition", want)):
                    if not systec_ref.agree(got, ref, dtype):
                        bad.append(f"{label} C vs {what}: n={n} r={r} density={density}")
    assert not bad, "\n".join(bad[:20])


@pytest.mark.parametrize("symmetry", [True, False], ids=["symmetric", "baseline"])
def test_ssyrk_iterates_rows_and_looks_up_columns_of_the_stored_copy(symmetry):
    """Gustavson's order: i over A's rows, k over the row, k found in A_T, j over A_T's fiber from i+1."""
    k = systec_ref.compile(EXAMPLES["ssyrk"].read_text(encoding="utf-8"), symmetry=symmetry)
    p = k.final
    assert p.facts.loop_order == "i k j"
    assert p.facts.sparse_copies == (("A_T", "A", (1, 0)),)
    assert dict(p.facts.sparse_storage) == {"A": "full", "A_T": "full"}
    assert not [n for n in nodes(p.body) if isinstance(n, Read) and n.tensor in ("A", "A_T")]
    src = emit_c(p)
    assert abi.dense_inputs(p) == [] and "*restrict A_T =" not in src  # the copy is not built by the kernel
    loops = _stored_entry_loops(p)
    (j,) = [lv for lv in loops if lv.var == "j"]
    assert (j.tensor, j.level, j.start) == ("A_T", 1, None)
    # the strict part j > i: from the coordinate i+1 on; the baseline walks the whole fiber
    assert j.low == (IPlus(Idx("i"), 1) if symmetry else None)
    # i only grows: in C a cursor per fiber of A_T moves forward instead of a binary search per visit
    assert (f"sx_cur_{j.pos}[" in src) == symmetry and ("malloc" in src) == symmetry
    (found,) = [n for n in nodes(p.body) if isinstance(n, SparseLocate)]
    assert (found.tensor, found.level, found.parent, found.coord) == ("A_T", 0, None, Idx("k"))
    assert j.parent == Idx(found.pos) and j in nodes(found)
    note = next(s.note for s in k.stages if s.name == "sparse-iterate")
    assert "A_T looked up by coordinate" in note and "passed dense" not in note
    if symmetry:  # the diagonal reads A_T[k,i], the same element as A[i,k]: one read, no lookup
        assert "C[i,i] += A<full>.vals[_q" in print_program(k.stage("sparse-iterate").program)


@pytest.mark.parametrize("symmetry", [True, False], ids=["symmetric", "baseline"])
def test_ssyrk_kij_iterates_a_stored_transposed_copy_and_passes_nothing_dense(symmetry):
    k = systec_ref.compile(SSYRK_KIJ, symmetry=symmetry)
    p = k.final
    assert p.facts.loop_order == "k i j"
    assert p.facts.sparse_copies == (("A_T", "A", (1, 0)),)
    assert dict(p.facts.sparse_storage) == {"A_T": "full"}
    assert not [n for n in nodes(p.body) if isinstance(n, Read) and n.tensor in ("A", "A_T")]
    assert abi.dense_inputs(p) == []  # A arrives as the arrays of its transposed storage only
    assert "malloc" not in emit_c(p)  # no temporary: the copy is not built by the kernel
    loops = _stored_entry_loops(p)
    assert {lv.tensor for lv in loops} == {"A_T"}
    inner = [lv for lv in loops if lv.var == "j"]
    assert len(inner) == 1
    outer = next(lv for lv in loops if lv.var == "i" and inner[0] in nodes(lv))
    assert inner[0].parent == outer.parent and inner[0].level == outer.level == 1
    # strict part i < j: one past i's position; the baseline walks the whole fiber
    assert inner[0].start == (IPlus(Idx(outer.pos), 1) if symmetry else None)
    note = next(s.note for s in k.stages if s.name == "sparse-iterate")
    assert "A_T: stored transposed copy of A" in note and "passed dense" not in note


@pytest.mark.parametrize("text", [EXAMPLES["ssyrk"].read_text(encoding="utf-8"), SSYRK_KIJ], ids=["ikj", "kij"])
def test_ssyrk_reads_each_product_of_stored_entries_once(text):
    k = systec_ref.compile(text)
    inputs = k.random_inputs({"n": 7, "m": 5}, seed=3, density=0.3)
    A = inputs["A"]
    res = k.interpret(inputs)
    per_k = (A != 0).sum(axis=0)
    # once per pair i < j of stored entries of a column (the strict nest), once per entry (the diagonal,
    # in a scalar accumulator per row in order i k j)
    assert res.counts.updates + res.counts.local_updates == int((per_k * (per_k - 1) // 2).sum() + per_k.sum())
    assert systec_ref.agree(res.value, k.definition(inputs).value, "float64")


@pytest.mark.parametrize("density", DENSITIES)
@pytest.mark.parametrize("n", [0, 1, 5])
def test_a_sparse_vector_read_twice_walks_its_dense_level_from_a_position(n, density, c_compiler):
    """``x[i] * x[j]`` with x sparse: when every coordinate of x is stored its one level is dense (no
    coordinates), and the second read walks it from the first one's position all the same (the
    position is the coordinate) — once an internal error."""
    text = "kernel outer\nin x[n] sparse\nout C[n, n]\nC[i, j] += x[i] * x[j]\n"
    k = systec_ref.compile(text)
    inputs = k.random_inputs({"n": n}, seed=n, density=density)
    assert systec_ref.check(k, inputs).ok
    want = k.definition(inputs).value
    assert systec_ref.agree(k.run(**inputs, backend="c"), want, "float64")
    assert systec_ref.agree(k.run(**inputs, backend="interp"), want, "float64")
    full = k.random_inputs({"n": 6}, seed=1, density=1.0)
    starts = [lv.start for lv in _stored_entry_loops(k.final) if lv.var == "j"]
    assert starts and all(s is not None for s in starts)  # j from i's position: the triangle, not the square
    assert systec_ref.agree(k.run(**full, backend="c"), k.definition(full).value, "float64")


def test_sddmm_iterates_the_canonical_storage_of_s():
    k = systec_ref.compile(EXAMPLES["sddmm"].read_text(encoding="utf-8"))
    p = k.final
    assert dict(p.facts.sparse_storage) == {"S": "canonical"}
    assert {lv.tensor for lv in _stored_entry_loops(p)} == {"S"}
    assert {lv.face for lv in _stored_entry_loops(p)} == {(0,), (1,)}  # strict part and diagonal
    assert not [n for n in nodes(p.body) if isinstance(n, Read) and n.tensor == "S"]
    inputs = k.random_inputs({"n": 7, "r": 3}, seed=1, density=0.2)
    res = k.interpret(inputs)
    stored = for_program(p, k.bind(inputs)[0])["S"].stored
    assert res.counts.reads["S"] == res.counts.distinct["S"] == stored  # each canonical entry once


# -- lower: the loop order -------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "order"), [
    # a sparse tensor read at two places that share k: Gustavson's i k j, A's rows iterated, k looked up
    # in the transposed copy and j walked in its fiber (not i j k: j would sweep every row per i)
    ("in A[n, m] sparse\nout C[n, n]\nC[i, j] += A[i, k] * A[j, k]", ("i", "k", "j")),
    # dense: unchanged, every read concordant
    ("in A[n, m]\nout C[n, n]\nC[i, j] += A[i, k] * A[j, k]", ("i", "j", "k")),
    # a sum visits every point whatever the order: no reason to transpose
    ("in A[n, m] sparse\nout C[n, n]\nC[i, j] += A[i, k] + A[j, k]", ("i", "j", "k")),
    # A @ A: the reads share no level in any order without two different copies; unchanged
    ("in A[n, n] sparse\nout C[n, n]\nC[i, k] += A[i, j] * A[j, k]", ("i", "j", "k")),
    # min-plus: the fill inf of either read leaves the update a no-op
    ("in A[n, m] sparse fill inf\nout C[n, n]\nC[i, j] min= A[i, k] + A[j, k]", ("i", "k", "j")),
])
def test_choose_order_iterates_both_reads_of_a_sparse_tensor(text, order):
    k = parse("kernel k\n" + text + "\n")
    assert choose_order(k) == order


# -- sparse-iterate on hand-built nests ----------------------------------------------------------------

def _gram(lo, value=None, op: str = "+", fill: float = 0) -> Program:
    """for k, for i, for j in lo..n: C[i,j] op= value (default A[k,i] * A[k,j]); A[m,n] sparse."""
    a_ki, a_kj = Read("A", (Idx("k"), Idx("i"))), Read("A", (Idx("k"), Idx("j")))
    value = Mul((a_ki, a_kj)) if value is None else value(a_ki, a_kj)
    stmt = Assign(Elem("C", (Idx("i"), Idx("j"))), op, value)
    nest = Loop("k", IConst(0), DimSize("m"), Block((
        Loop("i", IConst(0), DimSize("n"), Block((Loop("j", lo, DimSize("n"), Block((stmt,))),))),)))
    init = {"+": 0, "min": float("inf")}[op]
    tensors = (TensorInfo("A", "in", ("m", "n"), (), "sparse", fill), TensorInfo("C", "out", ("n", "n"), init=init))
    return Program("gram", tensors, Block((nest,)), op, Facts(loop_order="k i j"))


def _random_sparse(m: int, n: int, density: float, seed: int, fill: float = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.integers(-3, 4, size=(m, n)).astype(np.float64)
    a[a == fill] = 5
    a[rng.random((m, n)) >= density] = fill
    return a


def _agree_with_dense(before: Program, after: Program, fill: float = 0) -> None:
    """``after`` (stored entries) gives what ``before`` (dense) gives, in the interpreter and in C."""
    fn = CFunction(after, "sparse-iterate")
    for m, n in ((0, 3), (1, 1), (3, 5), (4, 7)):
        for density in DENSITIES:
            A = _random_sparse(m, n, density, seed=m * n, fill=fill)
            dims = {"m": m, "n": n}
            want = run_program(before, {"A": A}, dims)[0]["C"]
            storage = for_program(after, {"A": A})
            got, counts = run_program(after, {"A": A}, dims, storage)
            assert systec_ref.agree(got["C"], want, "float64"), (m, n, density)
            assert systec_ref.agree(fn({"A": A}, dims, storage)["C"], want, "float64"), (m, n, density)


@pytest.mark.parametrize(("lo", "start"), [
    (IConst(0), None),                           # j over the whole fiber
    (Idx("i"), "q"),                             # j >= i: from i's position
    (IPlus(Idx("i"), 1), "q+1"),                 # j > i: one past it
])
def test_second_read_walks_the_same_fiber_from_the_first_ones_position(lo, start):
    p = _gram(lo)
    new, note = sparse_iterate.run(p)
    assert verify(new) is None
    assert note == "1 nest iterates stored entries (A: full)"
    levels = {lv.var: lv for lv in _stored_entry_loops(new)}
    assert set(levels) == {"k", "i", "j"}
    q = levels["i"].pos
    assert levels["j"].parent == levels["i"].parent == Idx(levels["k"].pos)
    assert levels["j"].start == {None: None, "q": Idx(q), "q+1": IPlus(Idx(q), 1)}[start]
    assert {n.pos for n in nodes(new.body) if isinstance(n, SparseVal)} == {Idx(q), Idx(levels["j"].pos)}
    _agree_with_dense(p, new)


def test_either_read_holding_the_fill_must_annihilate():
    # a sum: the fill of one read leaves the other, so every point counts
    p = _gram(IConst(0), lambda a, b: Add((a, b)))
    new, note = sparse_iterate.run(p)
    assert new is p
    assert note.endswith("A passed dense: an update changes the result where it holds its fill")
    # A[k,i] * (A[k,j] + 1): annihilated where A[k,i] is unstored, not where A[k,j] is
    p = _gram(IConst(0), lambda a, b: Mul((a, Add((b, Read("B", ()))))))
    p = Program(p.name, p.tensors + (TensorInfo("B", "in", ()),), p.body, p.reduction, p.facts)
    assert sparse_iterate.run(p)[0] is p
    # min-plus with fill inf: inf + anything is inf, no change under min
    p = _gram(Idx("i"), lambda a, b: Add((a, b)), op="min", fill=float("inf"))
    new, _ = sparse_iterate.run(p)
    assert len(_stored_entry_loops(new)) == 3
    _agree_with_dense(p, new, fill=float("inf"))


def test_reads_not_sharing_a_level_stay_dense_and_the_note_says_so():
    k = systec_ref.compile("kernel sq\nin A[n, n] sparse\nout C[n, n]\nC[i, k] += A[i, j] * A[j, k]\n")
    note = next(s.note for s in k.stages if s.name == "sparse-iterate")
    assert note == ("not applied: no nest iterates a sparse tensor on one face; "
                    "A passed dense: read at 2 places not sharing a level")
    assert abi.dense_inputs(k.final) == ["A"]


def test_an_outer_loop_over_two_nests_is_split_so_each_iterates():
    """split-diagonals leaves both faces of (i,j) under the k loop: each becomes its own k nest."""
    k = systec_ref.compile(SSYRK_KIJ)
    before = next(s.program for s in k.stages if s.name == "lookup-table")
    after = next(s.program for s in k.stages if s.name == "sparse-iterate")
    (nest,) = [s for s in before.body.body if isinstance(s, Loop)]  # (the mirror sits in a block of its own)
    assert nest.var == "k" and [type(s) for s in nest.body.body] == [Block, Block]  # the strict part, the diagonal
    outer = [s for s in after.body.body if isinstance(s, SparseLevel)]
    assert [lv.var for lv in outer] == ["k", "k"]
    assert ["strict part" in lv.body.comment for lv in outer] == [True, False]


def test_a_loop_whose_statements_depend_on_each_other_is_not_split():
    upd = Assign(Elem("y", (Idx("i"),)), "+", Read("A", (Idx("k"), Idx("i"))))
    use = Assign(Elem("z", (Idx("i"),)), "+", Read("y", (Idx("i"),)))
    inner = [Loop("i", IConst(0), DimSize("n"), Block((s,))) for s in (upd, use)]
    loop = Loop("k", IConst(0), DimSize("m"), Block(tuple(inner)))
    assert sparse_iterate._fission(loop) is None  # z reads y, which the first nest writes
    ok = Loop("k", IConst(0), DimSize("m"), Block((inner[0], inner[0])))
    assert [len(part.body.body) for part in sparse_iterate._fission(ok)] == [1, 1]


def test_a_copy_one_nest_cannot_iterate_stays_dense_everywhere():
    """With k outermost a sum's strict nest cannot skip, its diagonal could: the copy is built (all or nothing)."""
    k = systec_ref.compile("kernel s\nin A[n, m] sparse\nout C[n, n]\norder k i j\nC[i, j] += A[i, k] + A[j, k]\n")
    note = next(s.note for s in k.stages if s.name == "sparse-iterate")
    assert note.endswith("A passed dense: an update changes the result where it holds its fill "
                         "(its transposed copy A_T)")
    assert not k.final.facts.sparse_copies and not _stored_entry_loops(k.final)
    inputs = k.random_inputs({"n": 5, "m": 3}, seed=2, density=0.4)
    assert systec_ref.check(k, inputs).ok
    assert systec_ref.agree(k.run(backend="c", **inputs), k.definition(inputs).value, "float64")


def test_a_copy_whose_c_array_names_are_taken_stays_dense():
    text = ("kernel t\nin A[n, m] sparse\nin A_T_full_vals[n]\nout C[n, n]\n"
            "C[i, j] += A[i, k] * A[j, k] * A_T_full_vals[i]\n")
    k = systec_ref.compile(text)
    assert not k.final.facts.sparse_copies
    inputs = k.random_inputs({"n": 5, "m": 3}, seed=0, density=0.5)
    assert systec_ref.agree(k.run(backend="c", **inputs), k.definition(inputs).value, "float64")


def test_einsum_of_one_sparse_matrix_with_itself_walks_its_columns():
    sp = pytest.importorskip("scipy.sparse")
    A = sp.random(9, 6, density=0.3, random_state=np.random.default_rng(0), format="csr")
    k = systec_ref.einsum_kernel("ik,jk->ij", A, A)
    assert k.final.facts.sparse_copies
    got = systec_ref.einsum("ik,jk->ij", A, A)
    assert systec_ref.agree(got, (A @ A.T).toarray(), "float64")


# -- the IR: interpreter, verifier, printer, graph --------------------------------------------------

def _sparsified() -> Program:
    """The strict triangle ``j in i+1..n`` of :func:`_gram`, iterating stored entries."""
    return sparse_iterate.run(_gram(IPlus(Idx("i"), 1)))[0]


def test_interpreter_refuses_a_start_outside_the_fiber():
    p = _sparsified()
    bad = p.body.body[0]
    j = next(n for n in nodes(bad) if isinstance(n, SparseLevel) and n.var == "j")
    broken = Program(p.name, p.tensors, Block((_replace(bad, j, IPlus(j.start, 5)),)), p.reduction, p.facts)
    A = np.ones((2, 3))
    with pytest.raises(InterpError, match="start position"):
        run_program(broken, {"A": A}, {"m": 2, "n": 3}, for_program(broken, {"A": A}))


def _replace(root, level: SparseLevel, start):
    """``root`` with the stored-entry loop ``level`` starting at ``start``."""
    return postwalk(lambda n: SparseLevel(n.var, n.pos, n.tensor, n.face, n.level, n.parent, n.body, start)
                    if n is level or n == level else None)(root)


def test_verifier_checks_where_a_level_starts():
    p = _sparsified()
    assert verify(p) is None
    j = next(n for n in nodes(p.body) if isinstance(n, SparseLevel) and n.var == "j")
    k = next(n for n in nodes(p.body) if isinstance(n, SparseLevel) and n.var == "k")
    for start in (Idx(k.pos), IPlus(Idx(j.parent.name), 1), IPlus(j.start.base, 2)):
        broken = Program(p.name, p.tensors, _replace(p.body, j, start), p.reduction, p.facts)
        assert "starts at a position that is not of an enclosing loop over the same fiber" in verify(broken)


def test_verifier_admits_stored_entries_of_a_copy_only_by_the_fact():
    k = systec_ref.compile(EXAMPLES["ssyrk"].read_text(encoding="utf-8"))
    p = k.final
    assert verify(p) is None
    p2 = p.with_facts(sparse_copies=())
    assert "stored entries of 'A_T', which is not a sparse input" in verify(p2)
    write = Assign(Elem("A_T", (IConst(0), IConst(0))), "+", Read("C", (IConst(0), IConst(0))))
    p3 = Program(p.name, p.tensors, Block(p.body.body + (write,)), p.reduction, p.facts)
    assert "writes 'A_T', whose stored entries are handed to the kernel" in verify(p3)


def test_printer_and_graph_show_the_start():
    p = _sparsified()
    text = print_program(p)
    assert "for (_q2, j) in A<full>.level1 under _q0 from _q1+1:" in text
    labels = [d["label"] for _, d in to_graph(p).nodes(data=True)]
    assert "for (_q2, j) in A<full>.level1 from _q1+1" in labels


def test_c_starts_the_level_at_the_position():
    src = emit_c(_sparsified())
    assert "for (int64_t _q2 = (_q1 + 1); _q2 < A_full_pos1[_q0 + 1]; ++_q2) {" in src


def test_c_with_two_accumulators_starts_at_the_position_too():
    """A scalar reduction over the walked fiber: the unrolled level with two accumulators."""
    k = systec_ref.compile("kernel g\nin A[n, m] sparse\nout s\norder k i j\ns += A[i, k] * A[j, k]\n")
    src = emit_c(k.final)
    assert "sx_lo = (_q1 + 1), sx_hi = A_T_full_pos1[_q0 + 1];" in src
    for n, m in ((0, 2), (1, 1), (5, 3), (7, 4)):
        for density in DENSITIES:
            inputs = k.random_inputs({"n": n, "m": m}, seed=n, density=density)
            assert systec_ref.agree(k.run(backend="c", **inputs), k.definition(inputs).value, "float64")


# -- storage ---------------------------------------------------------------------------------------

def test_permuted_storage_is_the_transpose_and_is_kept():
    a = _random_sparse(4, 6, 0.4, seed=1)
    st = SparseTensor.from_dense(a)
    t = st.permuted((1, 0))
    assert t.shape == (6, 4) and t.symmetry == ()
    assert np.array_equal(t.to_dense(), a.T)
    assert st.permuted((1, 0)) is t
    x = _random_sparse(2, 3, 0.5, seed=2).reshape(2, 3, 1) * np.ones((1, 1, 2))
    assert np.array_equal(SparseTensor.from_dense(x).permuted((2, 0, 1)).to_dense(), x.transpose(2, 0, 1))
    s = SparseTensor.from_dense(a @ a.T, ((0, 1),))  # canonical storage: every entry comes back
    assert np.array_equal(s.permuted((1, 0)).to_dense(), a @ a.T)


def test_for_program_builds_the_copy_from_a_dense_or_a_stored_input():
    k = systec_ref.compile(SSYRK_KIJ)
    a = _random_sparse(5, 3, 0.5, seed=4)
    for given in (a, SparseTensor.from_dense(a)):
        st = for_program(k.final, {"A": given})
        assert set(st) == {"A_T"}
        assert np.array_equal(st["A_T"].to_dense(), a.T)


# -- lookups (SparseLocate) and coordinate lower bounds (SparseLevel.low) ---------------------------

def _pair(lo) -> Program:
    """s += x[i] * y[j] over j in lo..n, x and y sparse vectors: x iterated, y walked from a coordinate."""
    stmt = Assign(Elem("s", ()), "+", Mul((Read("x", (Idx("i"),)), Read("y", (Idx("j"),)))))
    nest = Loop("i", IConst(0), DimSize("n"), Block((Loop("j", lo, DimSize("n"), Block((stmt,))),)))
    tensors = (TensorInfo("x", "in", ("n",), (), "sparse"), TensorInfo("y", "in", ("n",), (), "sparse"),
               TensorInfo("s", "out", (), init=0))
    return Program("pair", tensors, Block((nest,)), "+", Facts(loop_order="i j"))


@pytest.mark.parametrize("fmt", ["csf", "csf[pos=int32,crd=int32,dense=full]"], ids=["compressed", "dense-if-full"])
@pytest.mark.parametrize("lo", [IConst(0), Idx("i"), IPlus(Idx("i"), 1), IPlus(Idx("i"), 3)], ids=str)
def test_a_second_tensor_is_walked_from_a_coordinate(lo, fmt):
    """y's loop ``j in lo..n`` under x's stored entries becomes y's level from the first coordinate >= lo
    (a binary search; on a dense level, lo itself), in the interpreter and in C, on a compressed level and
    (y full) a dense one; lo past the end visits nothing."""
    from systec_ref.rewrite.manager import Options

    p = _pair(lo)
    new, note = sparse_iterate.run(p, Options(tensor_formats=(("x", fmt), ("y", fmt))))
    assert verify(new) is None
    (j,) = [lv for lv in _stored_entry_loops(new) if lv.var == "j"]
    assert j.tensor == "y" and j.start is None
    if lo != IConst(0):  # (from 0, the two are co-iterated: each loop over its own tensor)
        assert j.low == lo and "y looked up by coordinate" in note
    fn = CFunction(new, "sparse-iterate")
    rng = np.random.default_rng(7)
    for n in (0, 1, 2, 5, 9):
        for density in DENSITIES:
            x = np.where(rng.random(n) < density, rng.integers(1, 5, n), 0).astype(np.float64)
            y = np.where(rng.random(n) < density, rng.integers(1, 5, n), 0).astype(np.float64)
            dims = {"n": n}
            want = run_program(p, {"x": x, "y": y}, dims)[0]["s"]
            storage = for_program(new, {"x": x, "y": y})
            got = run_program(new, {"x": x, "y": y}, dims, storage)[0]["s"]
            assert systec_ref.agree(got, want, "float64"), (n, density)
            assert systec_ref.agree(fn({"x": x, "y": y}, dims, storage)["s"], want, "float64"), (n, density)


@pytest.mark.parametrize("density", DENSITIES)
def test_a_transposed_read_of_a_second_tensor_is_looked_up_level_by_level(density, c_compiler):
    """``y[i] += A[i,j] * B[j,i]``: A iterated by rows; B's entry (j, i) found in its stored transposed
    copy by two lookups (i in its first level, once per row; j in that fiber) — B is not expanded to
    dense — in every stage and in C."""
    k = systec_ref.compile("kernel t\nin A[n, n] sparse\nin B[n, n] sparse\nout y[n]\ny[i] += A[i, j] * B[j, i]\n")
    found = [n for n in nodes(k.final.body) if isinstance(n, SparseLocate)]
    assert [(f.tensor, f.level, f.coord) for f in found] == [("B_T", 0, Idx("i")), ("B_T", 1, Idx("j"))]
    assert abi.dense_inputs(k.final) == []
    for n in (0, 1, 4, 7):
        inputs = k.random_inputs({"n": n}, seed=n, density=density)
        assert systec_ref.check(k, inputs).ok
        want = k.definition(inputs).value
        for backend in ("c", "interp"):
            assert systec_ref.agree(k.run(backend=backend, **inputs), want, "float64"), (n, backend)


def test_the_verifier_checks_a_lookup():
    p = sparse_iterate.run(_pair(IPlus(Idx("i"), 1)))[0]
    located = SparseLocate("_z", "y", (), 1, None, Idx("i"), Block(()))
    bad = Program(p.name, p.tensors, Block((*p.body.body, located)), p.reduction, p.facts)
    assert "level 1 of face () of y, which stores 1" in verify(bad)
    loose = SparseLocate("_z", "y", (), 0, None, Idx("q"), Block(()))
    assert "q" in verify(Program(p.name, p.tensors, Block((*p.body.body, loose)), p.reduction, p.facts))


def test_interpreter_finds_only_stored_coordinates():
    """A lookup of a coordinate the level does not store skips the body; one outside a dense level is a bug."""
    p = sparse_iterate.run(_pair(IConst(0)))[0]
    x, y = np.array([1.0, 0.0, 2.0]), np.array([0.0, 3.0, 0.0])
    got, counts = run_program(p, {"x": x, "y": y}, {"n": 3}, for_program(p, {"x": x, "y": y}))
    assert got["s"] == 9.0 and counts.updates == 2  # (i, j) in {0, 2} x {1}


def test_a_tensor_read_in_two_sibling_loops_is_not_looked_up_along_one_path():
    """Found by review: ``for i: {for j: s += x[i]*y[j]; for j in i+1..: s += x[i]*y[j]}`` — building the
    lookups along the path to the first read and replacing both left the second reading an unbound
    position.  A tensor read at two places is not looked up (it stays dense there); same result."""
    stmt = Assign(Elem("s", ()), "+", Mul((Read("x", (Idx("i"),)), Read("y", (Idx("j"),)))))
    nest = Loop("i", IConst(0), DimSize("n"), Block((Loop("j", IConst(0), DimSize("n"), Block((stmt,))),
                                                     Loop("j", IPlus(Idx("i"), 1), DimSize("n"), Block((stmt,))))))
    p = Program("pair", _pair(IConst(0)).tensors, Block((nest,)), "+", Facts(loop_order="i j"))
    new, _ = sparse_iterate.run(p)
    assert verify(new) is None
    x, y = np.array([1.0, 0, 2, 3]), np.array([0, 5.0, 0, 7])
    want = run_program(p, {"x": x, "y": y}, {"n": 4})[0]["s"]
    assert run_program(new, {"x": x, "y": y}, {"n": 4}, for_program(new, {"x": x, "y": y}))[0]["s"] == want == 98


def test_the_verifier_refuses_a_start_and_a_low_together():
    p = sparse_iterate.run(_pair(IPlus(Idx("i"), 1)))[0]
    both = postwalk(lambda n: dataclasses.replace(n, start=IConst(0)) if isinstance(n, SparseLevel) and n.low
                    else None)(p.body)
    assert "both a start position and a lower coordinate" in verify(Program(p.name, p.tensors, both, p.reduction,
                                                                            p.facts))
