"""The IR verifier: is a program well formed?

Run by the pass manager after every pass (and on the naive nest ``lower`` builds), so that a
pass that breaks the program is caught at that pass, named, and reported as an internal error
of the compiler.  It checks what every stage must satisfy, whatever its pass:

* every index variable is used inside a loop (dense or sparse) that binds it, and no loop
  rebinds a variable of an enclosing one; a ``Permute`` rearranges only bound variables;
* every scalar local is declared (``Let``) before it is read or updated, in its block or an
  enclosing one, and not declared twice in one scope;
* every tensor read or written is declared, with as many subscripts as modes; only outputs
  and temporaries are written; a stored-entry loop or value names a sparse input (or a stored
  copy of one, the ``sparse_copies`` fact) and one of its faces, a loop's level is one that face
  stores, and a loop that starts within its fiber starts at a position of an enclosing loop over
  that same fiber; a merge joins two or more distinct tensors, in a known mode; a count of stored
  entries names a level of a face that some stored-entry loop or value of the program iterates (so
  it is passed);
* operators are known (``+ min max =`` for assignments, ``< <= == !=`` for comparisons) and a
  ``Lookup`` has one value per key (``2**len(bits)``);
* every dimension named in a bound is a dimension of a declared tensor;
* a BLAS call names a known routine with its number of operands, each a vector or matrix of a dense
  tensor of the program along distinct modes (a matrix: one of them the tensor's last), writes an
  output, and is the same well-formed program in its ``nest``.

``verify(p)`` returns ``None`` for a well-formed program, else one line saying what is wrong
and where.
"""

from __future__ import annotations

from ..storage.faces import face_modes
from ..term import nodes, unknown
from .nodes import (
    BLAS_ROUTINES,
    CMP_OPS,
    MERGE_MODES,
    REDUCE_OPS,
    Add,
    And,
    Assign,
    BlasCall,
    Block,
    Cmp,
    Const,
    DimSize,
    Elem,
    IConst,
    Idx,
    If,
    IMin,
    IMul,
    IPlus,
    ISum,
    Let,
    Local,
    Lookup,
    Loop,
    Mul,
    Neg,
    Or,
    Permute,
    Program,
    Read,
    SparseLevel,
    SparseLocate,
    SparseMerge,
    SparseVal,
    Stored,
    Strided,
)
from .printer import fmt_stmt


class _Invalid(Exception):
    pass


