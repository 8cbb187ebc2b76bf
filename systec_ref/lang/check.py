"""Semantic checks of a parsed kernel.

Each check raises a located :class:`~systec_ref.errors.SourceError`.  What we
support, stated once:

* one assignment into the one ``out`` tensor, which is dense and not declared
  symmetric (output symmetry is something the compiler *finds*);
* every tensor of a kernel has the same element type;
* a ``sparse`` input may skip its unstored entries only if they cannot change
  the result: with ``+=`` the fill must be 0 and every term of the right-hand
  side must be a product containing the tensor; with ``min=`` the fill must be
  ``inf`` and the tensor must be added (not subtracted) to every term; with
  ``max=`` likewise with ``-inf``.  Or, for several sparse inputs, the points
  where *all* of them hold their fills change nothing (``A[i,j] + B[i,j]``
  with fills 0: the union of their stored entries is what must be visited).
  Anything else is rejected here.
"""

from __future__ import annotations

import re

from ..dtypes import INT64_MAX, identity
from ..errors import InternalError
from ..term import unknown
from . import unstored
from .ast import Access, BinOp, Expr, Kernel, Neg, Number, Pos, accesses, index_vars
from .lexer import KEYWORDS, Source
from .names import c_conflict, face_arrays

_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


#: keyword arguments of ``Kernel.run`` that tensors passed by name would collide with
RUN_OPTIONS = frozenset({"backend", "optimize", "check"})


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _check_name(src: Source, name: str, pos: Pos, what: str) -> None:
    if name in KEYWORDS:
        raise src.error(f"'{name}' is a reserved word", pos, f"another {what}")
    why = c_conflict(name)
    if why:
        raise src.error(f"'{name}' is reserved in C and cannot name {_a(what)} ({why})", pos, f"another {what}")
    if what == "tensor" and name in RUN_OPTIONS:
        raise src.error(f"'{name}' is an option of Kernel.run and cannot name a tensor", pos, "another tensor name")
    if not _IDENT.match(name) or len(name) > 63:
        raise src.error(f"'{name}' cannot name {_a(what)}", pos,
                        "a name of letters, digits and '_' that starts with a letter (at most 63 characters)")


