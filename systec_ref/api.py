"""The Python API: ``compile``, ``load`` and :class:`Kernel`."""

from __future__ import annotations

import dataclasses
import html
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from .errors import InputError, SystecError, ToolError
from .interp.counts import Counts
from .interp.definition import run_definition
from .interp.loops import run_program
from .ir.nodes import Program
from .ir.printer import print_program
from .lang.ast import Kernel as KernelAST
from .lang.parser import parse
from .rewrite import pipeline
from .rewrite.manager import Stage
from .storage import for_program
from .storage import formats as storage_formats
from .storage.faces import is_exactly_symmetric, symmetrize_index
from .storage.packed import PackedTensor
from .storage.symmetric import SparseTensor
from .tensors import bind, densify, random_inputs

BACKENDS = ("interp", "c")


class InterpreterFallbackWarning(UserWarning):
    """No C compiler: kernels run in the (slow) reference interpreter.  Issued once per process."""


#: whether a C compiler was found, by the value of $CC (asked once per value)
_c_found: dict[str | None, bool] = {}


def default_backend() -> str:
    """``"c"`` where a C compiler is found (``$CC``, else ``cc``), else ``"interp"`` with one warning per process
    saying how to get C."""
    cc = os.environ.get("CC")
    if cc not in _c_found:
        from .emit.build import toolchain

        try:
            toolchain()
            _c_found[cc] = True
        except ToolError as e:
            if not any(found is False for found in _c_found.values()):  # once per process
                warnings.warn(f"running kernels in the reference interpreter, which is slow: {e}",
                              InterpreterFallbackWarning, stacklevel=_caller_level())
            _c_found[cc] = False
    return "c" if _c_found[cc] else "interp"


def _caller_level() -> int:
    """The ``stacklevel`` of the first frame outside this package: a warning names the user's line."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        frame, level = frame.f_back, level + 1
    return level


def _backend(backend: str | None) -> str:
    if backend is None:
        return default_backend()
    if backend not in BACKENDS:
        raise SystecError(f"unknown backend '{backend}' (available: {', '.join(BACKENDS)}, or None: C where a "
                          f"C compiler is found)")
    return backend


def _into(out: object, value: np.ndarray, what: str) -> np.ndarray:
    """Copy ``value`` into the caller's ``out`` array (checked) and return ``out``."""
    if not isinstance(out, np.ndarray):
        raise InputError(f"{what}: out= must be a numpy array, not {type(out).__name__}")
    if out.shape != value.shape or out.dtype != value.dtype or not out.flags.writeable:
        raise InputError(f"{what}: out= must be a writeable {value.dtype} array of shape {value.shape}, got "
                         f"{'a' if out.flags.writeable else 'a read-only'} {out.dtype} array of shape {out.shape}")
    np.copyto(out, value)
    return out


@dataclass(frozen=True)
class Result:
    """A kernel's output and what computing it cost (interpreter only)."""

    value: np.ndarray
    counts: Counts


