"""``systec_ref.einsum``: numpy's einsum, compiled with symmetry and sparsity exploited.

``einsum("ikl,lj,kj->ij", A, B, B, symmetric={0: True})`` writes the ``.ein`` kernel a user
would have written (:func:`einsum_kernel` shows it), compiles it once per process (cached by
everything the text depends on) and runs it, in C where a C compiler is found.

From the subscripts and operands to a kernel:

* **tensors**: operand ``p`` is tensor ``T<p>``, except that the *same object* passed twice is
  one tensor (``B, B`` above): that is what lets the compiler see that ``B[l,j] * B[k,j]`` is
  symmetric in ``k, l``;
* **dimensions**: one per class of indices that must have the same size — the indices at one mode
  of one tensor, and the modes of one symmetric group (their dimension is declared once);
  indices of equal sizes are not merged otherwise, so a kernel serves every size;
* **symmetry**: ``symmetric={p: True}`` (every mode of operand ``p``) or ``{p: [(0, 1), (2, 3)]}``
  (disjoint groups of modes); a :class:`~systec_ref.storage.SparseTensor` or a
  :class:`~systec_ref.storage.PackedTensor` (a dense symmetric operand held as its canonical entries)
  brings its own;
  the output's symmetry is found by the compiler;
* **semiring**: ``"+*"`` (default: sum of products), ``"min+"`` (``y[i] min= A[i,j] + x[j]``),
  ``"max+"`` and ``"max*"``;
* **formats**: a scipy sparse matrix, a pydata ``sparse`` array or a ``SparseTensor`` is a
  ``sparse`` input whose unstored entries hold the semiring's zero (0, +inf, -inf), so the
  kernel skips them; under ``"max*"`` there is no such value and sparse operands are refused;
* **element type**: numpy's result type of the operands, as ``float64``, ``float32`` or ``int64``.
"""

from __future__ import annotations

import hashlib
import math
import os
import pickle
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .api import Kernel, Prepared, _backend, compile
from .errors import InputError, SystecError
from .storage.faces import symmetry_groups
from .storage.packed import PackedTensor
from .storage.symmetric import SparseTensor

#: semiring name -> (update operator, combining operator, the value an unstored entry holds)
SEMIRINGS: dict[str, tuple[str, str, float]] = {
    "+*": ("+=", " * ", 0.0),
    "min+": ("min=", " + ", math.inf),
    "max+": ("max=", " + ", -math.inf),
    "max*": ("max=", " * ", math.nan),  # no value to skip: sparse operands are refused
}
_ALIASES = {"sum-product": "+*", "min-plus": "min+", "max-plus": "max+", "max-times": "max*",
            ("+", "*"): "+*", ("min", "+"): "min+", ("max", "+"): "max+", ("max", "*"): "max*"}

_LETTERS = re.compile(r"[A-Za-z]*\Z")


@dataclass(frozen=True)
class Spec:
    """Everything the kernel text depends on (the cache key)."""

    inputs: tuple[str, ...]          # subscripts of each operand
    output: str
    tensor_of: tuple[int, ...]       # operand -> tensor number (repeated operands share one)
    symmetry: tuple[tuple[tuple[int, ...], ...], ...]  # per tensor
    sparse: tuple[bool, ...]         # per tensor
    dtype: str
    semiring: str


# -- parsing -----------------------------------------------------------------------------


