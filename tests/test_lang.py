"""Stage 0: the ``.ein`` language — parsing, the printer round trip, and what the AST holds."""

from __future__ import annotations

import math

import pytest
from helpers import EXAMPLES, dense_variant, sparse_variant
from hypothesis import given, settings
from strategies import ast_kernels, kernels

from systec_ref.lang import Access, BinOp, Neg, Number, parse, print_expr, print_kernel
from systec_ref.lang.ast import index_dims, index_vars

# What each example must mean (README, "A kernel"): output, assignment operator, and the
# symmetry groups of every input.
EXPECTED = {
    "bellman": ("y", "min=", {"A": ((0, 1),), "x": ()}),
    "coulomb": ("J", "+=", {"G": ((0, 1), (2, 3)), "D": ()}),
    "cubic": ("s", "+=", {"A": ((0, 1, 2),), "x": ()}),
    "mttkrp3": ("C", "+=", {"A": ((0, 1, 2),), "B": ()}),
    "mttkrp4": ("C", "+=", {"A": ((0, 1, 2, 3),), "B": ()}),
    "mttkrp5": ("C", "+=", {"A": ((0, 1, 2, 3, 4),), "B": ()}),
    "ssymv": ("y", "+=", {"A": ((0, 1),), "x": ()}),
    "ssyrk": ("C", "+=", {"A": ()}),
    "syprd": ("s", "+=", {"A": ((0, 1),), "x": ()}),
    "syr2k": ("C", "+=", {"A": (), "B": ()}),
    "triangles": ("s", "+=", {"A": ((0, 1),)}),
    "ttm": ("C", "+=", {"A": ((0, 1, 2),), "B": ()}),
    "widest": ("y", "max=", {"W": ((0, 1),), "d": ()}),
}


def test_every_example_is_listed():
    assert sorted(p.stem for p in EXAMPLES) == sorted(EXPECTED)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_parses_and_means_what_it_says(path):
    k = parse(path.read_text(), str(path))
    out, op, syms = EXPECTED[path.stem]
    assert k.name == path.stem
    assert k.path == str(path)
    assert k.output.name == out and k.output.role == "out"
    assert k.assignment.op == op
    assert {d.name: d.symmetry for d in k.inputs} == syms
    assert not k.output.symmetry


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_printer_round_trip_on_examples(path):
    k = parse(path.read_text())
    text = print_kernel(k)
    again = parse(text)
    assert again == k
    assert print_kernel(again) == text  # printing is a fixed point after one round


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
@pytest.mark.parametrize("variant", [dense_variant, sparse_variant], ids=["dense", "sparse"])
def test_printer_round_trip_on_variants(path, variant):
    k = parse(variant(path.read_text()))
    assert parse(print_kernel(k)) == k


@settings(max_examples=150, deadline=None)
@given(ast_kernels())
def test_printer_round_trip_property(k):
    assert parse(print_kernel(k)) == k


@settings(max_examples=100, deadline=None)
@given(kernels())
def test_generated_text_and_printed_text_mean_the_same(text):
    k = parse(text)
    printed = print_kernel(k)
    assert parse(printed) == k
    assert print_kernel(parse(printed)) == printed


# -- structure ----------------------------------------------------------------

HEAD = "kernel t\n"


def test_ssymv_structure():
    k = parse((EXAMPLES[0].parent / "ssymv.ein").read_text())
    a, x = k.inputs
    assert (a.name, a.dims, a.symmetry, a.format, a.fill, a.dtype) == ("A", ("n", "n"), ((0, 1),), "dense", 0,
                                                                       "float64")
    assert a.fully_symmetric and not x.fully_symmetric
    assert (x.name, x.dims, x.symmetry) == ("x", ("n",), ())
    rhs = k.assignment.rhs
    assert rhs == BinOp("*", Access("A", ("i", "j")), Access("x", ("j",)))
    assert k.assignment.lhs == Access("y", ("i",))
    assert k.assignment.reduction == "+"
    assert k.order is None
    assert index_vars(k) == ("i", "j")
    assert index_dims(k) == {"i": "n", "j": "n"}


def test_partial_symmetry_groups():
    k = parse(HEAD + "in G[n, n, n, n] symmetric(0,1) symmetric(2,3)\nout s\ns += G[i, j, k, l]\n")
    g = k.decl("G")
    assert g.symmetry == ((0, 1), (2, 3))
    assert not g.fully_symmetric


def test_symmetry_groups_are_sorted_whatever_the_spelling():
    a = parse(HEAD + "in G[n, n, n, n] symmetric(3, 2) symmetric(1,0)\nout s\ns += G[i, j, k, l]\n")
    b = parse(HEAD + "in G[n, n, n, n] symmetric(0,1) symmetric(2,3)\nout s\ns += G[i, j, k, l]\n")
    assert a.decl("G").symmetry == ((0, 1), (2, 3))
    assert a == b


