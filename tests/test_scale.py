"""Scale: 64-bit index arithmetic, modes beyond 2^31, and a 10M-entry
order-5 symmetric tensor converted and run within a stated memory bound.

* Every integer the generated C computes with is ``int64_t`` (or ``size_t`` for the extent of an
  array); ``int`` appears only as the return type and in the subscript sort of a mirrored
  output, whose loops run over at most the order of the tensor.
* A sparse tensor of shape 5e9 x 5e9 with a handful of entries is stored in a few hundred bytes
  (the top level of the compressed format lists only the stored rows) and runs in C, optimized
  and baseline, against the definition evaluated on the same entries renumbered into a small
  index space.  Dense vectors of that length are sparse files mapped into memory: only the
  pages a kernel touches are ever read, so the test needs neither the memory nor the disk.  The
  interpreter is not run: it reads inputs as dense arrays (``Kernel.run`` densifies for it).
* 10M canonical entries of an order-5 symmetric tensor (n = 200), given as shuffled COO:
  conversion and one run of examples/sparse/mttkrp5.ein in C, in a fresh process whose peak
  resident memory must stay within the bound stated in :func:`test_ten_million_entries_order_5`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import helpers
import numpy as np
import pytest

import systec_ref
from systec_ref.storage import SparseTensor

pytestmark = pytest.mark.usefixtures("c_compiler")

# -- 64-bit index arithmetic ---------------------------------------------------------------

#: every use of a C integer type other than int64_t/size_t that the emitter may write
_ALLOWED_INT = [
    re.compile(r"^(?:SX_\w+ )*int systec_\w+\("),                      # the return type (0 or 1)
    re.compile(r"^\s*\{ const int p\[\d\] = \{[\d, ]+\};$"),            # sort helper: group positions
    re.compile(r"^\s*for \(int a = 1; a < \d; \+\+a\) \{$"),             # ... insertion sort within a group
    re.compile(r"^\s*int64_t x = v\[p\[a\]\]; int b = a - 1;$"),
    # a BLAS call: its sizes, checked to fit (<= 2**31 - 1) and narrowed for BLAS's int, right before it
    re.compile(r"^\s*const int sx_b_\w+ = \(int\)sx_b_\w+64;$"),
]
#: the types of the BLAS routines a kernel is passed (their interface: char and int pointers)
_BLAS_TYPEDEF = re.compile(r"^typedef void \(\*sx_d\w+_fn\)\([^;]*\);$")
# uint64_t is 64 bits: int64 values wrap through it (see _u64 in emit/c.py)
_NARROW = re.compile(r"\b(?:short|long|unsigned|signed|char|int8_t|int16_t|int32_t|uint(?!64_t)\w*|ptrdiff_t)\b")


def _code_lines(source: str) -> list[str]:
    text = re.sub(r"/\*.*?\*/", "", source, flags=re.S)
    return [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _sources() -> list[tuple[str, str]]:
    out = []
    for path in helpers.EXAMPLES:
        text = path.read_text()
        for variant in dict.fromkeys([helpers.dense_variant(text), helpers.sparse_variant(text)]):
            k = systec_ref.compile(variant, str(path))
            out += [(f"{path.stem} {s.name}", k.c_source(s.name)) for s in k.stages]
            out.append((f"{path.stem} baseline", k.c_source("baseline")))
            kc = systec_ref.compile(variant, str(path), faces="compact")
            out += [(f"{path.stem} compact", kc.c_source()), (f"{path.stem} compact baseline",
                                                              kc.c_source("baseline"))]
    return out


@pytest.mark.slow
def test_all_index_arithmetic_in_generated_c_is_64_bit():
    sources = _sources()
    assert len(sources) > 300
    loops = 0
    for label, src in sources:
        for line in _code_lines(src):
            if _BLAS_TYPEDEF.match(line):
                continue
            assert not _NARROW.search(line), f"{label}: narrow integer type in: {line}"
            if re.search(r"\bint\b", line):
                assert any(p.search(line) for p in _ALLOWED_INT), f"{label}: 'int' in: {line}"
            for head in re.findall(r"for \((\w+)", line):
                loops += 1
                assert head in ("int64_t", "size_t", "int"), f"{label}: loop variable of type {head}: {line}"
            # dimensions and sparse positions/coordinates are passed as int64_t
            if re.match(r"(?:SX_\w+ )*int systec_", line):
                params = re.findall(r"(?:\(|, )(?:const )?(\w+) (\*restrict )?(\w+)(?=[,)])", line)
                assert params, line
                for ctype, pointer, name in params:
                    if re.fullmatch(r"sx_d\w+_fn", ctype):  # the address of a BLAS routine
                        continue
                    index = not pointer or re.search(r"_(?:pos|crd)\d+$", name)
                    assert ctype in (("int64_t",) if index else ("double", "float", "int64_t")), (label, name, line)
    assert loops > 1000


def test_the_c_function_takes_64_bit_dimensions_and_positions():
    k = systec_ref.load(helpers.EXAMPLES_DIR / "sparse" / "ssymv.ein")
    sig = next(line for line in k.c_source().splitlines() if re.match(r"(?:SX_\w+ )*int systec_", line))
    assert re.match(r"(?:SX_\w+ )*int systec_ssymv\(int64_t n, ", sig)
    assert re.findall(r"const (\w+) \*restrict A_f\d_(?:pos|crd)\d", sig) == ["int64_t"] * 6
    fn = k.c_function()
    import ctypes

    assert fn.fn.argtypes[0] is ctypes.c_int64


# -- a mode beyond 2^31 ------------------------------------------------------------------------

N = 5_000_000_000   # > 2^32: coordinates do not fit in 32 bits, signed or not
M = 3_000_000_000
EDGE = [0, 1, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**32 + 7, N - 2, N - 1]

HUGE = {
    "syprd": (lambda: (helpers.EXAMPLES_DIR / "sparse" / "syprd.ein").read_text(), {"n": N}),
    "cubic": (lambda: helpers.set_sparse(helpers.example("cubic").read_text(), {"A"}), {"n": N}),
    "bilinear": (lambda: "kernel bilinear\nin A[n, m] sparse\nin w[n]\nin x[m]\nout s\n"
                         "s += w[i] * A[i, j] * x[j]\n", {"n": N, "m": M}),
}


def _entries(d, sizes: dict[str, int], rng) -> np.ndarray:
    """Coordinates at the edges of 32-bit ranges (canonical if symmetric), a few random ones."""
    extents = [sizes[x] for x in d.dims]
    picks = [np.array([e for e in EDGE if e < s] + list(rng.integers(0, s, 3)), dtype=np.int64) for s in extents]
    rows = {tuple(int(rng.choice(p)) for p in picks) for _ in range(12)}
    rows |= {tuple(min(e, s - 1) for s in extents) for e in EDGE}  # every edge on the diagonal, too
    coords = np.array(sorted(rows), dtype=np.int64)
    for g in d.symmetry:
        coords[:, list(g)] = np.sort(coords[:, list(g)], axis=1)
    return np.unique(coords, axis=0)


@pytest.mark.parametrize("case", sorted(HUGE))
def test_a_mode_of_size_beyond_2_31(case, tmp_path):
    text, sizes = HUGE[case][0](), HUGE[case][1]
    k = systec_ref.compile(text, case)
    rng = np.random.default_rng(7)
    big: dict[str, object] = {}
    used: dict[str, set[int]] = {d: set() for d in sizes}
    sparse_coo = {}
    for d in k.ast.inputs:
        if d.format == "sparse":
            c = _entries(d, sizes, rng)
            v = rng.uniform(-2, 2, len(c))
            sparse_coo[d.name] = (c, v)
            t = SparseTensor.from_coo(c, v, tuple(sizes[x] for x in d.dims), d.symmetry, check=False, name=d.name)
            # compressed at every level: a few hundred bytes, not one position per row
            assert t.memory_bytes() < 64 * len(c) * d.order, t.report(d.name)
            assert all(len(f.pos[0]) == 2 and len(f.crd[0]) <= len(c) for f in t.faces.values())
            big[d.name] = t
            for mode, x in enumerate(d.dims):
                used[x] |= set(c[:, mode].tolist())
    dense_vals = {}
    for d in k.ast.inputs:
        if d.format != "sparse":
            (x,) = d.dims
            arr = np.memmap(tmp_path / d.name, dtype=np.float64, mode="w+", shape=(sizes[x],))
            at = sorted(used[x]) + [int(i) for i in rng.integers(0, sizes[x], 4)]  # and some where A is empty
            vals = rng.uniform(-2, 2, len(at))
            arr[at] = vals
            dense_vals[d.name] = arr
            big[d.name] = arr
    # the same entries renumbered into a small index space: the definition can evaluate that
    small_index = {x: np.array(sorted(u), dtype=np.int64) for x, u in used.items()}
    small = {}
    for d in k.ast.inputs:
        if d.format == "sparse":
            c, v = sparse_coo[d.name]
            cs = np.stack([np.searchsorted(small_index[x], c[:, m]) for m, x in enumerate(d.dims)], axis=1)
            shape = tuple(len(small_index[x]) for x in d.dims)
            small[d.name] = SparseTensor.from_coo(cs, v, shape, d.symmetry, check=False, name=d.name).to_dense()
        else:
            small[d.name] = np.array(dense_vals[d.name][small_index[d.dims[0]]])
    want = k.definition(small).value
    assert abs(float(want)) > 0
    for optimize in (True, False):
        got = k.run(backend="c", optimize=optimize, **big)
        assert systec_ref.agree(got, want, "float64").ok, (optimize, float(got), float(want))
    for arr in dense_vals.values():
        assert os.stat(arr.filename).st_blocks * 512 < 2**24  # the 40 GB vector never hit the disk
        del arr


# -- 10M entries, order 5 ------------------------------------------------------------------------

def canonical_random(n: int, order: int, nnz: int, seed: int) -> np.ndarray:
    """``nnz`` distinct sorted coordinate tuples (canonical for full symmetry) in random order; lean:
    each candidate is one int64 key while deduplicating."""
    rng = np.random.default_rng(seed)
    keys = np.zeros(0, dtype=np.int64)
    while len(keys) < nnz:
        draw = np.sort(rng.integers(0, n, size=(int((nnz - len(keys)) * 1.05) + 16, order)), axis=1)
        key = draw[:, 0].copy()
        for m in range(1, order):
            key *= n
            key += draw[:, m]
        del draw
        keys = np.concatenate([keys, key])
        keys.sort()
        new = np.ones(len(keys), dtype=bool)
        new[1:] = keys[1:] != keys[:-1]
        keys = keys[new]
    keys = rng.permutation(keys)[:nnz]
    coords = np.empty((nnz, order), dtype=np.int64)
    for m in reversed(range(order)):
        coords[:, m] = keys % n
        keys //= n
    return coords


SCALE_RUN = textwrap.dedent("""\
    import json, resource, sys, time
    import numpy as np
    import systec_ref
    from systec_ref.storage import SparseTensor

    def status_mb(field):  # Linux: VmRSS (resident now), VmHWM (peak resident since the last reset)
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024

    def reset_peak():  # Linux >= 4.0: the peak back to what is resident now
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            return True
        except OSError:  # then the peak counts from the start of the process: a stricter bound
            return False

    coords_file, vals_file, n, r = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    k = systec_ref.load(sys.argv[5])
    fn = k.c_function()                          # compiled (or loaded) before anything is measured
    B = np.random.default_rng(3).uniform(-1, 1, (n, r))
    c, v = np.load(coords_file), np.load(vals_file)
    out = {"input_mb": (c.nbytes + v.nbytes) / 2**20, "before_mb": status_mb("VmRSS")}
    out["reset"] = reset_peak()
    t = time.perf_counter()
    A = SparseTensor.from_coo(c, v, (n,) * 5, (tuple(range(5)),), check=False, name="A")
    out["convert_s"] = time.perf_counter() - t
    out["stored_mb"] = A.memory_bytes() / 2**20
    out["stored"] = A.stored
    out["convert_peak_mb"] = status_mb("VmHWM")
    out["after_convert_mb"] = status_mb("VmRSS")
    reset_peak()
    t = time.perf_counter()
    C = k.run(backend="c", check=False, A=A, B=B)
    out["run_s"] = time.perf_counter() - t
    out["run_peak_mb"] = status_mb("VmHWM")
    out["ru_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # the reference, entry by entry (chunked): a canonical entry with subscript multiplicities m_a stands
    # for 5!/prod(m_a!) points, of which 4! m_t/prod(m_a!) have subscript t in mode 0
    ref = np.zeros((n, r))
    for s in range(0, len(c), 500_000):
        cs = np.sort(c[s:s + 500_000], axis=1)
        vs = v[s:s + 500_000]
        run = np.ones(cs.shape, dtype=np.int64)
        for t in range(1, 5):
            run[:, t] = np.where(cs[:, t] == cs[:, t - 1], run[:, t - 1] + 1, 1)
        mult = np.stack([(cs == cs[:, [t]]).sum(axis=1) for t in range(5)], axis=1)
        fact = run.prod(axis=1)
        for t in range(5):
            first = (cs[:, t] != cs[:, t - 1]) if t else np.ones(len(cs), dtype=bool)
            w = np.where(first, vs * 24 * mult[:, t] / fact, 0.0)
            prod = np.ones((len(cs), r))
            for u in range(5):
                if u != t:
                    prod *= B[cs[:, u]]
            for j in range(r):
                ref[:, j] += np.bincount(cs[:, t], weights=w * prod[:, j], minlength=n)
    out["agree"] = bool(systec_ref.agree(C, ref, "float64").ok)
    print(json.dumps(out))
    """)


@pytest.mark.slow
def test_ten_million_entries_order_5(tmp_path):
    """The bound: the conversion and the run together may use at most twice the input COO plus the
    canonical storage above what the process held before converting (the interpreter, numpy and the
    input arrays themselves).  A dense intermediate (200^5 doubles: 2.5 TB) or any copy per permutation
    (120 per entry) would break it by orders of magnitude; so would more than two full-size copies of
    the coordinates."""
    n, nnz, r = 200, 10_000_000, 4
    coords = canonical_random(n, 5, nnz, seed=0)
    np.save(tmp_path / "coords.npy", coords)
    np.save(tmp_path / "vals.npy", np.random.default_rng(1).uniform(-1, 1, nnz))
    del coords
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(helpers.ROOT), os.environ.get("PYTHONPATH", "")]))
    r_ = subprocess.run([sys.executable, "-c", SCALE_RUN, str(tmp_path / "coords.npy"), str(tmp_path / "vals.npy"),
                         str(n), str(r), str(helpers.EXAMPLES_DIR / "sparse" / "mttkrp5.ein")],
                        env=env, capture_output=True, text=True, timeout=900)
    assert r_.returncode == 0, r_.stderr[-3000:]
    m = json.loads(r_.stdout.strip().splitlines()[-1])
    print("\n10M-entry order-5 symmetric tensor:", json.dumps({k: round(v, 2) if isinstance(v, float) else v
                                                               for k, v in m.items()}))
    assert m["stored"] == nnz and m["agree"]
    bound = m["before_mb"] + 2 * (m["input_mb"] + m["stored_mb"])
    assert m["convert_peak_mb"] <= bound, f"conversion peak {m['convert_peak_mb']:.0f} MB > bound {bound:.0f} MB: {m}"
    # the run reads the storage as it is: nothing as large as the tensor is allocated
    assert m["run_peak_mb"] <= m["after_convert_mb"] + 64, m
