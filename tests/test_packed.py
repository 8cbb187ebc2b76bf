"""Packed storage of dense symmetric inputs (``systec_ref.storage.packed``) and kernels that read it.

* the layout: canonical entries only, in the documented order (the Python offset is the position
  of each canonical point in the array ``from_dense`` builds), unpacked back exactly, memory the
  canonical count times the element size;
* every bundled example with a dense symmetric input, its inputs passed packed, in C (final stage
  and symmetry-off baseline) and in the interpreter, at sizes 0, 1, 2 and sizes beyond the
  largest symmetric set that are not multiples of the unroll factor: bitwise the same as the C
  of the same passes on the full array, and equal to the definition;
* the final stages read packed inputs without sorting subscripts at run time (the loops prove
  them sorted), the naive nest sorts;
* random kernels (hypothesis) with their dense symmetric inputs packed, against the definition;
* errors: data that is not symmetric, groups other than declared, a packed sparse input.
"""

from __future__ import annotations

import itertools
import json
import re

import helpers
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st
from strategies import kernels

import systec_ref
from systec_ref import PackedTensor, bundled
from systec_ref.errors import InputError
from systec_ref.ir.nodes import BlasCall, IConst, Idx, IPlus, Loop
from systec_ref.ir.order import Order
from systec_ref.rewrite.blas_calls import SLAB_MIN_COLUMNS
from systec_ref.storage.packed import offset, packed_size, units
from systec_ref.term import nodes

pytestmark = pytest.mark.usefixtures("private_c_cache")


def _packed_examples() -> list[str]:
    out = []
    for name in bundled.names():
        k = systec_ref.load(name)
        if any(d.symmetry and d.format == "dense" for d in k.ast.inputs):
            out.append(name)
    return out


EXAMPLES = _packed_examples()


def _pack(k: systec_ref.Kernel, inputs: dict, check: bool | str = True) -> dict:
    decl = {d.name: d for d in k.ast.inputs}
    return {n: PackedTensor.from_dense(a, decl[n].symmetry, check=check)
            if decl[n].symmetry and decl[n].format == "dense" else a for n, a in inputs.items()}


# -- the layout -----------------------------------------------------------------------------

LAYOUTS = [((5, 5), ((0, 1),)), ((4, 4, 4), ((0, 1, 2),)), ((3, 4, 4, 2), ((1, 2),)), ((3, 3, 4, 4), ((0, 1), (2, 3))),
           ((4, 2, 4), ((0, 2),)), ((0, 0), ((0, 1),)), ((1, 1, 1), ((0, 1, 2),)), ((5,) * 5, ((0, 1, 2, 3, 4),)),
           ((3, 2, 3, 2), ((0, 2), (1, 3)))]


@pytest.mark.parametrize("shape,groups", LAYOUTS)
def test_layout_round_trip_offsets_and_memory(shape, groups):
    a = systec_ref.symmetrize(np.random.default_rng(len(shape)).standard_normal(shape), groups)
    p = PackedTensor.from_dense(a, groups, check="exact")
    canonical = [pt for pt in itertools.product(*map(range, shape))
                 if all(list(pt[m] for m in g) == sorted(pt[m] for m in g) for g in groups)]
    assert len(p.values) == len(canonical) == packed_size(shape, p.symmetry)
    assert p.memory_bytes() == len(canonical) * 8  # no padding: the canonical count times the element size
    assert np.array_equal(p.to_dense(), a)
    # the offset of each canonical point is its position: units in order, each unit's tuples lexicographic
    us = units(len(shape), p.symmetry)
    def unit_key(pt):
        return tuple(tuple(pt[m] for m in u) for u in us)
    for pos, pt in enumerate(sorted(canonical, key=unit_key)):
        assert offset(pt, shape, p.symmetry) == pos
        assert p.values[pos] == a[pt]
    for pt in itertools.islice(itertools.product(*map(range, shape)), 0, None, 5):
        assert p[pt] == a[pt]  # any arrangement reads its canonical entry


