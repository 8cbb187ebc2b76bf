"""Sparse outputs (``out C[n, n] sparse``): returned as a SparseTensor, canonical-only in the output
symmetry the compiler found; the C gathers updates by row (or in a buffer of entries, or, past the dense
output's size, a dense array) and stores them by face (emit/sparse_out.py)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import systec_ref
from systec_ref import InputError, SparseTensor

#: compile into the session's private cache (conftest.py)
pytestmark = pytest.mark.usefixtures("private_c_cache")

KERNELS = {
    "ssyrk": "kernel s\nin A[n, m] sparse\nout C[n, n] sparse\nC[i, j] += A[i, k] * A[j, k]\n",
    # k outermost: the rows come in no order (counted, then put in their places)
    "ssyrk_kij": "kernel s\nin A[n, m] sparse\nout C[n, n] sparse\norder k i j\nC[i, j] += A[i, k] * A[j, k]\n",
    # no output symmetry: every entry stored
    "spgemm": "kernel g\nin A[n, m] sparse\nin B[m, p] sparse\nout C[n, p] sparse\nC[i, j] += A[i, k] * B[k, j]\n",
    # an order-3 symmetric output: faces strict, (0,1) equal, (1,2) equal, all equal
    "cube": "kernel c\nin A[n, m] sparse\nout C[n, n, n] sparse\nC[i, j, l] += A[i, k] * A[j, k] * A[l, k]\n",
    "int": "kernel t\nin A[n, m] sparse int64\nout C[n, n] sparse int64\nC[i, j] += A[i, k] * A[j, k]\n",
    "minplus": "kernel mp\nin A[n, n] symmetric\nout D[n, n] sparse fill inf\nD[i, j] min= A[i, k] + A[k, j]\n",
    # a vector: the sweep over rows (reverse-sweep) must not assign a sparse output's first update
    "spmv": "kernel v\nin A[n, n] symmetric sparse\nin x[n]\nout y[n] sparse\ny[i] += A[i, j] * x[j]\n",
}


def _inputs(k, n: int, seed: int, density: float = 0.4) -> dict:
    sizes = {d: n if d == "n" else max(n - 1, 0) for d in k.default_sizes()}
    return k.random_inputs(sizes, seed, density)


def _faces_equal(a: SparseTensor, b: SparseTensor) -> None:
    assert a.shape == b.shape and a.symmetry == b.symmetry and a.dtype == b.dtype
    assert sorted(a.faces) == sorted(b.faces)
    for key in a.faces:
        fa, fb = a.faces[key], b.faces[key]
        for x, y in [*zip(fa.pos, fb.pos), *zip(fa.crd, fb.crd)]:
            np.testing.assert_array_equal(x, y)
            assert x.dtype == y.dtype
        # values: the C may sum in another order (float64 within the suite's 1e-12)
        assert fa.vals.dtype == fb.vals.dtype
        assert systec_ref.agree(fa.vals, fb.vals, str(fa.vals.dtype))


@pytest.mark.parametrize("name", sorted(KERNELS))
@pytest.mark.parametrize("n", [0, 1, 2, 5, 9])
def test_c_interpreter_and_definition_agree(name, n):
    k = systec_ref.compile(KERNELS[name])
    for seed in range(2):
        x = _inputs(k, n, seed)
        want = k.definition(x).value
        got, interp = k.run(backend="c", **x), k.run(backend="interp", **x)
        base = k.run(backend="c", optimize=False, **x)
        for v in (got, interp, base):
            assert isinstance(v, SparseTensor)
            assert systec_ref.agree(v, want, k.ast.output.dtype)
        assert got.symmetry == k.final.facts.output_symmetry and base.symmetry == ()
        # the C stores exactly what the storage's own conversion stores (faces, levels, index widths)
        _faces_equal(got, interp)
        _faces_equal(got, SparseTensor.from_dense(want, got.symmetry, fill=got.fill, check=False))


def test_ssyrk_stores_the_canonical_triangle_only():
    k = systec_ref.load("sparse/ssyrk_sparse")
    assert k.final.facts.output_symmetry == ((0, 1),)
    assert "no mirror" in k.stage("replicate-output").note
    A = sp.random(40, 30, density=0.2, random_state=3, format="csr")
    C = k.run(A=A)
    full = (A @ A.T).toarray()
    assert C.stored == np.count_nonzero(np.triu(full))
    assert sorted(C.faces) == [(0,), (1,)]  # strict triangle and diagonal
    np.testing.assert_allclose(C.to_dense(), full, rtol=1e-12)
    assert np.array_equal(C.to_scipy().toarray(), C.to_dense())


def test_more_entries_than_the_dense_output_holds_go_dense():
    """60k updates onto 20k entries would take more bytes than the whole output as a dense array: they go
    into one (the same result)."""
    k = systec_ref.compile(KERNELS["ssyrk_kij"])
    A = np.random.default_rng(0).uniform(-1, 1, (200, 3))
    C = k.run(A=SparseTensor.from_dense(A))
    assert C.stored == 200 * 201 // 2
    np.testing.assert_allclose(C.to_dense(), A @ A.T, rtol=1e-12, atol=1e-14)


def test_cancellation_to_the_fill_is_not_stored():
    k = systec_ref.compile("kernel g\nin A[n, m] sparse\nin B[m, p] sparse\nout C[n, p] sparse\n"
                           "C[i, j] += A[i, k] * B[k, j]\n")
    A = np.array([[1.0, 1.0]])
    B = np.array([[1.0], [-1.0]])
    C = k.run(A=A, B=B)
    assert C.stored == 0 and C.to_dense().tolist() == [[0.0]]


def test_hypersparse_output_beyond_int64_elements():
    """5e9 x 5e9 outputs: more elements than int64 counts, so never dense; 64-bit coordinates."""
    n = 5_000_000_000
    coords = np.array([[0, 0], [n - 1, 0], [n - 1, 1], [7, 1]])
    A = SparseTensor.from_coo(coords, np.array([2.0, 3.0, 5.0, 7.0]), (n, 2))
    C = systec_ref.compile(KERNELS["ssyrk"]).run(backend="c", A=A)
    got = {tuple(int(v) for v in c): float(x) for c, x in zip(*C.coo())}
    assert got == {(0, 0): 4.0, (0, n - 1): 6.0, (7, 7): 49.0, (7, n - 1): 35.0, (n - 1, n - 1): 34.0}
    assert C.faces[(0,)].crd[1].dtype == np.int64


def test_min_plus_keeps_nan_out_like_the_dense_output():
    k = systec_ref.compile(KERNELS["minplus"])
    A = np.array([[0.0, np.nan, 2.0], [np.nan, 1.0, 4.0], [2.0, 4.0, np.inf]])
    want = k.definition({"A": A}).value
    for backend in ("c", "interp"):
        assert systec_ref.agree(k.run(backend=backend, A=A), want, "float64")


def test_prepared_calls_return_fresh_tensors():
    k = systec_ref.load("sparse/ssyrk_sparse")
    A = sp.random(30, 20, density=0.2, random_state=1, format="csr")
    p = k.prepare(A=A)
    first, second = p(), p()
    assert first is not second and first.stored == second.stored
    B = sp.random(30, 20, density=0.3, random_state=2, format="csr")
    np.testing.assert_allclose(p(A=B).to_dense(), (B @ B.T).toarray(), rtol=1e-12)
    # the arrays are views of the block the kernel returned, not of its scratch: later calls leave them be
    keep = first.faces[(0,)].crd[1], first.faces[(0,)].vals
    want = [a.copy() for a in keep]
    del first
    for _ in range(4):
        p()
    for a, w in zip(keep, want):
        np.testing.assert_array_equal(a, w)


def test_the_block_is_freed_once_when_its_last_view_is_gone(monkeypatch):
    """The result's arrays are views of the block the kernel malloc'ed: it is freed when the last of them
    is gone, exactly once, and not before."""
    import gc

    from systec_ref.emit import sparse_out

    freed: list[int] = []
    real = sparse_out._Block.__del__

    def counted(self):
        freed.append(self._address.value)
        real(self)

    monkeypatch.setattr(sparse_out._Block, "__del__", counted)
    p = systec_ref.load("sparse/ssyrk_sparse").prepare(A=sp.random(40, 30, density=0.2, random_state=3,
                                                                   format="csr"))
    got = p()
    vals = got.faces[(0,)].vals
    del got
    gc.collect()
    assert freed == []
    want = vals.copy()
    del vals
    gc.collect()
    assert len(freed) == 1
    p(), p()
    gc.collect()
    assert len(freed) == 3
    np.testing.assert_array_equal(want, p().faces[(0,)].vals)


@pytest.mark.parametrize("kw", [{"out": np.zeros((3, 3))}, {"packed_output": True}])
def test_out_and_packed_output_do_not_apply(kw):
    k = systec_ref.load("sparse/ssyrk_sparse")
    with pytest.raises(InputError, match="its output C is sparse, returned as a SparseTensor"):
        k.run(A=np.eye(3), **kw)
    with pytest.raises(InputError, match="sparse"):
        k.prepare(A=np.eye(3))(out=np.zeros((3, 3)))


def test_the_verifier_refuses_a_read_or_an_overwrite_of_a_sparse_output():
    from systec_ref.ir.edit import replace_body
    from systec_ref.ir.nodes import Assign, Elem, Read
    from systec_ref.ir.verify import verify
    from systec_ref.term import postwalk

    p = systec_ref.load("sparse/ssyrk_sparse").naive

    def overwrite(n):
        return Assign(n.target, "=", n.value) if isinstance(n, Assign) and isinstance(n.target, Elem) else None

    def read_back(n):
        if isinstance(n, Assign) and isinstance(n.target, Elem):
            return Assign(n.target, n.op, Read("C", n.target.idx, ()))
        return None
    assert "updates sparse output 'C' with '='" in verify(replace_body(p, postwalk(overwrite)(p.body)))
    assert "reads sparse output 'C'" in verify(replace_body(p, postwalk(read_back)(p.body)))


def test_a_large_buffer_is_compacted_and_hypersparse_rows_are_sorted():
    """1.5M updates onto 500k entries of a 10^7 x 10^7 output (never dense): the buffer is compacted when
    it reaches 2^20 entries, and the rows are too many for a row accumulator, so the end sorts."""
    n, rows = 10_000_000, np.arange(0, 10_000_000, 10_000)
    vals = np.random.default_rng(5).integers(1, 4, (len(rows), 3))
    coords = np.array([(r, c) for r in rows for c in range(3)])
    A = SparseTensor.from_coo(coords, vals.reshape(-1), (n, 3))
    k = systec_ref.compile(KERNELS["int"])
    C = k.run(backend="c", A=A)
    full = vals @ vals.T
    got_c, got_v = C.coo()
    want = {(int(rows[a]), int(rows[b])): int(full[a, b]) for a in range(len(rows)) for b in range(a, len(rows))}
    assert C.stored == len(want)
    assert dict(zip(map(tuple, got_c.tolist()), got_v.tolist())) == want


def test_a_prepared_call_reuses_its_workspace_and_hint():
    """A prepared kernel's next call starts where the last ended: dense if it went dense (the hint), with
    the scratch it needed; results are the same as the first call's."""
    k = systec_ref.compile(KERNELS["ssyrk"])
    A = np.random.default_rng(1).uniform(-1, 1, (150, 40))
    A[A < 0.3] = 0
    p = k.prepare(A=SparseTensor.from_dense(A))
    first, second, third = p(), p(), p()
    for got in (first, second, third):
        _faces_equal(got, first)
        np.testing.assert_allclose(got.to_dense(), A @ A.T, rtol=1e-12, atol=1e-13)