class Kernel:
    """A checked kernel and its compiled stages."""

    def __init__(self, ast: KernelAST, options: pipeline.Options | None = None):
        self.ast = ast
        self.options = options or pipeline.Options()

    def __repr__(self) -> str:
        return f"<Kernel {self.name} from {self.ast.path}>"

    def _repr_html_(self) -> str:
        """Jupyter's display: the source, the stages with their notes, the final loop nest
        (``systec_ref.explain_view(kernel)`` adds per-pass diffs and a drawing)."""
        esc = html.escape
        rows = "".join(f"<tr><td>{esc(s.name)}</td><td>{'changed' if s.changed else ''}</td><td>{esc(s.note)}</td>"
                       f"</tr>" for s in self.stages)
        return (f"<div><b>kernel {esc(self.name)}</b> <small>{esc(str(self.ast.path))}</small>"
                f"<pre>{esc(self.ast.source)}</pre><table><tr><th>stage</th><th></th><th>note</th></tr>{rows}"
                f"</table><details><summary>final loop nest</summary><pre>{esc(print_program(self.final))}</pre>"
                f"</details></div>")

    @property
    def name(self) -> str:
        return self.ast.name

    @cached_property
    def stages(self) -> list[Stage]:
        """``lower`` followed by every pass of the pipeline, in order."""
        base = self.__dict__.get("_base")
        if base is not None:  # a variant for other storage formats: the passes before storage are shared
            return pipeline.resume(base.stages, self.options)
        return pipeline.compile_stages(self.ast, self.options)

    # -- storage formats -------------------------------------------------------------
    def with_formats(self, tensor_formats: tuple[tuple[str, str], ...]) -> Kernel:
        """This kernel with sparse inputs stored in the given formats ((tensor, format name) pairs;
        see :mod:`systec_ref.storage.choose`): a variant sharing the stages before ``sparse-iterate``,
        kept for the next call that asks for the same."""
        tensor_formats = tuple(sorted((t, f) for t, f in tensor_formats if f != self.options.sparse_format))
        if tensor_formats == self.options.tensor_formats:
            return self
        variants = self.__dict__.setdefault("_variants", {})
        if tensor_formats not in variants:
            k = Kernel(self.ast, dataclasses.replace(self.options, tensor_formats=tensor_formats))
            k.__dict__["_base"] = self
            variants[tensor_formats] = k
        return variants[tensor_formats]

    def with_packed(self, packed: tuple[str, ...], slabs: bool = True) -> Kernel:
        """This kernel compiled for the inputs ``packed`` passed packed (:mod:`systec_ref.storage.packed`):
        every stage reads them through the packed layout, and BLAS never reads them (``blas-calls`` copies
        the slab a product needs out of the packed array first; ``slabs=False``: no such product, the
        whole symmetric set is used).  Kept for the next call."""
        if isinstance(packed, str) or not all(isinstance(t, str) for t in packed):
            raise SystecError(f"packed must be a tuple of input names, not {packed!r}")
        packed = tuple(packed)
        if packed == self.options.packed and slabs == self.options.slabs:
            return self
        variants = self.__dict__.setdefault("_variants", {})
        key = ("packed", packed, slabs)
        if key not in variants:
            variants[key] = Kernel(self.ast, dataclasses.replace(self.options, packed=packed, slabs=slabs,
                                                                 tensor_formats=()))
        return variants[key]

    def _packed_variant(self, packed: tuple[str, ...], dims: dict[str, int]) -> Kernel:
        """:meth:`with_packed` with slab copies where they pay at these sizes: a product that reads a slab
        copied out of packed storage must do enough multiply-adds per copied element
        (:data:`~systec_ref.rewrite.blas_calls.SLAB_MIN_COLUMNS`), else the whole symmetric set is used."""
        from .rewrite.blas_calls import SLAB_MIN_COLUMNS, slab_columns

        k = self.with_packed(packed, slabs=True)
        columns = slab_columns(k.final, dims)
        return k if columns is None or columns >= SLAB_MIN_COLUMNS else self.with_packed(packed, slabs=False)

    def for_data(self, arrays: dict[str, object], stage: str | None = None,
                 sparse_format: str | dict[str, str] | None = None) -> Kernel:
        """The variant of this kernel (:meth:`with_formats`) whose stage ``stage`` (default: the final
        one; ``"baseline"``) iterates the sparse inputs among ``arrays`` (bound, :meth:`bind`) in the
        storage formats chosen from their data (:func:`systec_ref.storage.choose.choose_format`), or
        given: ``sparse_format`` a format name for every sparse input, or a dict per input (``"auto"``:
        chosen)."""
        packed = tuple(sorted(n for n, a in arrays.items() if isinstance(a, PackedTensor)))
        if packed != self.options.packed:
            return self._packed_variant(packed, self._dims(arrays)).for_data(arrays, stage, sparse_format)
        prog = self._program(stage)[0]
        iterated = [name for name, _ in prog.facts.sparse_storage]
        if isinstance(sparse_format, dict):
            stray = sorted(set(sparse_format) - {t.name for t in prog.tensors if t.format == "sparse"})
            if stray:
                raise InputError(f"sparse_format names '{stray[0]}', which is not a sparse input of kernel "
                                 f"{self.name}")
        if not iterated:
            return self
        given = sparse_format if isinstance(sparse_format, dict) else {t: sparse_format for t in iterated}
        want = {t: given.get(t) or "auto" for t in iterated}
        if any(f == "auto" for f in want.values()):
            from .storage.choose import choose_format

            stored = for_program(prog, arrays)  # (a stored transposed copy is built from its input)
            want |= {t: choose_format(st).name for t, st in stored.items() if want.get(t) == "auto"}
        for name in want.values():
            storage_formats.get(name)  # an unknown name is refused here
        return self.with_formats(tuple(want.items()))

    def _dims(self, arrays: dict[str, object]) -> dict[str, int]:
        """The size of each symbolic dimension, from bound inputs."""
        return {dim: int(arrays[d.name].shape[q]) for d in self.ast.inputs for q, dim in enumerate(d.dims)
                if isinstance(dim, str) and d.name in arrays}

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise SystecError(f"kernel {self.name} has no stage '{name}' (stages: "
                          f"{', '.join(s.name for s in self.stages)})")

    @property
    def naive(self) -> Program:
        return self.stages[0].program

    @property
    def final(self) -> Program:
        return self.stages[-1].program

    # -- running ---------------------------------------------------------------
    def bind(self, tensors: dict[str, object], check: bool | str | float = True,
             only: frozenset[str] | None = None) -> tuple[dict[str, np.ndarray], dict[str, int]]:
        """Validate inputs (see :func:`systec_ref.tensors.bind`); ``only``: verify the symmetry of these alone.

        With ``check=False`` a symmetric input is taken as its canonical part (the rest is not looked at).
        A kernel whose final stage reads more of a dense input than the canonical part of its declared
        symmetry (``gemm-form`` keeps a part of the symmetry, whose products read whole rows) looks at
        the rest after all: one bitwise comparison per transposition of the group (no copy when it is
        symmetric, the usual case); otherwise the input is replaced by a copy holding the canonical entry
        everywhere (an index sort over the whole tensor: slower and larger than the check)."""
        arrays, dims = bind(self.ast, tensors, check, only)
        if check is False:
            for name, groups in self._read_beyond_canonical.items():
                a = arrays[name]
                if (only is None or name in only) and isinstance(a, np.ndarray) and a.size \
                        and not is_exactly_symmetric(a, groups):
                    arrays[name] = np.ascontiguousarray(a[symmetrize_index(a.shape, groups)])
        return arrays, dims

    @cached_property
    def _read_beyond_canonical(self) -> dict[str, tuple[tuple[int, ...], ...]]:
        """The dense inputs the final stage declares less symmetric than the kernel does, with the kernel's
        groups."""
        final = {t.name: t for t in self.final.tensors}
        return {d.name: d.symmetry for d in self.ast.inputs
                if d.symmetry and d.format == "dense" and final[d.name].symmetry != d.symmetry}

    def interpret(self, tensors: dict[str, object], stage: str | Program | None = None,
                  check: bool = True) -> Result:
        """Run one stage (default: the final one) in the interpreter, with counts."""
        arrays, dims = self.bind(tensors, check)
        prog = stage if isinstance(stage, Program) else (self.final if stage is None else self.stage(stage).program)
        outs, counts = run_program(prog, densify(arrays, "the interpreter runs on dense arrays (backend='c' "
                                                         "reads sparse inputs compressed)"),
                                   dims, for_program(prog, arrays))
        return Result(outs[self.ast.output.name], counts)

    def definition(self, tensors: dict[str, object], check: bool = True) -> Result:
        """Evaluate the kernel by its definition (no loop nest at all)."""
        arrays, dims = self.bind(tensors, check)
        value, counts = run_definition(self.ast, densify(arrays, "the definition is evaluated on dense arrays"), dims)
        return Result(value, counts)

    def run(self, *, backend: str | None = None, optimize: bool = True, check: bool | str | float = True,
            out: np.ndarray | None = None, sparse_format: str | dict[str, str] | None = None,
            packed_output: bool = False, **tensors: object) -> np.ndarray | PackedTensor:
        """Compute the kernel's output; a scalar output comes back as a 0-d array.

        ``backend=None`` (the default) runs the compiled C where a C compiler is found, else the
        interpreter (warning once); ``"interp"`` runs the reference interpreter, ``"c"`` the
        compiled C.  ``optimize=False`` runs the naive nest (interp) or the
        baseline pipeline with the symmetry passes off (C).  ``check`` verifies declared symmetry:
        ``True`` within a relative tolerance for floats (``systec_ref.storage.faces.SYMMETRY_RTOL``,
        1e-12; the canonical entries are then used), ``"exact"`` bitwise, a number as the tolerance,
        ``False`` not at all (the optimized stages then read only the canonical triangle of what
        they are given; the naive nest and the definition read every entry — except for an input the
        final stage reads beyond its canonical part, ``gemm-form``'s, which every stage then gets
        canonicalized when it is not exactly symmetric: see :meth:`bind`).  ``out=`` is an array
        the result is written into (and returned).  ``sparse_format`` says how sparse inputs are handed
        to the kernel: ``None``/``"auto"`` chosen from their data (32-bit indices where they fit, dense
        levels where nearly full: :mod:`systec_ref.storage.choose`), a format name (``"csf"``: 64-bit,
        compressed), or a dict per input.  ``packed_output=True`` returns a symmetric output as a
        :class:`~systec_ref.storage.packed.PackedTensor` of the symmetry the compiler found in it (its
        canonical entries; the call itself still computes the whole output first, so it needs that memory
        while it runs).  An output declared ``sparse`` comes back as a
        :class:`~systec_ref.storage.SparseTensor` of the entries the updates reach, canonical-only in the
        output symmetry the compiler found (``out=`` and ``packed_output`` do not apply).
        """
        backend = _backend(backend)
        sparse_out = self.ast.output.format == "sparse"
        if sparse_out and (out is not None or packed_output):
            raise InputError(f"kernel {self.name}: its output {self.ast.output.name} is sparse, returned as a "
                             f"SparseTensor: {'out=' if out is not None else 'packed_output=True'} does not apply")
        if packed_output:
            groups = self.output_symmetry()
            if out is not None:
                raise InputError(f"kernel {self.name}: out= and packed_output=True exclude each other")
        arrays, dims = self.bind(tensors, check)
        if backend == "c":
            stage = None if optimize else "baseline"
            fn = self.for_data(arrays, stage, sparse_format).c_function(stage)
            value = self.call(fn, arrays, dims, out)
        else:
            prog = self.for_data(arrays, None, sparse_format).final if optimize else self.naive
            value = self.interpret(arrays, prog, check=False).value
            if sparse_out:
                return sparse_value(prog, value)
            value = value if out is None else _into(out, value, f"kernel {self.name}")
        # the compiler computed the canonical triangle and mirrored it: the output is exactly symmetric
        return PackedTensor.from_dense(value, groups, check=False) if packed_output else value

    def output_symmetry(self) -> tuple[tuple[int, ...], ...]:
        """The groups of output modes the compiler found symmetric (``replicate-output``: it computes their
        canonical triangle and mirrors it); raises :class:`InputError` when there are none."""
        # found by replicate-output, a symmetry pass: a compile with them off asks the symmetric compile
        final = self.final if self.options.symmetry else \
            Kernel(self.ast, dataclasses.replace(self.options, symmetry=True)).final
        groups = final.facts.output_symmetry
        if not groups:
            raise InputError(f"kernel {self.name}: its output has no symmetry the compiler found, so it cannot be "
                             f"returned packed")
        return groups

    def prepare(self, *, backend: str | None = None, check: bool | str | float = True,
                sparse_format: str | dict[str, str] | None = None, **tensors: object) -> Prepared:
        """Validate ``tensors`` once and return a call that runs the kernel on them: for iterative
        algorithms, where the same kernel runs many times.  ``p()`` runs on the tensors given here;
        ``p(B=B2)`` replaces some (shape and dtype checked; the symmetry of a replaced symmetric input
        verified unless ``check=False``) and keeps them for the next calls; ``p(out=arr)`` writes
        into ``arr``.  ``sparse_format``: as for :meth:`run` (chosen again when a replaced input needs
        another)."""
        return Prepared(self, _backend(backend), check, tensors, sparse_format)

    @staticmethod
    def call(fn, arrays: dict, dims: dict[str, int], out: np.ndarray | None = None) -> np.ndarray:
        """Call a compiled stage (:meth:`c_function`) on bound inputs (:meth:`bind`).

        Sparse inputs given compressed stay compressed unless the stage reads them element
        by element (then, and only then, they are expanded to a dense array)."""
        return Kernel.prepare_call(fn, arrays, dims)(out)

    @staticmethod
    def prepare_call(fn, arrays: dict, dims: dict[str, int]) -> Callable[[np.ndarray | None], np.ndarray]:
        """:meth:`call` split in two: the arguments checked and packed once, then a call (``out=``: an array
        to write the result into) that only runs the C."""
        why = "the compiled kernel reads it element by element (a loop nest over it does not iterate its stored " \
              "entries: 'emit' shows which arrays it takes)"
        dense = {n: (densify({n: a}, why)[n] if n in fn.dense else a) for n, a in arrays.items()}
        run = fn.prepare(dense, dims, for_program(fn.program, arrays))
        name = next(t.name for t in fn.program.tensors if t.role == "out")

        def call(out: np.ndarray | None = None) -> np.ndarray:
            return run({name: out} if out is not None else None)[name]
        return call

    # -- C -----------------------------------------------------------------------
    @cached_property
    def baseline(self) -> list[Stage]:
        """The same compiler with the symmetry passes off (every other pass on)."""
        return pipeline.compile_stages(self.ast, dataclasses.replace(self.options, symmetry=False))

    def _program(self, stage: str | None) -> tuple[Program, str]:
        if stage is None:
            return self.final, self.stages[-1].name
        if stage == "baseline":
            return self.baseline[-1].program, "baseline (symmetry passes off)"
        return self.stage(stage).program, stage

    def c_source(self, stage: str | None = None) -> str:
        """C99 for a stage (default: the final one; ``"baseline"``: symmetry passes off)."""
        from .emit.c import emit_c

        prog, label = self._program(stage)
        return emit_c(prog, label)

    def c_function(self, stage: str | None = None):
        """The compiled C of a stage, loaded (cached on disk and in this process)."""
        from .emit.runtime import CFunction

        key = stage or ""
        cache = self.__dict__.setdefault("_cfuncs", {})
        if key not in cache:
            prog, label = self._program(stage)
            cache[key] = CFunction(prog, label)
        return cache[key]

    def random_inputs(self, sizes: dict[str, int] | None = None, seed: int = 0,
                      density: float = 1.0) -> dict[str, np.ndarray]:
        return random_inputs(self.ast, sizes, seed, density)

    def default_sizes(self, given: dict[str, int] | None = None) -> dict[str, int]:
        """A size for every symbolic dimension: ``given`` where it says, else one size (at least 4)
        chosen so that every loop nest of every stage runs (:func:`systec_ref.sizes.default_size`), more for
        a dimension cut into tiles (:func:`systec_ref.sizes.tiled_sizes`)."""
        from .sizes import default_size, tiled_sizes

        given = given or {}
        dims = sorted({d for t in self.ast.decls for d in t.dims if isinstance(d, str)})
        missing = [d for d in dims if d not in given]
        n = default_size(self.stages) if missing else 0
        tiled = tiled_sizes(self.stages) if missing else {}
        return {d: given.get(d, max(n, tiled.get(d, 0))) for d in dims}