@settings(max_examples=40, deadline=None, database=None)
@given(data=st.data())
def test_layout_of_random_shapes_and_groups(data):
    """Any disjoint groups of any modes: packing and unpacking are inverse, and every point (any
    arrangement) reads its canonical entry through the offset."""
    order = data.draw(st.integers(2, 5))
    modes = data.draw(st.permutations(range(order)))
    cut = data.draw(st.integers(2, order))
    groups = [tuple(sorted(modes[:cut]))]
    if order - cut >= 2 and data.draw(st.booleans()):
        groups.append(tuple(sorted(modes[cut:])))
    n = data.draw(st.integers(0, 4))
    shape = tuple(n if any(m in g for g in groups) else data.draw(st.integers(1, 3)) for m in range(order))
    a = systec_ref.symmetrize(np.random.default_rng(order).standard_normal(shape), groups)
    p = PackedTensor.from_dense(a, groups, check="exact")
    assert np.array_equal(p.to_dense(), a) and len(p.values) == packed_size(shape, p.symmetry)
    assert sorted(offset(pt, shape, p.symmetry) for pt in itertools.product(*map(range, shape))
                  if all(list(pt[m] for m in g) == sorted(pt[m] for m in g) for g in p.symmetry)) \
        == list(range(len(p.values)))
    for pt in itertools.product(*map(range, shape)):
        assert p[pt] == a[pt]


def test_a_matrix_is_the_upper_triangle_row_by_row():
    a = systec_ref.symmetrize(np.arange(16.0).reshape(4, 4), ((0, 1),))
    p = PackedTensor.from_dense(a, ((0, 1),))
    assert np.array_equal(p.values, np.concatenate([a[i, i:] for i in range(4)]))


