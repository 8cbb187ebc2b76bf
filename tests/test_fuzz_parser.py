"""Parser and pipeline fuzzing: no input text makes systec_ref crash.

Hypothesis feeds arbitrary text, and near-miss mutants of the shipped kernels (``examples/*.ein``,
``examples/sparse/*.ein``: tokens deleted, duplicated, swapped or replaced, random characters
inserted, the text truncated, indices, dims, symmetry groups, fill values, operators and element
types changed), to the parser and — when a mutant parses — to the whole pipeline: every stage,
the baseline, the C source of both, and a small run of every stage in the interpreter on random
inputs.  The only exceptions that may escape are the documented user errors
(:class:`systec_ref.errors.SystecError`), and every :class:`~systec_ref.errors.SourceError` is
located: ``file:line:col: error: message``, then the offending line and a caret under the column.

The command line is checked on a fixed sample of mutants (``python -m systec_ref check FILE``):
exit status 0, 1 or 2 and never a traceback.

Cases per run: :data:`TEXT_CASES` arbitrary texts, :data:`MUTANT_CASES` mutants, and
:data:`CLI_FILES` files through the command line.
"""

from __future__ import annotations

import math
import os
import random
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import ROOT
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import systec_ref
from systec_ref.errors import SourceError, SystecError
from systec_ref.lang import parse
from systec_ref.lang.ast import index_dims, index_vars

TEXT_CASES = 500
MUTANT_CASES = 600
CLI_FILES = 36
#: SYSTEC_FUZZ_SCALE=k runs k times as many texts and mutants (for hunting locally, with
#: HYPOTHESIS_PROFILE=explore; CI runs the fixed numbers above)
_SCALE = int(os.environ.get("SYSTEC_FUZZ_SCALE", "1"))

SOURCES = sorted((ROOT / "examples").glob("*.ein")) + sorted((ROOT / "examples" / "sparse").glob("*.ein"))
TEXTS = [p.read_text(encoding="utf-8") for p in SOURCES]

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

#: run a mutant in the interpreter only when its full index space (at size 2) is at most this big
MAX_POINTS = 4096
#: compile a mutant only when no symmetry group is larger than this (order k costs k! rearrangements)
MAX_GROUP = 5

_TOKEN = re.compile(r"\s+|#[^\n]*|\d+\.\d*(?:[eE][+-]?\d+)?|\d+(?:[eE][+-]?\d+)?|[A-Za-z_]\w*|\+=|min=|max=|.", re.S)
_VOCAB = ["kernel", "in", "out", "order", "symmetric", "dense", "sparse", "fill", "inf", "float64", "float32",
          "int64", "min", "max", "+=", "min=", "max=", "=", "+", "-", "*", "(", ")", "[", "]", ",", "\n", " ",
          "i", "j", "k", "l", "m", "n", "r", "A", "B", "x", "y", "C", "0", "1", "2", "-1", "0.5", "1e999",
          "9223372036854775808", "for", "int", "_x", "é", "\t", "#", "\x00", "\r",
          # names the parser refuses because C would read them otherwise (lang/names.py)
          "INFINITY", "INT64_MAX", "malloc", "sx_i", "A_f0_vals", "A_full_pos0"]
_ALPHABET = st.sampled_from(list("kernlouts[](),+-*=#\n \tijAxy0123456789.eE_") + ["min=", "max=", "symmetric",
                                                                                        "sparse", "fill", "inf"])


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


# -- mutations --------------------------------------------------------------------------------


def _pick(rng: random.Random, toks: list[str], pred) -> int | None:
    where = [n for n, t in enumerate(toks) if pred(t)]
    return rng.choice(where) if where else None


