"""``systec_ref.einsum`` against ``numpy.einsum`` (sum of products) and a brute-force reference
(the min/max semirings), over random subscripts, symmetric and sparse operands of every kind."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.sparse as sp
import sparse as pydata
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import systec_ref
from systec_ref.compare import agree
from systec_ref.einsum import kernel_text, parse_subscripts, spec_of
from systec_ref.rewrite.pipeline import PASSES
from systec_ref.storage import SparseTensor

LETTERS = "ijklm"
RINGS = {"+*": (np.add, np.multiply, 0.0), "min+": (np.fmin, np.add, math.inf),
         "max+": (np.fmax, np.add, -math.inf), "max*": (np.fmax, np.multiply, None)}


def reference(subscripts: str, operands: list[np.ndarray], ring: str) -> np.ndarray:
    """The definition, by brute force over the full index space (dense operands)."""
    inputs, out = parse_subscripts(subscripts, len(operands))
    if ring == "+*":
        return np.einsum(f"{','.join(inputs)}->{out}", *operands)
    add, mul, _ = RINGS[ring]
    letters = sorted(set("".join(inputs)))
    size = {c: operands[p].shape[inputs[p].index(c)] for p in range(len(inputs)) for c in inputs[p]}
    result = np.full(tuple(size[c] for c in out), math.inf if add is np.fmin else -math.inf)
    for point in itertools.product(*(range(size[c]) for c in letters)):
        at = dict(zip(letters, point))
        terms = [op[tuple(at[c] for c in subs)] for op, subs in zip(operands, inputs)]
        v = terms[0]
        for t in terms[1:]:
            v = mul(v, t)
        key = tuple(at[c] for c in out)
        result[key] = add(result[key], v)
    return result


def exactly_symmetric(a: np.ndarray, groups) -> np.ndarray:
    """``a`` with every entry replaced by its canonical representative's (bitwise symmetric)."""
    out = np.empty_like(a)
    for idx in np.ndindex(*a.shape):
        canon = list(idx)
        for g in groups:
            for m, v in zip(g, sorted(idx[m] for m in g)):
                canon[m] = v
        out[idx] = a[tuple(canon)]
    return out


@st.composite
def problems(draw):
    n_ops = draw(st.integers(1, 3))
    ring = draw(st.sampled_from(list(RINGS)))
    dtype = draw(st.sampled_from(["float64", "float64", "int64"]))
    # 0, 1, and sizes above every symmetric set (up to 5 modes): every nest is entered; 5 and 6 are not
    # multiples of the unroll factor (4)
    n = draw(st.integers(0, 6))
    letters = LETTERS[: draw(st.integers(1, 5))]
    subs: list[str] = []
    for _ in range(n_ops):
        order = draw(st.integers(0, 5))
        subs.append("".join(draw(st.sampled_from(letters)) for _ in range(order)))
    used = sorted(set("".join(subs)))
    explicit = draw(st.booleans())
    out = "".join(draw(st.permutations(used))[: draw(st.integers(0, len(used)))]) if explicit else None
    subscripts = ",".join(subs) + ("" if out is None else f"->{out}")
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    operands: list[object] = []
    symmetric: dict[int, object] = {}
    for p, s in enumerate(subs):
        if p and draw(st.booleans()) and any(len(subs[q]) == len(s) for q in range(p)):
            q = next(q for q in range(p) if len(subs[q]) == len(s))
            operands.append(operands[q])  # a repeated operand: one tensor
            continue
        shape = (n,) * len(s)
        a = rng.integers(-3, 4, shape) if dtype == "int64" else rng.uniform(-1, 1, shape)
        groups = ()
        if len(s) >= 2 and draw(st.booleans()):
            # a full group of 5 is the slowest compile (MTTKRP-5): order 5 gets a partial group only
            full = len(s) <= 4 and draw(st.booleans())
            groups = ((*range(len(s)),),) if full else ((0, 1),)
            symmetric[p] = True if groups == ((*range(len(s)),),) else [(0, 1)]
            a = exactly_symmetric(a, groups)
            if dtype == "float64" and draw(st.booleans()):
                # symmetrized by averaging its permutations: off by rounding, accepted
                perms = [pp for pp in itertools.permutations(range(len(s)))
                         if all(sorted(pp[m] for m in g) == list(g) for g in groups)
                         and all(pp[m] == m for m in range(len(s)) if not any(m in g for g in groups))]
                a = sum(a.transpose(pp) for pp in perms) / len(perms)
        kind = "dense"
        if dtype == "float64" and ring != "max*" and len(s) >= 1:
            kind = draw(st.sampled_from(["dense", "dense", "SparseTensor", "pydata-coo", "pydata-gcxs"]
                                        + (["scipy"] if len(s) == 2 else [])))
        if kind != "dense":
            fill = RINGS[ring][2]
            a = np.where(rng.random(shape) < 0.5, fill, a)
            if groups:
                a = exactly_symmetric(a, groups)
            if kind == "scipy":
                if fill != 0:
                    a = np.where(np.isinf(a), 0.0, a)  # scipy's unstored entries are the fill ...
                    stored = sp.csr_matrix(a)
                    a = np.where(stored.toarray() == 0, fill, a)  # ... of the semiring, inf or -inf
                    operands.append((stored, a))
                    continue
                operands.append((sp.csr_matrix(a), a))
                continue
            if kind.startswith("pydata"):
                coo = pydata.COO.from_numpy(a, fill_value=fill)
                operands.append((coo if kind == "pydata-coo" else pydata.GCXS(coo), a))
                continue
            operands.append((SparseTensor.from_dense(a, groups, fill=fill), a))
            continue
        operands.append(a)
    return subscripts, operands, symmetric, ring, dtype


