"""Bad input gets a located message (file:line:col, the line, a caret) — never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import ROOT, example

import systec_ref
from systec_ref.errors import SourceError
from systec_ref.lang import parse

# The well-formed kernel the cases below break, one line at a time:
#   1 kernel t
#   2 in  A[n, n]
#   3 in  x[n]
#   4 out y[n]
#   5 y[i] += A[i, j] * x[j]
BASE = ["kernel t", "in  A[n, n]", "in  x[n]", "out y[n]", "y[i] += A[i, j] * x[j]"]


def src(**lines: str) -> str:
    """BASE with line ``L<number>`` replaced (``None`` drops it, a '\\n' inside adds lines)."""
    out = list(BASE)
    for key, value in lines.items():
        out[int(key[1:]) - 1] = value
    return "\n".join(x for x in out if x is not None) + "\n"


# (id, text, line, col, token at the caret, message fragment)
CASES = [
    ("unknown-tensor", src(L5="y[i] += B[i, j] * x[j]"), 5, 9, "B", "unknown tensor 'B'"),
    ("unknown-output", src(L5="z[i] += A[i, j] * x[j]"), 5, 1, "z", "unknown tensor 'z'"),
    ("wrong-arity", src(L5="y[i] += A[i] * x[i]"), 5, 9, "A", "'A' has 2 modes but is accessed with 1 indices"),
    ("wrong-arity-scalar", src(L5="y[i] += A[i, j] * x"), 5, 19, "x", "'x' has 1 modes but is accessed with 0"),
    ("index-two-dims", src(L2="in  A[n, m]"), 5, 21, "j", "index 'j' ranges over n here but over m in A"),
    ("group-dims-differ", src(L2="in  A[n, m] symmetric(0,1)"), 2, 25, "1",
     "modes of a symmetry group must share a dimension"),
    ("full-symmetric-dims-differ", src(L2="in  A[n, m] symmetric"), 2, 13, "symmetric",
     "a fully symmetric tensor needs equal dimensions"),
    ("group-repeats-mode", src(L2="in  A[n, n] symmetric(0,0)"), 2, 25, "0", "mode 0 repeated in a symmetry group"),
    ("groups-overlap", src(L2="in  A[n, n, n] symmetric(0,1) symmetric(1,2)", L5="y[i] += A[i, j, k] * x[j]"),
     2, 41, "1", "mode 1 is already in another symmetry group"),
    ("mode-out-of-range", src(L2="in  A[n, n] symmetric(0,2)"), 2, 25, "2", "mode 2 out of range for A of order 2"),
    ("group-of-one", src(L2="in  A[n, n] symmetric(1)"), 2, 13, "symmetric", "a symmetry group needs at least two"),
    ("symmetric-vector", src(L3="in  x[n] symmetric"), 3, 10, "symmetric", "x has order 1; symmetry needs"),
    ("output-index-absent", src(L5="y[i] += A[j, j] * x[j]"), 5, 3, "i",
     "output index 'i' does not appear on the right-hand side"),
    ("min-sparse-fill-0", src(L2="in  A[n, n] sparse", L5="y[i] min= A[i, j] + x[j]"), 2, 5, "A",
     "sparse 'A' with fill 0 under 'min='"),
    ("max-sparse-fill-inf", src(L2="in  A[n, n] sparse fill inf", L5="y[i] max= A[i, j] + x[j]"), 2, 5, "A",
     "sparse 'A' with fill inf under 'max='"),
    ("plus-sparse-in-a-sum", src(L2="in  A[n, n] sparse", L5="y[i] += A[i, j] + x[j]"), 2, 5, "A",
     "its unstored entries would still change the result"),
    ("min-sparse-subtracted", src(L2="in  A[n, n] sparse fill inf", L5="y[i] min= x[j] - A[i, j]"), 2, 5, "A",
     "sparse 'A' with fill inf under 'min='"),
    ("reserved-word", src(L1="kernel symmetric"), 1, 8, "symmetric", "'symmetric' is a reserved word"),
    ("reserved-word-tensor", src(L3="in  order[n]"), 3, 5, "order", "'order' is a reserved word"),
    ("c-keyword", src(L3="in  int[n]", L5="y[i] += A[i, j] * int[j]"), 3, 5, "int",
     "'int' is reserved in C and cannot name a tensor"),
    ("c-keyword-index", src(L5="y[i] += A[i, for] * x[for]"), 5, 14, "for", "'for' is reserved in C"),
    ("not-a-c-identifier", src(L3="in  _x[n]", L5="y[i] += A[i, j] * _x[j]"), 3, 5, "_x", "'_x' cannot name a tensor"),
    ("name-too-long", src(L1="kernel " + "k" * 64), 1, 8, "k" * 64, "cannot name a kernel"),
    ("unexpected-character", src(L5="y[i] += A[i, j] * x[j] $ 2"), 5, 24, "$", "unexpected character '$'"),
    ("unexpected-unicode", src(L5="y[i] += A[i, j] × x[j]"), 5, 17, "×", "unexpected character '×'"),
    ("missing-kernel-line", src(L1=None), 1, 1, "in", "missing 'kernel NAME' line"),
    ("second-kernel-line", src(L4="kernel u\nout y[n]"), 4, 1, "kernel", "second 'kernel' line"),
    ("two-assignments", src(L5="y[i] += A[i, j] * x[j]\ny[i] += x[i]"), 6, 6, "+=", "second assignment"),
    ("assign-to-input", src(L5="x[i] += A[i, j] * x[j]"), 5, 1, "x", "'x' is an input and cannot be assigned"),
    ("output-read-on-rhs", src(L5="y[i] += A[i, j] * y[j]"), 5, 19, "y",
     "output 'y' is read on the right-hand side"),
    ("unused-input", src(L5="y[i] += A[i, j]"), 3, 5, "x", "input 'x' is declared but never used"),
    ("output-never-assigned", src(L4="out y[n]\nout z[n]"), 5, 5, "z", "output 'z' is never assigned"),
    ("dtype-mismatch", src(L3="in  x[n] int64"), 3, 5, "x", "'x' is int64 but 'y' is float64"),
    ("float-literal-int64", src(L2="in  A[n, n] int64", L3="in  x[n] int64", L4="out y[n] int64",
                                L5="y[i] += 2.5 * A[i, j] * x[j]"), 5, 9, "2.5", "literal 2.5 in an int64 kernel"),
    ("fill-on-dense", src(L2="in  A[n, n] fill 1"), 2, 5, "A", "'fill' applies only to sparse tensors"),
    ("inf-fill-int64", src(L2="in  A[n, n] sparse fill -inf int64", L3="in  x[n] int64", L4="out y[n] int64",
                           L5="y[i] max= A[i, j] + x[j]"), 2, 5, "A", "fill -inf is not an int64 value"),
    ("order-unknown-index", src(L4="out y[n]\norder i q"), 5, 1, "order", "'order' names 'q'"),
    ("order-missing-index", src(L4="out y[n]\norder i"), 5, 1, "order", "'order' leaves out j"),
    ("order-repeated-index", src(L4="out y[n]\norder i j i"), 5, 1, "order", "'order' repeats 'i'"),
    ("order-empty", src(L4="out y[n]\norder"), 5, 6, "", "unexpected end of line"),
    ("unterminated-bracket", src(L2="in  A[n, n"), 2, 6, "[", "'[' is never closed"),
    ("unterminated-bracket-last-line", src(L5="y[i] += A[i, j] * x[j"), 5, 20, "[", "'[' is never closed"),
    ("unterminated-paren", src(L5="y[i] += (A[i, j] * x[j]"), 5, 9, "(", "'(' is never closed"),
    ("extra-bracket", src(L5="y[i] += A[i, j]] * x[j]"), 5, 16, "]", "unexpected ']'"),
    ("number-glued-to-letters", src(L5="y[i] += 2x * A[i, j] * x[j]"), 5, 9, "2x", "malformed number '2x'"),
    ("duplicate-declaration", src(L3="in  x[n]\nin  x[n]"), 4, 5, "x", "tensor 'x' declared twice"),
    ("symmetric-output", src(L4="out y[n, n] symmetric", L5="y[i, j] += A[i, j] * x[j]"), 4, 5, "y",
     "output 'y' is declared symmetric"),
    ("sparse-output-fill", src(L4="out y[n] sparse fill 1"), 4, 5, "y",
     "sparse output 'y' under '+=' holds its fill 1 where no update reaches, but starts at the identity 0"),
    ("sparse-output-min-fill", src(L4="out y[n] sparse", L5="y[i] min= A[i, j] + x[j]"), 4, 5, "y",
     "holds its fill 0 where no update reaches, but starts at the identity inf"),
    ("sparse-scalar-output", src(L4="out y sparse", L5="y += A[i, j] * x[j]"), 4, 5, "y",
     "output 'y' is a scalar declared sparse"),
    ("repeated-lhs-index", src(L4="out y[n, n]", L5="y[i, i] += A[i, j] * x[j]"), 5, 6, "i",
     "index 'i' repeated on the left-hand side"),
    ("unknown-attribute", src(L2="in  A[n, n] symetric"), 2, 13, "symetric", "unknown attribute 'symetric'"),
    ("format-twice", src(L2="in  A[n, n] sparse dense"), 2, 20, "dense", "storage format given twice"),
    ("zero-dimension", src(L3="in  x[0]"), 3, 7, "0", "dimension 0 is not positive"),
    ("empty-index-list", src(L5="y[i] += A[i, j] * x[]"), 5, 21, "]", "unexpected ']'"),
    ("missing-operator", src(L5="y[i] A[i, j] * x[j]"), 5, 6, "A", "unexpected 'A'"),
    ("dangling-operator", src(L5="y[i] += A[i, j] *"), 5, 18, "", "unexpected end of line"),
    ("index-named-like-dim", src(L5="y[i] += A[i, n] * x[n]"), 5, 14, "n", "index 'n' has the name of a dimension"),
    ("index-named-like-tensor", src(L5="y[i] += A[i, x] * x[x]"), 5, 14, "x", "index 'x' has the name of a tensor"),
    ("tensor-named-like-dim", src(L3="in  n[n]", L5="y[i] += A[i, j] * n[j]"), 3, 5, "n",
     "'n' names both a tensor and a dimension"),
]


@pytest.mark.parametrize("text,line,col,token,fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_located_error(text, line, col, token, fragment):
    with pytest.raises(SourceError) as info:
        parse(text, "bad.ein")
    err = info.value
    assert isinstance(err, systec_ref.SystecError)
    assert fragment in err.message
    assert (err.loc.path, err.loc.line, err.loc.col) == ("bad.ein", line, col)
    src_line = text.split("\n")[line - 1]
    assert err.loc.source_line == src_line
    # the caret points at the token we meant
    assert src_line[col - 1:].startswith(token)
    rendered = str(err).split("\n")
    assert rendered[0].startswith(f"bad.ein:{line}:{col}: error: {err.message}")
    assert err.expected and f"(expected {err.expected})" in rendered[0]
    if src_line:
        assert len(rendered) == 3
        assert rendered[1] == "    " + src_line
        caret = rendered[2]
        assert caret.index("^") == 4 + col - 1
        assert caret.strip() == "^" + "~" * (err.loc.width - 1)
        assert len(caret.rstrip()) <= 4 + max(len(src_line), col)


def test_there_are_many_distinct_cases():
    assert len({c[0] for c in CASES}) == len(CASES) >= 20
    assert len({c[1] for c in CASES}) == len(CASES)  # every text differs


def test_error_rendering_with_tabs_keeps_the_caret_aligned():
    with pytest.raises(SourceError) as info:
        parse("kernel t\nin\tA[n]\tsymetric\n", "tab.ein")
    lines = str(info.value).split("\n")
    assert lines[0].startswith("tab.ein:2:9: error: unknown attribute 'symetric'")
    assert lines[1] == "    in A[n] symetric"
    assert lines[2].index("^") == lines[1].index("symetric")


def test_missing_assignment_at_end_of_file():
    with pytest.raises(SourceError) as info:
        parse(src(L5=None), "bad.ein")
    assert info.value.message == "missing assignment"
    # located at the end of the last line, so the message can show it with a caret
    assert (info.value.loc.line, info.value.loc.col) == (4, 9)
    assert str(info.value).splitlines()[1:] == ["    out y[n]", "            ^"]


def test_empty_file():
    with pytest.raises(SourceError, match=r"^e\.ein:1:1: error: missing 'kernel NAME' line"):
        parse("", "e.ein")


def test_errors_in_examples_files_would_name_the_file(tmp_path):
    p = tmp_path / "k.ein"
    p.write_text(example("ssymv").read_text().replace("x[j]", "x[j, j]"))
    with pytest.raises(SourceError) as info:
        systec_ref.load(p)
    assert str(info.value).startswith(f"{p}:")
    assert "'x' has 1 modes but is accessed with 2 indices" in str(info.value)


# -- the command line: exit 2, a located message, no traceback -------------------

CLI_CASES = {
    "unknown-tensor": CASES[0],
    "unterminated": next(c for c in CASES if c[0] == "unterminated-bracket"),
    "c-keyword": next(c for c in CASES if c[0] == "c-keyword"),
}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "systec_ref", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=_env())


def _env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def assert_user_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stdout + proc.stderr
    for f in fragments:
        assert f in proc.stderr, (f, proc.stderr)


@pytest.mark.parametrize("command", ["run", "show"])
@pytest.mark.parametrize("case", sorted(CLI_CASES), ids=str)
def test_cli_reports_source_errors(tmp_path, command, case):
    _, text, line, col, _, fragment = CLI_CASES[case]
    p = tmp_path / "bad.ein"
    p.write_text(text)
    proc = run_cli(command, str(p))
    assert_user_error(proc, f"{p}:{line}:{col}: error: ", fragment)
    err_lines = proc.stderr.splitlines()
    head = next(n for n, s in enumerate(err_lines) if s.startswith(f"{p}:{line}:{col}: error: "))
    assert err_lines[head + 1] == "    " + text.split("\n")[line - 1]
    assert err_lines[head + 2].index("^") == 4 + col - 1


@pytest.mark.parametrize("args,fragments", [
    (["run", "examples/ssymv.ein", "--size", "n=abc"], ["--size", "'n=abc'", "name=positive integer"]),
    (["run", "examples/ssymv.ein", "--size", "n"], ["--size", "'n'"]),
    (["run", "examples/ssymv.ein", "--density", "2"], ["density 2"]),
    (["run", "no/such/file.ein"], ["no/such/file.ein", "no such file"]),
    (["show", "no/such/file.ein"], ["no such file"]),
    (["run", "examples"], ["examples", "cannot read"]),
])
def test_cli_bad_usage(args, fragments):
    assert_user_error(run_cli(*args), *fragments)


def test_cli_size_of_an_unknown_dimension_is_noted_not_fatal():
    # a deliberate choice of cli._sizes_for (one --size for a batch of kernels): a note on
    # stderr, the run goes on with the sizes that apply
    proc = run_cli("run", "examples/ssymv.ein", "--size", "q=3,n=2")
    assert proc.returncode == 0, proc.stderr
    assert "note: --size q ignored: kernel ssymv has dimensions n" in proc.stderr
    assert "sizes n=2" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


def test_cli_non_utf8_file(tmp_path):
    p = tmp_path / "latin1.ein"
    p.write_bytes(example("ssymv").read_text().replace("# SSYMV", "# caf\xe9").encode("latin-1"))
    for command in ("run", "show"):
        assert_user_error(run_cli(command, str(p)), str(p), "not UTF-8")


def test_cli_argparse_errors_exit_2_without_traceback():
    for args in (["run"], ["frobnicate", "x.ein"], ["run", "examples/ssymv.ein", "--seed", "x"]):
        proc = run_cli(*args)
        assert proc.returncode == 2
        assert "Traceback" not in proc.stdout + proc.stderr
        assert "usage:" in proc.stderr