def mutate(text: str, rng: random.Random, steps: int) -> str:
    """``steps`` random edits of ``text``, token-level or character-level."""
    for _ in range(steps):
        toks = tokens(text) or [""]
        significant = [q for q, t in enumerate(toks) if t.strip() and not t.startswith("#")]
        n = rng.choice(significant) if significant and rng.random() < 0.9 else rng.randrange(len(toks))
        kind = rng.choice(["delete", "duplicate", "swap", "insert", "replace", "char", "truncate", "index", "dim",
                           "symmetry", "fill", "op", "dtype", "line"])
        if kind == "delete":
            del toks[n]
        elif kind == "duplicate":
            toks.insert(n, toks[n])
        elif kind == "swap":
            m = rng.randrange(len(toks))
            toks[n], toks[m] = toks[m], toks[n]
        elif kind == "insert":
            toks.insert(n, rng.choice(_VOCAB))
        elif kind == "replace":
            toks[n] = rng.choice(_VOCAB)
        elif kind == "char":
            pos = rng.randrange(len(text) + 1)
            ch = rng.choice([chr(rng.randrange(32, 127)), chr(rng.randrange(0, 0x3000)), "\n", "(", "[", "-"])
            text = text[:pos] + ch + text[pos:]
            continue
        elif kind == "truncate":
            text = text[: rng.randrange(len(text) + 1)]
            continue
        elif kind == "index":  # a different index in an access
            q = _pick(rng, toks, lambda t: re.fullmatch(r"[a-z]", t) is not None and t not in "n")
            if q is not None:
                toks[q] = rng.choice("ijklmnopr")
        elif kind == "dim":
            q = _pick(rng, toks, lambda t: t in ("n", "r", "m") or t.isdigit())
            if q is not None:
                toks[q] = rng.choice(["n", "r", "m", "1", "2", "3", "0", "-1", "7", "100000000000",
                                      "99999999999999999999"])
        elif kind == "symmetry":
            q = _pick(rng, toks, lambda t: t == "symmetric")
            groups = ["", "(0,1)", "(0,2)", "(1,2)", "(0,1,2)", "(0,1) symmetric(2,3)", "(0,0)", "(3)", "(0,1,2,3,4)",
                      "(1,2) symmetric(3,4)", "(0,5)", "()"]
            if q is not None:
                toks[q] = "symmetric" + rng.choice(groups)
            else:
                q = _pick(rng, toks, lambda t: t == "]")
                if q is not None:
                    toks.insert(q + 1, " symmetric" + rng.choice(groups))
        elif kind == "fill":
            q = _pick(rng, toks, lambda t: t in ("sparse", "dense", "fill"))
            fills = ["fill 0", "fill inf", "fill -inf", "fill 1", "fill 2.5", "fill -0", "fill 1e999", "fill nan",
                     "fill", "fill --1", "fill 99999999999999999999"]
            if q is not None:
                toks[q] = rng.choice(["sparse ", "dense "]) + rng.choice(fills)
        elif kind == "op":
            q = _pick(rng, toks, lambda t: t in ("+=", "min=", "max=", "=", "+", "-", "*"))
            if q is not None:
                toks[q] = rng.choice(["+=", "min=", "max=", "=", "+", "-", "*", "- -", "* -"])
        elif kind == "dtype":
            q = _pick(rng, toks, lambda t: t in ("in", "out"))
            if q is not None:
                end = next((e for e in range(q, len(toks)) if "\n" in toks[e]), len(toks))
                toks.insert(end, " " + rng.choice(["float64", "float32", "int64", "int64 float64"]))
        elif kind == "line":  # drop, repeat or move a whole line
            lines = text.split("\n")
            a, b = rng.randrange(len(lines)), rng.randrange(len(lines))
            rng.choice([lambda: lines.pop(a), lambda: lines.insert(a, lines[b]),
                        lambda: lines.insert(b, lines.pop(a))])()
            text = "\n".join(lines)
            continue
        text = "".join(toks)
    return text


@st.composite
def mutants(draw) -> str:
    text = draw(st.sampled_from(TEXTS))
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    return mutate(text, rng, draw(st.integers(1, 4)))


# -- what may happen to any text ---------------------------------------------------------------


def check_located(err: SourceError, text: str, path: str) -> None:
    """``file:line:col: error: message``, then (when the line has text) the line and a caret at col."""
    lines = str(err).split("\n")
    m = re.match(r"^(.*):(\d+):(\d+): error: (.+)$", lines[0])
    assert m, f"not 'file:line:col: error: ...': {lines[0]!r}"
    assert m.group(1) == path
    line, col = int(m.group(2)), int(m.group(3))
    src = text.split("\n")
    assert 1 <= line <= len(src), f"line {line} outside the {len(src)} lines of the text"
    here = src[line - 1]
    assert 1 <= col <= len(here) + 1, f"column {col} outside line {line} ({here!r})"
    if not here:
        assert len(lines) == 1, str(err)
        return
    assert len(lines) == 3, f"expected the line and a caret under it:\n{err}"
    assert lines[1] == "    " + here.rstrip("\n").expandtabs(1)
    caret = lines[2][4:]
    assert caret.lstrip(" ").startswith("^") and len(caret) - len(caret.lstrip(" ")) == col - 1, str(err)


