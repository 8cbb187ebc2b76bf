"""sparse-iterate: nests over sparse tensors iterate stored entries, and agree with the definition."""

from __future__ import annotations

from pathlib import Path

import pytest

import systec_ref
from systec_ref.ir.nodes import SparseLevel
from systec_ref.term import nodes

ROOT = Path(__file__).resolve().parents[1]

# found by the random-kernel fuzzer: C[i,i,i] with only modes (0,1) symmetric; mode 2 repeats the
# subscript but the face does not pin it, so the nest must stay dense (it once iterated every b of (a,a,b))
REGRESSIONS = [
    "kernel k0\nin A[r, n] int64\nin B[n, r, r, r] int64\nin C[r, r, r] symmetric(0,1) int64 sparse\nout Y int64\n"
    "Y += -(-A[i, k] * -(B[k, i, i, i] * -(B[k, i, i, i] * -(C[i, i, i] * C[i, j, i]))))\n",
    "kernel k1\nin S[n, n, n, n] symmetric(0,1) sparse int64\nout Y int64\nY += S[i, j, k, i]\n",
    "kernel k2\nin S[n, n, n] symmetric(0,1) sparse int64\nin x[n] int64\nout y[n] int64\ny[k] += S[i, i, k] * x[i]\n",
    # a sparse tensor read against the loop order is copied (concordize): the copy must see unstored entries
    "kernel k3\nin A\nin B[n, n, r, n] sparse fill inf\nin C\nout Y\nY min= -(A + -(B[j, j, k, j] + -(-C + C)))\n",
]


@pytest.mark.parametrize("text", REGRESSIONS)
@pytest.mark.parametrize("symmetry", [True, False])
def test_regressions_agree_in_every_stage_and_in_c(text, symmetry):
    k = systec_ref.compile(text, symmetry=symmetry)
    for n in (1, 2, 3):
        for density in (0.0, 0.5, 1.0):
            inputs = k.random_inputs({"n": n, "r": 2}, seed=n, density=density)
            report = systec_ref.check(k, inputs)
            assert report.ok, report.notes()
            want = k.definition(inputs).value
            assert systec_ref.agree(k.run(backend="c", **inputs), want, k.ast.output.dtype)


def test_stored_entries_are_what_is_iterated():
    text = (ROOT / "examples" / "mttkrp3.ein").read_text().replace("symmetric", "symmetric sparse")
    k = systec_ref.compile(text)
    assert any(isinstance(n, SparseLevel) for n in nodes(k.final.body))
    inputs = k.random_inputs({"n": 6, "r": 2}, seed=4, density=0.2)
    res = k.interpret(inputs)
    stored = systec_ref.storage.for_program(k.final, k.bind(inputs)[0])["A"].stored
    # each stored canonical entry is read exactly once, and nothing else of A
    assert res.counts.reads["A"] == res.counts.distinct["A"] == stored
    assert systec_ref.agree(res.value, k.definition(inputs).value, "float64")
