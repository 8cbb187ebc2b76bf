"""mirror-written: the mirror of a symmetric output sized to the work that wrote it.

The pass itself, on the stage before it: what it builds (a run-time choice between copying the
written elements over the same stored entries and replicate-output's full mirror, unchanged),
where it keeps the full mirror at compile time (dense work), and that both choices agree with the
definition in every stage and in C, at n = 0, 1, 5, 7 and densities 0, 1e-3, 0.2 and 1 (exact for
int64, 1e-12 relative for float64; ``min=`` and ``max=`` included), each choice taken where it is
the cheaper.
"""

from __future__ import annotations

import functools

import helpers
import pytest
from test_passes_support import variant

import systec_ref
from systec_ref.ir.nodes import Assign, Block, Cmp, If, ISum, Read, SparseLevel, Stored
from systec_ref.rewrite import mirror_written, pipeline
from systec_ref.rewrite.replicate_output import mirror_nest
from systec_ref.term import nodes

SPARSE_TTM = "sparse/ttm"
#: TTM over the (min, +) semiring: fill inf, the output starts at inf
MIN_TTM = """\
kernel ttm_min
in  A[n, n, n]  symmetric sparse fill inf
in  B[n, r]
out C[r, n, n]
C[i, j, l] min= A[k, j, l] + B[k, i]
"""


@functools.cache
def _kernel(source: str, dtype: str = "float64") -> systec_ref.Kernel:
    """An example by name (``sparse/ttm``) or a kernel's text, in ``dtype``."""
    text = source if "\n" in source else (helpers.EXAMPLES_DIR / f"{source}.ein").read_text(encoding="utf-8")
    text = variant(text, dtype)
    assert text is not None
    return systec_ref.compile(text)


def _before_and_after(k: systec_ref.Kernel):
    names = [s.name for s in k.stages]
    at = names.index(mirror_written.PASS.name)
    return k.stages[at - 1].program, k.stages[at]


def test_the_pass_on_sparse_ttm_builds_a_run_time_choice():
    k = _kernel(SPARSE_TTM)
    before, stage = _before_and_after(k)
    after, note = mirror_written.run(before)
    assert after == stage.program and note == stage.note
    assert "sized to the work, at run time" in note and "else the full mirror" in note
    # every statement before the mirror is kept as it was; the mirror becomes the else branch
    mirror = mirror_nest(before.output, before.facts.output_symmetry)
    assert before.body.body[-1] == mirror and after.body.body[:-1] == before.body.body[:-1]
    (choice,) = after.body.body[-1].body
    assert isinstance(choice, If) and choice.orelse == mirror
    assert isinstance(choice.cond, Cmp) and isinstance(choice.cond.a, ISum)
    assert {n.face for n in nodes(choice.cond) if isinstance(n, Stored)} <= \
        {n.face for n in nodes(choice.then) if isinstance(n, SparseLevel)}
    # the copies: plain '=' of a canonical element (j <= l) onto its mirror image, over stored entries
    copies = [n for n in nodes(choice.then) if isinstance(n, Assign)]
    assert len(copies) == 5
    for c in copies:
        assert c.op == "=" and isinstance(c.value, Read) and not c.value.sort
        assert c.target.idx == (c.value.idx[0], c.value.idx[2], c.value.idx[1])
    # nothing but loops, tests and copies: no read of A, B or a local
    assert {n.tensor for n in nodes(choice.then) if isinstance(n, Read)} == {"C"}


@pytest.mark.parametrize("source", ["ttm", "ssyrk", "mttkrp3"])
def test_dense_work_keeps_the_full_mirror(source):
    """Dense nests do at least the output's size of work: the mirror is left alone (or there is none)."""
    k = _kernel(source)
    before, stage = _before_and_after(k)
    assert not stage.changed and stage.program == before
    assert stage.note.startswith(("full mirror kept", "no mirror"))


