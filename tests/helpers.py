"""Helpers shared by the tests (imported as ``helpers``; conftest puts tests/ on sys.path)."""

from __future__ import annotations

import re
from pathlib import Path

import systec_ref
from systec_ref.errors import SourceError
from systec_ref.ir.nodes import Program
from systec_ref.lang import parse
from systec_ref.lang.ast import Kernel as KernelAST
from systec_ref.rewrite.lower import lower

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = ROOT / "examples"
EXAMPLES: list[Path] = sorted(EXAMPLES_DIR.glob("*.ein"))


def example(name: str) -> Path:
    return EXAMPLES_DIR / f"{name}.ein"


def _ast(kernel: systec_ref.Kernel | KernelAST) -> KernelAST:
    return kernel.ast if isinstance(kernel, systec_ref.Kernel) else kernel


def sizes_for(kernel: systec_ref.Kernel | KernelAST, n: int, r: int) -> dict[str, int]:
    """A size for every symbolic dimension: ``r`` for dims named ``r`` or ``m``, ``n`` for the rest."""
    ast = _ast(kernel)
    dims = {d for t in ast.decls for d in t.dims if isinstance(d, str)}
    return {d: (r if d in ("r", "m") else n) for d in sorted(dims)}


def naive(kernel: systec_ref.Kernel | KernelAST) -> Program:
    """The naive loop nest (the ``lower`` stage), built without running the rest of the pipeline."""
    return lower(_ast(kernel))


# -- dense / sparse variants of source text ------------------------------------

_DECL = re.compile(r"^(?P<head>\s*in\s+[A-Za-z][A-Za-z0-9_]*(?:\s*\[[^\]]*\])?)(?P<attrs>[^#]*?)(?P<tail>\s*(?:#.*)?)$")
_FILL = re.compile(r"\bfill\s+-?\s*(?:inf|[0-9.eE+-]+)")
_FORMAT = re.compile(r"\b(?:sparse|dense)\b")


def _input_lines(text: str) -> list[int]:
    return [n for n, line in enumerate(text.split("\n")) if _DECL.match(line)]


def _with_format(text: str, line_no: int, fmt: str, fill: str | None) -> str:
    lines = text.split("\n")
    m = _DECL.match(lines[line_no])
    assert m is not None
    attrs = _FORMAT.sub("", _FILL.sub("", m.group("attrs")))
    attrs = " ".join(attrs.split())
    extra = [fmt] if fmt == "sparse" else []
    if fill is not None:
        extra.append(f"fill {fill}")
    lines[line_no] = " ".join(x for x in (m.group("head"), attrs, *extra) if x) + m.group("tail")
    return "\n".join(lines)


def dense_variant(text: str) -> str:
    """``text`` with every input dense: ``sparse``, ``dense`` and ``fill ...`` dropped."""
    for n in _input_lines(text):
        text = _with_format(text, n, "dense", None)
    parse(text)  # still a valid kernel
    return text


def sparse_fill_for(op: str) -> str | None:
    """The fill a sparse input needs under assignment operator ``op`` (None: the default 0)."""
    return {"min=": "inf", "max=": "-inf"}.get(op)


def sparse_variant(text: str) -> str:
    """``text`` with every input ``sparse`` that the language accepts as sparse
    (with the fill its reduction needs); the others stay dense."""
    text = dense_variant(text)
    return set_sparse(text, frozenset(d.name for d in parse(text).inputs))


def set_sparse(text: str, names: set[str] | frozenset[str]) -> str:
    """``text`` with the inputs in ``names`` made sparse where the language accepts it."""
    fill = sparse_fill_for(parse(text).assignment.op)
    for n in _input_lines(text):
        name = text.split("\n")[n].split()[1].split("[")[0]
        if name not in names:
            continue
        candidate = _with_format(text, n, "sparse", fill)
        try:
            parse(candidate)
        except SourceError:
            continue
        text = candidate
    # a sum of sparse inputs (``A[i] + B[i]``) is admitted only all together: where all hold their fills
    rest = [n for n in _input_lines(text) if text.split("\n")[n].split()[1].split("[")[0] in names
            and not _FORMAT.search(text.split("\n")[n].split("#")[0].replace("dense", ""))]
    if len(rest) > 1:
        candidate = text
        for n in rest:
            candidate = _with_format(candidate, n, "sparse", fill)
        try:
            parse(candidate)
            text = candidate
        except SourceError:
            pass
    return text


# -- subprocesses: only the project's own interpreter ----------------------------

_PYTHON_NAME = re.compile(r"python[0-9.]*(\.exe)?\Z")


def interpreter_problem(argv0: str) -> str | None:
    """Why starting ``argv0`` would not run the project's own interpreter and environment (None: it would).

    A program named like a Python interpreter, or one that is the same file as ``sys.executable``, must be
    ``sys.executable`` itself: another python lacks the project's packages, and the venv's own interpreter
    reached through a link outside the venv finds no ``pyvenv.cfg`` beside it and loses the venv."""
    import os
    import shutil
    import sys

    path = shutil.which(argv0) or argv0
    same_file = os.path.exists(path) and os.path.realpath(path) == os.path.realpath(sys.executable)
    if not (_PYTHON_NAME.match(Path(argv0).name) or same_file):
        return None
    if argv0 == sys.executable:
        return None
    how = "a link to the project's interpreter" if same_file else "another Python interpreter"
    return (f"a test started {argv0!r}, {how}: start sys.executable ({sys.executable}) itself, or the "
            f"subprocess runs without the project's environment and passes only where the system Python "
            f"has its packages")


def guard_subprocesses() -> None:
    """Make every ``subprocess.Popen`` of the test session check :func:`interpreter_problem` first."""
    import os
    import subprocess

    if getattr(subprocess.Popen, "_systec_guarded", False):
        return
    real_init = subprocess.Popen.__init__

    def init(self, args, *rest, **kw):
        if not isinstance(args, (str, bytes, os.PathLike)):
            args = list(args)
        if kw.get("executable"):
            argv0 = os.fsdecode(kw["executable"])
        elif isinstance(args, (str, bytes, os.PathLike)):
            text = os.fsdecode(args)
            argv0 = text.split()[0] if kw.get("shell") and text.split() else text
        else:
            argv0 = os.fsdecode(args[0]) if args else ""
        problem = interpreter_problem(argv0) if argv0 else None
        if problem:
            raise AssertionError(problem)
        real_init(self, args, *rest, **kw)

    subprocess.Popen.__init__ = init
    subprocess.Popen._systec_guarded = True
