"""Every visitor names the node types it does not know.

A visitor (a printer, the graph view, the interpreters, the verifier, the C emitter, ``lower``)
must handle every node type of its tree.  Each dispatches with ``match`` and ends in
``case _: raise unknown(node, "<visitor>")``, so a node type added to the IR or the AST and
forgotten in one of them is an :class:`~systec_ref.errors.UnknownNode` (an internal error) that
names the node type and the visitor — never an ``assert`` (gone under ``python -O``), never a
fall-through into the branch of another node type, never a silent default.

The node types here are defined by the test itself, so no visitor can know them.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import systec_ref
from systec_ref.emit.c import emit_c
from systec_ref.errors import InternalError, SystecError, UnknownNode
from systec_ref.interp import run_definition, run_program
from systec_ref.ir.graph import to_graph
from systec_ref.ir.nodes import (
    Assign,
    Block,
    DimSize,
    Elem,
    IConst,
    Idx,
    If,
    Loop,
    Mul,
    Program,
    Read,
    TensorInfo,
)
from systec_ref.ir.printer import print_program
from systec_ref.ir.verify import verify
from systec_ref.lang import check as lang_check
from systec_ref.lang.ast import Access, BinOp, Neg, Number, Pos
from systec_ref.lang.printer import print_expr, print_kernel
from systec_ref.reference import numpy_reference
from systec_ref.rewrite.lower import lower
from systec_ref.term import Node

ROOT = Path(__file__).resolve().parents[1]


# -- node types nobody knows ------------------------------------------------------------------

@dataclass(frozen=True)
class Frobnicate(Node):
    """A statement."""

    times: int = 2


@dataclass(frozen=True)
class Wibble(Node):
    """An expression: placed where a value, an index, a condition or an assignment target goes."""

    label: str = "w"


@dataclass(frozen=True)
class Blorp(Node):
    """A kernel-language expression (AST)."""

    pos: Pos = dataclasses.field(default=Pos(), compare=False)


def test_the_dummies_are_terms():
    # they are proper nodes (the generic walks handle them); only the visitors do not know them
    p = _program("value")
    assert any(isinstance(n, Wibble) for n in systec_ref.term.nodes(p))
    assert Frobnicate().children() == () and Blorp().rebuild(()) == Blorp()


def test_rebuild_wants_exactly_the_children_it_has():
    node = Elem("y", (Idx("i"),))
    assert node.rebuild((Idx("j"),)) == Elem("y", (Idx("j"),))
    with pytest.raises(ValueError, match=r"Elem.rebuild: 0 children for a node that has 1"):
        node.rebuild(())
    with pytest.raises(ValueError, match=r"Elem.rebuild: 2 children for a node that has 1"):
        node.rebuild((Idx("j"), Idx("k")))


# -- loop-nest programs holding them ----------------------------------------------------------

TENSORS = (TensorInfo("A", "in", ("n",)), TensorInfo("y", "out", ("n",)))


def _update(value) -> Assign:
    return Assign(Elem("y", (Idx("i"),)), "+", value)


def _program(where: str) -> Program:
    """``for i in 0..n: ...`` with the unknown node as a statement, value, index, condition or target."""
    read = Read("A", (Idx("i"),))
    body = {
        "statement": (_update(read), Frobnicate()),
        "value": (_update(Mul((read, Wibble()))),),
        "index": (_update(Read("A", (Wibble(),))),),
        "condition": (If(Wibble(), Block((_update(read),))),),  # type: ignore[arg-type]
        "target": (Assign(Wibble(), "+", read),),  # type: ignore[arg-type]
    }[where]
    return Program("frob", TENSORS, Block((Loop("i", IConst(0), DimSize("n"), Block(body)),)))


#: where the unknown node is placed; each visitor names its part that meets it after this place
WHERE = ("statement", "value", "index", "condition", "target")
NODE = {"statement": "Frobnicate", "value": "Wibble", "index": "Wibble", "condition": "Wibble", "target": "Wibble"}


#: the AST walks every kernel-level visitor runs first (the literal fold of ``Kernel.rhs``, the
#: list of accesses): a kernel holding an unknown node may be stopped by one of them, by name
AST_WALKS = ("accesses", "literal folding", "literal value")


def _raises_unknown(fn, node_type: str, visitor: str) -> UnknownNode:
    with pytest.raises(UnknownNode) as info:
        fn()
    err = info.value
    assert isinstance(err, InternalError) and not isinstance(err, SystecError)
    assert err.node_type == node_type, str(err)
    assert visitor in err.visitor or (node_type == "Blorp" and err.visitor in AST_WALKS), str(err)
    assert node_type in str(err) and err.visitor in str(err)
    return err


def _run(p: Program):
    return run_program(p, {"A": np.arange(3.0)}, {"n": 3})


def test_a_well_formed_program_goes_through_every_visitor():
    # the same program without the unknown node: what the tests below break is only that node
    p = Program("ok", TENSORS, Block((Loop("i", IConst(0), DimSize("n"), Block((_update(Read("A", (Idx("i"),))),))),)))
    assert verify(p) is None
    assert "y[i] += A[i]" in print_program(p)
    assert to_graph(p).number_of_nodes() == 3
    assert _run(p)[0]["y"].tolist() == [0.0, 1.0, 2.0]
    assert "y[" in emit_c(p)


@pytest.mark.parametrize("where", WHERE)
def test_ir_printer(where):
    _raises_unknown(lambda: print_program(_program(where)), NODE[where], f"IR printer ({where})")


@pytest.mark.parametrize("where", WHERE)
def test_interpreter(where):
    _raises_unknown(lambda: _run(_program(where)), NODE[where], f"interpreter ({where})")


@pytest.mark.parametrize("where", WHERE)
def test_verifier(where):
    _raises_unknown(lambda: verify(_program(where)), NODE[where], f"IR verifier ({where})")


def test_graph_view():
    _raises_unknown(lambda: to_graph(_program("statement")), "Frobnicate", "graph view (statement)")
    # a statement it knows labels itself with the IR printer, which names what it does not know
    _raises_unknown(lambda: to_graph(_program("value")), "Wibble", "IR printer (value)")


@pytest.mark.parametrize("where", WHERE)
def test_c_emitter(where):
    # which part of the emitter meets the node is its business ("C emitter (...)"); naming the node is the contract
    _raises_unknown(lambda: emit_c(_program(where)), NODE[where], "C emitter")


# -- kernels (AST) holding one --------------------------------------------------------------------

SSYMV = "kernel ssymv\nin A[n, n] symmetric\nin x[n]\nout y[n]\ny[i] += A[i, j] * x[j]\n"


def _kernel(rhs_op: str = "*"):
    """ssymv with ``x[j]`` replaced by the unknown expression: ``y[i] += A[i, j] <op> Blorp``."""
    k = systec_ref.compile(SSYMV).ast
    rhs = BinOp(rhs_op, Access("A", ("i", "j")), Blorp())
    return dataclasses.replace(k, assignment=dataclasses.replace(k.assignment, rhs=rhs))


ARRAYS = {"A": np.eye(3), "x": np.ones(3)}
DIMS = {"n": 3}


@pytest.mark.parametrize("op", ["*", "+"])
def test_definition_interpreter(op):
    _raises_unknown(lambda: run_definition(_kernel(op), ARRAYS, DIMS), "Blorp", "definition interpreter")


def test_kernel_printer():
    _raises_unknown(lambda: print_kernel(_kernel()), "Blorp", "kernel printer")
    _raises_unknown(lambda: print_expr(Neg(Blorp())), "Blorp", "kernel printer")
    assert print_expr(Neg(BinOp("-", Number(1), Access("x", ("i",))))) == "-(1 - x[i])"


def test_numpy_reference():
    # a product goes to numpy.einsum (its factors are gathered first), anything else is broadcast
    _raises_unknown(lambda: numpy_reference(_kernel("*"), ARRAYS, DIMS), "Blorp", "numpy reference")
    _raises_unknown(lambda: numpy_reference(_kernel("+"), ARRAYS, DIMS), "Blorp", "numpy reference")


def test_lower():
    _raises_unknown(lambda: lower(_kernel()), "Blorp", "lower")


def test_ast_walks():
    from systec_ref.lang.ast import accesses, fold_literal_factors

    _raises_unknown(lambda: accesses(Neg(Blorp())), "Blorp", "accesses")
    _raises_unknown(lambda: fold_literal_factors(Neg(Blorp()), "float64"), "Blorp", "literal folding")
    _raises_unknown(lambda: fold_literal_factors(BinOp("*", Blorp(), Blorp()), "float64"), "Blorp", "literal value")


def test_kernel_checker_walks():
    _raises_unknown(lambda: lang_check._numbers(_kernel().assignment.rhs), "Blorp", "kernel checker")
    _raises_unknown(lambda: lang_check._value_when_unstored(_kernel().assignment.rhs, "A", 0), "Blorp",
                    "kernel checker")


# -- python -O ------------------------------------------------------------------------------------

_SCRIPT = """
import dataclasses, sys
import numpy as np
from systec_ref.errors import UnknownNode
from systec_ref.term import Node
from systec_ref.ir.nodes import (Assign, Block, DimSize, Elem, IConst, Idx, If, Loop, Mul, Program, Read,
                                 TensorInfo)