def _small_enough(k: systec_ref.Kernel) -> bool:
    if any(len(g) > MAX_GROUP for d in k.ast.decls for g in d.symmetry):
        return False
    dims = index_dims(k.ast)
    points = math.prod(2 if isinstance(dims[v], str) else dims[v] for v in index_vars(k.ast))
    sizes = [math.prod(2 if isinstance(x, str) else x for x in d.dims) for d in k.ast.decls]
    return points <= MAX_POINTS and max(sizes, default=1) <= MAX_POINTS


def pipeline(text: str, path: str = "<fuzz>.ein") -> str:
    """Everything a kernel text goes through; returns how far it got.  Raises only SystecError."""
    try:
        k = systec_ref.compile(text, path)
    except SourceError as e:
        check_located(e, text, path)
        raise
    if not _small_enough(k):
        return "parsed (too large to compile here)"
    assert k.stages and k.baseline
    k.c_source()
    k.c_source("baseline")
    sizes = {d: 2 for d in {x for t in k.ast.decls for x in t.dims if isinstance(x, str)}}
    inputs = k.random_inputs(sizes, seed=0, density=0.5)
    systec_ref.check(k, inputs)  # agreement is the differential fuzzer's job; here: no crash
    return "ran"


def only_user_errors(text: str) -> str:
    try:
        return pipeline(text)
    except SystecError as e:
        return f"user error: {type(e).__name__}"


@settings(max_examples=TEXT_CASES * _SCALE, **SETTINGS)
@given(text=st.one_of(st.text(max_size=200), st.lists(_ALPHABET, max_size=60).map("".join)))
def test_arbitrary_text(text):
    only_user_errors(text)


@pytest.mark.slow
@settings(max_examples=MUTANT_CASES * _SCALE, **SETTINGS)
@given(text=mutants())
def test_mutated_examples(text):
    note(text)
    only_user_errors(text)


# -- hand-picked edges (found while fuzzing, or too unlikely to draw) ---------------------------

BASE = "kernel k\nin x[n]\nin A[n, n] symmetric\nout y[n]\ny[i] += {}\n"
EDGES = {
    # expressions deeper than the parser's limit once exhausted Python's stack (RecursionError)
    "deep-parens": BASE.format("(" * 300 + "x[i]" + ")" * 300),
    "deep-negation": BASE.format("-" * 3000 + "A[i, j] * x[j]"),
    "long-sum": BASE.format(" + ".join(["A[i, j] * x[j]"] * 1500)),
    "long-product": BASE.format("A[i, j] * " + " * ".join(["x[j]"] * 1500)),
    # numbers beyond int64 reached C as truncated constants, or numpy as impossible shapes
    "dim-beyond-int64": "kernel k\nin x[99999999999999999999]\nout y\ny += x[i]\n",
    "literal-beyond-int64": "kernel k\nin x[n] int64\nout y int64\ny += 9223372036854775808 * x[i]\n",
    "fill-beyond-int64": "kernel k\nin x[n] sparse int64 fill -9999999999999999999999\nout y int64\ny += x[i]\n",
    "nul": "kernel k\x00\n",
    "bom": "\ufeffkernel k\nin x[n]\nout y\ny += x[i]\n",
    "lone-cr": "kernel k\rin x[n]\rout y\ry += x[i]\r",
    "empty": "",
    "only-comment": "# nothing\n",
    "open-bracket-at-end": "kernel k\nin x[n\n",
}


@pytest.mark.parametrize("name", sorted(EDGES))
def test_edges_give_located_errors(name):
    with pytest.raises(SourceError):
        pipeline(EDGES[name])


