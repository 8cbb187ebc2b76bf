"""Arrays at the boundary: validating what a user hands a kernel, and making
random inputs that honour a kernel's declarations."""

from __future__ import annotations

import math
import sys

import numpy as np

from .dtypes import numpy_type
from .errors import InputError
from .lang.ast import Kernel, TensorDecl
from .storage.faces import check_symmetry, symmetrize_index, symmetry_rtol
from .storage.packed import PackedTensor
from .storage.symmetric import SparseTensor, pydata_module

__all__ = ["bind", "check_symmetry", "densify", "random_inputs", "symmetrize_index"]


def _as_array(d: TensorDecl, value: object, check: bool | str | float) -> np.ndarray | SparseTensor:
    """A numpy array, or for a ``sparse`` declaration given compressed data, a :class:`SparseTensor`
    (never densified here: a sparse input stays as small as it was given)."""
    # a scipy matrix exists only once scipy.sparse is imported: a dense-only program never imports it
    sp = sys.modules.get("scipy.sparse")
    if sp is not None and sp.issparse(value):
        if d.order != 2:
            raise InputError(f"{d.name}: a scipy.sparse matrix was given for a tensor of order {d.order}")
        if d.format != "sparse":
            raise InputError(f"{d.name}: a scipy.sparse matrix was given for a dense tensor "
                             f"(declare it 'sparse', or pass .toarray())")
        # entries scipy does not store hold the declared fill (e.g. inf: no edge)
        return SparseTensor.from_scipy(value, d.symmetry, check, d.name, fill=d.fill)
    pydata = pydata_module(value)
    if pydata is not None and isinstance(value, pydata.SparseArray):
        if d.format != "sparse":
            raise InputError(f"{d.name}: a pydata sparse array was given for a dense tensor "
                             f"(declare it 'sparse', or pass .todense())")
        own = np.asarray(value.fill_value).item()
        if not _same_fill(own, d.fill):
            raise InputError(f"{d.name}: a pydata sparse array with fill_value {own!r} was given for a tensor "
                             f"declared fill {d.fill!r} (build it with fill_value={d.fill!r})")
        return SparseTensor.from_pydata(value, d.symmetry, check, name=d.name)
    if isinstance(value, PackedTensor):
        if d.format == "sparse":
            raise InputError(f"{d.name}: a PackedTensor was given for a sparse tensor (declare it dense, or pass "
                             f"SparseTensor.from_dense({d.name}.to_dense(), ...))")
        declared = {tuple(sorted(g)) for g in d.symmetry}
        if set(value.symmetry) != declared:
            want = " ".join(f"symmetric{g}" for g in sorted(declared)) or "no symmetry"
            raise InputError(f"{d.name}: packed symmetric in {value.symmetry}, but the kernel declares it {want} "
                             f"(pack it with the declared groups, or pass the full array: {d.name}.to_dense())")
        return value
    if isinstance(value, SparseTensor):
        if d.format != "sparse":
            raise InputError(f"{d.name}: a SparseTensor was given for a dense tensor "
                             f"(declare it 'sparse', or pass .to_dense())")
        return value
    if isinstance(value, np.ndarray):
        arr = value
    else:
        try:
            arr = np.asarray(value)
        except Exception as e:  # array-likes of every kind; report, never crash
            raise InputError(f"{d.name}: cannot be made an array ({e})") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise InputError(f"{d.name}: elements of type {arr.dtype} are not numbers")
    return arr