def sparse_value(prog: Program, value: np.ndarray) -> SparseTensor:
    """A sparse output as the C returns it, from the interpreter's array (which holds its value at every
    element): stored canonical-only in the output symmetry ``prog`` found."""
    out = prog.output
    return SparseTensor.from_dense(value, prog.facts.output_symmetry, fill=out.fill, check=False, name=out.name)


class Prepared:
    """A kernel with its inputs validated and packed once (:meth:`Kernel.prepare`).

    ``p()`` runs it; ``p(name=array, ...)`` replaces some inputs first (kept for later calls);
    ``p(out=arr)`` writes the result into ``arr``.  An input given again as the very same object
    is not checked again."""

    def __init__(self, kernel: Kernel, backend: str, check: bool | str | float, tensors: dict[str, object],
                 sparse_format: str | dict[str, str] | None = None):
        self.kernel, self.backend, self.check = kernel, backend, check
        self.sparse_format = sparse_format
        self.tensors = dict(tensors)
        self.arrays, self.dims = kernel.bind(self.tensors, check)
        self._run = self._pack()

    def __repr__(self) -> str:
        return f"<Prepared {self.kernel.name} on {', '.join(sorted(self.tensors))} ({self.backend})>"

    def _pack(self) -> Callable[[np.ndarray | None], np.ndarray]:
        # the storage formats are chosen from the inputs as they are now (a replaced one may need others)
        k = self.kernel.for_data(self.arrays, None, self.sparse_format)
        if self.backend == "c":
            return Kernel.prepare_call(k.c_function(), self.arrays, self.dims)
        arrays = self.arrays

        def interp(out: np.ndarray | None = None) -> np.ndarray:
            value = k.interpret(arrays, k.final, check=False).value
            if k.ast.output.format == "sparse":
                if out is not None:
                    raise InputError(f"kernel {k.name}: its output is sparse, returned as a SparseTensor: out= "
                                     f"does not apply")
                return sparse_value(k.final, value)
            return value if out is None else _into(out, value, f"kernel {k.name}")
        return interp

    def __call__(self, out: np.ndarray | None = None, **tensors: object) -> np.ndarray:
        changed = {n: a for n, a in tensors.items() if a is not self.tensors.get(n)}
        if changed:
            self._replace(changed)
        return self._run(out)

    def _replace(self, changed: dict[str, object]) -> None:
        """Validate the replaced inputs only: shapes against the bound dims, dtype, and symmetry."""
        k = self.kernel
        unknown = sorted(set(changed) - {d.name for d in k.ast.inputs})
        if unknown:
            raise InputError(f"'{unknown[0]}' is not an input of kernel {k.name} (its inputs are "
                             f"{', '.join(d.name for d in k.ast.inputs)})")
        # the unchanged inputs are bound already: their symmetry is not checked again
        arrays, dims = k.bind({**self.arrays, **changed}, self.check, only=frozenset(changed))
        if dims != self.dims:
            moved = sorted(d for d in dims if dims[d] != self.dims.get(d))
            raise InputError(f"kernel {k.name} was prepared with {', '.join(f'{d}={self.dims[d]}' for d in moved)}; "
                             f"the new input{'s' if len(changed) > 1 else ''} give "
                             f"{', '.join(f'{d}={dims[d]}' for d in moved)} (prepare it again for other sizes)")
        self.tensors.update(changed)
        self.arrays = arrays
        self._run = self._pack()