class _Verifier:
    def __init__(self, p: Program):
        self.p = p
        self.tensors = {t.name: t for t in p.tensors}
        self.reduction = p.reduction
        self.dims = {d for t in p.tensors for d in t.dims if isinstance(d, str)}
        #: the (tensor, face) pairs iterated or read as stored entries: the ones a kernel is handed
        self.faces = {(n.tensor, n.face) for n in nodes(p.body)
                      if isinstance(n, (SparseLevel, SparseLocate, SparseVal))}
        #: the fiber (tensor, face, level, parent) each stored-entry loop's position walks, by position name
        self.fibers: dict[str, tuple] = {}

    def fail(self, what: str, where: object = None) -> _Invalid:
        at = ""
        if where is not None:
            try:
                at = f" in '{fmt_stmt(where)[0].strip()}'"
            except Exception:  # noqa: BLE001 - the printer may not know a broken node; say what we can
                at = f" in {type(where).__name__}"
        return _Invalid(what + at)

    # -- index expressions and conditions ------------------------------------------------
    def index(self, e: object, bound: frozenset[str], where: object) -> None:
        match e:
            case Idx(name):
                if name not in bound:
                    raise self.fail(f"index '{name}' used outside a loop that binds it", where)
            case IConst():
                pass
            case DimSize(name):
                if name not in self.dims:
                    raise self.fail(f"unknown dimension '{name}'", where)
            case IPlus(base, _):
                self.index(base, bound, where)
            case Stored(tensor, face, level):
                stored = self.sparse(tensor, face, where)
                if not 0 <= level < stored:
                    raise self.fail(f"count of level {level} of face {face} of {tensor}, which stores {stored}", where)
                if (tensor, face) not in self.faces:
                    raise self.fail(f"count of entries of face {face} of {tensor}, which nothing iterates", where)
            case ISum(args) | IMul(args):
                for a in args:
                    self.index(a, bound, where)
            case IMin(args):
                if not args:
                    raise self.fail("min of nothing", where)
                for a in args:
                    self.index(a, bound, where)
            case _:
                raise unknown(e, "IR verifier (index)")

    def cond(self, c: object, bound: frozenset[str], where: object) -> None:
        match c:
            case Cmp(op, a, b):
                if op not in CMP_OPS:
                    raise self.fail(f"unknown comparison '{op}'", where)
                self.index(a, bound, where)
                self.index(b, bound, where)
            case And(terms) | Or(terms):
                for t in terms:
                    self.cond(t, bound, where)
            case _:
                raise unknown(c, "IR verifier (condition)")

    def access(self, tensor: str, idx: tuple, bound: frozenset[str], where: object) -> None:
        t = self.tensors.get(tensor)
        if t is None:
            raise self.fail(f"unknown tensor '{tensor}'", where)
        if len(idx) != t.order:
            raise self.fail(f"{len(idx)} subscripts for {tensor} of order {t.order}", where)
        for i in idx:
            self.index(i, bound, where)

    def strided(self, x: Strided, bound: frozenset[str], where: object) -> None:
        """A BLAS operand: a dense tensor, distinct modes, a matrix with one of them the last."""
        self.access(x.tensor, x.base, bound, where)
        t = self.tensors[x.tensor]
        if t.format == "sparse":
            raise self.fail(f"BLAS operand '{x.tensor}' is stored sparse", where)
        if len(set(x.modes)) != len(x.modes) or len(x.ends) != len(x.modes) or not 1 <= len(x.modes) <= 2 \
                or any(not 0 <= m < t.order for m in x.modes):
            raise self.fail(f"BLAS operand {x.tensor} along modes {x.modes}", where)
        if len(x.modes) == 2 and t.order - 1 not in x.modes:
            raise self.fail(f"BLAS matrix {x.tensor} along modes {x.modes}, neither of stride 1", where)
        for e in x.ends:
            self.index(e, bound, where)

    def sparse(self, tensor: str, face: tuple[int, ...], where: object) -> int:
        """Check a stored-entry access; return how many levels its face stores."""
        t = self.tensors.get(tensor)
        copies = {c for c, _, _ in self.p.facts.sparse_copies}
        if t is None or t.format != "sparse" or (t.role != "in" and tensor not in copies):
            raise self.fail(f"stored entries of '{tensor}', which is not a sparse input", where)
        if face and len(face) != len(t.symmetry):  # () is the one face of full storage
            raise self.fail(f"face {face} does not match the symmetry of {tensor}", where)
        return len(face_modes(t.order, t.symmetry, face))

    def start(self, start: object, fiber: tuple, bound: frozenset[str], where: object) -> None:
        """A stored-entry loop's ``start``: an enclosing level's position over the same fiber, or one past it."""
        self.index(start, bound, where)
        match start:
            case Idx(name) | IPlus(Idx(name), 0 | 1) if self.fibers.get(name) == fiber:
                pass
            case _:
                raise self.fail("a stored-entry loop starts at a position that is not of an enclosing loop over "
                                "the same fiber (or one past it)", where)

    # -- values ------------------------------------------------------------------------
    def value(self, e: object, bound: frozenset[str], locals_: set[str], where: object) -> None:
        match e:
            case Const():
                pass
            case Read(tensor, idx, sort):
                self.access(tensor, idx, bound, where)
                if self.tensors[tensor].role == "out" and self.tensors[tensor].format == "sparse":
                    raise self.fail(f"reads sparse output '{tensor}' (its entries are only accumulated into)", where)
                for g in sort:
                    if any(not 0 <= m < len(idx) for m in g):
                        raise self.fail(f"sort group {g} outside the modes of {tensor}", where)
            case Local(name):
                if name not in locals_:
                    raise self.fail(f"local '{name}' read before it is declared", where)
            case Add(args) | Mul(args):
                if not args:
                    raise self.fail(f"empty {type(e).__name__}", where)
                for a in args:
                    self.value(a, bound, locals_, where)
            case Neg(arg):
                self.value(arg, bound, locals_, where)
            case Lookup(values, bits):
                if len(values) != 1 << len(bits):
                    raise self.fail(f"lookup of {len(values)} values for {len(bits)} key bits", where)
                for b in bits:
                    self.cond(b, bound, where)
            case SparseVal(tensor, face, pos):
                self.sparse(tensor, face, where)
                self.index(pos, bound, where)
            case _:
                raise unknown(e, "IR verifier (value)")

    # -- statements ----------------------------------------------------------------------
    def block(self, b: Block, bound: frozenset[str], locals_: set[str]) -> None:
        scope = set(locals_)  # a Let is visible to the rest of its block and everything inside it
        for s in b.body:
            self.stmt(s, bound, scope)

    def bind(self, var: str, bound: frozenset[str], where: object) -> frozenset[str]:
        if var in bound:
            raise self.fail(f"loop variable '{var}' rebinds an enclosing one", where)
        return bound | {var}

    def stmt(self, s: object, bound: frozenset[str], locals_: set[str]) -> None:
        match s:
            case Block():
                self.block(s, bound, locals_)
            case Loop(var, lo, hi, body, step):
                self.index(lo, bound, s)
                self.index(hi, bound, s)
                if step < 1:
                    raise self.fail(f"loop step {step}", s)
                self.block(body, self.bind(var, bound, s), locals_)
            case SparseLevel(var, pos, tensor, face, level, parent, body, start, _, low):
                stored = self.sparse(tensor, face, s)
                if level >= stored:
                    raise self.fail(f"level {level} of face {face} of {tensor}, which stores {stored}", s)
                if level < 0 or (level == 0) != (parent is None):
                    raise self.fail(f"level {level} with {'no' if parent is None else 'a'} parent position", s)
                if parent is not None:
                    self.index(parent, bound, s)
                if start is not None and low is not None:
                    raise self.fail("a stored-entry loop with both a start position and a lower coordinate", s)
                if start is not None:
                    self.start(start, (tensor, face, level, parent), bound, s)
                if low is not None:
                    self.index(low, bound, s)
                self.fibers[pos] = (tensor, face, level, parent)
                self.block(body, self.bind(pos, self.bind(var, bound, s), s), locals_)
            case SparseLocate(pos, tensor, face, level, parent, coord, body):
                stored = self.sparse(tensor, face, s)
                if not 0 <= level < stored:
                    raise self.fail(f"level {level} of face {face} of {tensor}, which stores {stored}", s)
                if (level == 0) != (parent is None):
                    raise self.fail(f"level {level} with {'no' if parent is None else 'a'} parent position", s)
                if parent is not None:
                    self.index(parent, bound, s)
                self.index(coord, bound, s)
                self.fibers[pos] = (tensor, face, level, parent)
                self.block(body, self.bind(pos, bound, s), locals_)
            case SparseMerge(var, mode, operands, body):
                if mode not in MERGE_MODES:
                    raise self.fail(f"unknown merge mode '{mode}'", s)
                if len(operands) < 2 or len({o.tensor for o in operands}) != len(operands):
                    raise self.fail("a merge of fewer than two distinct tensors", s)
                inner = self.bind(var, bound, s)
                for o in operands:
                    stored = self.sparse(o.tensor, o.face, s)
                    if not 0 <= o.level < stored:
                        raise self.fail(f"level {o.level} of face {o.face} of {o.tensor}, which stores {stored}", s)
                    if (o.level == 0) != (o.parent is None):
                        raise self.fail(f"level {o.level} with {'no' if o.parent is None else 'a'} parent position", s)
                    if o.parent is not None:
                        self.index(o.parent, bound, s)
                    inner = self.bind(o.pos, inner, s)
                self.block(body, inner, locals_)
            case If(cond, then, orelse):
                self.cond(cond, bound, s)
                self.block(then, bound, locals_)
                if orelse is not None:
                    self.block(orelse, bound, locals_)
            case Permute(groups, body):
                loose = [v for g in groups for v in g if v not in bound]
                if loose:
                    raise self.fail(f"rearranges unbound variables {', '.join(loose)}", s)
                self.block(body, bound, locals_)
            case BlasCall(routine, _, out, args, nest):
                if routine not in BLAS_ROUTINES:
                    raise self.fail(f"unknown BLAS routine '{routine}'", s)
                shapes = {"gemm": (2, 2, 2), "gemv": (1, 2, 1), "syrk": (2, 2), "syr2k": (2, 2, 2)}[routine]
                if (len(out.modes), *(len(a.modes) for a in args)) != shapes:
                    raise self.fail(f"{routine} of operands of orders {[len(x.modes) for x in (out, *args)]}", s)
                for x in (out, *args):
                    self.strided(x, bound, s)
                if self.tensors[out.tensor].role == "in":
                    raise self.fail(f"writes input '{out.tensor}'", s)
                if self.tensors[out.tensor].format == "sparse":
                    raise self.fail(f"a BLAS call writes sparse output '{out.tensor}'", s)
                self.block(nest, bound, set(locals_))
            case Let(name, value):
                self.value(value, bound, locals_, s)
                if name in locals_:
                    raise self.fail(f"local '{name}' declared twice", s)
                locals_.add(name)
            case Assign(target, op, value):
                if op not in REDUCE_OPS:
                    raise self.fail(f"unknown update '{op}'", s)
                self.value(value, bound, locals_, s)
                match target:
                    case Local(name):
                        if name not in locals_:
                            raise self.fail(f"local '{name}' updated before it is declared", s)
                    case Elem(tensor, idx):
                        self.access(tensor, idx, bound, s)
                        if self.tensors[tensor].role == "in":
                            raise self.fail(f"writes input '{tensor}'", s)
                        t = self.tensors[tensor]
                        if t.format == "sparse" and t.role != "out":
                            raise self.fail(f"writes '{tensor}', whose stored entries are handed to the kernel", s)
                        if t.format == "sparse" and op != self.reduction:
                            # its entries are gathered as updates (emit/sparse_out.py): each one combined
                            # with the reduction, never overwritten
                            raise self.fail(f"updates sparse output '{tensor}' with '{op}', not its reduction "
                                            f"'{self.reduction}'", s)
                    case _:
                        raise unknown(target, "IR verifier (target)")
            case _:
                raise unknown(s, "IR verifier (statement)")


def verify(p: Program) -> str | None:
    """None when ``p`` is well formed, else what is wrong (one line)."""
    v = _Verifier(p)
    try:
        v.block(p.body, frozenset(), set())
    except _Invalid as e:
        return str(e)
    return None
