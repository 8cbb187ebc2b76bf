"""Prepared kernels (``Kernel.prepare``), ``out=``, and the default backend (C where a compiler is found)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import EXAMPLES_DIR, ROOT

import systec_ref
from systec_ref.compare import agree


@pytest.fixture(scope="module")
def mttkrp4():
    k = systec_ref.load(EXAMPLES_DIR / "mttkrp4.ein")
    return k, k.random_inputs({"n": 6, "r": 3}, seed=4)


@pytest.mark.parametrize("backend", ["interp", "c"])
def test_prepared_calls_rerun_and_replace_inputs(mttkrp4, backend):
    k, ins = mttkrp4
    p = k.prepare(backend=backend, **ins)
    want = k.definition(ins).value
    assert agree(p(), want, "float64") and agree(p(), want, "float64")
    B2 = np.random.default_rng(1).random(ins["B"].shape)
    want2 = k.definition({"A": ins["A"], "B": B2}).value
    assert agree(p(B=B2), want2, "float64")
    assert agree(p(), want2, "float64")  # the replacement is kept
    out = np.empty_like(want)
    assert p(out=out) is out and agree(out, want2, "float64")


def test_a_replaced_input_is_checked(mttkrp4):
    k, ins = mttkrp4
    p = k.prepare(backend="c", **ins)
    with pytest.raises(systec_ref.InputError, match=r"dimension n is 6 from A \(mode 0\) but 7 from B"):
        p(B=np.ones((7, 3)))
    A7 = systec_ref.load(EXAMPLES_DIR / "mttkrp4.ein").random_inputs({"n": 7, "r": 3})["A"]
    with pytest.raises(systec_ref.InputError, match=r"was prepared with n=6; the new inputs give n=7 \(prepare it "):
        p(A=A7, B=np.ones((7, 3)))
    with pytest.raises(systec_ref.InputError, match=r"'C' is not an input of kernel mttkrp4"):
        p(C=np.ones((6, 3)))
    bad = ins["A"].copy()
    bad[0, 1, 2, 3] += 1.0
    with pytest.raises(systec_ref.InputError, match="declared symmetric"):
        p(A=bad)
    assert agree(p(), k.definition(ins).value, "float64")  # a refused replacement changes nothing
    unchecked = k.prepare(backend="c", check=False, **ins)
    unchecked(A=bad)  # not verified: only the canonical entries are read


def test_an_unchanged_input_is_not_checked_again(mttkrp4, monkeypatch):
    k, ins = mttkrp4
    p = k.prepare(backend="c", **ins)
    calls = []
    import systec_ref.tensors as tensors

    real = tensors.check_symmetry

    def spy(name, arr, groups, *rest, **kw):
        if (rest[0] if rest else kw.get("check", True)) is not False:  # a verifying call
            calls.append(name)
        return real(name, arr, groups, *rest, **kw)
    monkeypatch.setattr(tensors, "check_symmetry", spy)
    p(B=np.ones((6, 3)))
    p(A=ins["A"], B=np.zeros((6, 3)))  # A is the very same object: not checked again
    assert calls == []


def test_run_writes_into_out_without_a_copy_in_c():
    k = systec_ref.load(EXAMPLES_DIR / "ssymv.ein")
    ins = k.random_inputs({"n": 7}, seed=2)
    out = np.full(7, np.nan)
    assert k.run(backend="c", out=out, **ins) is out
    assert agree(out, k.definition(ins).value, "float64")
    with pytest.raises(systec_ref.InputError, match="overlaps an input"):
        k.run(backend="c", out=ins["x"], **ins)
    with pytest.raises(systec_ref.InputError, match="must be a writeable C-contiguous float64 array of shape"):
        k.run(backend="c", out=np.empty(7, dtype=np.float32), **ins)
    with pytest.raises(systec_ref.InputError, match="must be a writeable C-contiguous"):
        k.run(backend="c", out=np.empty(14)[::2], **ins)


def test_the_default_backend_is_c_when_a_compiler_is_found():
    k = systec_ref.load(EXAMPLES_DIR / "ssymv.ein")
    ins = k.random_inputs({"n": 5})
    assert systec_ref.api.default_backend() == "c"
    assert agree(k.run(**ins), k.definition(ins).value, "float64")
    assert k.__dict__.get("_cfuncs")  # it compiled


def test_without_a_compiler_the_interpreter_runs_and_says_so_once():
    code = ("import warnings, numpy as np, systec_ref\n"
            "k = systec_ref.load('examples/ssymv.ein')\n"
            "ins = k.random_inputs({'n': 4})\n"
            "a = k.run(**ins); b = k.run(**ins)\n"
            "print(np.array_equal(a, b), systec_ref.api.default_backend())\n")
    env = {**os.environ, "CC": "/nonexistent/cc", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "interp"]
    assert proc.stderr.count("InterpreterFallbackWarning") == 1
    assert "running kernels in the reference interpreter" in proc.stderr and "no C compiler" in proc.stderr
    assert proc.stderr.startswith("<string>:4: InterpreterFallbackWarning")  # the user's line, not ours
