"""The C backend agrees with the interpreter, stage by stage.

Every stage's program is emitted with ``CFunction(stage.program, stage.name)``
and called with ``k.bind(inputs)``; the interpreter runs *the same* program on
the same inputs, and the two must agree by :func:`systec_ref.agree` (exact for
int64, 1e-12 relative for float64) over seeds {0, 1} and sizes n in {1, 2, 4},
r in {1, 3}, and, on seed 0, at the kernel's default size (``Kernel.default_sizes``: the
smallest at which every loop nest runs, e.g. n=5 for MTTKRP-5's strict nest, n=8 where
``unroll-and-jam`` sweeps six rows) with r=2.

Kernels: every example as shipped, an int64 variant and a sparse variant of
each, ``faces="compact"`` for mttkrp4/5, one kernel whose ``order`` makes
``concordize`` build transposed temporaries (the only path that allocates),
and for each of them the "baseline" pipeline (symmetry passes off).

Compiling costs ~0.2 s per distinct source (seconds for the 100 kB nests of
mttkrp5's middle stages), so each distinct code is compiled once per session
(a module-level cache; a kernel's sources are built in threads while the
interpreter runs) into a private cache directory.  Two programs whose C
differs only in the header comment (which names the stage and describes the
tensors) share one compiled function: an unchanged stage (``Stage.changed``
false) is the previous program again, and the sparse variants currently
compile to the same loops as the dense ones.  The comparison is still made for
every stage and every variant, with that stage's own interpreter result.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor

import helpers
import numpy as np
import pytest

import systec_ref
from systec_ref.emit import build
from systec_ref.emit.c import emit_c
from systec_ref.emit.runtime import CFunction
from systec_ref.lang import parse
from systec_ref.storage import for_program

SEEDS = (0, 1)
NS = (1, 2, 4)
RS = (1, 3)

# a kernel whose loop order makes concordize allocate transposed copies (role "temp")
TRANSPOSED = """\
kernel ssyrkt
in  A[n, m]
out C[n, n]
order k j i
C[i, j] += A[i, k] * A[j, k]
"""


# -- the shared compilation cache ------------------------------------------------

#: compile into the session's private cache (conftest.py)
pytestmark = pytest.mark.usefixtures("private_c_cache")


# -- kernels and variants ------------------------------------------------------

_DTYPE = re.compile(r"\b(?:float64|float32|int64)\b")
_FILL_INF = re.compile(r"\bfill\s+-?\s*inf\b")


def int64_variant(text: str) -> str:
    """``text`` with every tensor int64 (an infinite fill, which int64 cannot hold, is dropped;
    a sparse input the language then rejects is made dense)."""
    out = []
    for line in text.split("\n"):
        if re.match(r"^\s*(?:in|out)\s", line):
            code, hash_, comment = line.partition("#")
            code = _FILL_INF.sub("", _DTYPE.sub("", code))
            code = " ".join(code.split()) + " int64"
            line = code + (f"  #{comment}" if hash_ else "")
        out.append(line)
    text = "\n".join(out)
    try:
        parse(text)
    except systec_ref.SourceError:
        text = int64_variant(helpers.dense_variant(text))
        parse(text)
    return text


def _cases() -> list[tuple[str, str, str, str]]:
    """(kernel, variant, faces, source text), without variants identical to the shipped text."""
    cases = []
    sources = [(p.stem, p.read_text()) for p in helpers.EXAMPLES] + [("ssyrkt", TRANSPOSED)]
    for name, text in sources:
        faces = ("split", "compact") if name in ("mttkrp4", "mttkrp5") else ("split",)
        seen = set()
        for variant, src in (("float64", text), ("int64", int64_variant(text)),
                             ("sparse", helpers.sparse_variant(text))):
            if src in seen:
                continue
            seen.add(src)
            for f in faces:
                cases.append((name, variant, f, src))
    return cases


CASES = _cases()
CASE_IDS = [f"{name}-{variant}-{faces}" for name, variant, faces, _ in CASES]

_KERNELS: dict[tuple[str, str, str], systec_ref.Kernel] = {}
_BY_CODE: dict[str, CFunction] = {}  # C source without its header comment -> the compiled function


def kernel_for(name: str, variant: str, faces: str, text: str) -> systec_ref.Kernel:
    key = (name, variant, faces)
    if key not in _KERNELS:
        _KERNELS[key] = systec_ref.compile(text, f"{name}[{variant}].ein", faces=faces)
    return _KERNELS[key]


def programs(k: systec_ref.Kernel, every_stage: bool) -> list[tuple[str, object]]:
    """(label, program) of the stages to test: every stage of both pipelines, or the two final ones."""
    if not every_stage:
        return [(k.stages[-1].name, k.final), ("baseline", k.baseline[-1].program)]
    return [(s.name, s.program) for s in k.stages] + [(f"baseline/{s.name}", s.program) for s in k.baseline]


def code(source: str) -> str:
    """The source from its first ``#include`` on: everything but the header comment, which names the
    stage and describes the tensors (an unchanged stage, or a sparse variant whose loops are the dense
    ones, differs from another program only there)."""
    return source[source.index("#include"):]


class Compiled:
    """The CFunction of every stage of ``stages``, each distinct code compiled once per session.

    The builds run in threads (the compiler is a subprocess) as soon as this is made, so the caller
    can run the interpreter meanwhile; :meth:`get` waits for them and loads the results.
    """

    def __init__(self, stages: list[tuple[str, object]]):
        self.sources = [(label, prog, emit_c(prog, label)) for label, prog in stages]
        self.todo: dict[str, tuple[str, object]] = {}
        for label, prog, src in self.sources:
            if code(src) not in _BY_CODE and code(src) not in self.todo:
                self.todo[code(src)] = (label, prog)
        self.pool = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) if self.todo else None
        self.futures = [self.pool.submit(build.build, emit_c(prog, label), prog.name)
                        for label, prog in self.todo.values()] if self.pool else []

    def get(self) -> dict[str, CFunction]:
        if self.pool is not None:
            try:
                for f in self.futures:
                    f.result()
            finally:
                self.pool.shutdown(wait=True, cancel_futures=True)
                self.pool = None
            for body, (label, prog) in self.todo.items():
                _BY_CODE[body] = CFunction(prog, label)  # a cache hit: built above
        return {label: _BY_CODE[code(src)] for label, _, src in self.sources}


def input_sets(k: systec_ref.Kernel, variant: str):
    """Inputs for every seed and distinct size combination."""
    density = 0.5 if variant == "sparse" else 1.0
    seen = set()
    for n in NS:
        for r in RS:
            sizes = helpers.sizes_for(k, n, r)
            if tuple(sizes.items()) in seen:
                continue
            seen.add(tuple(sizes.items()))
            for seed in SEEDS:
                yield f"seed={seed} sizes={sizes}", systec_ref.random_inputs(k, sizes, seed, density)
    # every loop nest entered (NS stops short of MTTKRP-5's strict nest and of unroll-and-jam's sweeps)
    sizes = k.default_sizes({"r": 2, "m": 2})
    if tuple(sizes.items()) not in seen:
        yield f"seed={SEEDS[0]} sizes={sizes}", systec_ref.random_inputs(k, sizes, SEEDS[0], density)


def check_case(name: str, variant: str, faces: str, text: str, every_stage: bool) -> int:
    key = (name, variant, faces)
    k = kernel_for(*key, text)
    stages = programs(k, every_stage)
    pending = Compiled(stages)  # compiling in the background ...
    runs = []
    for where, inputs in input_sets(k, variant):  # ... while the interpreter runs every stage
        arrays, dims = k.bind(inputs)
        runs.append((where, arrays, dims, [k.interpret(inputs, prog).value for _, prog in stages]))
    funcs = pending.get()
    dtype = k.ast.output.dtype
    out = k.ast.output.name
    bad = []
    checked = 0
    for where, arrays, dims, wants in runs:
        before = {t: a.copy() for t, a in arrays.items()}
        for (label, _), want in zip(stages, wants):
            fn = funcs[label]
            got = fn(arrays, dims, for_program(fn.program, arrays))[out]
            a = systec_ref.agree(got, want, dtype)
            checked += 1
            if not a.ok:
                bad.append(f"stage {label}, {where}: {a.detail} (max abs err {a.max_abs_err:.3g})")
        for t, a in arrays.items():
            assert np.array_equal(a, before[t], equal_nan=True), f"the C wrote into input {t}"
    assert not bad, f"{name} ({variant}, faces={faces}): C disagrees with the interpreter:\n" + "\n".join(bad[:20])
    return checked


# -- the tests --------------------------------------------------------------------

@pytest.mark.parametrize(("name", "variant", "faces", "text"), CASES, ids=CASE_IDS)
def test_final_and_baseline_c_agree_with_interpreter(name, variant, faces, text):
    """Quick version: the final stage and the baseline's final stage."""
    assert check_case(name, variant, faces, text, every_stage=False) > 0