def check_kernel(k: Kernel, src: Source, name_pos: Pos, order_pos: Pos | None) -> None:
    _check_name(src, k.name, name_pos, "kernel")
    decls: dict[str, object] = {}
    for d in k.decls:
        _check_name(src, d.name, d.pos, "tensor")
        if d.name in decls:
            raise src.error(f"tensor '{d.name}' declared twice", d.pos, "one declaration per tensor")
        decls[d.name] = d
        for dim, p in zip(d.dims, d.dim_pos):
            if isinstance(dim, str):
                _check_name(src, dim, p, "dimension")
    dim_names = {dim for d in k.decls for dim in d.dims if isinstance(dim, str)}
    for d in k.decls:
        if d.name in dim_names:
            raise src.error(f"'{d.name}' names both a tensor and a dimension", d.pos, "distinct names")

    outs = [d for d in k.decls if d.role == "out"]
    lhs = k.assignment.lhs
    if lhs.tensor not in decls:
        raise src.error(f"unknown tensor '{lhs.tensor}'", lhs.pos, "a tensor declared with 'out'")
    out = k.decl(lhs.tensor)
    if out.role != "out":
        raise src.error(f"'{lhs.tensor}' is an input and cannot be assigned", lhs.pos, "a tensor declared with 'out'")
    for d in outs:
        if d.name != lhs.tensor:
            raise src.error(f"output '{d.name}' is never assigned", d.pos, "exactly one 'out' tensor")
    if out.symmetry:
        raise src.error(f"output '{out.name}' is declared symmetric", out.pos,
                        "no symmetry on outputs: the compiler finds output symmetry itself")
    if out.format == "sparse":
        _check_sparse_output(src, k, out)
    dtypes = {d.dtype for d in k.decls}
    if len(dtypes) > 1:
        other = next(d for d in k.decls if d.dtype != out.dtype)
        raise src.error(f"'{other.name}' is {other.dtype} but '{out.name}' is {out.dtype}", other.pos,
                        "one element type for every tensor of a kernel")

    # accesses: known tensors, arity, index names, one dim per index
    index_dim: dict[str, tuple[object, str]] = {}
    rhs_accesses = accesses(k.assignment.rhs)
    for a in [lhs, *rhs_accesses]:
        if a.tensor not in decls:
            raise src.error(f"unknown tensor '{a.tensor}'", a.pos,
                            "one of the declared tensors: " + ", ".join(sorted(decls)))
        d = k.decl(a.tensor)
        if a is not lhs and d.role == "out":
            raise src.error(f"output '{a.tensor}' is read on the right-hand side", a.pos,
                            "only inputs on the right-hand side")
        if len(a.indices) != d.order:
            raise src.error(f"'{a.tensor}' has {d.order} modes but is accessed with {len(a.indices)} indices",
                            a.pos, f"{d.order} indices")
        for idx, p, dim in zip(a.indices, a.index_pos, d.dims):
            _check_name(src, idx, p, "index")
            if idx in decls:
                raise src.error(f"index '{idx}' has the name of a tensor", p, "distinct names")
            if idx in dim_names:
                raise src.error(f"index '{idx}' has the name of a dimension", p, "distinct names")
            if idx in index_dim and index_dim[idx][0] != dim:
                first, where = index_dim[idx]
                raise src.error(f"index '{idx}' ranges over {dim} here but over {first} in {where}", p,
                                f"'{idx}' to range over one dimension")
            index_dim.setdefault(idx, (dim, a.tensor))
    for n, (idx, p) in enumerate(zip(lhs.indices, lhs.index_pos)):
        if idx in lhs.indices[:n]:
            raise src.error(f"index '{idx}' repeated on the left-hand side", p, "distinct output indices")
        if not any(idx in a.indices for a in rhs_accesses):
            raise src.error(f"output index '{idx}' does not appear on the right-hand side", p,
                            "every output index to occur on the right-hand side")
    _check_face_names(src, k, [lhs, *rhs_accesses])
    used = {a.tensor for a in rhs_accesses}
    for d in k.inputs:
        if d.name not in used:
            raise src.error(f"input '{d.name}' is declared but never used", d.pos, "every input to be read")
    if out.dtype == "int64":
        for e in _numbers(k.assignment.rhs):
            if isinstance(e.value, float):
                raise src.error(f"literal {e.value!r} in an int64 kernel", e.pos, "an integer literal")
            if e.value > INT64_MAX:
                raise src.error(f"literal {e.value} does not fit in int64", e.pos,
                                f"an integer of at most {INT64_MAX}")
    for d in k.decls:
        if d.dtype == "int64" and isinstance(d.fill, int) and not -INT64_MAX - 1 <= d.fill <= INT64_MAX:
            raise src.error(f"fill {d.fill} does not fit in int64", d.pos, f"an integer of at most {INT64_MAX}")
    if k.order is not None:
        if order_pos is None:
            raise InternalError("a kernel with an 'order' line but no position for it")
        ivars = index_vars(k)
        for n, idx in enumerate(k.order):
            if idx not in ivars:
                raise src.error(f"'order' names '{idx}', which is not an index of the assignment", order_pos,
                                "the indices " + " ".join(ivars))
            if idx in k.order[:n]:
                raise src.error(f"'order' repeats '{idx}'", order_pos, "each index once")
        missing = [i for i in ivars if i not in k.order]
        if missing:
            raise src.error(f"'order' leaves out {', '.join(missing)}", order_pos, "every index once")
    for d in k.inputs:
        if d.format == "sparse":
            _check_sparse_fill(src, k, d)