assert sys.flags.optimize >= 1, "not running under -O"
try:
    assert False
except AssertionError:
    raise SystemExit("asserts are live: not running under -O")


@dataclasses.dataclass(frozen=True)
class Frobnicate(Node):
    times: int = 2


@dataclasses.dataclass(frozen=True)
class Wibble(Node):
    label: str = "w"


tensors = (TensorInfo("A", "in", ("n",)), TensorInfo("y", "out", ("n",)))
read = Read("A", (Idx("i"),))
bodies = {
    "statement": (Assign(Elem("y", (Idx("i"),)), "+", read), Frobnicate()),
    "value": (Assign(Elem("y", (Idx("i"),)), "+", Mul((read, Wibble()))),),
    "index": (Assign(Elem("y", (Idx("i"),)), "+", Read("A", (Wibble(),))),),
    "condition": (If(Wibble(), Block((Assign(Elem("y", (Idx("i"),)), "+", read),))),),
    "target": (Assign(Wibble(), "+", read),),
}
for where, body in bodies.items():
    p = Program("frob", tensors, Block((Loop("i", IConst(0), DimSize("n"), Block(body)),)))
    for name, run in VISITORS:
        try:
            run(p)
        except UnknownNode as e:
            print(f"{name} {where}: UnknownNode: {e}")
        except Exception as e:
            print(f"{name} {where}: {type(e).__name__}: {e}")
        else:
            print(f"{name} {where}: no error")
