"""Storage formats and the calling convention: each described once, and everything reads the description.

A throw-away format, declared in one place below (CSF with 32-bit positions and coordinates and its own
array names), flows through ``sparse-iterate`` (the program's facts name it), the interpreter (the
definition's result), the C (its names and types in the source, the same result) and the name checker
(a kernel may not use a name it generates).  Then unit tests of today's CSF description and of the
calling convention: the C signature and the ctypes argtypes come from one list of parameters.
"""

from __future__ import annotations

import ast
import ctypes
import re
from pathlib import Path

import numpy as np
import pytest

import systec_ref
from systec_ref.api import Kernel
from systec_ref.emit import abi
from systec_ref.emit.c import emit_c
from systec_ref.emit.runtime import CFunction
from systec_ref.errors import InputError, SourceError, SystecError
from systec_ref.ir.nodes import SparseLevel
from systec_ref.ir.printer import print_program
from systec_ref.lang import parse
from systec_ref.rewrite.pipeline import Options
from systec_ref.storage import CSF_FORMAT, CSFFormat, SparseTensor, for_program, formats
from systec_ref.storage.formats import INT32, INT64, Array, Compressed
from systec_ref.term import nodes

ROOT = Path(__file__).resolve().parents[1]

#: the throw-away format, declared here once: CSF with int32 positions and coordinates, named otherwise
CSF32 = formats.register(CSFFormat(name="csf32", index=INT32, pos_name="ptr", crd_name="idx", vals_name="data"))


def WithFormat() -> Options:  # noqa: N802 - reads as the options it makes
    """Compile options that select the throw-away format."""
    return Options(sparse_format=CSF32.name)


SSYMV = (ROOT / "examples" / "sparse" / "ssymv.ein").read_text()
MTTKRP3 = (ROOT / "examples" / "sparse" / "mttkrp3.ein").read_text()


def kernel(text: str, fmt: bool = True) -> Kernel:
    return Kernel(parse(text, "k.ein"), WithFormat() if fmt else Options())


# -- the throw-away format, end to end ---------------------------------------------------------

def test_sparse_iterate_records_the_format_in_the_facts():
    k = kernel(SSYMV)
    stage = k.stage("sparse-iterate")
    assert stage.program.facts.sparse_format == "csf32"
    assert k.final.facts.sparse_format == "csf32"
    assert "#   sparse format: csf32" in print_program(k.final)
    assert "in format csf32" in stage.note
    # the default is today's CSF, and its programs print as before (no "sparse format" line)
    plain = kernel(SSYMV, fmt=False)
    assert plain.final.facts.sparse_format == formats.DEFAULT_FORMAT == CSF_FORMAT.name == "csf"
    assert "sparse format" not in print_program(plain.final)
    assert "sparse format" not in plain.c_source()


@pytest.mark.parametrize("text", [SSYMV, MTTKRP3], ids=["ssymv", "mttkrp3"])
def test_the_interpreter_agrees_with_the_definition(text):
    k = kernel(text)
    assert any(isinstance(n, SparseLevel) for n in nodes(k.final.body))
    for n, density in ((1, 1.0), (5, 0.4), (6, 0.0)):
        inputs = k.random_inputs({"n": n, "r": 2}, seed=n, density=density)
        got = k.interpret(inputs)
        assert systec_ref.agree(got.value, k.definition(inputs).value, "float64").ok


@pytest.mark.parametrize("text", [SSYMV, MTTKRP3], ids=["ssymv", "mttkrp3"])
def test_the_c_names_the_format_s_arrays_and_agrees(text, c_compiler, private_c_cache):
    k = kernel(text)
    src = k.c_source()
    assert "const int32_t *restrict A_f0_ptr0" in src and "const int32_t *restrict A_f0_idx0" in src
    assert "A_f0_data[" in src
    assert not re.search(r"A_f\d+(_\d+)*_(pos|crd)\d|_vals\b", src), "the default format's names leaked"
    for n, density in ((1, 1.0), (5, 0.4), (6, 0.0)):
        inputs = k.random_inputs({"n": n, "r": 2}, seed=n, density=density)
        want = k.definition(inputs).value
        assert systec_ref.agree(k.run(backend="c", **inputs), want, "float64").ok
        # a SparseTensor given as such is handed over in the format, too
        given = dict(inputs, A=SparseTensor.from_dense(inputs["A"], k.ast.decl("A").symmetry))
        assert systec_ref.agree(k.run(backend="c", **given), want, "float64").ok


@pytest.mark.parametrize("name", ["A_f0_ptr0", "A_f1_idx0", "A_f0_data", "A_full_ptr1"])
def test_the_name_checker_refuses_a_name_the_format_generates(name):
    text = SSYMV.replace("x[", f"{name}[")
    with pytest.raises(SourceError, match=f"the C of this kernel names an array of sparse 'A' {name}"):
        systec_ref.compile(text)
    assert systec_ref.compile(SSYMV.replace("x[", "A_f0_ptr[")).name == "ssymv"  # no level number: free


def test_indices_too_large_for_the_format_are_refused_by_name():
    st = SparseTensor.from_coo([[0, 3_000_000_000]], [1.0], (2, 4_000_000_000))
    with pytest.raises(InputError, match="storage format 'csf32': idx1 holds 3000000000, more than int32"):
        CSF32.arrays(st, (), np.dtype(np.float64))
    assert CSF_FORMAT.arrays(st, (), np.dtype(np.float64))[Array("crd", 1, INT64)].tolist() == [3_000_000_000]