def parse_subscripts(subscripts: str, count: int) -> tuple[tuple[str, ...], str]:
    """numpy's grammar: ``"ij,jk->ik"``, or implicit (``"ij,jk"``: the output is every index that
    appears once, in alphabetical order).  Spaces are ignored; ``...`` is not supported."""
    if not isinstance(subscripts, str):
        raise InputError(f"einsum: subscripts must be a string like 'ij,j->i', not {type(subscripts).__name__}")
    text = subscripts.replace(" ", "")
    if "..." in text:
        raise InputError(f"einsum '{subscripts}': '...' (broadcasting) is not supported; name every index")
    if text.count("->") > 1:
        raise InputError(f"einsum '{subscripts}': more than one '->'")
    lhs, arrow, out = text.partition("->")
    inputs = tuple(lhs.split(","))
    for s in (*inputs, out):
        if not _LETTERS.match(s):
            bad = next(c for c in s if not c.isalpha() or not c.isascii())
            raise InputError(f"einsum '{subscripts}': '{bad}' is not an index (indices are the letters a-z, A-Z)")
    if len(inputs) != count:
        raise InputError(f"einsum '{subscripts}': {len(inputs)} operand subscript{'s' if len(inputs) != 1 else ''} "
                         f"but {count} operand{'s' if count != 1 else ''}")
    seen = "".join(inputs)
    if not arrow:
        out = "".join(sorted(c for c in set(seen) if seen.count(c) == 1))
    for c in out:
        if out.count(c) > 1:
            raise InputError(f"einsum '{subscripts}': output index '{c}' appears more than once")
        if c not in seen:
            raise InputError(f"einsum '{subscripts}': output index '{c}' appears in no operand")
    return inputs, out


def _semiring(semiring: object) -> str:
    if isinstance(semiring, list):
        semiring = tuple(semiring)
    try:
        name = _ALIASES.get(semiring, semiring)
    except TypeError:  # unhashable
        name = None
    if name not in SEMIRINGS:
        raise InputError(f"einsum: unknown semiring {semiring!r} (one of {', '.join(repr(s) for s in SEMIRINGS)})")
    return name  # type: ignore[return-value]


def _groups(p: int, order: int, given: object) -> tuple[tuple[int, ...], ...]:
    """The symmetric groups of operand ``p`` as declared by ``symmetric={p: ...}``."""
    if isinstance(given, (bool, np.bool_)) or given is None:
        return ((*range(order),),) if given and order >= 2 else ()
    if isinstance(given, (list, tuple)) and given and all(isinstance(m, (int, np.integer)) for m in given):
        raise InputError(f"einsum: symmetric={{{p}: {given!r}}}: give a list of groups, e.g. [{tuple(given)!r}]")
    try:
        groups = tuple(tuple(int(m) for m in g) for g in given)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise InputError(f"einsum: symmetric={{{p}: {given!r}}}: expected True or a list of groups of modes, "
                         f"e.g. [(0, 1), (2, 3)]") from None
    try:  # the one definition of valid groups (sizes are checked with the operands, in _check_sizes)
        groups = symmetry_groups(groups, (1,) * order)
    except InputError:
        raise InputError(f"einsum: symmetric={{{p}: {given!r}}}: each group needs two or more distinct modes "
                         f"of operand {p} (modes 0..{order - 1}), groups disjoint") from None
    return tuple(sorted(tuple(sorted(g)) for g in groups))


def _is_sparse(x: object) -> bool:
    if isinstance(x, SparseTensor):
        return True
    sp = sys.modules.get("scipy.sparse")  # a scipy matrix exists only once scipy.sparse is imported
    if sp is not None and sp.issparse(x):
        return True
    return type(x).__module__.split(".")[0] == "sparse" and hasattr(x, "fill_value")  # pydata sparse


def _dtype(operands: Sequence[object], subscripts: str) -> str:
    kinds = []
    for x in operands:
        dt = x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype
        kinds.append(np.dtype(dt))
    r = np.result_type(*kinds) if kinds else np.dtype(np.float64)
    if r.kind in "biu":
        if not np.can_cast(r, np.int64, "safe"):
            raise InputError(f"einsum '{subscripts}': operands of type {r} do not fit in int64 (convert them)")
        return "int64"
    if r.kind == "f":
        return "float32" if r.itemsize <= 4 else "float64"
    raise InputError(f"einsum '{subscripts}': operands of type {r} are not supported (float64, float32 or integers)")


