"""The Python API: ``compile``, ``load`` and :class:`Kernel`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from .errors import SystecError
from .interp.counts import Counts
from .interp.definition import run_definition
from .interp.loops import run_program
from .ir.nodes import Program
from .lang.ast import Kernel as KernelAST
from .lang.parser import parse
from .rewrite import pipeline
from .rewrite.manager import Stage
from .storage import for_program
from .tensors import bind, densify, random_inputs

BACKENDS = ("interp", "c")


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

    @property
    def name(self) -> str:
        return self.ast.name

    @cached_property
    def stages(self) -> list[Stage]:
        """``lower`` followed by every pass of the pipeline, in order."""
        return pipeline.compile_stages(self.ast, self.options)

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
    def bind(self, tensors: dict[str, object], check: bool = True) -> tuple[dict[str, np.ndarray], dict[str, int]]:
        return bind(self.ast, tensors, check)

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

    def run(self, *, backend: str = "interp", optimize: bool = True, check: bool = True,
            **tensors: object) -> np.ndarray:
        """Compute the kernel's output; a scalar output comes back as a 0-d array.

        ``backend="interp"`` runs the reference interpreter, ``"c"`` the
        compiled C.  ``optimize=False`` runs the naive nest (interp) or the
        baseline pipeline with the symmetry passes off (C).  ``check=False``
        skips verifying declared symmetry (the kernel then reads only the
        canonical triangle of what it is given).
        """
        if backend not in BACKENDS:
            raise SystecError(f"unknown backend '{backend}' (available: {', '.join(BACKENDS)})")
        if backend == "c":
            arrays, dims = self.bind(tensors, check)
            fn = self.c_function(None if optimize else "baseline")
            return self.call(fn, arrays, dims)

        prog = self.final if optimize else self.naive
        return self.interpret(tensors, prog, check).value

    @staticmethod
    def call(fn, arrays: dict, dims: dict[str, int]) -> np.ndarray:
        """Call a compiled stage (:meth:`c_function`) on bound inputs (:meth:`bind`).

        Sparse inputs given compressed stay compressed unless the stage reads them element
        by element (then, and only then, they are expanded to a dense array)."""
        why = "the compiled kernel reads it element by element (a loop nest over it does not iterate its stored " \
              "entries: 'emit' shows which arrays it takes)"
        dense = {n: (densify({n: a}, why)[n] if n in fn.dense else a) for n, a in arrays.items()}
        out = fn(dense, dims, for_program(fn.program, arrays))
        return out[next(t.name for t in fn.program.tensors if t.role == "out")]

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
        chosen so that every loop nest of every stage runs (:func:`systec_ref.sizes.default_size`)."""
        from .sizes import default_size

        given = given or {}
        dims = sorted({d for t in self.ast.decls for d in t.dims if isinstance(d, str)})
        missing = [d for d in dims if d not in given]
        n = default_size(self.stages) if missing else 0
        return {d: given.get(d, n) for d in dims}


def compile(text: str, path: str = "<string>", *, symmetry: bool = True,  # noqa: A001 - the public name
            faces: str = "split") -> Kernel:
    """Parse and check ``.ein`` source text (options: see :class:`~systec_ref.rewrite.pipeline.Options`)."""
    return Kernel(parse(text, path), pipeline.Options(symmetry=symmetry, faces=faces))


def load(path: str | Path, *, symmetry: bool = True, faces: str = "split") -> Kernel:
    """Read, parse and check a ``.ein`` file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SystecError(f"{p}: no such file") from None
    except UnicodeDecodeError as e:
        raise SystecError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise SystecError(f"{p}: cannot read ({e.strerror})") from None
    return compile(text, str(path), symmetry=symmetry, faces=faces)