def _same_fill(a: float, b: float) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def bind(kernel: Kernel, tensors: dict[str, object],
         check: bool | str | float = True, only: frozenset[str] | None = None
         ) -> tuple[dict[str, np.ndarray | SparseTensor], dict[str, int]]:
    """Validate the inputs of ``kernel``: every input present, numeric, of a dtype
    that converts safely to the declared one, of consistent shape, and (unless
    ``check=False``) symmetric where declared.  Returns the arrays, converted,
    and the size of every dimension.

    ``check=True`` accepts a float input symmetric up to a relative tolerance
    (:data:`~systec_ref.storage.faces.SYMMETRY_RTOL`; see
    :func:`~systec_ref.storage.faces.symmetry_rtol`), ``check="exact"`` only a
    bitwise symmetric one, ``check=<number>`` that tolerance, ``check=False``
    anything.  A dense input symmetric only within the tolerance is replaced by its
    canonical entries (sorted subscripts in each group), so every backend reads the
    same values.

    A ``sparse`` input may be a dense array, a ``scipy.sparse`` matrix, a pydata
    ``sparse`` array or a :class:`~systec_ref.storage.SparseTensor`; the last three stay compressed
    (a SparseTensor with other symmetry groups than declared is re-stored once,
    and keeps that layout for the next call)."""
    names = [d.name for d in kernel.inputs]
    for name in sorted(tensors):
        if name not in names:
            what = "the output" if name == kernel.output.name else "not an input"
            raise InputError(f"'{name}' is {what} of kernel {kernel.name} (its inputs are {', '.join(names)})")
    missing = [n for n in names if n not in tensors]
    if missing:
        raise InputError(f"kernel {kernel.name} needs input{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    symmetry_rtol(check, np.float64)  # a malformed ``check`` fails even for a kernel with no symmetric input
    dims: dict[str, int] = {}
    where: dict[str, str] = {}
    arrays: dict[str, np.ndarray] = {}
    for d in kernel.inputs:
        # ``only``: the inputs whose symmetry is verified (a prepared kernel re-checks only what changed)
        check_d = check if only is None or d.name in only else False
        arr = _as_array(d, tensors[d.name], check_d)
        target = np.dtype(numpy_type(d.dtype))
        if arr.dtype != target and not np.can_cast(arr.dtype, target, "safe"):
            raise InputError(f"{d.name} has dtype {arr.dtype}, which does not convert safely to the declared "
                             f"{d.dtype} (convert it explicitly, e.g. {d.name}.astype(np.{d.dtype}))")
        if len(arr.shape) != d.order:
            decl = f"{d.name}[{', '.join(map(str, d.dims))}]" if d.dims else d.name
            nd = len(arr.shape)
            raise InputError(f"{d.name} has {nd} dimension{'s' if nd != 1 else ''} "
                             f"(shape {tuple(arr.shape)}) but is declared {decl}")
        for mode, (dim, size) in enumerate(zip(d.dims, arr.shape)):
            here = f"{d.name} (mode {mode})"
            if isinstance(dim, int):
                if size != dim:
                    raise InputError(f"{here} has size {size} but is declared {dim}")
            elif dim in dims and dims[dim] != size:
                raise InputError(f"dimension {dim} is {dims[dim]} from {where[dim]} but {size} from {here}")
            else:
                dims.setdefault(dim, int(size))
                where.setdefault(dim, here)
        if isinstance(arr, PackedTensor):  # verified symmetric when it was packed (PackedTensor.from_dense)
            arrays[d.name] = arr.astype(target)
            continue
        if isinstance(arr, SparseTensor):
            if not _same_fill(arr.fill, d.fill):
                raise InputError(f"{d.name} holds {arr.fill!r} where it stores nothing, but is declared "
                                 f"fill {d.fill!r} (build it with fill={d.fill!r})")
            # stored canonical for the declared groups (verifying them unless check=False)
            arrays[d.name] = arr.with_symmetry(d.symmetry, check_d, d.name).astype(target)
            continue
        arr = np.asarray(arr, dtype=target, order="C")  # not ascontiguousarray: it makes 0-d arrays 1-d
        if d.symmetry and not check_symmetry(d.name, arr, d.symmetry, check_d):
            # symmetric within the tolerance only: what the optimized kernels read, every backend reads
            arr = np.ascontiguousarray(arr[symmetrize_index(arr.shape, d.symmetry)])
        arrays[d.name] = arr
    return arrays, dims


def densify(arrays: dict[str, np.ndarray | SparseTensor], why: str) -> dict[str, np.ndarray]:
    """Every input as a dense array (for the interpreter and the definition, which are for small data,
    and for a compiled stage that reads a sparse input element by element).  ``why`` completes the
    sentence "it must be dense because ..." of the error raised when that array cannot be made."""
    return {n: _dense(n, a, why) if isinstance(a, (SparseTensor, PackedTensor)) else a for n, a in arrays.items()}


def _dense(name: str, t: SparseTensor | PackedTensor, why: str) -> np.ndarray:
    try:
        return t.to_dense()
    except (ValueError, MemoryError) as e:  # numpy: 'array is too big' / cannot allocate
        size = math.prod(t.shape) * t.dtype.itemsize
        raise InputError(f"{name}: cannot make the dense array of shape {t.shape} ({size:.3g} bytes) that it needs "
                         f"because {why} ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None


def random_inputs(kernel: Kernel, sizes: dict[str, int] | None = None, seed: int = 0,
                  density: float = 1.0) -> dict[str, np.ndarray]:
    """Random inputs honouring ``kernel``'s declarations.

    Symmetric tensors are exactly symmetric in every declared group; ``sparse``
    tensors keep each canonical entry with probability ``density`` and hold
    their ``fill`` elsewhere; values are integers in [-4, 4] for int64 and
    uniform in [-1, 1) otherwise.  Every symbolic dimension needs a size.
    """
    sizes = dict(sizes or {})
    if not 0.0 <= density <= 1.0:
        raise InputError(f"density {density} is not between 0 and 1")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed {seed!r} is not a non-negative integer")
    needed = sorted({dim for d in kernel.decls for dim in d.dims if isinstance(dim, str)})
    missing = [n for n in needed if n not in sizes]
    if missing:
        raise InputError(f"no size given for dimension{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    for n, v in sizes.items():
        if not isinstance(v, (int, np.integer)) or v < 0:
            raise InputError(f"size {n}={v} is not a non-negative integer")
    rng = np.random.default_rng(seed)
    out = {}
    for d in kernel.inputs:
        shape = tuple(sizes[x] if isinstance(x, str) else x for x in d.dims)
        try:
            out[d.name] = _random_array(d, shape, rng, density)
        except (MemoryError, ValueError) as e:  # e.g. 'in A[100000, 100000, 100000]': numpy cannot allocate it
            raise InputError(f"{d.name}: cannot make a random array of shape {shape} ({e or type(e).__name__})"
                             ) from None
    return out


def _random_array(d: TensorDecl, shape: tuple[int, ...], rng: np.random.Generator, density: float) -> np.ndarray:
    if d.dtype == "int64":
        base = rng.integers(-4, 5, size=shape).astype(np.int64)
    else:
        base = rng.uniform(-1.0, 1.0, size=shape).astype(numpy_type(d.dtype))
    if d.format == "sparse":
        keep = rng.random(size=shape) < density
        fill = d.fill if not (d.dtype == "int64" and isinstance(d.fill, float) and math.isinf(d.fill)) else 0
        base = np.where(keep, base, np.asarray(fill, dtype=base.dtype))
    if d.symmetry and base.size:
        base = base[symmetrize_index(shape, d.symmetry)]
    return np.asarray(base, order="C")  # keeps a scalar input 0-d