def spec_of(subscripts: str, operands: Sequence[object], symmetric: dict | None = None,
            semiring: object = "+*") -> Spec:
    inputs, output = parse_subscripts(subscripts, len(operands))
    ring = _semiring(semiring)
    if symmetric is not None and not isinstance(symmetric, dict):
        raise InputError(f"einsum: symmetric must be a dict from operand number to True or groups of modes, e.g. "
                         f"{{0: True}}, not {symmetric!r}")
    symmetric = dict(symmetric or {})
    for p in symmetric:
        if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or not 0 <= p < len(operands):
            raise InputError(f"einsum: symmetric names operand {p!r}; there are operands 0..{len(operands) - 1}")
    tensor_of: list[int] = []
    first: list[int] = []  # the first operand of each tensor
    for p, x in enumerate(operands):
        same = next((t for t, q in enumerate(first) if operands[q] is x and inputs[q] != ""), None)
        if same is None or len(inputs[p]) != len(inputs[first[same]]):
            first.append(p)
            tensor_of.append(len(first) - 1)
        else:
            tensor_of.append(same)
    symmetry: list[tuple[tuple[int, ...], ...]] = []
    sparse: list[bool] = []
    for t, p in enumerate(first):
        x, order = operands[p], len(inputs[p])
        # what the user declares (False: no claim) wins over a SparseTensor's or PackedTensor's own groups
        declared = {_groups(q, order, symmetric[q]) for q, tt in enumerate(tensor_of) if tt == t and q in symmetric}
        declared.discard(())
        if len(declared) > 1:
            raise InputError(f"einsum: operand {p} is passed several times with different symmetry: "
                             f"{' and '.join(map(str, sorted(declared)))}")
        if not declared and isinstance(x, (SparseTensor, PackedTensor)) and x.symmetry:
            declared.add(tuple(sorted(tuple(sorted(g)) for g in x.symmetry)))
        symmetry.append(declared.pop() if declared else ())
        sparse.append(_is_sparse(x))
        if sparse[-1] and ring == "max*":
            raise InputError(f"einsum: operand {p} is sparse, but under the semiring 'max*' its unstored zeros are "
                             f"not skippable (pass it dense)")
        if sparse[-1] and ring in ("min+", "max+") and np.dtype(x.dtype).kind in "biu":
            raise InputError(f"einsum: operand {p} is a sparse integer array, but under '{ring}' its unstored entries "
                             f"would have to hold {'+' if ring == 'min+' else '-'}inf, which an integer cannot "
                             f"(pass it dense, or as floats)")
    _check_sizes(subscripts, inputs, operands, symmetry, tensor_of)
    return Spec(inputs, output, tuple(tensor_of), tuple(symmetry), tuple(sparse), _dtype(operands, subscripts), ring)


def _check_sizes(subscripts: str, inputs: tuple[str, ...], operands: Sequence[object],
                 symmetry: list[tuple[tuple[int, ...], ...]], tensor_of: list[int]) -> None:
    """Sizes that must agree, said in the user's terms (operands and index letters)."""
    seen: dict[str, tuple[int, int]] = {}
    for p, x in enumerate(operands):
        shape = tuple(getattr(x, "shape", None) or np.shape(x))
        if len(shape) != len(inputs[p]):
            raise InputError(f"einsum '{subscripts}': operand {p} has {len(shape)} dimensions but subscripts "
                             f"'{inputs[p]}'")
        for g in symmetry[tensor_of[p]]:
            if len({shape[m] for m in g}) > 1:
                raise InputError(f"einsum '{subscripts}': operand {p} is symmetric in modes {g} but has shape {shape}")
        for c, size in zip(inputs[p], shape):
            if c in seen and seen[c][0] != size:
                raise InputError(f"einsum '{subscripts}': index '{c}' has size {seen[c][0]} in operand {seen[c][1]} "
                                 f"but {size} in operand {p}")
            seen.setdefault(c, (size, p))