def test_calls_from_several_threads_each_have_their_workspace():
    from concurrent.futures import ThreadPoolExecutor

    k = systec_ref.load("sparse/ssyrk_sparse")
    mats = [sp.random(300, 200, density=d, random_state=s, format="csr") for s, d in enumerate((0.01, 0.2, 0.05))]
    preps = [k.prepare(A=m) for m in mats]
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda q: preps[q % 3]().to_dense(), range(24)))
    for q, got in enumerate(results):
        np.testing.assert_allclose(got, (mats[q % 3] @ mats[q % 3].T).toarray(), rtol=1e-12)


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_the_c_is_warning_free_c99(name, tmp_path, c_compiler):
    """Both runs of the loops (count, then put) and the accumulator's helpers: clean C99 (no compiler is a
    failure, as for every C test: ./dev.sh installs one)."""
    import subprocess

    cc = c_compiler
    k = systec_ref.compile(KERNELS[name])
    for stage in (None, "baseline"):
        src = tmp_path / f"{name}-{stage or 'final'}.c"
        src.write_text(k.c_source(stage))
        r = subprocess.run([cc, "-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror", "-fsyntax-only", str(src)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr


def test_the_loops_run_twice_only_where_that_is_safe():
    from systec_ref.emit.sparse_out import runs_twice

    assert runs_twice(systec_ref.compile(KERNELS["ssyrk_kij"]).final)
    assert not runs_twice(systec_ref.compile(KERNELS["cube"]).final)  # order 3: the buffer
    assert not runs_twice(systec_ref.compile(KERNELS["minplus"]).final)  # a NaN update is dropped
    assert "first run: count" in systec_ref.compile(KERNELS["ssyrk_kij"]).c_source()


@pytest.mark.parametrize(("name", "by_rows"), [("ssyrk", True), ("spgemm", True), ("int", True), ("ssyrk_kij", False),
                                              ("cube", False), ("spmv", False)])
def test_rows_in_order_are_accumulated_one_at_a_time(name, by_rows):
    """Gustavson's order (i outermost, every update in row i): each row in one dense accumulator row, finished
    when the loop moves on; the first run that would count each row's updates is skipped then."""
    from systec_ref.emit.sparse_out import row_loop

    k = systec_ref.compile(KERNELS[name])
    assert (row_loop(k.final) is not None) == by_rows
    src = k.c_source()
    assert ("sx_row_end_C(&sx_acc_C, i);" in src) == by_rows
    if by_rows and "first run: count" in src:
        assert "if (!(sx_by_rows_C(&sx_acc_C))) {  /* first run" in src
        # (found by review: the count run's counters were taken, and leaked, even when it was skipped)
        assert "((int64_t)1 << 22) && !o->mark) {" in src


def test_rows_in_order_wider_than_the_row_arrays_use_the_buffer():
    """2^20 + 5 columns: no accumulator row (24 bytes a column, set on every call); the updates go to the
    buffer and its finish instead — the same entries, sorted."""
    from systec_ref.emit.sparse_out import ROW_COLS_LOG2

    n = (1 << ROW_COLS_LOG2) + 5
    coords = np.array([[n - 1, 0], [3, 0], [3, 1], [n - 2, 1]])
    A = SparseTensor.from_coo(coords, np.array([2.0, 3.0, 5.0, 7.0]), (n, 2))
    for name in ("ssyrk", "ssyrk_kij"):
        C = systec_ref.compile(KERNELS[name]).run(backend="c", A=A)
        got = {tuple(int(v) for v in c): float(x) for c, x in zip(*C.coo())}
        assert got == {(3, 3): 34.0, (3, n - 2): 35.0, (3, n - 1): 6.0, (n - 2, n - 2): 49.0, (n - 1, n - 1): 4.0}


@pytest.mark.parametrize("name", ["ssyrk", "spgemm", "ssyrk_kij"])
def test_faces_beyond_their_first_room_are_whole_and_well_formed(name):
    """More entries and more rows in each face than the first room of its arrays (rows in order store each
    row straight into its faces' arrays, which double; the other ways build the faces in one pass over the
    sorted entries): every entry of the product, each face's positions increasing from 0 to its entries,
    coordinates increasing within each fiber.  Twice: the second call starts from the first's hint."""
    from systec_ref.emit.sparse_out import FIRST_CAPACITY

    n = 2 * FIRST_CAPACITY + 37
    A = sp.random(n, 2000, density=0.0008, random_state=5, format="csr")
    B = sp.random(2000, n, density=0.0008, random_state=6, format="csr")
    k = systec_ref.compile(KERNELS[name])
    p = k.prepare(A=A, B=B) if name == "spgemm" else k.prepare(A=A)
    want = sp.coo_matrix(A @ B if name == "spgemm" else sp.triu(A @ A.T))
    want.sum_duplicates()
    expect = {(int(r), int(c)): float(v) for r, c, v in zip(want.row, want.col, want.data) if v != 0}
    for _ in range(2):
        C = p()
        for f in C.faces.values():
            assert int(f.pos[0][0]) == 0 and int(f.pos[0][-1]) == len(f.crd[0])
            if len(f.crd) == 2:
                assert np.all(np.diff(f.pos[1].astype(np.int64)) > 0) and int(f.pos[1][-1]) == f.nnz
                assert np.all(np.diff(f.crd[0].astype(np.int64)) > 0)
                for q in range(len(f.crd[0])):
                    assert np.all(np.diff(f.crd[1][f.pos[1][q]:f.pos[1][q + 1]].astype(np.int64)) > 0)
            else:
                assert np.all(np.diff(f.crd[0].astype(np.int64)) > 0)
        coords, vals = C.coo()
        got = {tuple(int(v) for v in c): float(x) for c, x in zip(coords, vals)}
        assert got.keys() == expect.keys()
        np.testing.assert_allclose([got[c] for c in expect], list(expect.values()), rtol=1e-12)
    if name != "spgemm":
        assert len(C.faces[(0,)].crd[0]) > FIRST_CAPACITY and C.faces[(0,)].nnz > FIRST_CAPACITY
        assert C.faces[(1,)].nnz > FIRST_CAPACITY
    else:
        assert len(C.faces[()].crd[0]) > FIRST_CAPACITY and C.faces[()].nnz > FIRST_CAPACITY


@pytest.mark.parametrize("name", ["ssyrk", "ssyrk_kij"])
def test_rows_of_many_columns_are_sorted(name):
    """Rows of C with about 120 columns of 9000: more than insertion sort takes (32), fewer than a scan of
    the marks pays for (one in 16 columns), so each row's columns go through the quicksort."""
    rng = np.random.default_rng(8)
    n, m = 9000, 300
    rows = np.repeat(np.arange(n), 2)
    A = sp.csr_matrix((rng.uniform(0.5, 1.5, 2 * n), (rows, rng.integers(0, m, 2 * n))), shape=(n, m))
    C = systec_ref.compile(KERNELS[name]).run(backend="c", A=A)
    want = sp.coo_matrix(sp.triu(A @ A.T))
    row_sizes = np.bincount(want.row, minlength=n)
    assert 33 < np.median(row_sizes) < n / 16
    coords, vals = C.coo()
    got = np.lexsort((coords[:, 1], coords[:, 0]))
    exp = np.lexsort((want.col, want.row))
    np.testing.assert_array_equal(coords[got], np.stack([want.row, want.col], axis=1)[exp])
    np.testing.assert_allclose(vals[got], want.data[exp], rtol=1e-12)


def test_rows_in_order_too_wide_for_their_arrays_start_dense_on_the_next_call():
    """Found by review: rows in order but more than 2^20 columns (no row arrays: the buffer) and so many
    updates that the call went dense; the next call starts dense (the hint) and must not give back the
    face arrays of rows in order, which it never took."""
    from systec_ref.emit.sparse_out import ROW_COLS_LOG2

    p_cols = (1 << ROW_COLS_LOG2) + 5
    A = sp.csr_matrix(np.ones((2, 8)))
    B = sp.random(8, p_cols, density=0.1, random_state=4, format="csr")
    prepared = systec_ref.compile(KERNELS["spgemm"]).prepare(A=A, B=B)
    want = np.asarray((A @ B).todense())
    for _ in range(3):
        got = prepared()
        coords, vals = got.coo()
        dense = np.zeros(want.shape)
        dense[coords[:, 0], coords[:, 1]] = vals
        np.testing.assert_allclose(dense, want, rtol=1e-12)


def test_a_sparse_vector_output_is_only_added_to():
    """Found by review: with A's rows a dense first level, reverse-sweep assigned each row's first update,
    which a sparse output refuses (an internal error); it now declines and says why."""
    k = systec_ref.compile(KERNELS["spmv"])
    A, x = np.diag([1.0, 2.0]), np.ones(2)
    for backend in ("c", "interp"):
        got = k.run(backend=backend, A=A, x=x)
        assert got.to_dense().tolist() == [1.0, 2.0]
    assert "sparse output" in k.for_data(k.bind({"A": A, "x": x})[0]).stage("reverse-sweep").note
