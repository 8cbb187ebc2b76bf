"""Every loop nest of every stage runs at the default sizes, and a run that leaves one empty says so.

A stage check (``systec_ref.check``, ``python -m systec_ref check``) on random inputs says nothing
about a loop nest that never runs: at n=4 the strict nest ``i < j < k < l < m`` of MTTKRP-5 is
empty, and ``unroll-and-jam``'s sweeps of six rows need eight.  The interpreter records how often
each assignment ran (``Counts.runs``; ``Counts.never_ran``), the check report exposes the ones
that never did (``CheckReport.unexercised``), and the CLI gives every dimension without a
``--size`` the smallest size at which none is left out (``Kernel.default_sizes``).

Here: every example of ``examples/`` and ``examples/sparse/``, with ``faces="split"``,
``faces="compact"`` (it changes sets of four or more variables; the others are cheap to run
again) and with the symmetry passes off, checked at
its default sizes on full inputs (density 1): every stage agrees with the definition and every
assignment of every stage ran at least once — but for a mirror chosen at run time
(``mirror-written``): density 1 runs the full mirror, so the copies of the written elements are
run once more at a lower density (``CHOSEN_DENSITY``), where they are the cheaper choice; and a
kernel that merges sparse inputs by union also runs on inputs where each of them is full, half
full or empty (its branches for a coordinate only some of them store need such data).  Then
the CLI: no note at the default size of MTTKRP-5, the note at n=4.
"""

from __future__ import annotations

import functools
import itertools

import helpers
import pytest

import systec_ref
from systec_ref.cli import main
from systec_ref.ir.nodes import SparseMerge, Stored
from systec_ref.ir.printer import fmt_stmt
from systec_ref.sizes import FLOOR, default_size
from systec_ref.term import nodes

PATHS = helpers.EXAMPLES + sorted((helpers.EXAMPLES_DIR / "sparse").glob("*.ein"))
#: the interpreter's heavy ones: 5-10 s each (compiling MTTKRP-5 alone takes 2-3 s)
HEAVY = {"mttkrp5"}
#: the density at which a mirror chosen at run time copies the written elements only (at the default sizes)
CHOSEN_DENSITY = 0.5


def _id(path) -> str:
    return path.stem if path.parent == helpers.EXAMPLES_DIR else f"sparse-{path.stem}"


CASES = [pytest.param(path, config, id=f"{_id(path)}-{config}",
                      marks=[pytest.mark.slow] if path.stem in HEAVY and config != "naive" else [])
         for path in PATHS for config in ("split", "compact", "naive")]


@functools.cache
def _kernel(path, config: str) -> systec_ref.Kernel:
    if config == "naive":
        return systec_ref.load(path, symmetry=False)
    if config == "no-blas":  # the whole symmetric set of MTTKRP (gemm-form keeps a part of it)
        return systec_ref.load(path, blas=False)
    return systec_ref.load(path, faces=config)


def _never_ran(report) -> list[str]:
    """One line per assignment that never ran: stage, position, the statement."""
    out = []
    for s in report.stages:
        for pos in s.unexercised:
            out.append(f"{s.name} #{pos}: {fmt_stmt(s.counts.statements[pos])[0]}")
    return out


def _union_inputs(k: systec_ref.Kernel, sizes: dict[str, int]) -> list[dict]:
    """For a kernel that merges sparse inputs by union, inputs where each of them is full, half full or
    empty independently: its branches for a coordinate that only some of them store run only on such data
    (which entries are stored, not the sizes, decides whether they run)."""
    if not any(isinstance(n, SparseMerge) and n.mode == "union" for st in k.stages for n in nodes(st.program.body)):
        return []
    names = [t.name for t in k.ast.inputs if t.format == "sparse"]
    by_density = {d: k.random_inputs(sizes, seed=0, density=d) for d in (0.0, 0.5, 1.0)}
    return [{t.name: by_density[dict(zip(names, ds)).get(t.name, 1.0)][t.name] for t in k.ast.inputs}
            for ds in itertools.product(by_density, repeat=len(names))]


@pytest.mark.parametrize(("path", "config"), CASES)
def test_every_assignment_of_every_stage_runs_at_the_default_sizes(path, config):
    k = _kernel(path, config)
    sizes = k.default_sizes()
    report = systec_ref.check(k, k.random_inputs(sizes, seed=0))
    assert report.ok, report.table()
    missed = _never_ran(report)
    chosen = any(isinstance(n, Stored) for n in nodes(k.final.body))  # a run-time choice: one branch per run
    if chosen:
        again = systec_ref.check(k, k.random_inputs(sizes, seed=0, density=CHOSEN_DENSITY))
        assert again.ok, again.table()
        missed = [m for m in missed if m in set(_never_ran(again))]
    for inputs in _union_inputs(k, sizes):  # an assignment counts as run if it ran on one of them
        if not missed:
            break
        more = systec_ref.check(k, inputs)
        assert more.ok, more.table()
        missed = [m for m in missed if m in _never_ran(more)]
    assert not missed, f"{path.name} ({config}) at {sizes}: {len(missed)} assignments never ran:\n" + \
        "\n".join(missed[:30])
    if not chosen and not _union_inputs(k, sizes):
        assert not report.unexercised and not report.never_ran_notes()
    assert all(s.counts.runs for s in report.stages[1:]), "a stage without assignments?"


