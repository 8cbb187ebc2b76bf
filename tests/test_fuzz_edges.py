"""Differential fuzzing at the edges where outside testing found wrong answers and crashes.

The general fuzzer (``test_fuzz_differential.py``) draws kernels at random; these generators aim at
what it did not reach by itself:

* :func:`orientation_cases` — a *non-symmetric* sparse input read in several orientations
  (``A[i,j] + A[j,i]``, ``A[i,j] * x[j] - A[j,i] * x[i]``, ``A[i,j,k] + A[j,k,i] - A[k,i,j]``,
  ``A[i,j] * A[j,i]``), under ``+=`` with fill 0 and under ``min=``/``max=`` with fill ±inf, on
  inputs stored in one triangle only (so ``A[i,j]`` is stored where ``A[j,i]`` is not), with ±inf
  and NaN among the stored values where the reduction defines them;
* :func:`literal_cases` — literals that overflow, fold to ±inf or NaN (``1e400 * 0``), and integers
  of hundreds of digits, as factors, terms and fills;
* :func:`int64_cases` — int64 kernels on values near the limits (int64 wraps around: every stage
  and the C must give the definition's result exactly);
* :func:`check_sequences` — one ``SparseTensor`` object handed to one kernel again and again with
  ``check`` switched on and off: a tensor that is not symmetric must be refused whenever ``check``
  is on.

Every case: each stage in the interpreter agrees with the definition and with the stage before,
and the final C and the baseline C agree with the definition, sparse inputs given dense, as a
``SparseTensor`` and (order 2) as a scipy matrix — or the kernel is refused with a located error.
Case counts are fixed (:data:`CASES`, asserted by ``test_edge_case_counts``); ``HYPOTHESIS_PROFILE=
explore`` draws fresh cases and ``SYSTEC_FUZZ_SCALE=k`` runs k times as many.
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from test_passes_support import describe

import systec_ref
from systec_ref.errors import InputError, SourceError
from systec_ref.storage import SparseTensor

_SCALE = int(os.environ.get("SYSTEC_FUZZ_SCALE", "1"))
#: cases per run and generator
CASES = {"orientation": 120, "literal": 80, "int64": 100, "check": 50}
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                       HealthCheck.filter_too_much])
_ran = dict.fromkeys(CASES, 0)

pytestmark = pytest.mark.usefixtures("private_c_cache")


# -- generators ------------------------------------------------------------------------------

def _tree(draw, leaves: list[str], ops: list[str]) -> str:
    """Leaves combined left to right by random operators, with random parentheses."""
    text = leaves[0]
    for leaf in leaves[1:]:
        op = draw(st.sampled_from(ops))
        text = f"({text}) {op} {leaf}" if draw(st.booleans()) else f"{text} {op} {leaf}"
    return text


@st.composite
def orientation_cases(draw) -> tuple[str, dict]:
    order = draw(st.sampled_from([2, 2, 3]))
    names = ("i", "j", "k")[:order]
    op = draw(st.sampled_from(["+=", "+=", "min=", "max="]))
    dtype = "int64" if op == "+=" and draw(st.integers(0, 4)) == 0 else "float64"
    perms = list(itertools.permutations(names))
    reads = [f"A[{','.join(p)}]" for p in draw(st.lists(st.sampled_from(perms), min_size=2, max_size=3))]
    if len({r for r in reads}) == 1:
        reads.append(f"A[{','.join(perms[-1])}]")
    with_x = draw(st.booleans())
    if op == "+=":
        # each term a product holding a read of A (what the language admits for a sparse A under +=)
        terms = [f"{r} * x[{draw(st.sampled_from(names))}]" if with_x and draw(st.booleans()) else r for r in reads]
        if draw(st.integers(0, 3)) == 0:
            terms = [" * ".join(terms)]  # one product of every orientation
        rhs = _tree(draw, terms, ["+", "-", "+"])
    else:
        leaves = list(reads) + ([f"x[{draw(st.sampled_from(names))}]"] if with_x else [])
        rhs = _tree(draw, list(draw(st.permutations(leaves))), ["+", "+", "*", "-"])
    out_idx = list(draw(st.permutations(names)))[: draw(st.integers(0, 2))]
    fill = {"+=": "", "min=": " fill inf", "max=": " fill -inf"}[op]
    ty = "" if dtype == "float64" else " int64"
    lines = ["kernel orient", f"in A[{', '.join('n' * order)}] sparse{fill}{ty}"]
    if "x[" in rhs:
        lines.append(f"in x[n]{ty}")
    lines.append(f"out Y{'[' + ', '.join('n' for _ in out_idx) + ']' if out_idx else ''}{ty}")
    lines.append(f"Y{'[' + ', '.join(out_idx) + ']' if out_idx else ''} {op} {rhs}")
    spec = {"n": draw(st.sampled_from([1, 2, 3, 4])), "seed": draw(st.integers(0, 2**16)),
            "density": draw(st.sampled_from([0.2, 0.5, 1.0])), "triangle": draw(st.booleans()),
            "specials": draw(st.integers(0, 3)) if op != "+=" and dtype == "float64" else 0}
    return "\n".join(lines) + "\n", spec


def _orientation_inputs(k: systec_ref.Kernel, spec: dict) -> dict[str, np.ndarray]:
    """Random inputs; ``triangle`` keeps A only where its subscripts increase (A[i,j] stored, A[j,i] not);
    ``specials`` stored ±inf/NaN entries (min=/max= define them whatever the other operands hold)."""
    inputs = k.random_inputs({"n": spec["n"]}, seed=spec["seed"], density=spec["density"])
    rng = np.random.default_rng(spec["seed"] + 7)
    a = inputs["A"]
    fill = k.ast.decl("A").fill
    if spec["triangle"] and a.size:
        idx = np.indices(a.shape)
        keep = np.all(idx[:-1] < idx[1:], axis=0) if a.ndim > 1 else np.ones(a.shape, bool)
        a = np.where(keep, a, np.asarray(fill, dtype=a.dtype))
    for _ in range(spec["specials"]):
        if a.size:
            a = a.copy()
            a[tuple(int(rng.integers(0, s)) for s in a.shape)] = rng.choice([np.inf, -np.inf, np.nan])
            if "x" in inputs and rng.integers(0, 2):
                inputs["x"][int(rng.integers(0, spec["n"]))] = rng.choice([np.inf, -np.inf, np.nan])
    inputs["A"] = np.asarray(a, order="C")
    return inputs


_HUGE = "9" * 310
# literals that are or fold to ±inf, NaN or 0 (1e200 * 1e200, 1e-200 * 1e-200); none within a factor of 10^5
# of the float limit: a pass that multiplies a coefficient by a multiplicity (up to 5! here) may overflow
# such a literal where the definition does not, like any finite value so close to the limit (see README)
_LITERALS = ["1e400", "-1e400", "0", "0.0", "1e-400", "2", "0.5", _HUGE, "1e200", "1e300", "1e-200", "-3"]


@st.composite
def literal_cases(draw) -> tuple[str, dict]:
    op = draw(st.sampled_from(["+=", "=", "min=", "max="]))
    sparse = draw(st.booleans())
    lits = [draw(st.sampled_from(_LITERALS)) for _ in range(draw(st.integers(1, 3)))]
    lit = " * ".join(lits)
    reads = ["A[i,j]", "x[j]"]
    form = draw(st.sampled_from(["times", "plus", "both"]))
    if form == "times":
        rhs = f"{reads[0]} * {reads[1]} * {lit}" if draw(st.booleans()) else f"{lit} * {reads[0]} + {reads[1]}"
    elif form == "plus":
        rhs = f"{reads[0]} + {reads[1]} + {lit}"
    else:
        rhs = f"{reads[0]} * {lit} + {reads[1]} * {draw(st.sampled_from(_LITERALS))}"
    fill = ""
    if sparse:
        fill = " fill " + draw(st.sampled_from({"+=": ["0", _HUGE], "=": ["0"], "min=": ["inf", _HUGE],
                                                "max=": ["-inf", "-" + _HUGE]}[op]))
    text = (f"kernel lit\nin A[n, n] {'symmetric ' if draw(st.booleans()) else ''}"
            f"{'sparse' + fill if sparse else ''}\nin x[n]\nout Y[n]\nY[i] {op} {rhs}\n")
    if draw(st.integers(0, 3)) == 0:
        # a compact order-4/5 MTTKRP: consolidate-blocks and lookup-table scale its coefficient per face
        order = draw(st.sampled_from([4, 5]))
        modes = ["i", "k", "l", "m", "o"][:order]
        reads = " * ".join(f"x[{v}]" for v in modes[1:])
        text = (f"kernel lit\nin A[{', '.join('n' * order)}] symmetric\nin x[n]\nout Y[n]\n"
                f"Y[i] += A[{', '.join(modes)}] * {reads} * {lit}\n")
    # finite inputs: the literals are the point here (and, under +=, the documented promise that an
    # unstored entry's other factors are finite)
    return text, {"n": draw(st.sampled_from([1, 2, 3])), "seed": draw(st.integers(0, 2**16)),
                  "density": draw(st.sampled_from([0.5, 1.0])), "zeros": draw(st.booleans())}


_NEAR = [2**62, 2**63 - 1, -(2**63), -(2**62), 2**62 + 3, 3 * 2**61, -(2**61) - 5, 2**32, -(2**32) + 1, 1, -1]


@st.composite
def int64_cases(draw) -> tuple[str, dict]:
    from strategies import kernels  # the general generator, restricted to int64

    if draw(st.booleans()):
        text = draw(kernels(max_order=3, dtypes=("int64",), ops=("+=", "=", "min=", "max=")))
    else:
        op = draw(st.sampled_from(["+=", "min=", "max="]))
        rhs = draw(st.sampled_from(["A[i,j]", "A[i,j] * x[j]", "A[i,j] + A[j,i]", "A[i,j] * A[j,i] * x[i]",
                                    "2 * A[i,j] - x[i]", "A[i,j] * x[i] * x[j] + 3"]))
        out = draw(st.sampled_from(["Y", "Y[i]"]))
        text = (f"kernel near\nin A[n, n] {'symmetric ' if draw(st.booleans()) else ''}int64\nin x[n] int64\n"
                f"out {out.replace('[i]', '[n]')} int64\n{out} {op} {rhs}\n")
        if "x" not in rhs:
            text = text.replace("in x[n] int64\n", "")
    return text, {"n": draw(st.sampled_from([1, 2, 3])), "seed": draw(st.integers(0, 2**16)),
                  "near": draw(st.lists(st.sampled_from(_NEAR), min_size=1, max_size=4))}


def _near_limits(k: systec_ref.Kernel, spec: dict) -> dict[str, np.ndarray]:
    sizes = {d: spec["n"] for t in k.ast.decls for d in t.dims if isinstance(d, str)}
    inputs = k.random_inputs(sizes, seed=spec["seed"])
    rng = np.random.default_rng(spec["seed"])
    out = {}
    for d in k.ast.inputs:
        a = inputs[d.name].copy()
        if a.size:
            flat = a.reshape(-1)
            for v in spec["near"]:
                flat[int(rng.integers(0, flat.size))] = v
            if d.symmetry:
                from systec_ref.tensors import symmetrize_index

                a = a[symmetrize_index(a.shape, d.symmetry)]
        out[d.name] = np.asarray(a, order="C")  # not ascontiguousarray: it makes 0-d arrays 1-d
    return out


# -- the check of one case -----------------------------------------------------------------

def _agree_everywhere(k: systec_ref.Kernel, inputs: dict, context: str) -> None:
    """Every stage in the interpreter, the final and baseline C, and sparse inputs given compressed."""
    report = systec_ref.check(k, inputs)
    assert report.ok, describe(report, k) + context
    dtype = k.ast.output.dtype
    want = k.definition(inputs).value
    for optimize in (True, False):
        a = systec_ref.agree(k.run(backend="c", optimize=optimize, **inputs), want, dtype)
        assert a.ok, f"C ({'final' if optimize else 'baseline'}) disagrees with the definition: {a.detail}{context}"
    sparse = [d for d in k.ast.inputs if d.format == "sparse"]
    if not sparse:
        return
    forms = [{d.name: SparseTensor.from_dense(inputs[d.name], d.symmetry, d.fill, name=d.name) for d in sparse}]
    if all(d.order == 2 and d.fill == 0 for d in sparse):
        forms.append({d.name: sp.csr_matrix(inputs[d.name]) for d in sparse})
    for form in forms:
        given_ = {**inputs, **form}
        for backend in ("interp", "c"):
            a = systec_ref.agree(k.run(backend=backend, **given_), want, dtype)
            assert a.ok, f"{backend} with {type(next(iter(form.values()))).__name__} inputs disagrees: " \
                         f"{a.detail}{context}"


def _context(text: str, spec: dict) -> str:
    return f"\n--- kernel\n{text}--- spec {spec}"


@pytest.mark.slow
@settings(max_examples=CASES["orientation"] * _SCALE, **SETTINGS)
@given(case=orientation_cases())
def test_fuzz_sparse_input_in_several_orientations(case, c_compiler):
    text, spec = case
    note(_context(text, spec))
    _ran["orientation"] += 1
    try:
        k = systec_ref.compile(text, "<orient>.ein")
    except SourceError as e:
        assert "sparse" in str(e) and ":" in str(e).split("\n")[0], str(e)  # located refusal of the fill
        return
    _agree_everywhere(k, _orientation_inputs(k, spec), _context(text, spec))


@pytest.mark.slow
@settings(max_examples=CASES["literal"] * _SCALE, **SETTINGS)
@given(case=literal_cases())
def test_fuzz_extreme_literals(case, c_compiler):
    text, spec = case
    note(_context(text, spec))
    _ran["literal"] += 1
    try:
        k = systec_ref.compile(text, "<lit>.ein", faces="compact" if "A[i, k, l, m" in text else "split")
    except SourceError as e:
        assert str(e).startswith("<lit>.ein:"), str(e)  # located
        return
    inputs = k.random_inputs({"n": spec["n"]}, seed=spec["seed"], density=spec["density"])
    if spec["zeros"]:  # 0 * (literals that overflow): where folding them first matters
        inputs["x"][::2] = 0.0
    _agree_everywhere(k, inputs, _context(text, spec))


@pytest.mark.slow
@settings(max_examples=CASES["int64"] * _SCALE, **SETTINGS)
@given(case=int64_cases())
def test_fuzz_int64_near_the_limits(case, c_compiler):
    text, spec = case
    note(_context(text, spec))
    _ran["int64"] += 1
    k = systec_ref.compile(text, "<near>.ein")
    _agree_everywhere(k, _near_limits(k, spec), _context(text, spec))


@st.composite
def check_sequences(draw) -> tuple[str, dict, list[bool]]:
    text = draw(st.sampled_from([
        "kernel s\nin A[n, n] symmetric sparse\nin x[n]\nout y[n]\ny[i] += A[i,j] * x[j]\n",
        "kernel s\nin A[n, n, n] symmetric sparse\nin x[n]\nout y[n]\ny[i] += A[i,j,k] * x[j] * x[k]\n",
        "kernel s\nin A[n, n] symmetric sparse fill inf\nin x[n]\nout y[n]\ny[i] min= A[i,j] + x[j]\n",
        "kernel s\nin A[n, n, n] symmetric(0,1) sparse\nin x[n]\nout y[n]\ny[k] += A[i,j,k] * x[i] * x[j]\n",
    ]))
    spec = {"n": draw(st.integers(2, 4)), "seed": draw(st.integers(0, 2**16)), "symmetric": draw(st.booleans()),
            "declared": draw(st.booleans())}
    return text, spec, draw(st.lists(st.booleans(), min_size=2, max_size=6))


@pytest.mark.slow
@settings(max_examples=CASES["check"] * _SCALE, **SETTINGS)
@given(case=check_sequences())
def test_fuzz_repeated_calls_with_changing_check(case, c_compiler):
    """One tensor object, many calls: with check=True an asymmetric tensor is refused every time, however
    often it went through with check=False before (its canonical layout is cached on the object)."""
    text, spec, checks = case
    note(_context(text, spec) + f" checks {checks}")
    _ran["check"] += 1
    k = systec_ref.compile(text, "<seq>.ein")
    decl = k.ast.decl("A")
    inputs = k.random_inputs({"n": spec["n"]}, seed=spec["seed"])
    a = inputs["A"]
    if not spec["symmetric"]:
        a = a.copy()
        a[(0, 1) + (0,) * (a.ndim - 2)] = 7.5  # breaks symmetry of modes (0, 1)
    # built without symmetry (every entry kept), or declared symmetric unverified (then only the
    # canonical triangle is stored: symmetric by construction)
    t = SparseTensor.from_dense(a, decl.symmetry if spec["declared"] else (), decl.fill, check=False)
    canonical = t.to_dense()  # what check=False computes with
    want = k.definition({**inputs, "A": canonical}, check=False).value
    for check in checks:
        for backend in ("interp", "c"):
            if check and not spec["symmetric"] and not spec["declared"]:
                with pytest.raises(InputError, match="symmetric"):
                    k.run(backend=backend, check=True, A=t, x=inputs["x"])
                continue
            got = k.run(backend=backend, check=check, A=t, x=inputs["x"])
            if spec["declared"] or spec["symmetric"]:
                a_ = systec_ref.agree(got, want, "float64")
                assert a_.ok, a_.detail


def test_edge_case_counts():
    """Each generator above ran exactly its fixed number of cases (when it ran in this session)."""
    for key, want in CASES.items():
        if _ran[key]:
            print(f"edge fuzz cases run ({key}): {_ran[key]}")
            assert _ran[key] == want * _SCALE, f"{key}: ran {_ran[key]} cases, expected {want * _SCALE}"
