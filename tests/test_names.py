"""Names reach C as themselves, so the language refuses those C would read otherwise.

Every name the parser accepts must compile to C that computes the definition; every name it refuses
gets a located error.  The reserved lists live in :mod:`systec_ref.lang.names`; the first test checks
them against the macros this machine's C headers actually define.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

import systec_ref
from systec_ref.emit.runtime import CFunction
from systec_ref.errors import SourceError, ToolError
from systec_ref.ir.nodes import TensorInfo
from systec_ref.lang.lexer import KEYWORDS
from systec_ref.lang.names import C_KEYWORDS, C_LIBRARY, c_conflict

HEADERS = "#include <math.h>\n#include <stddef.h>\n#include <stdint.h>\n#include <stdlib.h>\n"

#: a kernel with a transposed copy (malloc/free in its C) and one with a sparse symmetric input
#: (face arrays, split accumulators); each placeholder is one role a name can play
DENSE = "kernel KK\nin BB[NN, m]\nin XX[NN]\nout YY[m]\nYY[II] += BB[j, II] * XX[j]\norder II j\n"
SPARSE = "kernel KK\nin A[n, n] sparse symmetric\nin XX[n]\nout YY[n]\nYY[II] += A[II, j] * XX[j]\n"
ROLES = {"KK": "kernel", "BB": "tensor", "XX": "tensor", "YY": "tensor", "NN": "dimension", "II": "index"}


def with_name(template: str, placeholder: str, name: str) -> str:
    return re.sub(rf"\b{placeholder}\b", name, template)


def header_macros(cc: str) -> list[str]:
    out = subprocess.run([cc, "-std=c99", "-dM", "-E", "-"], input=HEADERS, capture_output=True, text=True,
                         check=True).stdout
    return sorted({m.group(1) for m in re.finditer(r"^#define (\w+)", out, re.M)})


def test_reserved_names_cover_the_installed_headers(c_compiler):
    """Every macro the included headers define, that a kernel could spell, is refused."""
    spellable = [m for m in header_macros(c_compiler) if re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", m)]
    assert len(spellable) > 50, spellable  # the list really came from the headers
    missed = [m for m in spellable if not c_conflict(m) and m not in KEYWORDS]
    assert not missed, f"add to systec_ref/lang/names.py: {missed}"


RESERVED = sorted((C_KEYWORDS | C_LIBRARY | {"INT42_MAX", "UINT_FAST7_MIN", "INTMAX_C", "FP_SUBNORMAL", "sx_i",
                                             "SX_IVDEP", "Sx_p"}) - KEYWORDS)


@pytest.mark.parametrize("placeholder", sorted(ROLES))
def test_reserved_names_are_located_errors(placeholder):
    template = DENSE if placeholder in DENSE else SPARSE
    for name in RESERVED:
        text = with_name(template, placeholder, name)
        with pytest.raises(SourceError) as e:
            systec_ref.compile(text, "k.ein")
        loc = e.value.loc
        line = text.split("\n")[loc.line - 1]
        assert line[loc.col - 1:loc.col - 1 + len(name)] == name, (name, str(e.value))
        assert f"cannot name a{'n' if ROLES[placeholder][0] in 'aeiou' else ''} {ROLES[placeholder]}" \
            in str(e.value) or "reserved word" in str(e.value), str(e.value)


@pytest.mark.parametrize("name", ["A_f0_vals", "A_f0_pos0", "A_f0_crd1", "A_f1", "A_f0_1_vals", "A_full_vals",
                                  "A_full_pos0", "A_full"])
@pytest.mark.parametrize("placeholder", ["XX", "YY", "II"])
def test_names_of_sparse_face_arrays_are_located_errors(name, placeholder):
    text = with_name(SPARSE, placeholder, name)
    with pytest.raises(SourceError, match=f"the C of this kernel names an array of sparse 'A' {name}") as e:
        systec_ref.compile(text, "k.ein")
    assert e.value.loc.line == text.split("\n").index(next(ln for ln in text.split("\n") if name in ln)) + 1


def run_both(text: str, sizes: dict[str, int]) -> None:
    k = systec_ref.compile(text, "k.ein")
    inputs = k.random_inputs(sizes, seed=5)
    want = k.definition(inputs).value
    for optimize in (True, False):
        got = k.run(backend="c", optimize=optimize, **inputs)
        assert systec_ref.agree(got, want, "float64").ok, (text, optimize)


#: C library names a kernel may use: the generated C neither includes their headers nor calls them
ALLOWED = ["printf", "exp", "sqrt", "fabs", "abs", "qsort", "errno", "stdin", "memcpy", "sx", "systec_KK", "BB_T",
           "A_vals", "A_f", "A_fx_vals", "SX"]


@pytest.mark.parametrize("placeholder", sorted(ROLES))
def test_names_the_language_accepts_compile_to_c_that_agrees(placeholder, c_compiler, private_c_cache):
    for template in (DENSE, SPARSE):
        if not re.search(rf"\b{placeholder}\b", template):
            continue
        for name in ALLOWED[:: 2 if placeholder != "II" else 1]:
            text = with_name(template, placeholder, name)
            run_both(text, {"m": 3, "n": 4, "NN": 4, name: 4})


def test_transposed_copies_avoid_every_name(c_compiler, private_c_cache):
    """concordize names its copies B_T, B_T0, ... past dimensions and indices named so."""
    text = ("kernel k\nin B[B_T, B_T, B_T]\nin x[B_T]\nout y[B_T]\n"
            "y[B_T0] += B[B_T1, B_T2, B_T0] * B[B_T2, B_T0, B_T1] * B[B_T0, B_T1, B_T2] * x[B_T1] * x[B_T2]\n"
            "order B_T0 B_T2 B_T1\n")
    k = systec_ref.compile(text, "k.ein")
    temps = [t.name for t in k.final.tensors if t.role == "temp"]
    assert len(temps) == len(set(temps)) >= 2 and not set(temps) & {"B_T", "B_T0", "B_T1", "B_T2"}, temps
    run_both(text, {"B_T": 3})


def test_runtime_refuses_a_program_that_names_one_thing_twice(c_compiler, private_c_cache):
    """A pass (or a hand-built program) that reuses a name is refused before any C is compiled."""
    k = systec_ref.compile(with_name(DENSE, "KK", "k"), "k.ein")
    p = k.final
    clash = dataclasses.replace(p, tensors=p.tensors + (TensorInfo("NN", "temp", ("m",), (), "dense", 0,
                                                                   "float64", 0),))
    with pytest.raises(ToolError, match="would give C the name 'NN' twice"):
        CFunction(clash)
    loop_var = next(t.name for t in p.tensors if t.role == "temp")
    renamed = dataclasses.replace(p, tensors=tuple(dataclasses.replace(t, name="II") if t.name == loop_var else t
                                                   for t in p.tensors))
    with pytest.raises(ToolError, match="would give C the name 'II' twice"):
        CFunction(renamed)
    assert np.all(np.isfinite(k.run(backend="c", **k.random_inputs({"NN": 2, "m": 2}))))


def test_the_generated_c_uses_only_reserved_or_kernel_names(examples):
    """Each identifier of the emitted C function (outside comments and preprocessor lines) is a name of the
    kernel, a name the compiler made (``_t0``, ``B_T``, face arrays) or one the language reserves:
    so no user name can mean something else in C."""
    from systec_ref.emit.abi import sparse_faces
    from systec_ref.emit.c import emit_c
    from systec_ref.ir.names import used_names
    from systec_ref.lang.names import face_name, function_name

    paths = sorted({*examples, *(examples[0].parent / "sparse").glob("*.ein")})
    transposing = DENSE.replace("KK", "k")  # its C allocates a transposed copy
    for path in [*paths, transposing]:
        for faces in ("split", "compact"):
            k = systec_ref.load(path, faces=faces) if isinstance(path, Path) else systec_ref.compile(path, faces=faces)
            for prog in (k.final, k.baseline[-1].program):
                src = re.sub(r"/\*.*?\*/", " ", emit_c(prog), flags=re.S)
                # the kernel function only: helpers before it (sx_off_…) see no name of the kernel
                src = src[src.index(f"int {function_name(prog.name)}("):]
                code = "\n".join(ln for ln in src.split("\n") if not ln.lstrip().startswith("#"))
                code = re.sub(r'"[^"]*"', " ", code)  # string literals: a BLAS call's "N"/"T" are not names
                mine = used_names(prog) | {function_name(prog.name)}
                faces_ = {face_name(t, f) for t, f in sparse_faces(prog)}
                for ident in sorted(set(re.findall(r"\b[A-Za-z_]\w*\b", code)) - mine):
                    if ident.startswith("_") or ident.rsplit("_", 1)[0] in faces_:
                        continue
                    assert c_conflict(ident), f"{k.name}: the C uses {ident!r}, which a kernel may name"