def test_depth_limit_is_generous_enough():
    """64 levels (the limit) compile, run and agree; 65 are a located error.  Compiling is quick: hoist-reads
    once walked each operand of a sum twice, 2^depth steps (a sum of 20 terms took a minute)."""
    import time

    from systec_ref.lang.parser import MAX_DEPTH

    for rhs in (" + ".join(["A[i, j] * x[j]"] * MAX_DEPTH), "-" * (MAX_DEPTH - 2) + "(A[i, j] * x[j])",
                "A[i, j] * " + " * ".join(["x[j]"] * (MAX_DEPTH - 1))):
        start = time.perf_counter()
        k = systec_ref.compile(BASE.format(rhs))
        assert k.stages and k.baseline
        assert time.perf_counter() - start < 20, "compiling a deep expression takes too long"
        assert systec_ref.check(k, k.random_inputs({"n": 2}, seed=1)).ok
    with pytest.raises(SourceError, match="nested too deeply"):
        parse(BASE.format(" + ".join(["x[i]"] * (MAX_DEPTH + 2))))


def test_huge_fixed_dims_are_an_input_error():
    k = systec_ref.compile("kernel k\nin x[100000, 100000, 100000]\nout y\ny += x[i, j, l]\n")
    with pytest.raises(SystecError, match="cannot make a random array"):
        k.random_inputs({})


# -- the command line ----------------------------------------------------------------------------


def _meaning(text: str) -> list[str]:
    return [t for t in tokens(text) if t.strip() and not t.startswith("#")]


def cli_sample() -> list[tuple[str, str]]:
    """A fixed sample of mutants (the first that parse and the first that do not, alternately),
    and a few edges: (name, text)."""
    rng = random.Random(9)
    good, bad = [], []
    while len(good) + len(bad) < CLI_FILES - 4:
        src = rng.choice(TEXTS)
        text = mutate(src, rng, rng.randint(1, 3))
        try:
            k = systec_ref.compile(text)
            if _small_enough(k) and len(good) < (CLI_FILES - 4) // 2 and _meaning(text) != _meaning(src):
                good.append(text)
        except SystecError:
            if len(bad) < (CLI_FILES - 4) - (CLI_FILES - 4) // 2:
                bad.append(text)
    edges = [EDGES["deep-parens"], EDGES["dim-beyond-int64"], EDGES["nul"],
             "kernel k\nin x[100000, 100000, 100000]\nout y\ny += x[i, j, l]\n"]
    return [(f"good{n}", t) for n, t in enumerate(good)] + [(f"bad{n}", t) for n, t in enumerate(bad)] + \
        [(f"edge{n}", t) for n, t in enumerate(edges)]


@pytest.mark.slow
def test_cli_never_prints_a_traceback(tmp_path):
    files = []
    for name, text in cli_sample():
        p = tmp_path / f"{name}.ein"
        p.write_bytes(text.encode("utf-8", "surrogatepass"))
        files.append(p)
    bad_utf8 = tmp_path / "latin1.ein"
    bad_utf8.write_bytes(b"kernel k\nin x[n] \xe9\n")
    files.append(bad_utf8)

    def run(p: Path):
        return p, subprocess.run([sys.executable, "-m", "systec_ref", "check", str(p), "--size", "n=2,r=2,m=2"],
                                 capture_output=True, text=True, cwd=ROOT, timeout=120)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run, files))
    statuses = {}
    for p, r in results:
        assert r.returncode in (0, 1, 2), f"{p.name}: exit {r.returncode}\n{p.read_text(errors='replace')}\n{r.stderr}"
        assert "Traceback" not in r.stderr + r.stdout, f"{p.name}:\n{p.read_text(errors='replace')}\n{r.stderr}"
        assert "internal error" not in r.stderr, f"{p.name}:\n{p.read_text(errors='replace')}\n{r.stderr}"
        if r.returncode == 2 and "error:" in r.stderr:
            first = r.stderr.strip().splitlines()[0]
            assert first.startswith(str(p)) or "note:" in first, r.stderr
        statuses[r.returncode] = statuses.get(r.returncode, 0) + 1
    print(f"CLI check on {len(files)} files: exit statuses {statuses}")
    assert statuses.get(0, 0) >= 5 and statuses.get(2, 0) >= 5, statuses  # the sample exercises both paths
