"""``tile`` and ``blas-calls``: tiled stages and BLAS calls agree with the definition, in the interpreter and in C.

* every example, float64 and int64 (where tiling does not apply), at tile sides 3 and 7 and sizes that
  are below, at and not multiples of the tile, n = 0 and 1: every stage in the interpreter (the tiled
  ones included) and the final stage in C;
* BLAS calls of every shape and layout ``blas-calls`` makes — ``gemm`` with each operand and the
  output as stored or transposed, inside a larger tensor at a fixed subscript, with a constant factor;
  ``gemv`` both ways; ``syrk`` of tiles — each asserted to be a call (so the test fails if the pass
  stops matching) and run in C against the definition;
* the loop nest a call stands for, run by the C when a size passes BLAS's int (the limit lowered);
* a missing BLAS says so.
"""

from __future__ import annotations

import helpers
import pytest
from test_passes_support import assert_stages_agree, variant

import systec_ref
from systec_ref.emit import c as c_emit
from systec_ref.emit import runtime
from systec_ref.errors import ToolError
from systec_ref.ir.nodes import BlasCall
from systec_ref.term import nodes

pytestmark = pytest.mark.usefixtures("private_c_cache")

TILES = (3, 7)
SIZES = (0, 1, 2, 4, 5, 8, 13)


def _calls(k: systec_ref.Kernel) -> list[str]:
    return sorted(n.routine for n in nodes(k.final.body) if isinstance(n, BlasCall))


def _agrees_in_c(k: systec_ref.Kernel, inputs: dict, context: str) -> None:
    want = k.definition(inputs).value
    got = k.run(backend="c", check=False, **inputs)
    a = systec_ref.agree(got, want, k.ast.output.dtype)
    assert a.ok, f"{context}: C disagrees with the definition: {a.detail}"


#: the float64 examples ``tile`` applies to: a strict triangle of a pair with a loop inside whose tiles become
#: BLAS calls (SSYMV and SYPRD are straight-line: memory-bound, left to unroll-and-jam; SSYRK's and SYR2K's
#: triangles with their diagonals are one dsyrk / dsyr2k; MTTKRP's and Coulomb's 2-variable faces would stay
#: loop nests): none of the examples; MIXED below is tiled
TILED: set[str] = set()

#: SYR2K plus SYRK: three products per point, not one BLAS routine over the triangle; its tiles are three dgemm
MIXED = ("kernel mixed\nin A[n, m]\nin B[n, m]\nout C[n, n]\n"
         "C[i, j] += A[i, k] * B[j, k] + B[i, k] * A[j, k] + A[i, k] * A[j, k]\n")

#: the interpreter's limit of n per example; C runs every size
INTERPRETED: dict[str, int] = {}


@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("path", [pytest.param(p, id=p.stem) for p in helpers.EXAMPLES])
def test_examples_tiled_every_stage_and_c(path, tile):
    for dtype in ("float64", "int64"):
        text = variant(path.read_text(encoding="utf-8"), dtype)
        if text is None:
            continue
        k = systec_ref.compile(text, str(path), tile=tile)
        tiled = next(s for s in k.stages if s.name == "tile").changed
        assert tiled == (dtype == "float64" and path.stem in TILED), \
            f"{path.stem} {dtype}: tile {'applied' if tiled else 'did not apply'}"
        if not tiled and tile != TILES[0]:
            continue  # the same program as at the first tile side
        for n in SIZES:
            inputs = k.random_inputs(helpers.sizes_for(k, n, 3), seed=n, density=0.6)
            context = f"{path.stem} {dtype} tile={tile} n={n}"
            if tiled and n <= INTERPRETED.get(path.stem, max(SIZES)):
                assert_stages_agree(k, inputs, context)
            _agrees_in_c(k, inputs, context)


@pytest.mark.parametrize("tile", [2, 3, 7])
def test_tiles_become_products_every_stage_and_c(tile):
    """MIXED in tiles: a row of tiles right of the diagonal is three dgemm, a row of a diagonal tile three dgemv."""
    k = systec_ref.compile(MIXED, tile=tile)
    assert _calls(k) == ["gemm"] * 3 + ["gemv"] * 3
    for n in SIZES:
        inputs = k.random_inputs({"n": n, "m": 3}, seed=n)
        assert_stages_agree(k, inputs, f"mixed tile={tile} n={n}")
        _agrees_in_c(k, inputs, f"mixed tile={tile} n={n}")


