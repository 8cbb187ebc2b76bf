"""Node classes of the loop-nest IR.

Every stage of the compiler, from the naive nest that ``lower`` builds to the
optimized one that is emitted as C, is a :class:`Program` made of these frozen
dataclasses.  Index expressions (loop bounds, subscripts) are kept apart from
value expressions (what is read, multiplied, accumulated), so that a bound can
never depend on tensor data.

Semantics, which the interpreter implements and the C emitter mirrors:

* outputs start at ``TensorInfo.init`` (the identity of the reduction; None: nothing, each
  element is assigned before it is updated), then
  the body runs once; temporaries start at 0;
* ``Loop(v, lo, hi, body, step)`` runs ``v = lo, lo+step, ...`` while ``v < hi``;
* ``Assign(t, op, e)`` does ``t = t op e`` for ``op`` in ``+ min max`` and
  ``t = e`` for ``=``; ``Let(x, e)`` declares a scalar local;
* ``Read(A, idx, sort)`` reads ``A`` after sorting, at run time, the
  subscripts at the positions of each group in ``sort`` (canonical reads);
* ``Lookup(values, bits)`` is ``values[sum(bit_b << b)]``;
* ``Permute(groups, body)`` runs ``body`` once per distinct rearrangement of
  the values of each group's variables.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Union

from ..storage.formats import DEFAULT_FORMAT
from ..term import Node

# -- index expressions ------------------------------------------------------


@dataclass(frozen=True)
class Idx(Node):
    """The current value of loop variable ``name``."""

    name: str


@dataclass(frozen=True)
class IConst(Node):
    value: int


@dataclass(frozen=True)
class DimSize(Node):
    """The run-time extent of a symbolic dimension (``n``)."""

    name: str


@dataclass(frozen=True)
class IPlus(Node):
    """``base + offset`` (strict triangular bounds use ``i + 1``)."""

    base: IndexExpr
    offset: int


@dataclass(frozen=True)
class Stored(Node):
    """How many entries level ``level`` of one face of a sparse input stores, over all its parents:
    the number of times a nest of ``SparseLevel`` loops down to that level runs its body.  Known
    at run time, before the body runs (a mirror sized to the work compares it with the output's
    size)."""

    tensor: str
    face: tuple[int, ...]
    level: int


@dataclass(frozen=True)
class ISum(Node):
    """The sum of index expressions (a run-time cost estimate)."""

    args: tuple[IndexExpr, ...]


@dataclass(frozen=True)
class IMul(Node):
    """The product of index expressions (a run-time cost estimate)."""

    args: tuple[IndexExpr, ...]


@dataclass(frozen=True)
class IMin(Node):
    """The least of index expressions (the end of a tile: ``min(I+64, n)``)."""

    args: tuple[IndexExpr, ...]


IndexExpr = Union[Idx, IConst, DimSize, IPlus, Stored, ISum, IMul, IMin]

# -- conditions ---------------------------------------------------------------

CMP_OPS = ("<", "<=", "==", "!=")


@dataclass(frozen=True)
class Cmp(Node):
    op: str
    a: IndexExpr
    b: IndexExpr


@dataclass(frozen=True)
class And(Node):
    terms: tuple[Cond, ...]


@dataclass(frozen=True)
class Or(Node):
    terms: tuple[Cond, ...]


Cond = Union[Cmp, And, Or]

# -- value expressions --------------------------------------------------------


@dataclass(frozen=True)
class Const(Node):
    value: int | float


@dataclass(frozen=True)
class Read(Node):
    tensor: str
    idx: tuple[IndexExpr, ...]
    sort: tuple[tuple[int, ...], ...] = ()


@dataclass(frozen=True)
class Local(Node):
    name: str


@dataclass(frozen=True)
class Add(Node):
    args: tuple[Value, ...]


@dataclass(frozen=True)
class Mul(Node):
    args: tuple[Value, ...]


@dataclass(frozen=True)
class Neg(Node):
    arg: Value


@dataclass(frozen=True)
class Lookup(Node):
    """A factor chosen at run time: ``values[key]``, key a bitmask of ``bits``."""

    values: tuple[int | float, ...]
    bits: tuple[Cond, ...]


@dataclass(frozen=True)
class SparseVal(Node):
    """The value stored at position ``pos`` of the last level of one face of a sparse tensor."""

    tensor: str
    face: tuple[int, ...]
    pos: IndexExpr


Value = Union[Const, Read, Local, Add, Mul, Neg, Lookup, SparseVal]

# -- statements -----------------------------------------------------------------


@dataclass(frozen=True)
class Elem(Node):
    """An element of a tensor, as the target of an assignment."""

    tensor: str
    idx: tuple[IndexExpr, ...]


REDUCE_OPS = ("+", "min", "max", "=")


@dataclass(frozen=True)
class Assign(Node):
    target: Elem | Local
    op: str
    value: Value


@dataclass(frozen=True)
class Let(Node):
    name: str
    value: Value


@dataclass(frozen=True)
class Block(Node):
    body: tuple[Stmt, ...]
    comment: str = ""


@dataclass(frozen=True)
class Loop(Node):
    var: str
    lo: IndexExpr
    hi: IndexExpr
    body: Block
    step: int = 1


@dataclass(frozen=True)
class If(Node):
    cond: Cond
    then: Block
    orelse: Block | None = None


@dataclass(frozen=True)
class Permute(Node):
    """Run ``body`` once for every *distinct* rearrangement of the current
    values of the variables in each group (a product over the groups).

    ``restrict-iteration`` wraps the body of a canonical-triangle nest in this
    node, so the nest still means what the full nest meant (every point of
    the full space is a rearrangement of exactly one point of the triangle);
    ``define-assignments`` then spells the rearrangements out.
    """

    groups: tuple[tuple[str, ...], ...]
    body: Block


@dataclass(frozen=True)
class SparseLevel(Node):
    """Iterate the stored fibers of one level of one face of a sparse tensor.

    Binds ``pos`` to each stored position of the level under parent position ``parent`` (the
    whole of level 0 when ``parent`` is None) and ``var`` to its coordinate; how the level is
    stored (for a compressed level, ``pos[parent] .. pos[parent+1]`` of its position array) is
    the storage format's (:mod:`systec_ref.storage.formats`, the program's ``sparse_format``).

    ``start``, when set, is a position of that same fiber (an enclosing level's ``pos`` under the
    same parent, or one past it) where the iteration begins instead of the parent's first child:
    coordinates within a fiber increase with the position, so the level then binds only the
    coordinates from that entry's on (``j >= i``; ``j > i`` from one past it).  Two reads of one
    tensor that share every level but the last walk one fiber so (``A[k,i] * A[k,j]``, ``i <= j``).

    ``reverse``: the positions are visited from the last to the first (``reverse-sweep``).

    ``low``, when set, is a *coordinate* (any index expression of the enclosing loops, ``i`` or
    ``i + 1``): the level binds only the coordinates ``>= low`` of the fiber, found by a binary
    search in its sorted coordinates (a dense level starts at ``low`` itself).  A fiber reached by
    another tensor's coordinate is walked so from the canonical triangle's edge on (``for j in
    i+1..`` over ``A_T[k,:]`` in sparse SSYRK's loop order ``i k j``).
    """

    var: str
    pos: str
    tensor: str
    face: tuple[int, ...]
    level: int
    parent: IndexExpr | None
    body: Block
    start: IndexExpr | None = None
    reverse: bool = False
    low: IndexExpr | None = None


@dataclass(frozen=True)
class SparseLocate(Node):
    """Find coordinate ``coord`` (bound by enclosing loops) in one level of one face of a sparse tensor.

    Binds ``pos`` to the position of ``coord`` in level ``level`` under parent position ``parent``
    (None at level 0) and runs ``body`` once, if the tensor stores that coordinate there; if it does
    not, the body does not run — sound only where the update changes nothing wherever that read
    holds its fill, as for every iteration of stored entries.  A dense level computes the position
    (``parent * size + coord``); a compressed level searches its sorted coordinates (binary search).
    This is co-iteration's lookup alternative: the loop iterates another tensor's stored coordinates
    and looks each up here, instead of merging two coordinate lists (in sparse SSYRK's loop order
    ``i k j``, ``k`` runs over ``A[i,:]`` and is located in the transposed copy ``A_T``'s first level,
    which a merge would walk whole for every ``i``).
    """

    pos: str
    tensor: str
    face: tuple[int, ...]
    level: int
    parent: IndexExpr | None
    coord: IndexExpr
    body: Block


@dataclass(frozen=True)
class MergeOperand(Node):
    """One operand of a :class:`SparseMerge`: level ``level`` of face ``face`` of sparse ``tensor``, under
    parent position ``parent`` (None at level 0), whose stored positions bind ``pos``."""

    pos: str
    tensor: str
    face: tuple[int, ...]
    level: int
    parent: IndexExpr | None


#: the modes of a :class:`SparseMerge`
MERGE_MODES = ("intersect", "union")


@dataclass(frozen=True)
class SparseMerge(Node):
    """Co-iterate one level of two or more stored faces (of different sparse tensors) by merging their
    sorted coordinates, the two-pointer way.

    Each operand's level is a sorted list of coordinates under its parent position (see
    :class:`SparseLevel`).  The merge walks them together, in increasing coordinate order, and binds
    ``var`` to each coordinate it visits:

    * ``mode == "intersect"``: the coordinates every operand stores; each operand's ``pos`` is bound
      to its position of that coordinate.  The walk ends when one operand is exhausted;
    * ``mode == "union"``: the coordinates some operand stores; an operand that stores the coordinate
      has its ``pos`` bound to its position, one that does not has it bound to ``-1`` (the body tests
      ``0 <= pos`` before it uses one).

    ``body`` runs once per visited coordinate.  A kernel reading two sparse tensors ``A`` and ``B``
    iterates the intersection where its update changes nothing wherever either holds its fill
    (products), the union where it changes nothing only where both do (sums); see the
    ``co-iterate`` pass.
    """

    var: str
    mode: str
    operands: tuple[MergeOperand, ...]
    body: Block


#: the BLAS routines a :class:`BlasCall` may name
BLAS_ROUTINES = ("gemm", "gemv", "syrk", "syr2k")


@dataclass(frozen=True)
class Strided(Node):
    """A vector or a matrix inside a dense tensor, as an operand of a :class:`BlasCall`.

    Its element ``(t0, t1)`` (``(t0,)`` for a vector) is ``tensor[base]`` with mode ``modes[0]``
    advanced by ``t0`` and mode ``modes[1]`` by ``t1``, for ``base[modes[d]] + t_d < ends[d]`` (numpy's
    slices ``base:end``): rows run along ``modes[0]``, columns along ``modes[1]``.  A tensor is
    row-major, so each mode has a fixed stride; a matrix operand has one of its two modes the tensor's
    last (stride 1), as BLAS wants."""

    tensor: str
    base: tuple[IndexExpr, ...]
    modes: tuple[int, ...]
    ends: tuple[IndexExpr, ...]

    def extent(self, d: int) -> IndexExpr:
        """How many rows (``d == 0``) or columns (1) the operand has: ``end - base``."""
        lo, hi = self.base[self.modes[d]], self.ends[d]
        return hi if lo == IConst(0) else ISum((hi, IMul((IConst(-1), lo))))


@dataclass(frozen=True)
class BlasCall(Node):
    """One call of a double-precision BLAS routine in place of a loop nest, ``nest``, which is its meaning.

    * ``gemm``: ``out`` (M x N) += ``alpha`` * ``args[0]`` (M x K) @ ``args[1]`` (K x N);
    * ``gemv``: ``out`` (M) += ``alpha`` * ``args[0]`` (M x N) @ ``args[1]`` (N);
    * ``syrk``: the elements ``(r, c)``, ``r <= c``, of ``out`` (M x M) += ``alpha`` * ``args[0] @ args[0]^T``
      (``args[0]`` M x K); the others are left alone;
    * ``syr2k``: the same with ``args[0] @ args[1]^T + args[1] @ args[0]^T`` (both M x K).

    The interpreter runs ``nest`` (so every stage is checked by the same definition); the C calls the
    routine, or runs ``nest`` when an extent or a leading dimension does not fit BLAS's 32-bit int.
    ``blas-calls`` makes these from nests whose meaning it has matched exactly (see that pass).
    """

    routine: str
    alpha: float
    out: Strided
    args: tuple[Strided, ...]
    nest: Block


Stmt = Union[Assign, Let, Block, Loop, If, Permute, SparseLevel, SparseMerge, SparseLocate, BlasCall]

# -- programs -------------------------------------------------------------------


@dataclass(frozen=True)
class TensorInfo(Node):
    name: str
    role: str  # 'in' | 'out' | 'temp'
    dims: tuple[str | int, ...]
    symmetry: tuple[tuple[int, ...], ...] = ()
    format: str = "dense"
    fill: int | float = 0
    dtype: str = "float64"
    #: starting value of outputs and temporaries; None: none, the program assigns every element before it
    #: updates it (``reverse-sweep``; the interpreter starts such an output at NaN, or at the smallest int64)
    init: int | float | None = 0

    @property
    def order(self) -> int:
        return len(self.dims)


@dataclass(frozen=True)
class Facts:
    """What the passes have established about a program, for the passes after them (and the reader).

    Each field is set by exactly one pass (its ``Pass.provides``); later passes, the storage and
    the emitter read some of them, the others (``loop_order``, ``symmetry``,
    ``visible_output_symmetry``) are for the reader.  The printer shows those that are set, as
    ``#   <label>: <value>`` lines of the program's header (:data:`FACT_LABELS`).
    """

    #: ``lower``: the loop order, outermost first (``"k i j l"``; ``""`` for a kernel without loops,
    #: which is still printed); None before ``lower``.  ``gemm-form``, which reorders the naive nest,
    #: updates it (the one fact two passes write: it describes the nest, not a pass's finding)
    loop_order: str | None = None
    #: ``lower``: the loop order is the kernel's ``order`` line (later passes keep it)
    loop_order_given: bool = False
    #: ``identify-symmetry``: the sets of loop variables whose values may be permuted freely
    permutable: tuple[tuple[str, ...], ...] = ()
    #: ``identify-symmetry``: why each set was (or was not) chosen, in words
    symmetry: str = ""
    #: ``identify-symmetry``: the modes of the output that are visibly symmetric
    visible_output_symmetry: tuple[tuple[int, ...], ...] = ()
    #: ``replicate-output``: the groups of output modes whose canonical triangle alone is computed
    output_symmetry: tuple[tuple[int, ...], ...] = ()
    #: ``sparse-iterate``: (tensor, layout) for every tensor iterated as stored entries;
    #: layout ``canonical`` (canonical entries only, by face) or ``full`` (every entry)
    sparse_storage: tuple[tuple[str, str], ...] = ()
    #: ``sparse-iterate``: the storage format (registered in :mod:`systec_ref.storage.formats`) that
    #: hands each iterated face to the kernel; printed only when it is not the default, CSF
    sparse_format: str = DEFAULT_FORMAT
    #: ``sparse-iterate``: (copy, tensor, modes) for every transposed copy of a sparse input (made by
    #: ``concordize``) that is iterated as stored entries instead of built by the program: its storage is
    #: the tensor's entries with mode ``q`` of the copy mode ``modes[q]`` of the tensor
    sparse_copies: tuple[tuple[str, str, tuple[int, ...]], ...] = ()

    #: ``sparse-iterate``: (tensor, format) for the iterated tensors stored in another format than
    #: ``sparse_format`` (index widths and dense levels chosen from their data, see
    #: :mod:`systec_ref.storage.choose`)
    tensor_formats: tuple[tuple[str, str], ...] = ()
    #: ``lower``, from the compile's ``packed`` option: (tensor, groups) for each dense input handed over as
    #: its canonical entries only, in the packed layout of its declared groups (the C reads it through the
    #: layout's offset, :mod:`systec_ref.storage.packed`; a pass may declare less symmetry, the layout stays)
    packed: tuple[tuple[str, tuple[tuple[int, ...], ...]], ...] = ()

    def packed_groups(self, tensor: str) -> tuple[tuple[int, ...], ...] | None:
        """The groups of ``tensor``'s packed layout, or None if it is not passed packed."""
        return dict(self.packed).get(tensor)

    def format_of(self, tensor: str) -> str:
        """The name of the storage format that hands ``tensor``'s faces to the kernel."""
        return dict(self.tensor_formats).get(tensor, self.sparse_format)

    def items(self) -> list[tuple[str, object]]:
        """(label, value) of every fact that is set, sorted by label."""
        return sorted((FACT_LABELS[f.name], getattr(self, f.name)) for f in fields(self)
                      if getattr(self, f.name) != f.default)


FACT_LABELS = {
    "loop_order": "loop order", "loop_order_given": "loop order given", "permutable": "permutable",
    "symmetry": "symmetry",
    "visible_output_symmetry": "visible output symmetry", "output_symmetry": "output symmetry",
    "sparse_storage": "sparse storage", "sparse_format": "sparse format", "sparse_copies": "sparse copies",
    "tensor_formats": "storage formats", "packed": "packed inputs",
}


@dataclass(frozen=True)
class Program(Node):
    name: str
    tensors: tuple[TensorInfo, ...]
    body: Block
    reduction: str = "+"
    #: facts recorded by passes (typed fields; see :class:`Facts`)
    facts: Facts = field(default=Facts())

    def tensor(self, name: str) -> TensorInfo:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(name)

    def with_facts(self, **kv: object) -> Program:
        return replace(self, facts=replace(self.facts, **kv))

    @property
    def dtype(self) -> str:
        return self.tensors[0].dtype

    @property
    def output(self) -> TensorInfo:
        return next(t for t in self.tensors if t.role == "out")