@pytest.mark.slow
@pytest.mark.parametrize(("name", "variant", "faces", "text"), CASES, ids=CASE_IDS)
def test_every_stage_c_agrees_with_interpreter(name, variant, faces, text):
    """Full matrix: every stage of the pipeline and of the baseline pipeline."""
    k = kernel_for(name, variant, faces, text)
    assert len(programs(k, True)) == len(k.stages) + len(k.baseline)
    assert check_case(name, variant, faces, text, every_stage=True) > 0


def test_variants_cover_int64_and_sparse():
    """The matrix really holds int64, sparse and compact kernels, and the allocating kernel."""
    dtypes = {parse(text).output.dtype for _, _, _, text in CASES}
    assert dtypes == {"float64", "int64"}
    assert any(d.format == "sparse" for _, _, _, text in CASES for d in parse(text).inputs)
    assert {(n, f) for n, _, f, _ in CASES} >= {("mttkrp4", "compact"), ("mttkrp5", "compact")}
    k = kernel_for("ssyrkt", "float64", "split", TRANSPOSED)
    assert any(t.role == "temp" for t in k.final.tensors), "ssyrkt no longer makes temporaries"


@pytest.mark.parametrize("path", helpers.EXAMPLES, ids=lambda p: p.stem)
def test_empty_dimensions(path):
    """n = 0 (every loop empty, outputs of size 0 or the identity): the C agrees with the interpreter."""
    k = kernel_for(path.stem, "float64", "split", path.read_text())
    stages = programs(k, every_stage=False)
    funcs = Compiled(stages).get()
    inputs = systec_ref.random_inputs(k, helpers.sizes_for(k, 0, 0), 0)
    arrays, dims = k.bind(inputs)
    for label, prog in stages:
        want = k.interpret(inputs, prog).value
        fn = funcs[label]
        got = fn(arrays, dims, for_program(fn.program, arrays))[k.ast.output.name]
        assert systec_ref.agree(got, want, k.ast.output.dtype), label