def _dense(x):
    return x[1] if isinstance(x, tuple) else x


def _given(x):
    return x[0] if isinstance(x, tuple) else x


def _check(subscripts, operands, symmetric, ring, dtype, backend):
    args = []
    seen: dict[int, object] = {}
    for x in operands:  # a repeated operand is the same object every time
        args.append(seen.setdefault(id(x), _given(x)))
    got = systec_ref.einsum(subscripts, *args, symmetric=symmetric, semiring=ring, backend=backend)
    want = reference(subscripts, [_dense(x) for x in operands], ring)
    assert got.shape == want.shape
    assert agree(got, want, dtype), (subscripts, symmetric, ring, got, want)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_einsum_agrees_in_the_interpreter(problem):
    _check(*problem, backend="interp")


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_einsum_agrees_in_c(problem):
    _check(*problem, backend="c")


# -- the kernel it writes -------------------------------------------------------------------


def test_repeated_operands_are_one_tensor_and_symmetric_groups_share_a_dimension():
    A, B = np.zeros((4, 4, 4)), np.zeros((4, 3))
    text = kernel_text(spec_of("ikl,lj,kj->ij", (A, B, B), {0: True}))
    assert "in  T0[n0, n0, n0] symmetric(0,1,2)" in text and "in  T1[n0, n1]" in text
    assert "R[i, j] += T0[i, k, l] * T1[l, j] * T1[k, j]" in text
    # the same arrays as two objects are two tensors: no symmetry of B[l,j]*B[k,j] to find
    assert "T2" in kernel_text(spec_of("ikl,lj,kj->ij", (A, B, B.copy()), {0: True}))


def test_mttkrp_finds_the_symmetry_of_the_repeated_factor():
    A, B = np.zeros((5, 5, 5)), np.zeros((5, 2))
    k = systec_ref.einsum_kernel("ikl,lj,kj->ij", A, B, B, symmetric={0: True})
    # gemm-form keeps the summed pair (k,l) of A's set (as many multiply-adds, in matrix products); the
    # pair is permutable because B is one tensor read twice
    assert k.stage("gemm-form").changed
    assert k.stage("identify-symmetry").program.facts.permutable == (("k", "l"),)