def test_matrix_kernels_call_blas():
    # the triangle with its diagonal is one rank-2k update, tiled or not
    assert _calls(systec_ref.load("syr2k", tile=4)) == ["syr2k"]
    assert _calls(systec_ref.load("syr2k", tile=0)) == ["syr2k"]
    # no tiles: each row of MIXED's triangle is three matrix-vector products
    assert _calls(systec_ref.compile(MIXED, tile=0)) == ["gemv"] * 3
    # the whole strict triangle and its diagonal are one rank-k update, tiled or not
    assert _calls(systec_ref.load("ssyrk", tile=4)) == ["syrk"]
    assert _calls(systec_ref.load("ssyrk", tile=0)) == ["syrk"]
    assert _calls(systec_ref.load("ssymv", tile=4)) == []  # straight-line triangles are not tiled
    # gemm-form: TTM's triangle (j,l) outermost, each row one product and its diagonal entry one gemv; MTTKRP's
    # summed indices outermost, the sum over the innermost of them one product with a scaled copy of B per
    # nest (the strict one and the faces with a loop left over it); with BLAS off, or an order line, nothing
    assert _calls(systec_ref.load("ttm")) == ["gemm", "gemv"]
    assert _calls(systec_ref.load("mttkrp3")) == ["gemm"]
    assert _calls(systec_ref.load("mttkrp4")) == ["gemm"] * 2
    assert _calls(systec_ref.load("mttkrp5")) == ["gemm"] * 4
    for name in ("ttm", "mttkrp3", "ssyrk", "syr2k"):
        assert _calls(systec_ref.load(name, blas=False)) == []
    ordered = (helpers.EXAMPLES_DIR / "ttm.ein").read_text().replace("C[i", "order k i j l\nC[i")
    assert _calls(systec_ref.compile(ordered)) == []
    assert _calls(systec_ref.load("ssyrk", symmetry=False)) == ["gemm"]  # the whole square: one product
    assert _calls(systec_ref.load("syr2k", symmetry=False)) == ["gemm", "gemm"]


GEMM = "kernel k\nin A[{a}] \nin B[{b}]\nout C[{c}]\n{c_sub} += {scale}A[{a_sub}] * B[{b_sub}]\n"

LAYOUTS = [
    # (dims and subscripts of A, B, C): each operand as stored and transposed
    ("n,m", "i,k", "m,r", "k,j", "n,r", "i,j", ""),
    ("m,n", "k,i", "m,r", "k,j", "n,r", "i,j", ""),
    ("n,m", "i,k", "r,m", "j,k", "n,r", "i,j", "2 * "),
    ("m,n", "k,i", "r,m", "j,k", "r,n", "j,i", ""),
    ("n,m", "i,k", "m,r", "k,j", "r,n", "j,i", "-0.5 * "),
]


@pytest.mark.parametrize("a, a_sub, b, b_sub, c, c_sub, scale", LAYOUTS)
def test_gemm_layouts(a, a_sub, b, b_sub, c, c_sub, scale):
    text = GEMM.format(a=a, b=b, c=c, scale=scale, a_sub=a_sub, b_sub=b_sub, c_sub=f"C[{c_sub}]")
    k = systec_ref.compile(text)
    assert _calls(k) == ["gemm"], text
    for n, m, r in ((4, 3, 5), (1, 1, 1), (0, 2, 3), (5, 0, 2)):
        inputs = k.random_inputs({"n": n, "m": m, "r": r}, seed=n + m + r)
        _agrees_in_c(k, inputs, f"{text} n={n} m={m} r={r}")


