"""Bad arrays and a bad toolchain give clear errors with the C backend.

Every array error is a :class:`systec_ref.InputError` raised before C sees the
array; a missing or failing compiler is a :class:`systec_ref.ToolError` whose
message says what to do.  Layout is not an error: a Fortran-ordered or strided
array is copied to C order by ``bind`` (documented in the README and in
``systec_ref.emit.runtime``), and the result is the same as for the C-ordered
array.  ``CFunction`` itself, the last check before C, refuses a non-C-contiguous
array, a wrong dtype or a wrong shape.
"""

from __future__ import annotations

import re

import helpers
import numpy as np
import pytest

import systec_ref
from systec_ref.emit import build
from systec_ref.tensors import symmetrize_index

#: compile into the session's private cache (conftest.py)
pytestmark = pytest.mark.usefixtures("private_c_cache")


_KERNELS: dict[str, systec_ref.Kernel] = {}


def kernel(name: str) -> systec_ref.Kernel:
    if name not in _KERNELS:
        _KERNELS[name] = systec_ref.load(helpers.example(name))
    return _KERNELS[name]


def run_c(name: str, **tensors):
    return kernel(name).run(backend="c", **tensors)


# -- shapes and dims ---------------------------------------------------------------

def test_wrong_number_of_dimensions():
    inputs = kernel("ssymv").random_inputs({"n": 4})
    with pytest.raises(systec_ref.InputError, match=r"A has 1 dimension \(shape \(16,\)\) but is declared A\[n, n\]"):
        run_c("ssymv", A=inputs["A"].ravel(), x=inputs["x"])


def test_inconsistent_dimensions_between_tensors():
    inputs = kernel("ssymv").random_inputs({"n": 4})
    with pytest.raises(systec_ref.InputError,
                       match=r"dimension n is 4 from A \(mode 0\) but 5 from x \(mode 0\)"):
        run_c("ssymv", A=inputs["A"], x=np.ones(5))


def test_inconsistent_dimensions_within_a_tensor():
    with pytest.raises(systec_ref.InputError, match=r"dimension n is 4 from A \(mode 0\) but 3 from A \(mode 1\)"):
        run_c("ssymv", A=np.ones((4, 3)), x=np.ones(4))


def test_fixed_dimension_of_the_wrong_size():
    k = systec_ref.compile("kernel fixed\nin A[3, n]\nin x[n]\nout y[3]\ny[i] += A[i, j] * x[j]\n")
    with pytest.raises(systec_ref.InputError, match=r"A \(mode 0\) has size 2 but is declared 3"):
        k.run(backend="c", A=np.ones((2, 4)), x=np.ones(4))
    y = k.run(backend="c", A=np.ones((3, 4)), x=np.arange(4.0))
    assert np.array_equal(y, [6.0, 6.0, 6.0])


def test_missing_and_unknown_inputs():
    inputs = kernel("ssymv").random_inputs({"n": 4})
    with pytest.raises(systec_ref.InputError, match=r"kernel ssymv needs input x"):
        run_c("ssymv", A=inputs["A"])
    with pytest.raises(systec_ref.InputError, match=r"'y' is the output of kernel ssymv"):
        run_c("ssymv", **inputs, y=np.zeros(4))


# -- dtypes ------------------------------------------------------------------------

def test_float_into_an_int64_kernel():
    inputs = kernel("triangles").random_inputs({"n": 4})
    with pytest.raises(systec_ref.InputError,
                       match=r"A has dtype float64, which does not convert safely to the declared int64"):
        run_c("triangles", A=inputs["A"].astype(np.float64))
    inputs = kernel("widest").random_inputs({"n": 4})
    with pytest.raises(systec_ref.InputError, match=r"d has dtype float32"):
        run_c("widest", W=inputs["W"], d=inputs["d"].astype(np.float32))


def test_complex_into_a_float64_kernel():
    inputs = kernel("ssymv").random_inputs({"n": 3})
    with pytest.raises(systec_ref.InputError, match=r"x has dtype complex128"):
        run_c("ssymv", A=inputs["A"], x=inputs["x"].astype(np.complex128))


def test_safe_conversions_are_accepted():
    """int32 into int64 and float32/int32 into float64 convert exactly and give the same result."""
    k = kernel("triangles")
    inputs = k.random_inputs({"n": 5}, seed=2)
    want = run_c("triangles", **inputs)
    assert np.array_equal(run_c("triangles", A=inputs["A"].astype(np.int32)), want)
    inputs = kernel("ssymv").random_inputs({"n": 5}, seed=2)
    x32 = inputs["x"].astype(np.float32)
    want = run_c("ssymv", A=inputs["A"], x=x32.astype(np.float64))
    assert np.array_equal(run_c("ssymv", A=inputs["A"], x=x32), want)
    A_int = np.ones((5, 5), dtype=np.int32)
    assert np.array_equal(run_c("ssymv", A=A_int, x=inputs["x"]), run_c("ssymv", A=A_int.astype(float), x=inputs["x"]))