def _in_user_terms(e: InputError, spec: Spec) -> InputError:
    """An error about the generated kernel's tensors (``T0``, ``R``) told about the einsum's operands."""
    text = re.sub(r"\bT(\d+)\b", lambda m: f"operand {spec.tensor_of.index(int(m.group(1)))}", str(e))
    text = re.sub(r"\bR\b", "the result", text)
    letters: dict[str, list[str]] = {}
    for c, d in dimensions(spec).items():
        letters.setdefault(d, []).append(c)
    text = re.sub(r"\bdimension (n\d+)\b", lambda m: f"the size of index {'/'.join(letters[m.group(1)])}", text)
    text = re.sub(r"\b(n\d+)=", lambda m: f"{'/'.join(letters[m.group(1)])}=", text)
    text = re.sub(r"\bkernel einsum_[0-9a-f]+", f"einsum '{','.join(spec.inputs)}->{spec.output}'", text)
    return InputError(text)


# -- the kernel text ---------------------------------------------------------------------


def dimensions(spec: Spec) -> dict[str, str]:
    """Index letter -> the dimension it is declared with (``n0``, ``n1``, ...): one per class of letters
    that must have one size (one mode of one tensor; the modes of one symmetric group)."""
    parent: dict[str, str] = {}

    def find(c: str) -> str:
        while parent.setdefault(c, c) != c:
            c = parent[c]
        return c

    def union(a: str, b: str) -> None:
        parent[find(a)] = find(b)

    firsts = {t: spec.tensor_of.index(t) for t in set(spec.tensor_of)}
    for p, subs in enumerate(spec.inputs):
        for c in subs:
            find(c)
        lead = spec.inputs[firsts[spec.tensor_of[p]]]
        for a, b in zip(subs, lead):  # one mode of one tensor: one size
            union(a, b)
    for t, p in firsts.items():
        for g in spec.symmetry[t]:
            for m in g[1:]:
                union(spec.inputs[p][g[0]], spec.inputs[p][m])
    classes = sorted({find(c) for subs in spec.inputs for c in subs}, key=lambda c: "".join(spec.inputs).index(c))
    dim = {root: f"n{k}" for k, root in enumerate(classes)}
    return {c: dim[find(c)] for subs in spec.inputs for c in subs}


def kernel_text(spec: Spec, name: str = "einsum") -> str:
    """The ``.ein`` text of ``spec``."""
    dim = dimensions(spec)
    firsts = {t: spec.tensor_of.index(t) for t in set(spec.tensor_of)}

    def dims(subs: str) -> str:
        return f"[{', '.join(dim[c] for c in subs)}]" if subs else ""

    op, combine, fill = SEMIRINGS[spec.semiring]
    lines = [f"# {','.join(spec.inputs)}->{spec.output} ({spec.semiring}), written by systec_ref.einsum",
             f"kernel {name}"]
    for t, p in sorted(firsts.items()):
        decl = f"in  T{t}{dims(spec.inputs[p])}"
        groups = spec.symmetry[t]
        if groups:
            decl += " " + " ".join(f"symmetric({','.join(map(str, g))})" for g in groups)
        if spec.sparse[t]:
            decl += " sparse" + ("" if fill == 0 else f" fill {'inf' if fill > 0 else '-inf'}")
        lines.append(decl + ("" if spec.dtype == "float64" else f" {spec.dtype}"))
    lines.append(f"out R{dims(spec.output)}" + ("" if spec.dtype == "float64" else f" {spec.dtype}"))
    reads = [f"T{spec.tensor_of[p]}" + (f"[{', '.join(subs)}]" if subs else "") for p, subs in enumerate(spec.inputs)]
    lhs = "R" + (f"[{', '.join(spec.output)}]" if spec.output else "")
    lines.append(f"{lhs} {op} {combine.join(reads)}")
    return "\n".join(lines) + "\n"


# -- compile once, run ---------------------------------------------------------------------