@pytest.mark.parametrize("text", [
    "kernel k\nin A[n,m]\nin x[m]\nout y[n]\ny[i] += A[i,j] * x[j]\n",
    "kernel k\nin A[m,n]\nin x[m]\nout y[n]\ny[i] += A[j,i] * x[j]\n",
    "kernel k\nin A[n,m]\nin x[m]\nout y[n]\ny[i] += x[j] * 3 * A[i,j]\n",
    # a gemm inside a 3-tensor, at the subscript l of an enclosing loop
    "kernel k\nin A[r,n,m]\nin B[m,n]\nout C[r,n,n]\nC[l,i,j] += A[l,i,k] * B[k,j]\n",
], ids=["gemv", "gemv-transposed", "gemv-scaled", "gemm-in-slab"])
def test_gemv_and_slabs(text):
    k = systec_ref.compile(text)
    assert _calls(k) in (["gemv"], ["gemm"]), text
    for n, m, r in ((4, 3, 2), (1, 1, 1), (0, 3, 2), (6, 5, 3)):
        inputs = k.random_inputs({"n": n, "m": m, "r": r}, seed=n)
        _agrees_in_c(k, inputs, f"{text} n={n} m={m} r={r}")


@pytest.mark.parametrize("factor", ["0", "1e400", "-1e400 * 2"])
def test_a_zero_or_infinite_factor_stays_a_loop(factor):
    """BLAS skips a product scaled by 0, and scales a sum where the nest scales each product (inf * 0 is NaN
    in the nest): such an update is not a BLAS call, and the C agrees with the definition on inf and NaN."""
    k = systec_ref.compile(f"kernel k\nin A[n,m]\nin B[m,r]\nout C[n,r]\nC[i,j] += {factor} * A[i,k] * B[k,j]\n")
    assert _calls(k) == []
    inputs = k.random_inputs({"n": 3, "m": 4, "r": 2}, seed=2)
    inputs["A"][0, 0], inputs["B"][1, 1] = float("inf"), 0.0
    _agrees_in_c(k, inputs, f"factor {factor}")


def test_gemv_on_a_transposed_copy():
    """With ``l`` outermost the nest over ``i, j`` would read ``A[:,:,l]``, along two modes neither of stride 1
    (not a BLAS operand: the golden ``blas-calls/no-unit-stride`` shows the refusal); ``concordize`` copies A so
    its reads follow the loop order, and the copy's slab is one."""
    k = systec_ref.compile("kernel k\nin A[n,n,m]\nin x[n]\nout y[n,m]\norder l i j\ny[i,l] += A[i,j,l] * x[j]\n")
    assert _calls(k) == ["gemv"]
    for n, m in ((5, 3), (1, 4), (0, 2), (4, 0)):
        inputs = k.random_inputs({"n": n, "m": m}, seed=n)
        _agrees_in_c(k, inputs, f"transposed copy n={n} m={m}")


@pytest.mark.parametrize("name", ["ssyrk", "syr2k", "mixed"])
def test_nest_runs_past_the_blas_int(monkeypatch, name):
    """With the limit of BLAS's int lowered to 2, every call of a 5x5 problem runs the loops it stands for."""
    monkeypatch.setattr(c_emit, "BLAS_INT_MAX", 2)
    k = systec_ref.compile(MIXED, tile=2) if name == "mixed" else systec_ref.load(name, tile=2)
    source = k.c_source()
    assert "INT64_C(2)" in source and "the loops the call stands for" in source
    for n in (3, 5, 9):
        inputs = k.random_inputs(helpers.sizes_for(k, n, 3), seed=n)
        _agrees_in_c(k, inputs, f"{name} n={n}, BLAS int limit 2")


def test_missing_blas_is_a_tool_error(monkeypatch):
    import sys
    import types

    monkeypatch.setattr(runtime, "_BLAS", {})
    monkeypatch.setitem(sys.modules, "scipy.linalg.cython_blas", types.ModuleType("scipy.linalg.cython_blas"))
    import scipy.linalg

    monkeypatch.setattr(scipy.linalg, "cython_blas", sys.modules["scipy.linalg.cython_blas"], raising=False)
    k = systec_ref.load("ssyrk", tile=2)
    inputs = k.random_inputs({"n": 5, "m": 3}, seed=0)
    with pytest.raises(ToolError, match="no BLAS routine"):
        k.run(backend="c", check=False, **inputs)


def test_tile_option_is_checked():
    with pytest.raises(systec_ref.SystecError, match="tile must be"):
        systec_ref.load("ssymv", tile=-1)


