"""The pass manager and the IR verifier: declared passes, checked order, a verified program after
every pass, and a broken pass reported as the compiler's bug (exit 3), not the user's."""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path

import pytest
from helpers import EXAMPLES_DIR as EXAMPLES

import systec_ref
from systec_ref import cli
from systec_ref.errors import InternalError, MiscompileError
from systec_ref.ir.nodes import (
    Assign,
    Block,
    Cmp,
    Const,
    DimSize,
    Elem,
    Facts,
    IConst,
    Idx,
    Let,
    Local,
    Lookup,
    Loop,
    Program,
    Read,
    SparseLevel,
    TensorInfo,
)
from systec_ref.ir.verify import verify
from systec_ref.rewrite import pipeline
from systec_ref.rewrite.manager import Options, Pass, Stage, check_order, run_pipeline

A = TensorInfo("A", "in", ("n", "n"))
X = TensorInfo("x", "in", ("n",))
Y = TensorInfo("y", "out", ("n",))
S = TensorInfo("S", "in", ("n", "n"), symmetry=((0, 1),), format="sparse")


def loop(var: str, *body) -> Loop:
    return Loop(var, IConst(0), DimSize("n"), Block(tuple(body)))


def program(*body, tensors=(A, X, Y)) -> Program:
    return Program("k", tuple(tensors), Block(tuple(body)))


GOOD = program(loop("i", loop("j", Assign(Elem("y", (Idx("i"),)), "+",
                                          Read("A", (Idx("i"), Idx("j")))))))


def test_a_well_formed_program_verifies():
    assert verify(GOOD) is None


@pytest.mark.parametrize(("prog", "message"), [
    (program(loop("i", Assign(Elem("y", (Idx("j"),)), "+", Const(1.0)))),
     "index 'j' used outside a loop that binds it"),
    (program(loop("i", loop("i", Assign(Elem("y", (Idx("i"),)), "+", Const(1.0))))),
     "loop variable 'i' rebinds an enclosing one"),
    (program(loop("i", Assign(Elem("y", (Idx("i"),)), "+", Local("t")))), "local 't' read before it is declared"),
    (program(loop("i", Assign(Local("t"), "+", Const(1.0)))), "local 't' updated before it is declared"),
    (program(Let("t", Const(0.0)), Let("t", Const(1.0))), "local 't' declared twice"),
    (program(loop("i", Assign(Elem("y", (Idx("i"), Idx("i"))), "+", Const(1.0)))), "2 subscripts for y of order 1"),
    (program(loop("i", Assign(Elem("x", (Idx("i"),)), "+", Const(1.0)))), "writes input 'x'"),
    (program(loop("i", Assign(Elem("z", (Idx("i"),)), "+", Const(1.0)))), "unknown tensor 'z'"),
    (program(loop("i", Assign(Elem("y", (Idx("i"),)), "*", Const(1.0)))), "unknown update '*'"),
    (program(Loop("i", IConst(0), DimSize("m"), Block(()))), "unknown dimension 'm'"),
    (program(loop("i", Assign(Elem("y", (Idx("i"),)), "+",
                              Lookup((1, 2, 3), (Cmp("==", Idx("i"), IConst(0)),))))),
     "lookup of 3 values for 1 key bits"),
    (program(SparseLevel("i", "q", "A", (), 0, None, Block(()))), "stored entries of 'A', which is not a sparse input"),
    # the diagonal face (1,) of a symmetric matrix stores one level: there is no level 1
    (program(SparseLevel("i", "q", "S", (1,), 0, None, Block((
        SparseLevel("j", "r", "S", (1,), 1, Idx("q"), Block(())),))), tensors=(S, Y)),
     "level 1 of face (1,) of S, which stores 1"),
])
def test_the_verifier_names_what_is_wrong(prog, message):
    problem = verify(prog)
    assert problem is not None and message in problem, problem


def test_a_local_is_visible_to_the_rest_of_its_block_only():
    ok = program(loop("i", Let("t", Const(0.0)), Assign(Local("t"), "+", Const(1.0)),
                      Assign(Elem("y", (Idx("i"),)), "+", Local("t"))))
    assert verify(ok) is None
    leaked = program(loop("i", Let("t", Const(0.0))), loop("j", Assign(Elem("y", (Idx("j"),)), "+", Local("t"))))
    assert "local 't' read before it is declared" in verify(leaked)


def test_every_stage_of_every_example_verifies():
    for path in sorted(EXAMPLES.glob("*.ein")):
        for faces in pipeline.FACES:
            for symmetry in (True, False):
                for st in systec_ref.load(path, faces=faces, symmetry=symmetry).stages:
                    assert verify(st.program) is None, (path.name, faces, symmetry, st.name, verify(st.program))