# -- layout --------------------------------------------------------------------------

def test_fortran_ordered_arrays_are_copied_to_c_order():
    """Documented behaviour: ``bind`` copies a Fortran-ordered array to C order; the result is the same."""
    k = kernel("mttkrp3")
    inputs = k.random_inputs({"n": 4, "r": 3}, seed=1)
    want = run_c("mttkrp3", **inputs)
    B_f = np.asfortranarray(inputs["B"])
    A_f = np.asfortranarray(inputs["A"])
    assert not B_f.flags.c_contiguous and not A_f.flags.c_contiguous
    arrays, _ = k.bind({"A": A_f, "B": B_f})
    assert arrays["A"].flags.c_contiguous and arrays["B"].flags.c_contiguous
    assert np.array_equal(run_c("mttkrp3", A=A_f, B=B_f), want)
    assert np.array_equal(kernel("mttkrp3").run(backend="c", optimize=False, A=A_f, B=B_f),
                          kernel("mttkrp3").run(backend="c", optimize=False, **inputs))


def test_strided_and_reversed_views_are_copied_to_c_order():
    k = kernel("mttkrp3")
    inputs = k.random_inputs({"n": 4, "r": 3}, seed=4)
    want = run_c("mttkrp3", **inputs)
    wide = np.zeros((4, 6))
    wide[:, ::2] = inputs["B"]
    view = wide[:, ::2]
    assert not view.flags.c_contiguous
    assert np.array_equal(run_c("mttkrp3", A=inputs["A"], B=view), want)
    rev = inputs["B"][::-1].copy()[::-1]  # negative strides, same values
    assert np.array_equal(run_c("mttkrp3", A=inputs["A"], B=rev), want)


def test_cfunction_refuses_what_bind_would_have_fixed():
    """The last check before C: a direct call with an unconverted array is an InputError, not a wrong answer."""
    k = kernel("mttkrp3")
    arrays, dims = k.bind(k.random_inputs({"n": 4, "r": 3}))
    fn = k.c_function()
    with pytest.raises(systec_ref.InputError, match=r"B: expected a C-contiguous float64 array of shape \(4, 3\).*"
                                                     r"not C-contiguous"):
        fn({**arrays, "B": np.asfortranarray(arrays["B"])}, dims)
    with pytest.raises(systec_ref.InputError, match=r"B: expected a C-contiguous float64.*float32"):
        fn({**arrays, "B": arrays["B"].astype(np.float32)}, dims)
    with pytest.raises(systec_ref.InputError, match=r"B: expected .* of shape \(4, 3\), got float64 \(4, 2\)"):
        fn({**arrays, "B": arrays["B"][:, :2].copy()}, dims)


def test_scalar_output_is_a_0d_array():
    k = kernel("syprd")
    inputs = k.random_inputs({"n": 4})
    s = run_c("syprd", **inputs)
    assert isinstance(s, np.ndarray) and s.shape == () and s.dtype == np.float64
    assert systec_ref.agree(s, k.definition(inputs).value, "float64")


# -- symmetry --------------------------------------------------------------------------

def test_asymmetric_array_names_tensor_deviation_and_place():
    k = kernel("ssymv")
    inputs = k.random_inputs({"n": 4}, seed=0)
    A = inputs["A"].copy()
    A[1, 3] += 0.5
    A[0, 2] += 0.25
    with pytest.raises(systec_ref.InputError) as e:
        run_c("ssymv", A=A, x=inputs["x"])
    msg = str(e.value)
    assert "A is declared symmetric in modes (0, 1) but is not" in msg
    assert re.search(r"A\[1,3\] = .* while A\[3,1\] = ", msg) or re.search(r"A\[3,1\] = .* while A\[1,3\] = ", msg)
    assert "largest difference 0.5" in msg
    assert "check=False" in msg