def test_implicit_output_is_the_indices_seen_once_in_order():
    assert parse_subscripts("ji,jk", 2) == (("ji", "jk"), "ik")
    assert parse_subscripts(" i j , j ", 2) == (("ij", "j"), "i")


def test_semirings_write_their_update():
    A, x = np.zeros((3, 3)), np.zeros(3)
    assert "R[i] min= T0[i, j] + T1[j]" in kernel_text(spec_of("ij,j->i", (A, x), None, "min+"))
    assert "R[i] max= T0[i, j] * T1[j]" in kernel_text(spec_of("ij,j->i", (A, x), None, ("max", "*")))


def test_the_compiled_kernel_is_cached_in_the_process():
    A, x = np.eye(3), np.ones(3)
    assert systec_ref.einsum_kernel("ij,j->i", A, x) is systec_ref.einsum_kernel("ij,j->i", A + 1, x)


@pytest.mark.parametrize(("subscripts", "operands", "kwargs", "message"), [
    ("ij,j->i", (np.eye(3),), {}, "2 operand subscripts but 1 operand"),
    ("ij,j->i", (np.eye(3), np.ones(3), np.ones(3)), {}, "2 operand subscripts but 3 operands"),
    ("i...,i->i", (np.eye(3), np.ones(3)), {}, "'...' (broadcasting) is not supported"),
    ("i1,i->i", (np.eye(3), np.ones(3)), {}, "'1' is not an index"),
    ("ij,j->ii", (np.eye(3), np.ones(3)), {}, "output index 'i' appears more than once"),
    ("ij,j->k", (np.eye(3), np.ones(3)), {}, "output index 'k' appears in no operand"),
    ("ijk,j->i", (np.eye(3), np.ones(3)), {}, "operand 0 has 2 dimensions but subscripts 'ijk'"),
    ("ij,j->i", (np.eye(3), np.ones(3)), {"semiring": "tropical"}, "unknown semiring 'tropical'"),
    ("ij,j->i", (np.eye(3), np.ones(3)), {"symmetric": {2: True}}, "symmetric names operand 2"),
    ("ij,j->i", (np.eye(3), np.ones(3)), {"symmetric": {0: (0, 1)}}, "give a list of groups, e.g. [(0, 1)]"),
    ("ij,j->i", (np.eye(3), np.ones(3)), {"symmetric": {0: [(0, 2)]}}, "each group needs two or more distinct"),
    ("ij,j->i", (np.ones((3, 4)), np.ones(4)), {"symmetric": {0: True}}, "operand 0 is symmetric in modes (0, 1) "
                                                                          "but has shape (3, 4)"),
    ("ij,j->i", (sp.eye(3).tocsr(), np.ones(3)), {"semiring": "max*"}, "unstored zeros are not skippable"),
    ("ij,j->i", (np.eye(3) + 1j, np.ones(3)), {}, "operands of type complex128 are not supported"),
    ("ij,j->i", (np.eye(3), np.ones(4)), {}, "index 'j' has size 3 in operand 0 but 4 in operand 1"),
])
def test_bad_calls_are_one_line_errors(subscripts, operands, kwargs, message):
    with pytest.raises(systec_ref.InputError, match=None) as e:
        systec_ref.einsum(subscripts, *operands, backend="interp", **kwargs)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_declared_symmetric_operand_that_is_not_is_refused():
    A = np.arange(9.0).reshape(3, 3)
    with pytest.raises(systec_ref.InputError, match=r"^operand 0 is declared symmetric .* but is not"):
        systec_ref.einsum("ij,j->i", A, np.ones(3), symmetric={0: True}, backend="interp")


def test_out_is_written_and_returned():
    A = np.arange(9.0).reshape(3, 3)
    A = A + A.T
    out = np.empty(3)
    assert systec_ref.einsum("ij,j->i", A, np.ones(3), symmetric={0: True}, out=out, backend="interp") is out
    assert np.array_equal(out, A.sum(axis=1))
    with pytest.raises(systec_ref.InputError, match="out= must be a writeable float64 array of shape"):
        systec_ref.einsum("ij,j->i", A, np.ones(3), out=np.empty(4), backend="interp")