def test_a_nest_that_stays_dense_keeps_the_full_mirror():
    """Dense SSYRK: its nest is dense (in float64 one dsyrk), so the whole output is work anyway."""
    _, stage = _before_and_after(_kernel("ssyrk"))
    assert not stage.changed and "BLAS call" in stage.note
    _, stage = _before_and_after(_kernel("ssyrk", "int64"))
    assert not stage.changed and "dense nest" in stage.note


def test_the_mirror_pass_is_last_and_symmetry_only():
    assert pipeline.PASSES[-1] is mirror_written.PASS
    assert mirror_written.PASS not in pipeline.NON_SYMMETRY


def _branch_runs(k: systec_ref.Kernel, inputs: dict) -> tuple[int, int]:
    """(copies of written elements, steps of the full mirror) the final stage ran."""
    res = k.interpret(inputs)
    copies = mirror = 0
    for s, runs in zip(res.counts.statements, res.counts.runs):
        if isinstance(s, Assign) and s.op == "=":
            if s.value.sort:
                mirror += runs
            else:
                copies += runs
    return copies, mirror


@pytest.mark.parametrize(("source", "dtype"), [
    (SPARSE_TTM, "float64"), (SPARSE_TTM, "int64"), (MIN_TTM, "float64"),
    (MIN_TTM.replace("min=", "max=").replace("fill inf", "fill -inf"), "float64"),
], ids=["plus-float64", "plus-int64", "min-float64", "max-float64"])  # fill inf has no int64 value
def test_both_choices_agree_in_every_stage_and_in_c(source, dtype):
    k = _kernel(source, dtype)
    assert any(isinstance(n, Stored) for n in nodes(k.final.body))
    taken = set()
    for n in (0, 1, 5, 7):
        for density in (0.0, 1e-3, 0.2, 1.0):
            inputs = k.random_inputs({"n": n, "r": 3}, seed=n, density=density)
            report = systec_ref.check(k, inputs)
            assert report.ok, f"n={n} density={density}\n{report.table()}"
            want = k.definition(inputs).value
            assert systec_ref.agree(k.run(backend="c", **inputs), want, dtype), f"C at n={n} density={density}"
            copies, mirror = _branch_runs(k, inputs)
            assert not (copies and mirror)
            if copies:
                taken.add("copies")
            if mirror:
                taken.add("full")
                assert density > 0.2  # the full mirror only where the written elements are many
    assert taken == {"copies", "full"}


def test_copies_scale_with_the_stored_entries():
    """At a low density the mirror step count follows the stored entries, not the n*n*r output."""
    k = _kernel(SPARSE_TTM)
    inputs = k.random_inputs({"n": 40, "r": 2}, seed=3, density=0.001)
    copies, mirror = _branch_runs(k, inputs)
    assert mirror == 0 and 0 < copies < 2 * 40 * 40 / 10
    res = k.interpret(inputs)
    assert systec_ref.agree(res.value, k.definition(inputs).value, "float64")


def test_empty_block_never_built():
    """A nest whose updates all map onto themselves (the diagonal face) has no copy nest."""
    k = _kernel(SPARSE_TTM)
    choice = k.final.body.body[-1].body[0]
    faces = {n.face for n in nodes(choice.then) if isinstance(n, SparseLevel)}
    assert (3,) not in faces  # k == j == l: C[i,k,k] is its own mirror image
    assert all(not isinstance(s, Block) or s.body for s in nodes(choice.then) if isinstance(s, Block))


def test_copies_that_never_outnumber_the_mirror_need_no_run_time_test():
    """SDDMM copies one element per stored strict entry of S (n*n at most): the copies always, no If."""
    k = _kernel("sparse/sddmm")
    _, stage = _before_and_after(k)
    assert stage.changed and "no run-time test" in stage.note
    assert not any(isinstance(n, If) for n in nodes(stage.program.body))
    for n, density in ((0, 0.0), (1, 1.0), (5, 0.3), (7, 1.0)):
        inputs = k.random_inputs({"n": n, "r": 3}, seed=n, density=density)
        want = k.definition(inputs).value
        assert systec_ref.agree(k.interpret(inputs).value, want, "float64"), (n, density)
        assert systec_ref.agree(k.run(backend="c", **inputs), want, "float64"), (n, density)