def test_partial_group_with_mixed_dims():
    k = parse(HEAD + "in T[n, r, n] symmetric(0,2)\nout s\ns += T[i, a, j]\n")
    assert k.decl("T").symmetry == ((0, 2),)
    assert index_dims(k) == {"i": "n", "a": "r", "j": "n"}


@pytest.mark.parametrize("order", [2, 3, 5])
def test_symmetric_alone_is_one_group_of_all_modes(order):
    dims = ", ".join(["n"] * order)
    idx = ", ".join("ijklm"[:order])
    k = parse(HEAD + f"in A[{dims}] symmetric\nout s\ns += A[{idx}]\n")
    assert k.decl("A").symmetry == (tuple(range(order)),)
    assert k.decl("A").fully_symmetric
    explicit = parse(HEAD + f"in A[{dims}] symmetric({','.join(map(str, range(order)))})\nout s\ns += A[{idx}]\n")
    assert explicit == k


def test_fill_inf_is_math_inf():
    k = parse(HEAD + "in A[n, n] symmetric sparse fill inf\nin x[n]\nout y[n]\ny[i] min= A[i, j] + x[j]\n")
    a = k.decl("A")
    assert a.format == "sparse"
    assert a.fill == math.inf and isinstance(a.fill, float)
    k = parse(HEAD + "in A[n, n] sparse fill -inf\nin x[n]\nout y[n]\ny[i] max= A[i, j] + x[j]\n")
    assert k.decl("A").fill == -math.inf


def test_numeric_fill_and_dtypes():
    k = parse(HEAD + "in A[n] sparse fill 0 int64\nin B[n] int64\nout y[n] int64\ny[i] += A[i] * B[i]\n")
    assert k.decl("A").fill == 0 and isinstance(k.decl("A").fill, int)
    assert {d.dtype for d in k.decls} == {"int64"}
    k = parse(HEAD + "in A[n] float32\nout y[n] float32\ny[i] += A[i]\n")
    assert k.output.dtype == "float32"


def test_plain_assignment_is_kept_in_the_ast():
    k = parse(HEAD + "in A[n, n]\nout y[n]\ny[i] = A[i, j]\n")
    assert k.assignment.op == "="
    assert k.assignment.reduction == "+"
    assert "y[i] = A[i, j]" in print_kernel(k)
    assert parse(print_kernel(k)).assignment.op == "="


def test_min_and_max_tokens():
    k = parse(HEAD + "in A[n, n]\nout y[n]\ny[i] min= A[i, j]\n")
    assert (k.assignment.op, k.assignment.reduction) == ("min=", "min")
    k = parse(HEAD + "in A[n, n]\nout y[n]\ny[i] max=A[i, j]\n")
    assert (k.assignment.op, k.assignment.reduction) == ("max=", "max")


def test_scalar_output_and_scalar_input():
    k = parse(HEAD + "in a\nin x[n]\nout s\ns += a * x[i]\n")
    assert k.output.dims == () and k.assignment.lhs == Access("s", ())
    assert k.decl("a").dims == ()
    assert k.assignment.rhs == BinOp("*", Access("a", ()), Access("x", ("i",)))


def test_integer_dims():
    k = parse(HEAD + "in A[3, n]\nout y[3]\ny[i] += A[i, j]\n")
    assert k.decl("A").dims == (3, "n")
    assert index_dims(k) == {"i": 3, "j": "n"}


def test_order_line():
    k = parse(HEAD + "in A[n, n]\nin x[n]\nout y[n]\norder j i\ny[i] += A[i, j] * x[j]\n")
    assert k.order == ("j", "i")
    assert "order j i" in print_kernel(k)


def test_comments_blank_lines_and_continuation_inside_brackets():
    text = (
        "# a comment before everything\n"
        "\n"
        "kernel   t   # trailing comment\n"
        "in  A[n,          # dims may wrap inside brackets\n"
        "      n]  symmetric\n"
        "in  x[n]\n"
        "\n"
        "out y[n]\n"
        "y[i] += (A[i,     # so may a right-hand side,\n"
        "          j]      # with comments in between\n"
        "         * x[j])\n"
        "# a comment at the end, without a newline"
    )
    k = parse(text)
    plain = parse("kernel t\nin A[n, n] symmetric\nin x[n]\nout y[n]\ny[i] += A[i, j] * x[j]\n")
    assert k == plain
    # positions still point at the right places after the continuation lines
    assert k.assignment.lhs.pos.line == 9
    x = k.assignment.rhs.right
    assert x == Access("x", ("j",)) and (x.pos.line, x.pos.col) == (11, 12)


def test_crlf_line_endings():
    text = "kernel t\r\nin A[n, n]\r\nin x[n]\r\nout y[n]\r\ny[i] += A[i, j] * x[j]\r\n"
    assert parse(text) == parse(text.replace("\r\n", "\n"))