# -- today's CSF, described ------------------------------------------------------------------

def test_csf_describes_compressed_levels_of_int64_then_the_values():
    face = CSF_FORMAT.face(2)
    assert face.levels == (Compressed(Array("pos", 0, INT64), Array("crd", 0, INT64)),
                           Compressed(Array("pos", 1, INT64), Array("crd", 1, INT64)))
    assert face.vals == Array("vals", None, None)
    assert [a.name for a in face.arrays()] == ["pos0", "crd0", "pos1", "crd1", "vals"]
    assert CSF_FORMAT.array_patterns() == (r"pos\d+", r"crd\d+", "vals")
    assert CSF_FORMAT.layout(3, ((0, 1, 2),), (0b11,)) == CSF_FORMAT.face(1)  # the all-equal face: one mode
    assert CSF_FORMAT.layout(2, ((0, 1),), ()) == CSF_FORMAT.face(2)  # full storage: every mode
    assert formats.get("csf") is CSF_FORMAT and CSF32 in formats.registered()


def test_csf_arrays_are_the_stored_faces():
    a = np.array([[1.0, 2.0, 0.0], [2.0, 0.0, 3.0], [0.0, 3.0, 4.0]])
    st = SparseTensor.from_dense(a, ((0, 1),))
    strict = CSF_FORMAT.arrays(st, (0,), np.dtype(np.float64))
    face = st.faces[(0,)]
    by_name = {k.name: v for k, v in strict.items()}
    assert list(by_name) == ["pos0", "crd0", "pos1", "crd1", "vals"]
    for lvl in range(2):
        assert by_name[f"pos{lvl}"].tolist() == face.pos[lvl].tolist()
        assert by_name[f"crd{lvl}"].tolist() == face.crd[lvl].tolist()
    assert by_name["vals"].tolist() == [2.0, 3.0]
    assert CSF_FORMAT.value_coords(st, (0,)).tolist() == [[0, 1], [1, 2]]
    empty = {k.name: v.tolist() for k, v in CSF_FORMAT.arrays(SparseTensor.from_dense(np.eye(3) * 0, ((0, 1),)), (1,),
                                                              np.dtype(np.float64)).items()}
    assert empty == {"pos0": [0, 0], "crd0": [], "vals": []}  # an absent face: no fiber


def test_formats_are_registered_once_by_name():
    assert formats.register(CSFFormat(name="csf32", index=INT32, pos_name="ptr", crd_name="idx",
                                      vals_name="data")) == CSF32  # the same description again: harmless
    with pytest.raises(Exception, match="registered already"):
        formats.register(CSFFormat(name="csf32"))
    with pytest.raises(SystecError, match="unknown storage format 'nope'"):
        formats.get("nope")


# -- the calling convention --------------------------------------------------------------------

def test_signature_and_argtypes_come_from_one_list(c_compiler, private_c_cache):
    for k in (kernel(SSYMV), kernel(SSYMV, fmt=False), systec_ref.load(ROOT / "examples" / "ssyrk.ein")):
        p = k.final
        params = abi.parameters(p)
        sig = abi.signature(p)
        assert sig == f"int systec_{p.name}(" + ", ".join(q.declaration() for q in params) + ")"
        assert sig + " {" in emit_c(p)
        fn = CFunction(p)
        assert fn.params == params
        assert list(fn.fn.argtypes) == abi.argtypes(params) == [q.ctype for q in params]
        assert fn.dense == [q.source.tensor for q in params if isinstance(q.source, abi.DenseInput)]


def test_parameters_say_where_each_value_comes_from():
    p = kernel(SSYMV).final
    params = abi.parameters(p)
    assert [type(q.source).__name__ for q in params[:3]] == ["Dim", "DenseInput", "Output"]
    assert [q.declaration() for q in params[:3]] == ["int64_t n", "const double *restrict x", "double *restrict y"]
    faces = [q for q in params if isinstance(q.source, abi.FaceArray)]
    assert [q.name for q in faces] == ["A_f0_ptr0", "A_f0_idx0", "A_f0_ptr1", "A_f0_idx1", "A_f0_data",
                                       "A_f1_ptr0", "A_f1_idx0", "A_f1_data"]
    assert {(q.c_type, q.numpy) for q in faces if q.source.array.type is not None} == {("int32_t", np.int32)}
    assert {(q.c_type, q.numpy) for q in faces if q.source.array.type is None} == {("double", np.float64)}
    assert all(q.ctype is ctypes.c_void_p for q in params[1:]) and params[0].ctype is ctypes.c_int64
    assert abi.parameters(kernel(SSYMV, fmt=False).final)[3].name == "A_f0_pos0"
    # the runtime finds each face's arrays through the same list
    k = kernel(SSYMV)
    inputs = k.random_inputs({"n": 4}, seed=1)
    arrays, _ = k.bind(inputs)
    st = for_program(p, arrays)["A"]
    for q in faces:
        assert CSF32.arrays(st, q.source.face, np.dtype(np.float64))[q.source.array].dtype == q.numpy


def test_the_emitter_runs_no_pass():
    """``emit`` imports nothing of ``rewrite``: a ``Permute`` is emitted as it is."""
    for path in (ROOT / "systec_ref" / "emit").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert "rewrite" not in (node.module or ""), f"{path.name} imports {node.module}"
    k = systec_ref.load(ROOT / "examples" / "ssymv.ein")
    src = k.c_source("restrict-iteration")
    assert "every distinct rearrangement of (i, j)" in src and "define-assignments" not in src