def test_blas_option_is_checked_and_reaches_the_cli(capsys):
    from systec_ref.cli import main

    with pytest.raises(systec_ref.SystecError, match="blas must be True or False"):
        systec_ref.load("ttm", blas="no")
    path = str(helpers.EXAMPLES_DIR / "mttkrp3.ein")
    assert main(["emit", path, "--no-blas"]) == 0
    out = capsys.readouterr().out
    assert "dgemm" not in out and "for (" in out
    assert main(["emit", path]) == 0
    assert "sx_dgemm(" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["ttm", "mttkrp3", "mttkrp4", "mttkrp5"])
def test_gemm_form_at_sizes_that_exercise_every_nest(name):
    """The BLAS forms of TTM and MTTKRP against the definition in C, n past the largest symmetric set (every
    face's nest runs) and not a multiple of anything, a rank of 1 and 0, and n = 0, 1; every stage in the
    interpreter at a size that runs every nest."""
    k = systec_ref.load(name)
    assert _calls(k), f"{name}: no BLAS call"
    largest = 23 if name in ("ttm", "mttkrp3") else 11  # (an order-5 tensor at n=23 holds 6.4M entries)
    for n, r in ((0, 3), (1, 3), (2, 1), (7, 3), (9, 0), (largest, 5)):
        inputs = k.random_inputs({"n": n, "r": r}, seed=n + r)
        _agrees_in_c(k, inputs, f"{name} n={n} r={r}")
    inputs = k.random_inputs({"n": 5, "r": 2}, seed=1)
    assert_stages_agree(k, inputs, f"{name} n=5 r=2")


@pytest.mark.parametrize("name", ["ttm", "mttkrp3", "mttkrp4", "mttkrp5"])
def test_gemm_form_costs_no_more_multiplications_than_the_whole_set(name):
    """The part of the symmetric set that gemm-form keeps does as many updates as the whole set (MTTKRP: the
    same count; TTM: the same multiplications), give or take the scaled copies of B (n r per nest and outer
    point): counted by the interpreter at n = 9, past every set."""
    blas, whole = systec_ref.load(name), systec_ref.load(name, blas=False)
    assert blas.stage("gemm-form").changed and not whole.stage("gemm-form").changed
    inputs = blas.random_inputs({"n": 9, "r": 3}, seed=3)
    got, want = blas.interpret(inputs).counts, whole.interpret(inputs).counts
    assert got.mults <= want.mults + 2 * got.copies, (got.mults, want.mults, got.copies)
    if name != "ttm":
        assert got.updates == want.updates
    base = blas.interpret(inputs, stage=blas.baseline[-1].program).counts
    assert got.mults < base.mults / 1.5


def test_gemm_form_declines_when_no_matrix_product_results():
    """TTM with a second summed index outside A's set: the part's strict nest would be one gemv per point, so
    the pipeline compiles again with gemm-form declining: A keeps its whole set, no loop order for BLAS."""
    text = ("kernel t\nin A[n, n, n, m] symmetric(0, 1, 2)\nin B[n, r, m]\nout C[r, n, n]\n"
            "C[i, j, l] += A[k, j, l, q] * B[k, i, q]\n")
    k = systec_ref.compile(text)
    assert k.stage("gemm-form").note == "not applied: blas-calls made no matrix product of the part's strict nest"
    assert k.final.tensor("A").symmetry == ((0, 1, 2),)
    inputs = k.random_inputs({"n": 5, "r": 2, "m": 3}, seed=0)
    _agrees_in_c(k, inputs, "declined")


def test_factors_on_the_sum_and_the_column_fold_into_the_copy():
    """TTM times D[k] (on the summed index only): the copy holds B[k,i] * D[k], and each row is one gemm."""
    text = ("kernel t\nin A[n, n, n] symmetric\nin B[n, r]\nin D[n]\nout C[r, n, n]\n"
            "C[i, j, l] += A[k, j, l] * B[k, i] * D[k]\n")
    k = systec_ref.compile(text)
    assert k.stage("gemm-form").changed and "gemm" in _calls(k)
    for n in (0, 1, 6):
        _agrees_in_c(k, k.random_inputs({"n": n, "r": 3}, seed=n), f"D[k] n={n}")