# -- declared passes ----------------------------------------------------------------------


def test_passes_are_declared_once_and_the_baseline_is_derived():
    names = [p.name for p in pipeline.PASSES]
    assert len(set(names)) == len(names)
    assert pipeline.NON_SYMMETRY == [p for p in pipeline.PASSES if not p.symmetry]
    assert [p.name for p in pipeline.NON_SYMMETRY] == [
        "concordize", "sparse-iterate", "fuse-faces", "tile", "blas-calls", "hoist-reads", "workspace",
        "unroll-and-jam"]
    check_order(pipeline.PASSES)
    check_order(pipeline.NON_SYMMETRY)


def test_every_fact_is_provided_by_exactly_one_pass():
    provided = [f for p in pipeline.PASSES for f in p.provides]
    assert len(provided) == len(set(provided))
    lowers = {"loop_order", "loop_order_given", "packed"}  # set by lower
    assert set(provided) | lowers == {f.name for f in dataclasses.fields(Facts)}


def test_a_pass_that_reads_a_fact_requires_the_pass_providing_it():
    """Read from the source: every ``facts.<name>`` a pass module reads is its own, ``lower``'s, or
    provided by a pass among its requirements (followed transitively)."""
    provider = {f: p.name for p in pipeline.PASSES for f in p.provides}

    def before(name: str) -> set[str]:
        req = set(pipeline.BY_NAME[name].requires)
        return req.union(*(before(r) for r in req)) if req else req

    module_of = {p.name: p.run.__module__ for p in pipeline.PASSES}
    # the methods of Facts, by the fields they read
    methods = {"format_of": ("sparse_format", "tensor_formats"), "packed_groups": ("packed",)}
    missing = []
    for name, module in module_of.items():
        source = Path(sys.modules[module].__file__).read_text()
        read = set(re.findall(r"facts\.([a-z_]+)", source))
        for fact in sorted(set().union(*(methods.get(f, (f,)) for f in read)) if read else ()):
            if fact in ("loop_order", "loop_order_given", "packed") or fact in pipeline.BY_NAME[name].provides:
                continue
            if provider[fact] not in before(name):
                missing.append(f"{name} reads {fact} without requiring {provider[fact]}")
    assert not missing, missing


def test_a_pass_out_of_order_is_refused():
    first, second = pipeline.BY_NAME["identify-symmetry"], pipeline.BY_NAME["restrict-iteration"]
    with pytest.raises(ValueError, match="restrict-iteration requires identify-symmetry before it"):
        check_order([second, first])


def test_a_pass_cannot_claim_an_unknown_fact():
    with pytest.raises(ValueError, match="provides unknown facts"):
        Pass("bogus", lambda p, o: (p, ""), symmetry=False, provides=("faces",))


def test_options_reach_the_passes_not_the_program():
    k = systec_ref.load(EXAMPLES / "mttkrp5.ein", faces="compact", blas=False)  # the whole set of 5
    assert all(dataclasses.fields(st.program.facts) for st in k.stages)
    assert not any("faces" in str(st.program.facts) for st in k.stages)
    assert k.stage("lookup-table").changed  # it saw faces="compact" through its options


def _breaking_pass() -> Pass:
    def run(p: Program, options: Options) -> tuple[Program, str]:
        body = Block((Assign(Elem(p.output.name, tuple(Idx("nowhere") for _ in p.output.dims)), "+", Const(1)),))
        return dataclasses.replace(p, body=body), "broke it"
    return Pass("break-it", run, symmetry=False)


def test_a_pass_that_breaks_the_program_is_a_miscompile():
    naive = systec_ref.load(EXAMPLES / "ssymv.ein").naive
    with pytest.raises(MiscompileError, match="pass break-it produced an invalid program: index 'nowhere'"):
        run_pipeline(Stage("lower", naive, True), [_breaking_pass()])
    assert issubclass(MiscompileError, InternalError) and not issubclass(MiscompileError, systec_ref.SystecError)


def test_the_cli_reports_a_miscompile_as_our_bug(monkeypatch, capsys):
    monkeypatch.setattr(pipeline, "PASSES", [*pipeline.PASSES, _breaking_pass()])
    status = cli.main(["check", str(EXAMPLES / "ssymv.ein")])
    err = capsys.readouterr().err
    assert status == 3, err
    assert err.startswith("internal error: MiscompileError: pass break-it produced an invalid program")
    assert "a bug" in err and "Traceback" not in err