def test_memory_of_an_order_4_tensor():
    n = 30
    a = systec_ref.symmetrize(np.random.default_rng(0).standard_normal((n,) * 4), ((0, 1, 2, 3),))
    p = PackedTensor.from_dense(a, ((0, 1, 2, 3),))
    assert p.memory_bytes() == 8 * (n * (n + 1) * (n + 2) * (n + 3) // 24)
    assert "canonical entries" in p.report("A") and "smaller" in p.report("A")


# -- every example, packed, in C and in the interpreter ----------------------------------------

def _sizes(k, n):
    return helpers.sizes_for(k, n, 3)


def _packed_names(k: systec_ref.Kernel) -> tuple[str, ...]:
    return tuple(sorted(d.name for d in k.ast.inputs if d.symmetry and d.format == "dense"))


@pytest.mark.parametrize("name", EXAMPLES)
@pytest.mark.parametrize("n", [0, 1, 2, 7])
def test_examples_packed_agree_with_the_full_array(name, n):
    """Both ways of compiling for a packed input (slabs of it copied out for gemm-form's products, or the
    whole symmetric set), final stage and symmetry-off baseline, in C; and the interpreter."""
    k = systec_ref.load(name)
    inputs = k.random_inputs(_sizes(k, n), seed=n)
    packed = _pack(k, inputs)
    arrays, dims = k.bind(packed)
    want = k.definition(inputs).value
    for slabs in (True, False):
        variant = k.with_packed(_packed_names(k), slabs)
        for stage in (None, "baseline"):
            got = systec_ref.Kernel.call(variant.c_function(stage), arrays, dims)
            # the same as the full array's C up to rounding (a product may reassociate), as the definition
            verdict = systec_ref.agree(got, want, k.ast.output.dtype)
            assert verdict.ok, f"{name} n={n} slabs={slabs} stage={stage}: {verdict.detail}"
    assert systec_ref.agree(k.run(**packed), k.run(**inputs), k.ast.output.dtype)
    assert systec_ref.agree(k.run(backend="interp", **packed), want, k.ast.output.dtype)


def _sorting_helpers(src: str) -> tuple[set[str], set[str]]:
    """The packed offset helpers of C source ``src`` that sort at run time, and those that do not."""
    found = re.findall(r"static inline int64_t (sx_pk_\w+)\((.*?\n)}", src, re.S)
    return {n for n, body in found if "while (b >= 0" in body}, {n for n, body in found if "while (b >= 0" not in body}


@pytest.mark.parametrize("name", EXAMPLES)
def test_final_stages_read_packed_inputs_without_sorting(name):
    """The symmetric passes read canonical entries only, and the loops around each read prove it: the
    offset needs no sort.  The symmetry-off baseline reads every arrangement and sorts."""
    k = systec_ref.load(name).with_packed(_packed_names(systec_ref.load(name)), slabs=False)
    sorting, plain = _sorting_helpers(k.c_source())
    assert plain and not sorting, f"{name}: a packed read sorts in the final stage"
    assert _sorting_helpers(k.c_source("baseline"))[0]


@pytest.mark.parametrize("name", ["mttkrp3", "mttkrp4", "mttkrp5", "ttm"])
def test_slabs_of_a_packed_input_feed_the_products(name):
    """With slabs: gemm-form keeps its products, BLAS never reads A, and every slab copy reads A at
    subscripts the loops order (no sort at run time); without: the whole symmetric set, no products on A."""
    k = systec_ref.load(name)
    slabs = k.with_packed(("A",), slabs=True)
    assert "A symmetric in" in next(s.note for s in slabs.stages if s.name == "gemm-form")
    calls = [n for n in nodes(slabs.final.body) if isinstance(n, BlasCall)]
    assert calls and all(x.tensor != "A" for c in calls for x in (c.out, *c.args))
    assert "slab" in next(s.note for s in slabs.stages if s.name == "blas-calls")
    src = slabs.c_source()
    sorting, _ = _sorting_helpers(src)
    copies = re.findall(r"A_S\d+\[[^\]]*\] = A\[(sx_pk_A_\d+)", src)
    assert copies and not set(copies) & sorting, f"{name}: a slab copy sorts subscripts at run time"
    whole = k.with_packed(("A",), slabs=False)
    assert "not applied" in next(s.note for s in whole.stages if s.name == "gemm-form")
    assert not any(isinstance(n, BlasCall) for n in nodes(whole.final.body))


@pytest.mark.parametrize("name,sizes,slabs", [
    ("mttkrp3", {"n": 8, "r": 64}, True), ("mttkrp3", {"n": 8, "r": 4}, False), ("ttm", {"n": 8, "r": 32}, True),
    ("mttkrp5", {"n": 8, "r": 16}, False), ("ssymv", {"n": 8}, True)])
def test_slabs_are_chosen_by_the_columns_of_the_product(name, sizes, slabs):
    """Slab copies where each copied element meets at least SLAB_MIN_COLUMNS multiply-adds of the product
    (``r`` here); the whole symmetric set otherwise.  (SSYMV has no product: nothing to choose.)"""
    k = systec_ref.load(name)
    inputs = k.random_inputs(sizes, seed=0)
    variant = k.for_data(k.bind(_pack(k, inputs))[0])
    assert variant.options.packed == ("A",) and variant.options.slabs == slabs
    assert (sizes.get("r", 0) >= SLAB_MIN_COLUMNS) == slabs or name == "ssymv"


@pytest.mark.parametrize("name,sizes", [("mttkrp5", {"n": 8, "r": 5}), ("mttkrp4", {"n": 9, "r": 6}),
                                        ("ssymv", {"n": 13}), ("coulomb", {"n": 6})])
def test_sizes_beyond_every_nest(name, sizes):
    """n above the largest symmetric set (every strict nest runs) and not a multiple of the unroll factor."""
    k = systec_ref.load(name)
    inputs = k.random_inputs(sizes, seed=3)
    got = k.run(**_pack(k, inputs))
    assert systec_ref.agree(got, k.definition(inputs).value, k.ast.output.dtype)


def test_integer_kernel_is_exact():
    k = systec_ref.compile("kernel s\nin A[n, n, n] int64 symmetric\nin x[n] int64\nout y[n] int64\n"
                           "y[i] += A[i, j, k] * x[j] * x[k]\n")
    inputs = k.random_inputs({"n": 7}, seed=1)
    assert np.array_equal(k.run(**_pack(k, inputs)), k.definition(inputs).value)


def test_check_false_packs_the_canonical_entries_as_they_are():
    k = systec_ref.load("ssymv")
    # small integers held as float64: every sum is exact in any order, so the packed C and the full-array C
    # (which the compiler vectorizes, and so reassociates, differently) must agree to the last bit
    rng = np.random.default_rng(2)
    half = rng.integers(-4, 5, (9, 9)).astype(np.float64)
    bad, x = half + half.T, rng.integers(-4, 5, 9).astype(np.float64)
    bad[5, 1] += 1.0  # below the diagonal: not canonical
    p = PackedTensor.from_dense(bad, ((0, 1),), check=False)
    got = k.run(A=p, x=x)
    assert np.array_equal(got, k.run(A=bad, x=x, check=False))
    canonical = np.triu(bad) + np.triu(bad, 1).T  # the entries at or above the diagonal, as stored
    assert np.array_equal(got, canonical @ x)


def test_prepared_and_einsum_take_packed_inputs():
    k = systec_ref.load("mttkrp3")
    a = k.random_inputs({"n": 6, "r": 4}, seed=4)
    b = k.random_inputs({"n": 6, "r": 4}, seed=5)
    p = k.prepare(**_pack(k, a))
    assert systec_ref.agree(p(), k.definition(a).value, "float64")
    assert systec_ref.agree(p(A=_pack(k, b)["A"]), k.definition({**a, "A": b["A"]}).value, "float64")
    assert systec_ref.agree(p(A=b["A"]), k.definition({**a, "A": b["A"]}).value, "float64")  # full again
    got = systec_ref.einsum("ikl,lj,kj->ij", _pack(k, a)["A"], a["B"], a["B"])
    assert systec_ref.agree(got, k.definition(a).value, "float64")


# -- the proof that a read is canonical ------------------------------------------------------

def _loop(var, lo, hi):
    return Loop(var, lo, hi, None)


def test_order_proves_from_loop_bounds():
    o = Order()
    o.enter(_loop("i", IConst(0), Idx("n")))
    o.enter(_loop("j", IPlus(Idx("i"), 1), Idx("n")))
    o.enter(_loop("l", IPlus(Idx("j"), 4), Idx("n")))
    assert o.in_order(Idx("i"), Idx("j")) and o.in_order(IPlus(Idx("j"), 3), Idx("l"))
    assert o.in_order(IPlus(Idx("i"), 4), Idx("l"))  # through j
    assert not o.in_order(IPlus(Idx("j"), 5), Idx("l")) and not o.in_order(Idx("j"), Idx("i"))
    o.forget({"j"})
    assert not o.in_order(Idx("i"), Idx("l"))  # j rearranged: the chain through it is gone
    assert o.chain([Idx("l"), Idx("i"), Idx("j")]) is None  # j forgotten: l and i are not ordered
    o3 = Order()
    o3.enter(_loop("k", IConst(0), Idx("n")))
    o3.enter(_loop("l", IPlus(Idx("k"), 1), Idx("n")))
    o3.enter(_loop("i", IConst(0), Idx("k")))
    assert o3.chain([Idx("k"), Idx("l"), Idx("i")]) == [2, 0, 1]  # i < k < l
    o2 = Order()
    o2.enter(_loop("i", IConst(0), Idx("n")))
    o2.enter(_loop("j", IConst(0), IPlus(Idx("i"), 1)))  # j < i + 1: j <= i
    assert o2.in_order(Idx("j"), Idx("i")) and not o2.in_order(Idx("i"), Idx("j"))



def test_order_proves_from_a_test():
    """Inside ``if cond``: a comparison (or every term of an And, or an Or of one term) is a fact there;
    an Or of several says nothing; the fact is gone after the branch (restore)."""
    from systec_ref.ir.nodes import And, Cmp, Or

    for cond, a, b in [(Cmp("<", Idx("j"), Idx("i")), "j", "i"), (Cmp(">=", Idx("i"), Idx("j")), "j", "i"),
                       (Or((Cmp("<=", Idx("j"), Idx("i")),)), "j", "i"),
                       (And((Cmp("<", Idx("i"), Idx("k")), Cmp(">", Idx("j"), Idx("k")))), "i", "j")]:
        o = Order()
        saved = o.save()
        o.assume(cond)
        assert o.in_order(Idx(a), Idx(b)) and not o.in_order(Idx(b), Idx(a)), cond
        o.restore(saved)
        assert not o.in_order(Idx(a), Idx(b))
    o = Order()
    o.assume(Cmp("<", IPlus(Idx("j"), 2), Idx("i")))  # j + 2 < i: j + 3 <= i
    assert o.in_order(IPlus(Idx("j"), 3), Idx("i")) and not o.in_order(IPlus(Idx("j"), 4), Idx("i"))
    o = Order()
    o.assume(Cmp("==", Idx("i"), Idx("j")))
    assert o.in_order(Idx("i"), Idx("j")) and o.in_order(Idx("j"), Idx("i"))
    o = Order()
    o.assume(Or((Cmp("<", Idx("j"), Idx("i")), Cmp("<", Idx("k"), Idx("j")))))
    assert not o.in_order(Idx("j"), Idx("i")) and not o.in_order(Idx("k"), Idx("j"))


def test_the_mirror_reads_in_an_order_its_test_proves():
    """The mirror of a symmetric output copies C[i,j] = C[j,i] where j < i: the C reads C[j,i] directly,
    with no run-time sort of the subscripts."""
    src = systec_ref.load("ssyrk").c_source()
    mirror = src[src.index("mirror the canonical triangle"):]
    assert "C[(_m0) * n + _m1] = C[(_m1) * n + _m0];" in mirror and "sx_off" not in mirror


# -- random kernels ----------------------------------------------------------------------------

@settings(max_examples=15, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(text=kernels(), seed=st.integers(0, 2**16), n=st.sampled_from([0, 1, 3, 5]),
       faces=st.sampled_from(["split", "compact"]))
def test_random_kernels_with_packed_inputs_agree_with_the_definition(text, seed, n, faces):
    k = systec_ref.compile(text, "<random>.ein", faces=faces)
    assume(any(d.symmetry and d.format == "dense" for d in k.ast.inputs))
    note(text)
    inputs = systec_ref.random_inputs(k, helpers.sizes_for(k, n, 2), seed)
    want = k.definition(inputs).value
    arrays, dims = k.bind(_pack(k, inputs))
    for slabs in (True, False):  # (at these sizes for_data would choose no slabs: both are tried)
        variant = k.with_packed(_packed_names(k), slabs)
        for stage in (None, "baseline"):
            got = systec_ref.Kernel.call(variant.c_function(stage), arrays, dims)
            verdict = systec_ref.agree(got, want, k.ast.output.dtype)
            assert verdict.ok, f"packed, slabs={slabs}, stage={stage}: {verdict.detail}"


# -- errors ------------------------------------------------------------------------------------

def test_errors_are_one_line_and_say_what():
    k = systec_ref.load("ssymv")
    inputs = k.random_inputs({"n": 5}, seed=0)
    bad = inputs["A"].copy()
    bad[0, 1] += 1
    with pytest.raises(InputError, match=r"A is declared symmetric in modes \(0, 1\) but is not"):
        PackedTensor.from_dense(bad, ((0, 1),), name="A")
    with pytest.raises(InputError, match="packed storage needs symmetry"):
        PackedTensor.from_dense(bad, ())
    with pytest.raises(InputError, match="different sizes"):
        PackedTensor.from_dense(np.zeros((2, 3)), ((0, 1),))
    with pytest.raises(InputError, match="expected 15 values"):
        PackedTensor((5, 5), ((0, 1),), np.zeros(14))
    with pytest.raises(InputError, match="different sizes"):
        PackedTensor((3, 4), ((0, 1),), np.zeros(6))
    assert PackedTensor((3, 3), ((1, 0),), np.zeros(6)).symmetry == ((0, 1),)  # groups normalized
    assert PackedTensor.from_dense(inputs["A"], True).symmetry == ((0, 1),)  # True: every mode
    with pytest.raises(systec_ref.SystecError, match="packed must be a tuple of input names"):
        k.with_packed("A")
    k3 = systec_ref.compile("kernel p\nin A[n, n, n] symmetric(0,1)\nin x[n]\nout y[n]\ny[i] += A[i, j, k] * x[k]\n")
    a3 = systec_ref.symmetrize(np.random.default_rng(0).standard_normal((4, 4, 4)), ((0, 1, 2),))
    with pytest.raises(InputError, match=r"packed symmetric in \(\(0, 1, 2\),\), but the kernel declares it "
                                         r"symmetric\(0, 1\)"):
        k3.run(A=PackedTensor.from_dense(a3, ((0, 1, 2),)), x=np.ones(4))
    ks = systec_ref.load("sparse/ssymv")
    with pytest.raises(InputError, match="a PackedTensor was given for a sparse tensor"):
        ks.run(A=PackedTensor.from_dense(inputs["A"], ((0, 1),)), x=inputs["x"])
    with pytest.raises(InputError, match="dimension n is 5 from A"):
        k.run(A=PackedTensor.from_dense(inputs["A"], ((0, 1),)), x=np.ones(6))
    with pytest.raises(InputError, match="does not convert safely"):
        systec_ref.compile("kernel q\nin A[n, n] int64 symmetric\nin x[n] int64\nout y[n] int64\n"
                           "y[i] += A[i, j] * x[j]\n").run(A=PackedTensor.from_dense(inputs["A"], ((0, 1),)),
                                                           x=np.ones(5, dtype=np.int64))


def test_the_readme_example_runs(capsys):
    """The README's packed-storage example, as a reader would paste it."""
    text = (helpers.ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Packed dense symmetric inputs", 1)[1]
    code = section.split("```python", 1)[1].split("```", 1)[0]
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    comment = code.split("print(A.report(\"A\"))", 1)[1].split("# ", 1)[1].split("...", 1)[0].strip()
    assert printed.startswith(comment), (printed, comment)


def test_command_line_packed_option():
    """``--packed A``: run hands the kernel A packed (C and interpreter agree with numpy), emit shows the
    packed reads; a name that cannot be packed is a one-line error, exit 2."""
    from test_cli import assert_clean, cli

    proc = cli("run", "mttkrp3", "--packed", "A", "--backend", "c", "--size", "n=7,r=3", "--format", "json")
    assert_clean(proc)
    doc = json.loads(proc.stdout)
    assert doc["ok"] and any(p["program"] == "C, final stage" and p["agrees"] for p in doc["programs"])
    proc = cli("emit", "ssymv", "--packed", "A")
    assert_clean(proc)
    assert "sx_pk_A_" in proc.stdout
    proc = cli("explain", "mttkrp3", "--packed", "A", "--after", "blas-calls", "--size", "n=7,r=32")
    assert_clean(proc)
    assert "slab of a packed input copied out" in proc.stdout and "agrees with the previous stage" in proc.stdout
    proc = cli("explain", "mttkrp3", "--packed", "A", "--after", "blas-calls", "--size", "n=7,r=3")
    assert_clean(proc)  # few columns: chosen as run chooses, the whole symmetric set
    assert "slab" not in proc.stdout
    proc = cli("run", "mttkrp3", "--packed", "B")
    assert_clean(proc, 2)
    assert proc.stderr.strip().count("\n") == 0 and "'B' cannot be passed packed" in proc.stderr


@pytest.mark.parametrize("name,sizes", [("ssyrk", {"n": 7, "m": 3}), ("ttm", {"n": 6, "r": 3}),
                                        ("syr2k", {"n": 5, "m": 2})])
def test_symmetric_outputs_returned_packed(name, sizes):
    k = systec_ref.load(name)
    inputs = k.random_inputs(sizes, seed=5)
    want = k.definition(inputs).value
    for backend in ("c", "interp"):
        p = k.run(backend=backend, packed_output=True, **inputs)
        assert isinstance(p, PackedTensor) and p.symmetry == k.output_symmetry()
        assert systec_ref.agree(p.to_dense(), want, "float64")


def test_packed_output_of_a_symmetry_off_compile():
    """The output's symmetry is found by a symmetry pass; a compile with them off asks the symmetric one."""
    k = systec_ref.load("ssyrk", symmetry=False)
    inputs = k.random_inputs({"n": 6, "m": 2}, seed=1)
    p = k.run(packed_output=True, **inputs)
    assert p.symmetry == ((0, 1),) and systec_ref.agree(p.to_dense(), k.definition(inputs).value, "float64")


def test_packed_output_of_an_output_without_symmetry_is_refused():
    k = systec_ref.load("ssymv")
    with pytest.raises(InputError, match="its output has no symmetry the compiler found"):
        k.run(packed_output=True, **k.random_inputs({"n": 3}))
    k = systec_ref.load("ssyrk")
    with pytest.raises(InputError, match="exclude each other"):
        k.run(packed_output=True, out=np.zeros((3, 3)), **k.random_inputs({"n": 3, "m": 2}))