_KERNELS: dict[Spec, Kernel] = {}


def _kernel(spec: Spec) -> Kernel:
    """The compiled kernel of ``spec``: from this process's table, else parsed, with its stages read
    from the disk cache when an earlier process compiled the same text with the same compiler."""
    k = _KERNELS.get(spec)
    if k is None:
        # named by its text: the same in every process, so the compiled C is found in the disk cache
        digest = hashlib.sha256(kernel_text(spec).encode()).hexdigest()[:10]
        text = kernel_text(spec, f"einsum_{digest}")
        k = compile(text, f"<einsum {','.join(spec.inputs)}->{spec.output}>")
        stages = _load_stages(text)
        if stages is not None:
            k.__dict__["stages"] = stages  # the cached_property's slot: the pipeline is not run again
        else:
            try:
                _save_stages(text, k.stages)
            except RecursionError:  # the symmetry passes enumerate every arrangement of a permutable set
                raise InputError(f"einsum '{','.join(spec.inputs)}->{spec.output}': too many interchangeable "
                                 f"operands or symmetric modes for the compiler's symmetry passes (declare fewer, "
                                 f"or pass copies so the repeated operands are distinct tensors)") from None
        _KERNELS[spec] = k
    return k


def _compiler_fingerprint() -> str:
    """A digest of this package's source: stages cached by another version of the compiler are not used."""
    global _FINGERPRINT
    if _FINGERPRINT is None:
        h = hashlib.sha256()
        for path in sorted(Path(__file__).parent.rglob("*.py")):
            h.update(path.read_bytes())
        _FINGERPRINT = h.hexdigest()
    return _FINGERPRINT


_FINGERPRINT: str | None = None


def _stages_path(text: str) -> Path | None:
    from .emit import build

    try:
        d = build.cache_dir()
    except SystecError:  # no usable cache: compile in every process
        return None
    key = hashlib.sha256((_compiler_fingerprint() + "\0" + text).encode()).hexdigest()[:32]
    # named like the compiled objects (``<name>-<32 hex>``): counted, evicted and cleared with them
    return d / f"einsum-{key}.stages"


def _load_stages(text: str) -> list | None:
    path = _stages_path(text)
    if path is None or not path.is_file():
        return None
    try:
        # the cache directory is private to this user (checked like the compiled C it holds)
        stages = pickle.loads(path.read_bytes())
        os.utime(path)  # recently used: the size bound evicts least recently used entries first
    except Exception:  # a damaged or foreign entry: compile instead
        return None
    return stages if isinstance(stages, list) else None


def _save_stages(text: str, stages: list) -> None:
    path = _stages_path(text)
    if path is None:
        return
    try:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(pickle.dumps(stages, protocol=pickle.HIGHEST_PROTOCOL))
        tmp.chmod(0o600)
        os.replace(tmp, path)
    except OSError:  # a full or read-only disk: the next process compiles again
        pass


def _tensors(spec: Spec, operands: Sequence[object]) -> dict[str, object]:
    out: dict[str, object] = {}
    for p, x in enumerate(operands):
        out.setdefault(f"T{spec.tensor_of[p]}", x)
    return out


def einsum_kernel(subscripts: str, *operands: object, symmetric: dict | None = None,
                  semiring: object = "+*") -> Kernel:
    """The compiled :class:`Kernel` :func:`einsum` would run (``.ast``; ``explain`` it with
    ``einsum_kernel(...).source``)."""
    return _kernel(spec_of(subscripts, operands, symmetric, semiring))


def _formats(spec: Spec, sparse_format: str | dict | None) -> str | dict[str, str] | None:
    """``sparse_format`` by operand position (einsum's terms) as the kernel's by input name."""
    if not isinstance(sparse_format, dict):
        return sparse_format
    out: dict[str, str] = {}
    for p, name in sparse_format.items():
        if not isinstance(p, int) or not 0 <= p < len(spec.tensor_of):
            raise InputError(f"einsum: sparse_format keys are operand positions 0..{len(spec.tensor_of) - 1}, "
                             f"not {p!r}")
        out[f"T{spec.tensor_of[p]}"] = name
    return out