def test_default_size_rules():
    """The smallest size that enters every nest: >= the largest permutable set, >= 4, and where
    unroll-and-jam applied, sweeps of six rows with two or more rows left over."""
    def size(name: str, **options) -> int:
        return default_size(_kernel(helpers.example(name), "naive" if options else "split").stages)

    assert default_size(_kernel(helpers.example("mttkrp5"), "no-blas").stages) == 5  # a set of five variables
    assert size("mttkrp5") == FLOOR      # gemm-form keeps the four summed ones: they fit in four
    assert size("mttkrp3") == FLOOR      # three fit in four
    assert size("ssymv") == 8            # unroll-and-jam: 6 rows jammed, 2 left over
    assert size("bellman") == FLOOR      # sparse: nothing unrolled
    assert size("mttkrp5", naive=True) == FLOOR  # no permutable set without the symmetry passes
    k = _kernel(helpers.example("mttkrp5"), "no-blas")
    assert k.default_sizes() == {"n": 5, "r": 5}
    assert k.default_sizes({"r": 2}) == {"n": 5, "r": 2}
    assert k.default_sizes({"n": 7, "r": 1, "q": 3}) == {"n": 7, "r": 1}  # q: not a dimension of the kernel


def test_check_report_says_what_never_ran_at_n4():
    """MTTKRP-5 on its whole set at n=4: every nest over five distinct values (the strict one, and its updates)
    never ran."""
    k = _kernel(helpers.example("mttkrp5"), "no-blas")
    report = systec_ref.check(k, k.random_inputs({"n": 4, "r": 2}, seed=0))
    assert report.ok  # a note, not a failure
    assert report.dims == {"n": 4, "r": 2}
    names = [s.name for s in k.stages]
    assert set(report.unexercised) == set(names[names.index("define-assignments"):])  # from define-assignments on
    split = report.stages[[s.name for s in k.stages].index("split-diagonals")]
    missed = [fmt_stmt(split.counts.statements[p])[0] for p in split.unexercised]
    assert len(missed) == 5 and len(split.counts.runs) == 48
    # the strict nest i<k<l<m<o updates C[i,j] with the element at five distinct subscripts
    assert any("A[i,k,l,m,o]" in m.replace(" ", "") for m in missed), missed
    assert report.never_ran_notes() == [
        "note: stages define-assignments to normalize (each): 120 of 541 assignments never ran at n=4, r=2 "
        "(raise --size to exercise them)",
        "note: stages group-assignments to mirror-written (each): 5 of 48 assignments never ran at n=4, r=2 "
        "(raise --size to exercise them)",
    ]


def _cli(capsys, *args: str) -> tuple[int, str]:
    status = main([*args, "--no-color"])
    return status, capsys.readouterr().out


@pytest.mark.slow
def test_cli_check_mttkrp5_default_size_enters_every_nest(capsys):
    # the whole set of five: n = 5; gemm-form's BLAS form keeps the four summed indices: n = 4 enters them all
    for extra, size in ((["--no-blas"], "n=5, r=5"), ([], "n=4, r=4")):
        status, out = _cli(capsys, "check", "examples/mttkrp5.ein", *extra)
        assert status == 0, out
        assert f"sizes {size}" in out
        assert "never ran" not in out and "every stage agrees" in out


def test_cli_check_mttkrp5_at_n4_notes_what_never_ran(capsys):
    status, out = _cli(capsys, "check", "examples/mttkrp5.ein", "--no-blas", "--size", "n=4,r=2")
    assert status == 0, out  # exit status unchanged: a note, not a failure
    assert "note: stages group-assignments to mirror-written (each): 5 of 48 assignments never ran at n=4, r=2 " \
           "(raise --size to exercise them)" in out
    assert out.rstrip().endswith("every stage agrees")


def test_cli_run_and_explain_note_what_never_ran(capsys):
    status, out = _cli(capsys, "run", "examples/ssymv.ein", "--size", "n=4")
    assert status == 0, out
    assert "note: stage mirror-written: 29 of 33 assignments never ran at n=4 (raise --size to exercise them)" in out
    assert "stage lower" not in out  # the naive nest ran every statement
    status, out = _cli(capsys, "explain", "examples/ssymv.ein", "--size", "n=4")
    assert status == 0, out
    assert "reads A:10 x:10; 29 of 33 assignments never ran" in out  # the stage's verdict line
    assert "note: stages unroll-and-jam to mirror-written (each): 29 of 33 assignments never ran at n=4" in out
    status, out = _cli(capsys, "run", "examples/ssymv.ein")
    assert status == 0 and "sizes n=8" in out and "never ran" not in out, out


def test_cli_sparse_hint_names_density(capsys):
    """Sparse inputs with few entries leave nests empty too: the note says so, and how to fill them."""
    status, out = _cli(capsys, "check", "examples/sparse/ssymv.ein", "--density", "0.1", "--seed", "2")
    assert status == 0, out
    assert "never ran at n=4 (raise --size or --density to exercise them)" in out, out