def test_asymmetric_int64_and_partial_symmetry():
    inputs = kernel("triangles").random_inputs({"n": 4})
    A = inputs["A"].copy()
    A[0, 2] = A[2, 0] + 3
    with pytest.raises(systec_ref.InputError, match=r"A\[(0,2|2,0)\] = .*largest difference 3\b"):
        run_c("triangles", A=A)
    inputs = kernel("coulomb").random_inputs({"n": 3})
    G = inputs["G"].copy()
    G[1, 1, 2, 0] += 1.0  # breaks the second group only
    with pytest.raises(systec_ref.InputError, match=r"G is declared symmetric in modes \(2, 3\) but is not: "
                                                    r"G\[(1,1,2,0|1,1,0,2)\] = .*\(largest difference 1\)"):
        run_c("coulomb", G=G, D=inputs["D"])


def test_check_false_skips_the_symmetry_check_and_reads_the_canonical_triangle():
    for name in ("ssymv", "mttkrp3", "coulomb", "bellman", "triangles"):
        k = kernel(name)
        inputs = k.random_inputs(helpers.sizes_for(k, 4, 2), seed=9)
        decl = next(d for d in k.ast.inputs if d.symmetry)
        rng = np.random.default_rng(0)
        X = inputs[decl.name]
        noisy = (X + rng.integers(1, 3, size=X.shape)).astype(X.dtype)  # asymmetric everywhere off the diagonal
        with pytest.raises(systec_ref.InputError):
            k.run(backend="c", **{**inputs, decl.name: noisy})
        got = k.run(backend="c", check=False, **{**inputs, decl.name: noisy})
        canonical = noisy[symmetrize_index(noisy.shape, decl.symmetry)]
        want = k.run(backend="c", **{**inputs, decl.name: canonical})
        assert systec_ref.agree(got, want, k.ast.output.dtype), name
        assert systec_ref.agree(got, k.definition({**inputs, decl.name: canonical}).value, k.ast.output.dtype), name


# -- the toolchain ----------------------------------------------------------------------------

@pytest.fixture
def no_loaded(monkeypatch, tmp_path):
    """Empty in-process tables and a private cache dir (restored afterwards)."""
    monkeypatch.setattr(build, "_loaded", {})
    monkeypatch.setattr(build, "_versions", {})
    monkeypatch.setenv("SYSTEC_REF_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_missing_compiler(no_loaded, monkeypatch):
    monkeypatch.setenv("CC", "/nonexistent")
    k = systec_ref.load(helpers.example("ssymv"))
    inputs = k.random_inputs({"n": 3})
    with pytest.raises(systec_ref.ToolError) as e:
        k.run(backend="c", **inputs)
    msg = str(e.value)
    assert "\n" not in msg
    assert "/nonexistent" in msg and "CC" in msg
    # the interpreter still works without a compiler
    assert systec_ref.agree(k.run(**inputs), k.definition(inputs).value, "float64")


def test_compiler_that_fails(no_loaded, monkeypatch):
    monkeypatch.setenv("CC", "false")
    k = systec_ref.load(helpers.example("ssymv"))
    with pytest.raises(systec_ref.ToolError, match=r"C compilation failed .*\(exit 1\)\ncommand: false "):
        k.c_function()


def test_compile_error_shows_command_and_compiler_message(no_loaded, monkeypatch):
    monkeypatch.setenv("CFLAGS", "-Drestrict=garbage")
    k = systec_ref.load(helpers.example("ssymv"))
    with pytest.raises(systec_ref.ToolError) as e:
        k.run(backend="c", **k.random_inputs({"n": 3}))
    msg = str(e.value)
    assert "C compilation failed" in msg
    command = next(line for line in msg.splitlines() if line.startswith("command: "))
    assert "-Drestrict=garbage" in command and "-shared" in command and "ssymv" in command
    assert "error" in msg.split(command, 1)[1]  # the compiler's own message follows the command
    kept = re.search(r"failed for (\S+-failed\.c)", msg)
    assert kept and (no_loaded / kept.group(1).rsplit("/", 1)[-1]).is_file()


def test_bogus_compiler_flag(no_loaded, monkeypatch):
    monkeypatch.setenv("CFLAGS", "-O2 --bogus-systec-flag")
    k = systec_ref.load(helpers.example("ssymv"))
    with pytest.raises(systec_ref.ToolError) as e:
        k.c_function()
    msg = str(e.value)
    assert "command: " in msg
    assert msg.count("--bogus-systec-flag") >= 2  # in the command and in the compiler's complaint


def test_unknown_backend_and_stage():
    k = kernel("ssymv")
    with pytest.raises(systec_ref.SystecError,
                       match=r"unknown backend 'fortran' \(available: interp, c, or None: C where"):
        k.run(backend="fortran", **k.random_inputs({"n": 2}))
    with pytest.raises(systec_ref.SystecError, match=r"kernel ssymv has no stage 'bogus' \(stages: lower, "):
        k.c_function("bogus")