def _check_face_names(src: Source, k: Kernel, accs: list[Access]) -> None:
    """No name may take the form the C gives a stored face of a sparse input, or an array of one under any
    registered storage format (``A_f0``, ``A_f0_vals``: :func:`.names.face_arrays`)."""
    sparse = [d.name for d in k.inputs if d.format == "sparse"]
    if not sparse:
        return
    names = [(d.name, d.pos, "tensor") for d in k.decls]
    names += [(dim, p, "dimension") for d in k.decls for dim, p in zip(d.dims, d.dim_pos) if isinstance(dim, str)]
    names += [(idx, p, "index") for a in accs for idx, p in zip(a.indices, a.index_pos)]
    for name, pos, what in names:
        for t in sparse:
            if face_arrays(t).match(name):
                raise src.error(f"'{name}' cannot name {_a(what)}: the C of this kernel names an array of "
                                f"sparse '{t}' {name}", pos, f"another {what}")


def _numbers(e: Expr) -> list[Number]:
    match e:
        case Number():
            return [e]
        case BinOp(_, left, right):
            return _numbers(left) + _numbers(right)
        case Neg(operand):
            return _numbers(operand)
        case Access():
            return []
        case _:
            raise unknown(e, "kernel checker (literals)")


def _value_when_unstored(e: Expr, tensor: str | dict[str, float], fill: float = 0) -> unstored.Abstract:
    """The rhs value wherever ``tensor`` reads its fill, over the domain of :mod:`.unstored`
    (reads of other tensors are unknown but finite); ``tensor`` may also map several tensors to their fills."""
    fills = tensor if isinstance(tensor, dict) else {tensor: fill}
    match e:
        case Access(name):
            return fills.get(name, unstored.FINITE)
        case Number(value):
            return value
        case Neg(operand):
            return unstored.neg(_value_when_unstored(operand, fills))
        case BinOp(op, left, right):
            a = _value_when_unstored(left, fills)
            b = _value_when_unstored(right, fills)
            if op == "*":
                return unstored.mul(a, b)
            return unstored.add(a, unstored.neg(b) if op == "-" else b)
        case _:
            raise unknown(e, "kernel checker (unstored entries)")


def _check_sparse_output(src: Source, k: Kernel, out) -> None:
    """A sparse output stores the entries the updates reach; the others hold its fill, which must be the
    reduction's identity (where no update reaches, the output keeps the value it starts at)."""
    if not out.dims:
        raise src.error(f"output '{out.name}' is a scalar declared sparse", out.pos, "a dense scalar output")
    red = k.assignment.reduction
    start = identity(red, out.dtype)
    if out.fill != start:
        want = {"+": "fill 0 (the default)", "min": "'fill inf'", "max": "'fill -inf'"}[red]
        if red != "+" and out.dtype == "int64":
            want = f"'fill {start}' (int64 has no infinity)"
        raise src.error(f"sparse output '{out.name}' under '{k.assignment.op}' holds its fill {out.fill} where no "
                        f"update reaches, but starts at the identity {start}", out.pos, want)


def _check_sparse_fill(src: Source, k: Kernel, d) -> None:
    red = k.assignment.reduction
    if unstored.no_change(_value_when_unstored(k.rhs, d.name, d.fill), red):
        return
    # a sum of sparse inputs: where all of them hold their fills the update changes nothing, so a point that
    # none of them stores may be skipped (their merged coordinates are iterated: the union)
    together = {x.name: x.fill for x in k.inputs if x.format == "sparse"}
    if len(together) > 1 and unstored.no_change(_value_when_unstored(k.rhs, together), red):
        return
    want = {"+": "fill 0 (the default)", "min": "'fill inf'", "max": "'fill -inf'"}[red]
    if k.output.dtype == "int64" and red != "+":
        want = "a dense tensor: int64 has no infinity"
    raise src.error(
        f"sparse '{d.name}' with fill {d.fill} under '{k.assignment.op}': its unstored entries would still "
        f"change the result, so they cannot be skipped", d.pos,
        f"{want}, with '{d.name}' in every term of the right-hand side, or a dense '{d.name}'")