def einsum(subscripts: str, *operands: object, symmetric: dict | None = None, semiring: object = "+*",
           out: np.ndarray | None = None, backend: str | None = None, check: bool | str | float = True,
           sparse_format: str | dict | None = None) -> np.ndarray:
    """Evaluate an einsum expression like ``numpy.einsum``, exploiting declared symmetry and sparsity.

    ``symmetric={p: True}`` declares operand ``p`` symmetric in all its modes, ``{p: [(0, 1), (2, 3)]}``
    in groups of modes (verified unless ``check=False``); ``semiring`` is ``"+*"`` (default),
    ``"min+"``, ``"max+"`` or ``"max*"``; ``backend=None`` runs C where a C compiler is found.
    ``sparse_format``: how sparse operands are handed to the kernel (default: chosen from their data;
    a format name, or a dict by operand position; see ``Kernel.run``).
    A scalar result is a 0-d array.  See the module's docstring for how the kernel is formed."""
    spec = spec_of(subscripts, operands, symmetric, semiring)
    k = _kernel(spec)
    try:
        return k.run(backend=backend, check=check, out=out, sparse_format=_formats(spec, sparse_format),
                     **_tensors(spec, operands))
    except InputError as e:
        raise _in_user_terms(e, spec) from None


class PreparedEinsum:
    """:func:`einsum_prepare`'s result: ``expr()`` reruns on the operands it was prepared with;
    ``expr(*operands)`` runs on new ones (the very same objects as before are not checked again;
    repeated operands must stay repeated); ``expr(..., out=arr)`` writes into ``arr``."""

    def __init__(self, spec: Spec, prepared: Prepared, operands: Sequence[object]):
        self.spec, self.prepared, self.operands = spec, prepared, tuple(operands)

    def __repr__(self) -> str:
        return f"<PreparedEinsum {','.join(self.spec.inputs)}->{self.spec.output} ({self.prepared.backend})>"

    def __call__(self, *operands: object, out: np.ndarray | None = None) -> np.ndarray:
        if not operands:
            return self.prepared(out=out)
        if len(operands) != len(self.operands):
            raise InputError(f"einsum expression takes {len(self.operands)} operands, got {len(operands)}")
        new: dict[str, object] = {}
        for p, x in enumerate(operands):
            name = f"T{self.spec.tensor_of[p]}"
            if name in new and new[name] is not x:
                first = self.spec.tensor_of.index(self.spec.tensor_of[p])
                raise InputError(f"einsum expression: operands {first} and {p} were one array when prepared; "
                                 f"pass one array to both (prepare again otherwise)")
            new.setdefault(name, x)
        try:
            result = self.prepared(out=out, **new)
        except InputError as e:
            raise _in_user_terms(e, self.spec) from None
        self.operands = tuple(operands)
        return result


def einsum_prepare(subscripts: str, *operands: object, symmetric: dict | None = None, semiring: object = "+*",
                   backend: str | None = None, check: bool | str | float = True,
                   sparse_format: str | dict | None = None) -> PreparedEinsum:
    """Compile and validate once, for loops (like ``opt_einsum.contract_expression`` with every operand given):
    ``expr = einsum_prepare('ikl,lj,kj->ij', A, B, B, symmetric={0: True})``, then ``expr(A, B2, B2)``."""
    spec = spec_of(subscripts, operands, symmetric, semiring)
    k = _kernel(spec)
    try:
        prepared = k.prepare(backend=_backend(backend), check=check, sparse_format=_formats(spec, sparse_format),
                             **_tensors(spec, operands))
    except InputError as e:
        raise _in_user_terms(e, spec) from None
    return PreparedEinsum(spec, prepared, operands)