"""

#: the visitors each run under -O tries: (import, name, call)
_VISITORS = {
    "interpreter": [("from systec_ref.interp import run_program", "interpreter",
                     'lambda p: run_program(p, {"A": np.arange(3.0)}, {"n": 3})')],
    "printer+verifier": [("from systec_ref.ir.printer import print_program", "printer", "print_program"),
                         ("from systec_ref.ir.verify import verify", "verifier", "verify")],
    "emitter": [("from systec_ref.emit.c import emit_c", "emitter", "emit_c")],
}


def _under_optimize(which: str) -> list[str]:
    """What each visitor of ``which`` does with each unknown node, run by ``python -O`` (one line each)."""
    visitors = _VISITORS[which]
    setup = "\n".join(imp for imp, _, _ in visitors)
    setup += "\nVISITORS = [" + ", ".join(f"({name!r}, {call})" for _, name, call in visitors) + "]\n"
    script = textwrap.dedent(_SCRIPT).replace("\nfor where", f"\n{setup}for where", 1)
    r = subprocess.run([sys.executable, "-O", "-B", "-c", script], capture_output=True, text=True, cwd=ROOT,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == len(WHERE) * len(visitors), r.stdout
    return lines


@pytest.mark.parametrize("which", ["interpreter", "printer+verifier"])
def test_python_O_does_not_remove_the_check(which):
    for line in _under_optimize(which):
        assert ": UnknownNode: " in line, line
        assert ("Frobnicate" if line.split(":")[0].endswith("statement") else "Wibble") in line, line


def test_python_O_c_emitter():
    for line in _under_optimize("emitter"):
        assert ": UnknownNode: C emitter " in line, line