# -- prepared expressions -------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["interp", "c"])
def test_a_prepared_expression_reruns_and_takes_new_operands(backend):
    rng = np.random.default_rng(3)
    A = exactly_symmetric(rng.random((5, 5, 5)), ((0, 1, 2),))
    B = rng.random((5, 2))
    expr = systec_ref.einsum_prepare("ikl,lj,kj->ij", A, B, B, symmetric={0: True}, backend=backend)
    assert agree(expr(), np.einsum("ikl,lj,kj->ij", A, B, B), "float64")
    B2 = rng.random((5, 2))
    assert agree(expr(A, B2, B2), np.einsum("ikl,lj,kj->ij", A, B2, B2), "float64")
    assert agree(expr(), np.einsum("ikl,lj,kj->ij", A, B2, B2), "float64")  # the new operands are kept
    with pytest.raises(systec_ref.InputError, match="operands 1 and 2 were one array when prepared"):
        expr(A, B2, B2.copy())
    with pytest.raises(systec_ref.InputError, match="prepare it again for other sizes"):
        small = B2[:4]
        expr(A[:4, :4, :4], small, small)
    bad = A.copy()
    bad[0, 1, 2] += 1
    with pytest.raises(systec_ref.InputError, match="symmetric"):
        expr(bad, B2, B2)


def test_the_stages_are_cached_on_disk_for_the_next_process(tmp_path):
    import os
    import subprocess
    import sys

    from helpers import ROOT

    code = ("import sys, numpy as np, systec_ref\n"
            "from systec_ref.rewrite import pipeline\n"
            "if sys.argv[1] == 'second':\n"
            "    def refuse(*a, **k): raise SystemExit('the pipeline ran again')\n"
            "    pipeline.compile_stages = refuse\n"
            "A, B = np.ones((4, 4, 4)), np.ones((4, 2))\n"
            "k = systec_ref.einsum_kernel('ikl,lj,kj->ij', A, B, B, symmetric={0: True})\n"
            "print(len(k.stages), k.stages[-1].name)\n"
            "print(systec_ref.einsum('ikl,lj,kj->ij', A, B, B, symmetric={0: True}, backend='interp')[0, 0])\n")
    env = {**os.environ, "SYSTEC_REF_CACHE": str(tmp_path), "PYTHONPATH": str(ROOT)}
    runs = [subprocess.run([sys.executable, "-c", code, which], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=300) for which in ("first", "second")]
    for r in runs:
        assert r.returncode == 0, r.stderr
    assert runs[0].stdout == runs[1].stdout == f"{len(PASSES) + 1} mirror-written\n16.0\n"
    assert len(list(tmp_path.glob("einsum-*.stages"))) == 1


@pytest.mark.parametrize("backend", ["interp", "c"])
@pytest.mark.parametrize("n", [0, 1, 5, 7])
def test_every_nest_runs_at_sizes_above_the_largest_symmetric_set(n, backend):
    """A symmetric 4-tensor and a factor used three times: sets of 4, entered (strict nest) only when n > 4;
    7 is no multiple of the unroll factor."""
    rng = np.random.default_rng(n)
    A = exactly_symmetric(rng.uniform(-1, 1, (n,) * 4), ((0, 1, 2, 3),))
    B = rng.uniform(-1, 1, (n, 3))
    got = systec_ref.einsum("ijkl,jm,km,lm->im", A, B, B, B, symmetric={0: True}, backend=backend)
    assert agree(got, np.einsum("ijkl,jm,km,lm->im", A, B, B, B), "float64")
    S = exactly_symmetric(rng.uniform(-1, 1, (n, n)), ((0, 1),))
    S[rng.random((n, n)) < 0.5] = 0
    S = exactly_symmetric(S, ((0, 1),))
    x = rng.uniform(-1, 1, n)
    assert agree(systec_ref.einsum("ij,j->i", sp.csr_matrix(S), x, symmetric={0: True}, backend=backend), S @ x,
                 "float64")
