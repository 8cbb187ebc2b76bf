"""The published artifact's bugs cannot happen here.

* TTM guards: the artifact paired updates with guards by position, so an update
  could run under another pattern's guard.  Here every pattern block holds
  exactly the rearrangements of its own pattern, and every stage from
  define-assignments on is checked, exactly (int64), on inputs whose only
  non-zero entries lie on one face of the simplex — the inputs on which a
  misplaced guard shows.
* MTTKRP-5 lookup keys: the artifact keyed its factor table by a sum of primes,
  which collides; here the key is a bitmask of equal neighbours and the 16
  equality patterns of (i,k,l,m,o) get 16 distinct keys and the right factors.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from fractions import Fraction
from math import factorial, prod

import helpers
import numpy as np
import pytest
from test_passes_support import assert_stages_agree, canonical, describe, sizes, variant

import systec_ref
from systec_ref.ir.index import rename_indices
from systec_ref.ir.nodes import Cmp, Idx, If, IPlus, Lookup, Or
from systec_ref.rewrite.combinators import main_assignments
from systec_ref.rewrite.symmetry import all_patterns, pattern_of
from systec_ref.term import nodes

# -- faces of the simplex, as inputs -------------------------------------------------------


def face_class(point: tuple[int, ...], groups) -> tuple[tuple[bool, ...], ...]:
    """Per symmetry group: which neighbours of the sorted coordinates are equal (the point's face)."""
    out = []
    for g in groups:
        vals = sorted(point[q] for q in g)
        out.append(tuple(a == b for a, b in zip(vals, vals[1:])))
    return tuple(out)


def distinctive(shape: tuple[int, ...], groups, dtype) -> np.ndarray:
    """A symmetric array whose canonical elements all differ (and are non-zero, with mixed signs)."""
    arr = np.zeros(shape, dtype=dtype)
    for p in itertools.product(*(range(s) for s in shape)):
        q = list(p)
        for g in groups:
            for pos, v in zip(g, sorted(p[x] for x in g)):
                q[pos] = v
        code = 1 + sum(v * 5**t for t, v in enumerate(q))
        arr[p] = code if code % 3 else -code
    return arr


def face_inputs(kernel: systec_ref.Kernel, n: int, r: int, seed: int):
    """(label, inputs) pairs: each symmetric input restricted to one face (or to all diagonal faces, or to
    the strict part), every other input random."""
    base = kernel.random_inputs(sizes(kernel, n, r), seed=seed)
    np_dtype = np.int64 if kernel.ast.output.dtype == "int64" else np.float64
    for d in kernel.ast.inputs:
        if not d.symmetry:
            continue
        full = distinctive(base[d.name].shape, d.symmetry, np_dtype)
        points = list(itertools.product(*(range(s) for s in full.shape)))
        classes = sorted({face_class(p, d.symmetry) for p in points})
        selections = {f"face {c}": (lambda p, c=c: face_class(p, d.symmetry) == c) for c in classes}
        selections["diagonal faces only"] = lambda p: any(any(c) for c in face_class(p, d.symmetry))
        selections["strict part only"] = lambda p: not any(any(c) for c in face_class(p, d.symmetry))
        for label, keep in selections.items():
            arr = np.zeros_like(full)
            for p in points:
                if keep(p):
                    arr[p] = full[p]
            yield f"{d.name}: {label}", dict(base, **{d.name: arr})


# -- item 6a: TTM guards --------------------------------------------------------------------


def _rearrangements(vars_: tuple[str, ...], ops: tuple[str, ...]) -> list[dict[str, str]]:
    """Independent of the compiler: the distinct rearrangements of a pattern, as substitutions."""
    rep = {vars_[0]: vars_[0]}
    for a, op, b in zip(vars_, ops, vars_[1:]):
        rep[b] = rep[a] if op == "==" else b
    values = [rep[v] for v in vars_]
    return [dict(zip(vars_, perm)) for perm in set(itertools.permutations(values))]


@pytest.mark.parametrize("name", ["ttm", "mttkrp3", "mttkrp4", "ssymv", "cubic", "bellman"])
def test_each_pattern_block_holds_its_own_rearrangements(name):
    """define-assignments: the block under guard π holds exactly π's rearrangements of the statement
    (left-hand side included) — no update under another pattern's guard."""
    kernel = systec_ref.load(helpers.example(name), blas=False)
    (orig,) = main_assignments(kernel.stage("identify-symmetry").program)
    prog = kernel.stage("define-assignments").program
    (group,) = prog.facts.permutable
    seen = set()
    for node in nodes(prog.body):
        if not isinstance(node, If):
            continue
        pat = pattern_of(node.cond)
        if pat is None:
            continue
        assert pat.vars == group
        updates = main_assignments(prog)
        got = [s for s in nodes(node.then) if any(s is u for u in updates)]
        want = {rename_indices(orig, m) for m in _rearrangements(pat.vars, pat.ops)}
        assert len(got) == len(set(got)) == len(want), pat.text()
        assert set(got) == want, pat.text()
        seen.add(pat.ops)
    assert len(seen) == 2 ** (len(group) - 1)


@pytest.mark.parametrize("dtype", ["int64", "float64"])
@pytest.mark.parametrize("faces", ["split", "compact"])
def test_ttm_every_stage_on_single_face_inputs(faces, dtype):
    kernel = systec_ref.compile(variant(helpers.example("ttm").read_text(encoding="utf-8"), dtype),
                                faces=faces)
    labels = set()
    for n in (1, 2, 3, 4):
        for r in (1, 2):
            for label, inputs in face_inputs(kernel, n, r, seed=n):
                labels.add(label)
                assert_stages_agree(kernel, inputs, f"ttm {dtype} faces={faces} n={n} r={r} {label}")
    # all four faces of (k,j,l) occur (n >= 3), plus the two unions
    assert len(labels) == 4 + 2


FACE_CASES = [pytest.param(p, id=p.stem) for p in helpers.EXAMPLES
              if p.stem != "ttm" and any(d.symmetry for d in systec_ref.load(p).ast.inputs)]


@pytest.mark.parametrize("faces", ["split", "compact"])
@pytest.mark.parametrize("path", FACE_CASES)
def test_every_symmetric_example_on_single_face_inputs(path, faces):
    """The same, for every other example with a symmetric input (int64 where the kernel allows it)."""
    text = path.read_text(encoding="utf-8")
    text = variant(text, "int64") or text
    kernel = systec_ref.compile(text, str(path), faces=faces, blas=False)
    # order 5: n=3 already has the 11 faces with two or more equalities; all 16 at n=5 are checked
    # on the final stage below (every stage at n=5 is too slow for the interpreter)
    high = max(d.order for d in kernel.ast.inputs) >= 5
    for n in (1, 3) if high else (1, 2, 3, 4):
        for label, inputs in face_inputs(kernel, n, 1 if high else 2, seed=n):
            assert_stages_agree(kernel, inputs, f"{path.stem} faces={faces} n={n} {label}")


# -- item 6b: MTTKRP-5 lookup keys -------------------------------------------------------------

MTTKRP5_SET = ("i", "k", "l", "m", "o")


def _eval_index(e, env):
    if isinstance(e, Idx):
        return env[e.name]
    if isinstance(e, IPlus):
        return _eval_index(e.base, env) + e.offset
    return e.value


def _eval_cond(c, env) -> bool:
    if isinstance(c, Cmp):
        a, b = _eval_index(c.a, env), _eval_index(c.b, env)
        return {"<": a < b, "<=": a <= b, "==": a == b, "!=": a != b}[c.op]
    terms = [_eval_cond(t, env) for t in c.terms]
    return any(terms) if isinstance(c, Or) else all(terms)


def _representative(pat) -> dict[str, int]:
    """A point on the face ``pat``: values increase by one at each '<'."""
    env, v = {pat.vars[0]: 0}, 0
    for op, b in zip(pat.ops, pat.vars[1:]):
        v += op == "<"
        env[b] = v
    return env


def _lookup_key(look: Lookup, env: dict[str, int]) -> int:
    return sum(1 << t for t, bit in enumerate(look.bits) if _eval_cond(bit, env))


@pytest.fixture(scope="module")
def mttkrp5_compact():
    return systec_ref.load(helpers.example("mttkrp5"), faces="compact", blas=False)


def test_mttkrp5_lookup_keys_are_a_collision_free_bitmask(mttkrp5_compact):
    final = mttkrp5_compact.final
    assert mttkrp5_compact.stage("lookup-table").changed
    looks = [x for x in nodes(final.body) if isinstance(x, Lookup)]
    assert len(looks) == 1
    (look,) = looks
    assert len(look.values) == 16 and len(look.bits) == 4
    guards = [x for x in nodes(final.body) if isinstance(x, If) and any(y is look for y in nodes(x.then))]
    assert guards, "the lookup is not under a guard"
    patterns = all_patterns(MTTKRP5_SET)
    assert len(patterns) == 16
    keys = {}
    for pat in patterns:
        env = _representative(pat)
        key = _lookup_key(look, env)
        assert key == pat.bitmask, pat.text()
        keys[key] = pat
        under_guard = all(_eval_cond(g.cond, env) for g in guards)
        if pat.strict:
            assert not under_guard, "the strict point must not reach the table (it has its own nest)"
            continue
        assert under_guard, pat.text()
        runs = prod(factorial(len(run)) for run in pat.runs)
        # the five-update body times (5!/prod(run sizes!))/5 == the strict coefficient 24 / prod
        want = Fraction(factorial(5), runs) / 5
        assert want == Fraction(24, runs)
        if want.denominator != 1:
            # the all-equal face (1/5) is not in the table, whose entries are integers: it keeps its own
            # branch, ahead of the table's, and its entry (never read) is 0
            assert look.values[key] == 0, (pat.text(), look.values[key])
            continue
        assert look.values[key] == want, (pat.text(), look.values[key], want)
    assert len(keys) == 16  # every face its own entry


def test_summing_primes_would_collide():
    """The artifact's key: one prime per adjacent equality (2, 3, 5, 7), summed.  {i==k, k==l} and
    {l==m} both give 5 (and {i==k, l==m} and {m==o} both 7), so two faces with different factors
    (24/3! = 4 and 24/2! = 12) shared one table entry.  The bitmask has no collisions."""
    primes = (2, 3, 5, 7)
    by_sum: dict[int, list[str]] = {}
    for pat in all_patterns(MTTKRP5_SET):
        key = sum(p for p, op in zip(primes, pat.ops) if op == "==")
        by_sum.setdefault(key, []).append(pat.text())
    collisions = {k: v for k, v in by_sum.items() if len(v) > 1}
    assert "i == k == l < m < o" in collisions[5] and "i < k < l == m < o" in collisions[5]
    assert len({pat.bitmask for pat in all_patterns(MTTKRP5_SET)}) == 16


@pytest.mark.parametrize("faces", ["split", "compact"])
def test_mttkrp5_final_stage_on_every_face(faces):
    """The table's entries (compact) and the 16 face nests (split), run: the final program on inputs
    living on one face at a time, at n=5 where all 16 faces have points."""
    kernel = systec_ref.load(helpers.example("mttkrp5"), faces=faces, blas=False)
    labels = []
    for label, inputs in face_inputs(kernel, 5, 2, seed=5):
        labels.append(label)
        want = kernel.definition(inputs).value
        got = kernel.interpret(inputs).value
        ok = systec_ref.agree(got, want, "float64")
        assert ok, f"faces={faces} {label}: {ok.detail}"
    assert len(labels) == 16 + 2


# -- regression: compact faces after replicate-output -----------------------------------------


@pytest.mark.parametrize("rhs", ["S[i, j, k, l] * x[i]", "S[i, j, k, l] * x[i] * x[l]"])
@pytest.mark.parametrize("order", [4, 5])
def test_compact_faces_with_a_replicated_output(order, rhs):
    """A symmetric output (replicate-output) whose indices lie in a set of 4+ variables kept compact.
    consolidate-blocks/lookup-table used to rebuild each diagonal face from the strict part's updates
    scaled by 1/prod(run sizes!) — but replicate-output had already dropped the non-canonical half of
    those updates, and on a face their targets are diagonal output elements that the mirror does not
    fill: Y[0,0] came out half its value at n=1."""
    idx = ["i", "j", "k", "l", "m"][:order]
    if order == 5:
        rhs = rhs.replace("S[i, j, k, l]", "S[i, j, k, l, m]")
    text = (f"kernel rep\nin S[{', '.join(['n'] * order)}] symmetric\nin x[n]\nout Y[n, n]\n"
            f"Y[j, k] += {rhs}\n")
    assert set(idx) >= {"i", "j", "k", "l"}
    kernel = systec_ref.compile(text, faces="compact", blas=False)
    assert kernel.stage("replicate-output").changed
    for n in (1, 2, 3):
        inputs = kernel.random_inputs({"n": n}, seed=n)
        report = systec_ref.check(kernel, inputs)
        assert report.ok, describe(report, kernel)


# -- item 7: the CLI check of MTTKRP-5 -------------------------------------------------------------


@pytest.mark.parametrize("faces", ["split", "compact"])
def test_cli_check_mttkrp5(faces):
    proc = subprocess.run(
        [sys.executable, "-m", "systec_ref", "check", "examples/mttkrp5.ein", "--size", "n=6,r=3",
         "--faces", faces, "--no-color"],
        cwd=helpers.ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "every stage agrees" in proc.stdout


def test_canonical_helper_agrees_with_face_class():
    # a point is canonical for a group iff sorting leaves it unchanged; face_class ignores order
    for p in itertools.product(range(3), repeat=3):
        assert canonical(p, ((0, 1, 2),)) == (list(p) == sorted(p))
        assert face_class(p, ((0, 1, 2),)) == face_class(tuple(sorted(p)), ((0, 1, 2),))