def test_precedence_and_associativity():
    k = parse(HEAD + "in a\nin b\nin c\nout s\ns += a - b - c\n")
    a, b, c = Access("a", ()), Access("b", ()), Access("c", ())
    assert k.assignment.rhs == BinOp("-", BinOp("-", a, b), c)
    k = parse(HEAD + "in a\nin b\nin c\nout s\ns += a - (b - c)\n")
    assert k.assignment.rhs == BinOp("-", a, BinOp("-", b, c))
    assert print_expr(k.assignment.rhs) == "a - (b - c)"
    k = parse(HEAD + "in a\nin b\nin c\nout s\ns += a + b * c\n")
    assert k.assignment.rhs == BinOp("+", a, BinOp("*", b, c))
    k = parse(HEAD + "in a\nin b\nin c\nout s\ns += (a + b) * c\n")
    assert k.assignment.rhs == BinOp("*", BinOp("+", a, b), c)
    assert print_expr(k.assignment.rhs) == "(a + b) * c"
    k = parse(HEAD + "in a\nin b\nout s\ns += -a * -(b + 2)\n")
    assert k.assignment.rhs == BinOp("*", Neg(a), Neg(BinOp("+", b, Number(2))))


def test_literals():
    k = parse(HEAD + "in a\nout s\ns += 2 * a + 0.5 + 1e-3 + 3.\n")
    nums = []

    def walk(e):
        if isinstance(e, Number):
            nums.append(e.value)
        elif isinstance(e, BinOp):
            walk(e.left)
            walk(e.right)

    walk(k.assignment.rhs)
    assert nums == [2, 0.5, 1e-3, 3.0]
    assert [type(v) for v in nums] == [int, float, float, float]


def test_positions_are_recorded_but_not_compared():
    k = parse(HEAD + "in A[n, n]\nin x[n]\nout y[n]\ny[i]   +=   A[i, j]*x[j]\n")
    a = k.assignment.rhs.left
    assert (a.pos.line, a.pos.col) == (5, 13)
    assert [(p.line, p.col) for p in a.index_pos] == [(5, 15), (5, 18)]
    assert (k.decl("x").pos.line, k.decl("x").pos.col) == (3, 4)
    assert k == parse(HEAD + "in A[n, n]\nin x[n]\nout y[n]\ny[i] += A[i, j] * x[j]\n")


def test_sparse_and_dense_variants_of_examples():
    bell = (EXAMPLES[0].parent / "bellman.ein").read_text()
    k = parse(sparse_variant(bell))
    assert [(d.format, d.fill) for d in k.inputs] == [("sparse", math.inf), ("sparse", math.inf)]
    k = parse(dense_variant(bell))
    assert [(d.format, d.fill) for d in k.inputs] == [("dense", 0), ("dense", 0)]
    widest = (EXAMPLES[0].parent / "widest.ein").read_text()
    assert all(d.format == "dense" for d in parse(sparse_variant(widest)).inputs)  # int64 has no -inf
    ssyrk = (EXAMPLES[0].parent / "ssyrk.ein").read_text()
    assert parse(sparse_variant(ssyrk)).decl("A").format == "sparse"


# -- the generator reaches every feature it promises ------------------------------------------

FEATURES = {
    "partial-symmetry": lambda t: "symmetric(" in t and ") symmetric(" in t,
    "full-symmetry": lambda t: any(line.endswith(" symmetric") or " symmetric " in line for line in t.split("\n")),
    "sparse-min": lambda t: "min=" in t and "sparse fill inf" in t,
    "sparse-max": lambda t: "max=" in t and "sparse fill -inf" in t,
    "sparse-plus": lambda t: "+=" in t and "sparse" in t,
    "plain-assignment": lambda t: " = " in t,
    "int64": lambda t: "int64" in t,
    "order-line": lambda t: "\norder " in t,
    "scalar-output": lambda t: "\nout Y\n" in t or "\nout Y " in t,
    "order-4-input": lambda t: any(line.startswith("in ") and line.count(",") == 3 for line in t.split("\n")),
    "scalar-input": lambda t: any(line.split()[:2] == ["in", line.split()[1]] and "[" not in line
                                  for line in t.split("\n") if line.startswith("in ")),
    "integer-dim": lambda t: "[2" in t or "[3" in t or ", 2" in t or ", 3" in t,
    "negation-and-parentheses": lambda t: "-(" in t,
    "literal": lambda t: any(c.isdigit() for c in t.split("\n")[-2].split("=", 1)[1]),
    "three-inputs": lambda t: "\nin C" in t,
}


def test_kernel_strategy_reaches_every_feature():
    seen: dict[str, int] = dict.fromkeys(FEATURES, 0)

    @settings(max_examples=400, database=None, derandomize=True, deadline=None)
    @given(kernels())
    def collect(text):
        for name, has in FEATURES.items():
            seen[name] += bool(has(text))

    collect()
    assert all(seen.values()), {name: n for name, n in seen.items() if not n}
