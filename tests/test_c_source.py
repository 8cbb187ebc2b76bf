"""What the generated C looks like.

* no globals: at file scope there are only ``static inline`` helpers and the
  kernel function (checked on the text, and on the object file's symbols);
* every index is ``int64_t`` (dimensions, loop variables, offsets);
* comments tie each block to the pass and the equality pattern it came from;
* the source is clean C99: ``-std=c99 -Wall -Wextra -pedantic -Werror``;
* temporaries are allocated once, outside the loops, and freed on every path.

Emission is cheap, so the structural checks run over every stage of every
example; the compiler checks over the final and baseline stages.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import helpers
import pytest

import systec_ref

CC = shutil.which(os.environ.get("CC", "cc")) or shutil.which("cc")
# the setup command installs gcc; without a compiler these tests fail (see conftest's compiler check)
needs_cc = pytest.mark.usefixtures("c_compiler")

TRANSPOSED = """\
kernel ssyrkt
in  A[n, m]
out C[n, n]
order k j i
C[i, j] += A[i, k] * A[j, k]
"""

_KERNELS: dict[tuple[str, str], systec_ref.Kernel] = {}


def kernel(name: str, faces: str = "split") -> systec_ref.Kernel:
    if (name, faces) not in _KERNELS:
        if name == "ssyrkt":
            _KERNELS[name, faces] = systec_ref.compile(TRANSPOSED, "ssyrkt.ein", faces=faces)
        else:
            _KERNELS[name, faces] = systec_ref.load(helpers.example(name), faces=faces)
    return _KERNELS[name, faces]


KERNELS = [(p.stem, "split") for p in helpers.EXAMPLES] + [("mttkrp4", "compact"), ("mttkrp5", "compact"),
                                                           ("ssyrkt", "split")]
KERNEL_IDS = [f"{n}-{f}" for n, f in KERNELS]


def all_sources(name: str, faces: str) -> list[tuple[str, str]]:
    k = kernel(name, faces)
    return ([(s.name, k.c_source(s.name)) for s in k.stages] + [("baseline", k.c_source("baseline"))])


def strip_comments(src: str) -> str:
    return re.sub(r"/\*.*?\*/", " ", src, flags=re.S)


def comments(src: str) -> str:
    return "\n".join(re.findall(r"/\*(.*?)\*/", src, flags=re.S))


def file_scope(src: str) -> list[str]:
    """The text at brace depth 0, split at each top-level ``{...}`` block (preprocessor lines removed)."""
    code = "\n".join(line for line in strip_comments(src).splitlines() if not line.lstrip().startswith("#"))
    pieces, depth, cur = [], 0, []
    for ch in code:
        if depth == 0 and ch != "{":
            cur.append(ch)
        if ch == "{":
            if depth == 0:
                pieces.append("".join(cur).strip())
                cur = []
            depth += 1
        elif ch == "}":
            depth -= 1
            assert depth >= 0, "unbalanced braces"
    assert depth == 0, "unbalanced braces"
    rest = "".join(cur).strip()
    return pieces + ([rest] if rest else [])


def kernel_function(src: str) -> str:
    start = src.index("int systec_")
    return src[start:]


# -- no globals -------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "faces"), KERNELS, ids=KERNEL_IDS)
def test_only_functions_at_file_scope(name, faces):
    helper = re.compile(r"static inline int64_t sx_off_\w+\((?:int64_t \w+(?:, )?)+\)")
    main = re.compile(r"int systec_" + re.escape(kernel(name, faces).name) + r"\([^;{}()]*\)")
    blas_types = re.compile(r"typedef void \(\*sx_d\w+_fn\)\([^;{}]*\);")  # the BLAS routines it is passed
    for stage, src in all_sources(name, faces):
        pieces = file_scope(blas_types.sub("", src))
        assert pieces, stage
        *helpers_, kernel_sig = pieces
        assert main.fullmatch(kernel_sig), f"{stage}: file scope ends with {kernel_sig!r}"
        for h in helpers_:
            assert helper.fullmatch(h), f"{stage}: something other than a static inline helper at file scope: {h!r}"
        assert src.count("int systec_") == 1, stage


@needs_cc
@pytest.mark.parametrize(("name", "faces"), KERNELS, ids=KERNEL_IDS)
def test_object_has_no_data_symbols(name, faces, tmp_path):
    """The object file defines only code: no data, bss or common symbols, and one global function."""
    nm = shutil.which("nm")
    assert nm, "nm (binutils, installed with gcc) is needed to list the object's symbols"
    src = tmp_path / f"{name}.c"
    src.write_text(kernel(name, faces).c_source())
    obj = tmp_path / f"{name}.o"
    r = subprocess.run([CC, "-std=c99", "-O1", "-c", str(src), "-o", str(obj)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    symbols = [line.split() for line in subprocess.run([nm, str(obj)], capture_output=True, text=True,
                                                       check=True).stdout.splitlines()]
    defined = [(s[-2], s[-1]) for s in symbols if len(s) == 3]
    data = [(t, n) for t, n in defined if t in "BbDdCGgSsVv"]
    assert not data, f"data symbols in {name}: {data}"
    exported = [n for t, n in defined if t == "T"]
    assert exported == [f"systec_{kernel(name, faces).name}"]


# -- int64_t indices ------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "faces"), KERNELS, ids=KERNEL_IDS)
def test_indices_are_int64(name, faces):
    k = kernel(name, faces)
    dims = sorted({d for t in k.ast.decls for d in t.dims if isinstance(d, str)})
    for stage, src in all_sources(name, faces):
        fn = strip_comments(kernel_function(src))
        sig = fn[: fn.index("{")]
        for d in dims:
            assert f"int64_t {d}," in sig or f"int64_t {d})" in sig, f"{stage}: dimension {d} is not int64_t"
        loops = re.findall(r"for \((\w+(?: \w+)?) (\w+) =", fn)
        assert loops, stage
        for ctype, var in loops:
            assert ctype == "int64_t" or (ctype == "size_t" and var == "sx_i"), f"{stage}: loop {var} is {ctype}"
        # (BLAS's own int: each size of a call, checked to fit and narrowed right before it)
        narrowed = re.sub(r"const int sx_b_\w+ = \(int\)sx_b_\w+64;", "", fn)
        assert not re.search(r"\b(?:int|long|short|unsigned|char)\s+\w+\s*[=;\[]", narrowed), \
            f"{stage}: a narrower integer variable in the kernel"
        if k.ast.output.dtype == "int64":
            assert "double" not in fn, stage


# -- comments ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "faces"), KERNELS, ids=KERNEL_IDS)
def test_comments_name_the_pass_and_the_pattern(name, faces):
    k = kernel(name, faces)
    final = comments(k.c_source())
    assert f"kernel {k.name}, stage {k.stages[-1].name}" in final
    assert "split-diagonals" in final
    assert re.search(r"pattern [a-z]+ [<=]", final), "no equality pattern named"
    assert "define-assignments" in final
    # every changed stage after split-diagonals still carries those comments
    names = [s.name for s in k.stages]
    for s in k.stages[names.index("split-diagonals"):]:
        assert "split-diagonals" in comments(k.c_source(s.name)), s.name
    # the tensors are described in the header
    for t in k.ast.decls:
        assert re.search(rf"\b(?:in|out)\s+{t.name}\b", final), t.name


def test_comments_of_specific_passes():
    whole_set = systec_ref.load(helpers.example("mttkrp5"), faces="compact", blas=False)  # gemm-form keeps 4 of 5
    assert "lookup-table" in comments(whole_set.c_source())
    assert "faces: compact" in comments(kernel("mttkrp5", "compact").c_source())
    assert "of the sum over l, copied (blas-calls)" in comments(kernel("mttkrp3").c_source())
    assert "replicate-output" in comments(kernel("ssyrk").c_source())
    assert "transposed copy of A (concordize)" in comments(kernel("ssyrkt").c_source())
    ssymv = comments(kernel("ssymv").c_source())
    assert "strict part i < j (split-diagonals)" in ssymv
    assert "face i == j (split-diagonals)" in ssymv


def test_comment_text_cannot_end_the_comment():
    from systec_ref.emit.c import _comment

    assert "*/" not in _comment("a */ b */")


# -- clean C99 ------------------------------------------------------------------------------------

@needs_cc
@pytest.mark.parametrize(("name", "faces"), KERNELS, ids=KERNEL_IDS)
def test_source_is_warning_free_c99(name, faces, tmp_path):
    k = kernel(name, faces)
    for stage in (None, "baseline"):
        src = tmp_path / f"{name}-{stage or 'final'}.c"
        src.write_text(k.c_source(stage))
        r = subprocess.run([CC, "-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror", "-fsyntax-only", str(src)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"{name} {stage or 'final'}:\n{r.stderr}"


def test_int64_minimum_is_written_portably():
    """``max=`` over int64 starts at INT64_MIN; ``INT64_C(-9223372036854775808)`` is not valid C
    (the literal 9223372036854775808 does not fit int64_t before it is negated)."""
    src = kernel("widest").c_source()
    assert "9223372036854775808" not in strip_comments(src)
    assert "INT64_MIN" in src


# -- allocation -------------------------------------------------------------------------------------

def test_temporaries_are_allocated_once_and_always_freed():
    src = kernel("ssyrkt").c_source()
    fn = strip_comments(kernel_function(src))
    assert fn.count("malloc(") == 1
    body = fn[fn.index("{") + 1:]
    first_loop = body.index("for (")
    assert body.index("malloc(") < first_loop, "allocation inside a loop"
    assert body.count("free(A_T)") == 2  # on the out-of-memory path and at the end
    assert re.search(r"if \(!A_T\) \{ free\(A_T\); return 1; \}", fn)
    assert fn.rstrip().endswith("free(A_T);\n    return 0;\n}")
    # gemm-form's MTTKRP: the scaled copies of B (one per nest whose sum is a product), the same way
    for name, faces in KERNELS:
        fn = strip_comments(kernel_function(kernel(name, faces).c_source()))
        copies = sorted(set(re.findall(r"\bB_S\d+\b", fn)))
        if name == "ssyrkt":
            continue
        if not copies:
            assert "malloc" not in fn, name
            continue
        assert name.startswith("mttkrp"), name
        assert fn.count("malloc(") == len(copies), name
        body = fn[fn.index("{") + 1:]
        assert body.rindex("malloc(") < body.index("for ("), "allocation inside a loop"
        for c in copies:
            assert body.count(f"free({c})") == 2, (name, c)
