"""Hypothesis strategies shared by the tests.

``kernels()`` draws the *source text* of a random valid kernel, built so that it
parses by construction: indices are picked per access to match the tensor's
dims, every output index occurs on the right-hand side, every input is read,
the output is not read, output indices are distinct.  Storage formats are the
one place where the parser is consulted: an input drawn ``sparse`` stays sparse
only if the language accepts it (see ``helpers.set_sparse``).
"""

from __future__ import annotations

from dataclasses import dataclass

from helpers import set_sparse
from hypothesis import strategies as st

from systec_ref.lang import parse

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
            ops: tuple[str, ...] = OPS) -> str:
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
            first = [draw(st.sampled_from(names)) for _ in range(draw(st.integers(0, 4)))]
        dims = [idim[v] for v in first]
        uses = [tuple(first)]
        for _ in range(draw(st.integers(0, 1))):
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
    # products make sparse inputs valid under +=, sums under min=/max= (SPEC §2): draw those more often
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
