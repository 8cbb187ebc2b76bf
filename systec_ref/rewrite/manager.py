"""The pass manager: declared passes, run in order, every stage recorded and verified.

A pass is a :class:`Pass` value declared once, in its own module (``PASS = Pass(...)``): its
name, the passes it requires before it, the facts it provides to later ones (fields of
:class:`~systec_ref.ir.nodes.Facts`), whether it has to do with symmetry (the symmetry-off
baseline leaves those out), and a pure function ``run(program, options) -> (program, note)``;
``note`` says in one line what the pass did, or why it did not apply (then the program comes
back unchanged).  Compile options reach a pass as the ``options`` argument, never inside the
program.

After every pass the manager runs the IR verifier (:func:`systec_ref.ir.verify.verify`): a
stage that is not a well-formed program (an index used outside its loop, a construct no later
stage can handle) is a :class:`~systec_ref.errors.MiscompileError` naming the pass, an
internal error of the compiler, not the user's.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

from ..errors import MiscompileError, SystecError
from ..ir.nodes import Facts, Program
from ..ir.printer import print_program
from ..ir.verify import verify
from ..storage import formats

FACES = ("split", "compact")

#: the default side of a tile (``tile``), measured: see the README's "Dense kernels and BLAS"
DEFAULT_TILE = 128


@dataclass(frozen=True)
class Options:
    """How to compile.

    * ``symmetry=False`` runs only the passes that have nothing to do with symmetry (those
      declared ``symmetry=False``): the baseline symmetric kernels are measured against;
    * ``faces="split"`` gives every diagonal face its own nest (least work); ``"compact"`` keeps
      the faces of sets of four or more variables together so ``consolidate-blocks`` and
      ``lookup-table`` can shrink the code;
    * ``sparse_format`` names how ``sparse-iterate`` expects sparse inputs to be stored (default:
      CSF by face, see :mod:`systec_ref.storage.csf`), ``tensor_formats`` per tensor;
    * ``tile``: the side of the tiles ``tile`` cuts a dense strict triangle into (0: no tiling);
    * ``blas=False``: no BLAS calls (``gemm-form``, ``tile`` and ``blas-calls`` change nothing): plain C
      loops only, no need for scipy's BLAS at run time;
    * ``packed``: the dense inputs handed over packed (recorded as the program's ``packed`` fact).
    """

    symmetry: bool = True
    faces: str = "split"
    #: the storage format of sparse inputs (a name registered in :mod:`systec_ref.storage.formats`)
    sparse_format: str = formats.DEFAULT_FORMAT
    #: (tensor, format name) for tensors stored otherwise than ``sparse_format`` (e.g. the index widths
    #: and dense levels :func:`systec_ref.storage.choose.choose_format` picks from a tensor's data)
    tensor_formats: tuple[tuple[str, str], ...] = ()
    #: the side of a tile of a dense strict triangle (``tile``); 0 turns tiling off
    tile: int = DEFAULT_TILE
    #: dense nests that are BLAS operations become calls (``blas-calls``), prepared by ``gemm-form`` and
    #: ``tile``; False: none of the three changes anything
    blas: bool = True
    #: dense inputs passed packed (canonical entries only, :mod:`systec_ref.storage.packed`): recorded by
    #: ``lower`` as the ``packed`` fact; BLAS never reads them (``blas-calls`` copies a slab out first)
    packed: tuple[str, ...] = ()
    #: ``blas-calls`` may copy a slab of a packed input out for a matrix product (False: it makes no such
    #: product, and ``gemm-form``'s trade is undone: the whole set is used); see ``Kernel.for_data``
    slabs: bool = True

    def __post_init__(self) -> None:
        if self.faces not in FACES:
            raise SystecError(f"faces must be one of {', '.join(FACES)}, not {self.faces!r}")
        if isinstance(self.tile, bool) or not isinstance(self.tile, int) or self.tile < 0:
            raise SystecError(f"tile must be a whole number >= 0 (0: no tiling), not {self.tile!r}")
        if not isinstance(self.slabs, bool):
            raise SystecError(f"slabs must be True or False, not {self.slabs!r}")
        if not isinstance(self.blas, bool):
            raise SystecError(f"blas must be True or False, not {self.blas!r}")
        if not isinstance(self.packed, tuple) or not all(isinstance(t, str) for t in self.packed):
            raise SystecError(f"packed must be a tuple of tensor names, not {self.packed!r}")
        formats.get(self.sparse_format)  # an unknown format is refused here, by name
        for _, name in self.tensor_formats:
            formats.get(name)

    def format_for(self, tensor: str) -> str:
        """The name of the format ``tensor`` is to be stored in."""
        return dict(self.tensor_formats).get(tensor, self.sparse_format)


#: the options of a compile that sets none
DEFAULT_OPTIONS = Options()

PassFn = Callable[[Program, Options], tuple[Program, str]]
FACT_NAMES = frozenset(f.name for f in fields(Facts))


@dataclass(frozen=True)
class Pass:
    """One named rewrite of the pipeline."""

    name: str
    run: PassFn
    #: True for the passes that exploit symmetry (left out of the symmetry-off baseline)
    symmetry: bool
    #: passes that must run before this one when they are in the pipeline (the baseline leaves the
    #: symmetry passes out): a precondition, or an order the pass is designed for; its docstring's
    #: "Precondition" line says which
    requires: tuple[str, ...] = ()
    #: the :class:`Facts` fields this pass sets
    provides: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = set(self.provides) - FACT_NAMES
        if unknown:
            raise ValueError(f"pass {self.name}: provides unknown facts {sorted(unknown)}")


@dataclass(frozen=True)
class Stage:
    """One named program of the pipeline: ``lower`` first, then one per pass."""

    name: str
    program: Program
    changed: bool
    note: str = ""

    def __repr__(self) -> str:  # the program's own repr is pages long
        return f"<Stage {self.name}{'' if self.changed else ' (no change)'}: {self.note}>"

    def _repr_html_(self) -> str:
        """Jupyter's display: the note and the loop nest."""
        return (f"<div><b>{html.escape(self.name)}</b>: {html.escape(self.note)}"
                f"<pre>{html.escape(print_program(self.program))}</pre></div>")


def check_order(passes: Sequence[Pass]) -> None:
    """Every pass's requirements that are in ``passes`` come before it (a bug of the pipeline if not)."""
    seen: set[str] = set()
    names = {p.name for p in passes}
    for p in passes:
        late = [r for r in p.requires if r in names and r not in seen]
        if late:
            raise ValueError(f"pass {p.name} requires {', '.join(late)} before it")
        seen.add(p.name)


def run_pass(p: Pass, prog: Program, options: Options) -> Stage:
    """Run one pass and verify what it produced."""
    new, note = p.run(prog, options)
    problem = verify(new)
    if problem:
        raise MiscompileError(f"pass {p.name} produced an invalid program: {problem}")
    changed = new != prog
    return Stage(p.name, new, changed, note if changed or note else "no change")


def run_pipeline(first: Stage, passes: Sequence[Pass], options: Options = DEFAULT_OPTIONS) -> list[Stage]:
    check_order(passes)
    problem = verify(first.program)
    if problem:
        raise MiscompileError(f"stage {first.name} is an invalid program: {problem}")
    stages = [first]
    for p in passes:
        stages.append(run_pass(p, stages[-1].program, options))
    return stages
