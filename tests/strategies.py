"""Hypothesis strategies shared by the tests.

``kernels()`` draws the *source text* of a random valid kernel, built so that it
parses by construction: indices are picked per access to match the tensor's
dims, every output index occurs on the right-hand side, every input is read,
the output is not read, output indices are distinct.  Storage formats are the
one place where the parser is consulted: an input drawn ``sparse`` stays sparse
only if the language accepts it (see ``helpers.set_sparse``).

For the fuzzers (``test_fuzz_*.py``): ``kernels(max_order=5)`` draws inputs of
order up to 5; :class:`InputSpec` / :func:`input_specs` describe random inputs
beyond :func:`systec_ref.random_inputs` — all-diagonal tensors and NaN/±inf
entries where the kernel's semantics define them (:func:`special_targets`) —
and :func:`fuzz_inputs` builds them.  A spec is plain data (it round-trips
through JSON), so a failing case can be stored in ``tests/corpus/``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
from helpers import set_sparse
from hypothesis import strategies as st

import systec_ref
from systec_ref.lang import parse
from systec_ref.lang.ast import Kernel as KernelAST
from systec_ref.lang.ast import accesses, index_dims, index_vars
from systec_ref.tensors import symmetrize_index

INDEX_NAMES = ("i", "j", "k", "l", "p")  # at most 5 index variables
INPUT_NAMES = ("A", "B", "C")
OUTPUT_NAME = "Y"
DIMS = ("n", "r", 2, 3)
OPS = ("+=", "=", "min=", "max=")
_PREC = {"+": 1, "-": 1, "*": 2}


@dataclass(frozen=True)
class _Leaf:
    text: str


@dataclass(frozen=True)
class _Bin:
    op: str
    left: object
    right: object


@dataclass(frozen=True)
class _Neg:
    arg: object


def _render(e, draw) -> str:
    """Text of ``e`` with the parentheses precedence needs, plus some redundant ones."""
    if isinstance(e, _Leaf):
        return e.text
    if isinstance(e, _Neg):
        inner = _render(e.arg, draw)
        return f"-({inner})" if isinstance(e.arg, _Bin) or draw(st.booleans()) else f"-{inner}"

    def side(child, right: bool) -> str:
        text = _render(child, draw)
        if isinstance(child, _Bin):
            p, q = _PREC[child.op], _PREC[e.op]
            if p < q or (right and p == q) or draw(st.integers(0, 3)) == 0:
                return f"({text})"
        return text

    return f"{side(e.left, False)} {e.op} {side(e.right, True)}"


def _tree(draw, leaves: list, ops: tuple[str, ...], neg: int):
    """A random binary tree over ``leaves`` (in order); about one node in ``neg`` is negated."""
    if len(leaves) == 1:
        leaf = leaves[0]
        return _Neg(leaf) if draw(st.integers(0, neg)) == 0 else leaf
    cut = draw(st.integers(1, len(leaves) - 1))
    node = _Bin(draw(st.sampled_from(ops)), _tree(draw, leaves[:cut], ops, neg), _tree(draw, leaves[cut:], ops, neg))
    return _Neg(node) if draw(st.integers(0, neg)) == 0 else node


def _symmetry(draw, dims: list) -> str:
    """Random symmetry clauses for a tensor of ``dims``: full, partial groups or none."""
    order = len(dims)
    if order >= 2 and len(set(dims)) == 1 and draw(st.integers(0, 2)) == 0:
        return draw(st.sampled_from(["symmetric", "symmetric(" + ",".join(map(str, range(order))) + ")"]))
    clauses = []
    for dim in dict.fromkeys(dims):
        modes = [m for m, d in enumerate(dims) if d == dim]
        modes = list(draw(st.permutations(modes)))
        while len(modes) >= 2 and draw(st.booleans()):
            size = draw(st.integers(2, len(modes)))
            group, modes = modes[:size], modes[size:]
            clauses.append("symmetric(" + ",".join(map(str, group)) + ")")
    return " ".join(draw(st.permutations(clauses)))


@st.composite
def kernels(draw, max_indices: int = 5, dtypes: tuple[str, ...] = ("float64", "int64"),
            ops: tuple[str, ...] = OPS, max_order: int = 4) -> str:
    """Source text of a random valid kernel; inputs have order up to ``max_order``."""
    dtype = draw(st.sampled_from(dtypes))
    op = draw(st.sampled_from(ops))
    names = INDEX_NAMES[: draw(st.integers(1, max_indices))]
    idim = {v: draw(st.sampled_from(DIMS)) for v in names}

    # inputs: dims follow from the indices of a first access; later accesses
    # pick, per mode, any index of the same dim
    inputs = []  # (name, dims, [access index tuples])
    for name in INPUT_NAMES[: draw(st.integers(1, 3))]:
        if draw(st.integers(0, 3)) == 0:
            # modes in pairs of equal dims, the shape of partial symmetry (ij|kl)
            first = []
            for _ in range(draw(st.integers(1, 2))):
                v = draw(st.sampled_from(names))
                first += [v, draw(st.sampled_from([w for w in names if idim[w] == idim[v]]))]
        else:
            first = [draw(st.sampled_from(names)) for _ in range(draw(st.integers(0, max_order)))]
        dims = [idim[v] for v in first]
        uses = [tuple(first)]
        # up to three accesses of the first input (three orders of one dense input need three transposed
        # copies: concordize), two of the others (more factors make a kernel slow to check, not more varied)
        for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2] if not inputs else [0, 1]))):
            uses.append(tuple(draw(st.sampled_from([v for v in names if idim[v] == d])) for d in dims))
        inputs.append((name, dims, uses))

    def literal():
        if dtype == "int64":
            return str(draw(st.integers(0, 3)))
        return draw(st.sampled_from(["0", "1", "2", "3", "0.5", "2.0", "1.5", "0.25", "1e-1"]))

    def access(name: str, idx: tuple[str, ...]) -> str:
        return name + (f"[{', '.join(idx)}]" if idx else "")

    leaves = [_Leaf(access(name, idx)) for name, _, uses in inputs for idx in uses]
    leaves += [_Leaf(literal()) for _ in range(draw(st.integers(0, 2)))]
    leaves = list(draw(st.permutations(leaves)))
    # products make sparse inputs valid under +=, sums under min=/max= (lang/check.py): draw those more often
    likely = "product" if op in ("+=", "=") else "sum"
    shape = draw(st.sampled_from([likely, likely, "product", "sum", "tree"]))
    tree_ops = {"product": ("*",), "sum": ("+", "+", "-"), "tree": ("+", "-", "*")}[shape]
    rhs = _render(_tree(draw, leaves, tree_ops, 5 if shape == "tree" else 12), draw)

    used = list(dict.fromkeys(v for _, _, uses in inputs for idx in uses for v in idx))
    out_idx = list(draw(st.permutations(used)))[: draw(st.integers(0, len(used)))]
    lhs = access(OUTPUT_NAME, tuple(out_idx))

    def decl(role: str, name: str, dims: list, extra: str = "") -> str:
        parts = [role, name + (f"[{', '.join(map(str, dims))}]" if dims else "")]
        if extra:
            parts.append(extra)
        if role == "in" and draw(st.integers(0, 4)) == 0:
            parts.append("dense")
        if dtype != "float64" or draw(st.integers(0, 4)) == 0:
            parts.append(dtype)
        return " ".join(parts)

    lines = [f"kernel k{draw(st.integers(0, 99))}"]
    lines += [decl("in", name, dims, _symmetry(draw, dims)) for name, dims, _ in inputs]
    lines.append(decl("out", OUTPUT_NAME, [idim[v] for v in out_idx]))
    ivars = list(dict.fromkeys([*out_idx, *used]))
    if ivars and draw(st.booleans()):
        lines.append("order " + " ".join(draw(st.permutations(ivars))))
    lines.append(f"{lhs} {op} {rhs}")
    text = "\n".join(lines) + "\n"
    sparse = {name for name, _, _ in inputs if draw(st.integers(0, 2)) > 0}
    text = set_sparse(text, sparse)
    parse(text)  # by construction; a failure here is a bug in this strategy or in the parser
    return text


def ast_kernels(**kw) -> st.SearchStrategy:
    """Parsed ASTs of :func:`kernels`."""
    return kernels(**kw).map(parse)


# -- inputs for the fuzzers ------------------------------------------------------------

SPECIALS = ("nan", "inf", "-inf", "mixed")
_SPECIAL_VALUES = {"nan": (math.nan,), "inf": (math.inf,), "-inf": (-math.inf,),
                   "mixed": (math.nan, math.inf, -math.inf)}


@dataclass(frozen=True)
class InputSpec:
    """How to make the inputs of one fuzz case (JSON-friendly: see :meth:`to_json`).

    ``sizes`` binds every symbolic dim; ``seed`` and ``density`` go to
    :func:`systec_ref.random_inputs`; ``diagonal`` keeps only the entries of
    each symmetric input whose subscripts are equal within every symmetry group
    (the others become the fill, or 0 for a dense input); ``special`` puts
    ``specials`` NaN/±inf entries (at canonical points, mirrored) into each
    input of :func:`special_targets`; ``faces``/``symmetry`` are the compile
    options.
    """

    sizes: dict = field(default_factory=dict)
    seed: int = 0
    density: float = 1.0
    diagonal: bool = False
    special: str | None = None
    specials: int = 1
    faces: str = "split"
    symmetry: bool = True

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict) -> InputSpec:
        return cls(**{k: v for k, v in doc.items() if k in cls.__dataclass_fields__})


def special_targets(k: KernelAST) -> list[str]:
    """The inputs that may hold NaN or ±inf without leaving the kernel's documented semantics.

    * int64 has neither: none.
    * ``min=``/``max=``: every input.  A NaN right-hand side never changes the output, and the
      language admits a sparse input only if its fill (±inf) makes every term the identity or NaN
      — whatever the other operands hold — so skipping unstored entries stays exact.
    * ``+=``/``=`` with no sparse input: every input.  With one sparse input read once: that
      input only.  Skipping its unstored entries assumes that the other factors of their
      products are finite (``0 * inf`` would be NaN), as :mod:`systec_ref.lang.check` states.
      With more sparse inputs, or one read twice: none.
    """
    if k.output.dtype == "int64":
        return []
    names = [d.name for d in k.inputs]
    if k.assignment.reduction != "+":
        return names
    sparse = [d.name for d in k.inputs if d.format == "sparse"]
    if not sparse:
        return names
    if len(sparse) == 1 and sum(a.tensor == sparse[0] for a in accesses(k.assignment.rhs)) == 1:
        return sparse
    return []


#: largest index space :func:`input_specs` makes with n = 5 (the interpreter runs every stage over it)
MAX_POINTS = 700


def _points(k: KernelAST, sizes: dict) -> int:
    dims = index_dims(k)
    return math.prod(sizes[d] if isinstance(d, str) else d for d in (dims[v] for v in index_vars(k)))


@st.composite
def input_specs(draw, k: KernelAST, sizes: dict | None = None, special: bool = True) -> InputSpec:
    """A random :class:`InputSpec` for ``k``: n in 1..3, 5 or 8 (if the index space stays small), r in 1..2
    (unless ``sizes``), density 1, 0.5 or 0 (an empty sparse tensor), sometimes all-diagonal inputs,
    sometimes NaN/±inf entries."""
    if sizes is None:
        dims = sorted({d for t in k.decls for d in t.dims if isinstance(d, str)})
        # n = 5 or 8 now and then: a set of five variables has a strict point from n = 5 on, and
        # unroll-and-jam's sweeps of six rows run their jammed loop from n = 8 on
        n, r = draw(st.sampled_from([1, 2, 3, 3, 5, 8])), draw(st.integers(1, 2))
        sizes = {d: (r if d in ("r", "m") else n) for d in dims}
        if n > 3 and _points(k, sizes) > MAX_POINTS:
            sizes = {d: (r if d in ("r", "m") else 3) for d in dims}
    targets = special_targets(k) if special else []
    kind = draw(st.sampled_from((None, None, *SPECIALS))) if targets else None
    return InputSpec(sizes=sizes, seed=draw(st.integers(0, 2**16)), density=draw(st.sampled_from([1.0, 0.5, 0.0])),
                     diagonal=draw(st.integers(0, 4)) == 0, special=kind,
                     specials=draw(st.integers(1, 3)) if kind else 1)


def fuzz_inputs(k: systec_ref.Kernel | KernelAST, spec: InputSpec) -> dict[str, np.ndarray]:
    """The inputs ``spec`` describes for kernel ``k`` (deterministic in ``spec``)."""
    ast = k.ast if isinstance(k, systec_ref.Kernel) else k
    inputs = systec_ref.random_inputs(ast, spec.sizes, spec.seed, spec.density)
    rng = np.random.default_rng(spec.seed + 1)
    targets = set(special_targets(ast)) if spec.special else set()
    out = {}
    for d in ast.inputs:
        arr = np.array(inputs[d.name], copy=True)
        empty = d.fill if d.format == "sparse" else 0
        if spec.diagonal and d.symmetry and arr.size:
            coords = np.indices(arr.shape)
            on = np.ones(arr.shape, dtype=bool)
            for g in d.symmetry:
                for a, b in zip(g, g[1:]):
                    on &= coords[a] == coords[b]
            arr = np.where(on, arr, np.asarray(empty, dtype=arr.dtype))
        if d.name in targets and arr.size:
            values = _SPECIAL_VALUES[spec.special]
            for _ in range(spec.specials):
                point = [int(rng.integers(0, s)) for s in arr.shape]
                for g in d.symmetry:  # write at the canonical point: symmetrizing copies it everywhere
                    for p, v in zip(g, sorted(point[q] for q in g)):
                        point[p] = v
                arr[tuple(point)] = values[int(rng.integers(0, len(values)))]
            if d.symmetry:
                arr = arr[symmetrize_index(arr.shape, d.symmetry)]
        out[d.name] = np.asarray(arr, order="C")
    return out


def with_sparse_output(text: str) -> str:
    """``text`` with its output declared sparse (the fill its reduction starts at), if it has modes."""
    from systec_ref.dtypes import identity

    k = parse(text)
    out = k.output
    if not out.dims:
        return text
    start = identity(k.assignment.reduction, out.dtype)
    fill = "" if start == 0 else f" fill {'inf' if start == math.inf else '-inf' if start == -math.inf else start}"
    lines = text.split("\n")
    at = next(i for i, ln in enumerate(lines) if ln.startswith("out "))
    lines[at] += f" sparse{fill}"
    text = "\n".join(lines)
    parse(text)
    return text