def compile(text: str, path: str = "<string>", *, symmetry: bool = True,  # noqa: A001 - the public name
            faces: str = "split", tile: int = pipeline.DEFAULT_TILE, blas: bool = True) -> Kernel:
    """Parse and check ``.ein`` source text (options: see :class:`~systec_ref.rewrite.pipeline.Options`;
    ``tile``: the side of the tiles of a dense strict triangle, 0 for none; ``blas=False``: no BLAS calls)."""
    return Kernel(parse(text, path), pipeline.Options(symmetry=symmetry, faces=faces, tile=tile, blas=blas))


def load(path: str | Path, *, symmetry: bool = True, faces: str = "split", tile: int = pipeline.DEFAULT_TILE,
         blas: bool = True) -> Kernel:
    """Read, parse and check a ``.ein`` file, or a bundled example by name (``"mttkrp3"``,
    ``"sparse/ssymv"``: :func:`systec_ref.bundled.names`).  A file that exists wins over a bundled name."""
    from . import bundled

    p = Path(path)
    if not p.exists() and bundled.is_bundled(str(path)):
        text, where = bundled.read(str(path))
        return compile(text, where, symmetry=symmetry, faces=faces, tile=tile, blas=blas)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        if p.suffix == bundled.SUFFIX:  # meant as a file: say just that
            raise SystecError(f"{p}: no such file") from None
        raise bundled.unknown(str(path)) from None  # not a file, so meant as a name: list the bundled ones
    except UnicodeDecodeError as e:
        raise SystecError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise SystecError(f"{p}: cannot read ({e.strerror})") from None
    return compile(text, str(path), symmetry=symmetry, faces=faces, tile=tile, blas=blas)
