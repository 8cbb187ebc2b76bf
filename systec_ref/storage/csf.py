"""Compressed sparse fibers: one compressed level per mode.

Level ``l`` holds ``crd[l]`` (the coordinates of the stored fibers at that
level) and ``pos[l]`` (where each parent's children start in ``crd[l]``);
level 0 has a single parent, so ``pos[0] == [0, len(crd[0])]``.  For order 2
this is CSR with a compressed row level (only non-empty rows are stored), so
a mode of size beyond 2^31 with few entries costs memory per entry, not per
row.  Each array is stored in the narrowest of ``int32``/``int64`` that holds
its values (coordinates below the mode's extent, positions up to the level's
entry count); what a kernel is handed (index widths, a dense first level) is the
storage format's choice, below: the chosen widths are the stored ones, so a call
converts nothing, and ``csf`` (64-bit) widens a copy.

Example, entries (0,1)=a, (0,3)=b, (2,2)=c::

    pos[0] = [0, 2]      crd[0] = [0, 2]
    pos[1] = [0, 2, 3]   crd[1] = [1, 3, 2]
    vals   = [a, b, c]

:class:`CSFFormat` describes CSF as a storage format (see :mod:`.formats`): the one place that
names CSF's arrays (``pos<l>``, ``crd<l>``, ``vals``) and their types for the kernels.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import InputError, SystecError
from ..term import unknown
from .faces import face_modes, fill_pinned
from .formats import (
    INDEX_TYPES,
    INT64,
    Array,
    Compressed,
    Dense,
    FaceFormat,
    IndexType,
    Level,
    SparseFormat,
    StoredTensor,
    register,
    register_family,
)


def _narrow(a: np.ndarray, high: int) -> np.ndarray:
    """``a`` (whose values are at most ``high``) as int32 if ``high`` fits, else int64: what the formats chosen
    from data (:mod:`.choose`) hand a kernel, so a call passes the stored arrays without a converted copy."""
    return a.astype(np.int32 if high <= np.iinfo(np.int32).max else np.int64, copy=False)


@dataclass(frozen=True)
class CSF:
    shape: tuple[int, ...]
    pos: tuple[np.ndarray, ...]
    crd: tuple[np.ndarray, ...]
    vals: np.ndarray

    @property
    def nnz(self) -> int:
        return int(self.vals.shape[0])

    @property
    def order(self) -> int:
        return len(self.shape)

    @classmethod
    def from_sorted(cls, shape: tuple[int, ...], coords: np.ndarray, vals: np.ndarray) -> CSF:
        """Build from coordinates sorted lexicographically without duplicates, shape (nnz, order)."""
        coords = np.asarray(coords, dtype=np.int64).reshape(-1, len(shape))
        return cls.from_sorted_columns(shape, lambda lvl: coords[:, lvl], len(coords), np.asarray(vals).copy())

    @classmethod
    def from_sorted_columns(cls, shape: tuple[int, ...], column: Callable[[int], np.ndarray], nnz: int,
                            vals: np.ndarray) -> CSF:
        """Like :meth:`from_sorted`, with ``column(l)`` giving the coordinates of mode ``l`` (asked for
        once per level, so a caller can gather them one column at a time); ``vals`` is kept, not copied."""
        order = len(shape)
        pos, crd = [], []
        # starts[p]: entry p opens a new fiber at the current level (its prefix up to here changed)
        starts = np.zeros(nnz, dtype=bool)
        starts[:1] = True
        parent_of_entry = np.zeros(nnz, dtype=np.int64)  # fiber of the level above that holds entry p
        n_parents = 1
        for lvl in range(order):
            col = np.asarray(column(lvl), dtype=np.int64)
            new = starts.copy()
            new[1:] |= col[1:] != col[:-1]
            idx = np.flatnonzero(new)
            crd.append(_narrow(col[idx], int(shape[lvl]) - 1))
            del col
            counts = np.bincount(parent_of_entry[idx], minlength=n_parents)
            pos.append(_narrow(np.concatenate([[0], np.cumsum(counts)]), len(idx)))
            n_parents = len(idx)
            del idx
            np.cumsum(new, out=parent_of_entry)
            parent_of_entry -= 1
            starts = new
        return cls(tuple(int(s) for s in shape), tuple(pos), tuple(crd), np.asarray(vals))

    def coords(self) -> np.ndarray:
        """The stored coordinates, shape (nnz, order), in storage order."""
        out = np.zeros((self.nnz, self.order), dtype=np.int64)
        for lvl in range(self.order):
            out[:, lvl] = np.repeat(self.crd[lvl], self._leaves_below(lvl))
        return out

    def _leaves_below(self, lvl: int) -> np.ndarray:
        """How many stored entries lie under each fiber of level ``lvl``."""
        counts = np.ones(len(self.crd[-1]), dtype=np.int64)
        for deeper in range(self.order - 1, lvl, -1):
            acc = np.concatenate([[0], np.cumsum(counts)])
            p = self.pos[deeper]
            counts = acc[p[1:]] - acc[p[:-1]]
        return counts

    def memory_bytes(self) -> int:
        return int(sum(a.nbytes for a in self.pos) + sum(a.nbytes for a in self.crd) + self.vals.nbytes)


# -- CSF as a storage format ----------------------------------------------------------


@dataclass(frozen=True)
class CSFFormat(SparseFormat):
    """CSF handed to a kernel: every stored mode of a face a :class:`~.formats.Compressed` level with
    arrays ``<pos_name><l>`` and ``<crd_name><l>``, then the values ``<vals_name>`` — except that the
    first level of each face in ``dense`` is a :class:`~.formats.Dense` level (no arrays; the level
    below takes one slot per coordinate).

    Positions are of type ``pos_index`` and coordinates of ``crd_index`` (both ``index`` unless given).
    :data:`CSF_FORMAT` is today's (``csf``: ``pos0``, ``crd0``, ``vals``, int64, no dense level); the
    formats chosen from data (:mod:`.choose`) are instances named by their parameters,
    ``csf[pos=int32,crd=int32,dense=f0+f1]``, which :func:`~.formats.get` rebuilds from the name."""

    name: str = "csf"
    index: IndexType = INT64
    pos_name: str = "pos"
    crd_name: str = "crd"
    vals_name: str = "vals"
    pos_index: IndexType | None = None
    crd_index: IndexType | None = None
    #: the faces (keys) whose first level is dense
    dense: frozenset[tuple[int, ...]] = frozenset()

    @property
    def pos_type(self) -> IndexType:
        return self.pos_index or self.index

    @property
    def crd_type(self) -> IndexType:
        return self.crd_index or self.index

    def face(self, levels: int, key: tuple[int, ...] = ()) -> FaceFormat:
        def level(lvl: int) -> Level:
            if lvl == 0 and key in self.dense:
                return Dense()
            return Compressed(Array(self.pos_name, lvl, self.pos_type), Array(self.crd_name, lvl, self.crd_type))
        return FaceFormat(tuple(level(lvl) for lvl in range(levels)), Array(self.vals_name, None, None))

    def arrays(self, st: StoredTensor, key: tuple[int, ...], dtype: np.dtype) -> dict[Array, np.ndarray]:
        layout = self.layout(len(st.shape), st.symmetry, key)
        f: CSF | None = st.faces.get(key)
        out: dict[Array, np.ndarray] = {}
        vals = np.ascontiguousarray(f.vals if f is not None else np.zeros(0), dtype=dtype)
        for lvl, level in enumerate(layout.levels):
            if f is None:  # an empty face: no fiber at level 0, so no parent below it
                pos, crd = np.zeros(2 if lvl == 0 else 1, dtype=np.int64), np.zeros(0, dtype=np.int64)
            else:
                pos, crd = f.pos[lvl], f.crd[lvl]
            if lvl == 1 and isinstance(layout.levels[0], Dense):
                # the dense level above has one slot per coordinate: a position range for every one
                size = _extent(st, key, 0)
                top = f.crd[0] if f is not None else np.zeros(0, dtype=np.int64)
                counts = np.zeros(size, dtype=np.int64)
                counts[top] = np.diff(pos)
                pos = np.concatenate([[0], np.cumsum(counts)])
            match level:
                case Compressed(pos_array, crd_array):
                    out[pos_array] = self._index(pos_array, pos, self.pos_type)
                    out[crd_array] = self._index(crd_array, crd, self.crd_type)
                case Dense() if lvl == len(layout.levels) - 1:
                    # the values level: every coordinate's value, the fill where none is stored
                    full = np.full(_extent(st, key, lvl), _fill(st, dtype, self.name), dtype=dtype)
                    full[crd] = vals
                    vals = full
                case Dense() if lvl == 0:
                    pass  # its slots are the coordinates; the level below was spread out above
                case other:
                    raise unknown(other, f"storage format '{self.name}' (a dense level below the first)")
        out[layout.vals] = vals
        return out

    def value_coords(self, st: StoredTensor, key: tuple[int, ...]) -> np.ndarray:
        layout = self.layout(len(st.shape), st.symmetry, key)
        if len(layout.levels) == 1 and isinstance(layout.levels[0], Dense):  # a value per coordinate
            stored = np.arange(_extent(st, key, 0), dtype=np.int64).reshape(-1, 1)
            return fill_pinned(stored, len(st.shape), st.symmetry, key)
        return super().value_coords(st, key)

    def _index(self, array: Array, a: np.ndarray, kind: IndexType) -> np.ndarray:
        if kind.high < INT64.high and len(a) and int(a.max()) > kind.high:
            raise InputError(f"storage format '{self.name}': {array.name} holds {int(a.max())}, more than "
                             f"{kind.name} can (at most {kind.high})")
        return np.ascontiguousarray(a, dtype=kind.numpy)

    # -- parametric names ---------------------------------------------------------------
    @classmethod
    def named(cls, pos: IndexType = INT64, crd: IndexType = INT64,
              dense: frozenset[tuple[int, ...]] = frozenset()) -> CSFFormat:
        """Today's CSF arrays with these index types and dense faces, named by its parameters (the
        default parameters: :data:`CSF_FORMAT` itself)."""
        parts = ([f"pos={pos.name}"] if pos != INT64 else []) + ([f"crd={crd.name}"] if crd != INT64 else [])
        if dense:
            parts.append("dense=" + "+".join(_face_label(k) for k in sorted(dense)))
        if not parts:
            return CSF_FORMAT
        return cls(name=f"csf[{','.join(parts)}]", pos_index=pos, crd_index=crd, dense=frozenset(dense))

    @classmethod
    def parse(cls, name: str) -> CSFFormat:
        """The format :meth:`named` calls ``name``."""
        m = re.fullmatch(r"csf\[([^\]]*)\]", name)
        if m is None:
            raise SystecError(f"unknown storage format '{name}' (expected e.g. csf[pos=int32,crd=int32,dense=f0+f1])")
        got: dict[str, str] = {}
        for part in m.group(1).split(","):
            k, _, v = part.partition("=")
            if k not in ("pos", "crd", "dense") or not v or k in got:
                raise SystecError(f"storage format '{name}': '{part}' is not pos=<type>, crd=<type> or dense=<faces>")
            got[k] = v
        types = {}
        for k in ("pos", "crd"):
            v = got.get(k, "int64")
            if v not in INDEX_TYPES:
                raise SystecError(f"storage format '{name}': unknown index type '{v}' (one of "
                                  f"{', '.join(INDEX_TYPES)})")
            types[k] = INDEX_TYPES[v]
        dense = frozenset(_face_key(label, name) for label in got["dense"].split("+")) if "dense" in got \
            else frozenset()
        fmt = cls.named(types["pos"], types["crd"], dense)
        if fmt.name != name:
            raise SystecError(f"storage format '{name}': write it as '{fmt.name}'")
        return fmt


def _face_label(key: tuple[int, ...]) -> str:
    """A face key as in the C names of its arrays: ``full`` for ``()``, ``f0_1`` for ``(0, 1)``."""
    return "f" + "_".join(str(k) for k in key) if key else "full"


def _face_key(label: str, name: str) -> tuple[int, ...]:
    if label == "full":
        return ()
    if not re.fullmatch(r"f\d+(_\d+)*", label):
        raise SystecError(f"storage format '{name}': '{label}' is not a face (full, f0, f1, f0_1, ...)")
    return tuple(int(x) for x in label[1:].split("_"))


def _extent(st: StoredTensor, key: tuple[int, ...], level: int) -> int:
    """The extent of the mode a face stores at ``level``."""
    return int(st.shape[face_modes(len(st.shape), st.symmetry, key)[level]])


def _fill(st: StoredTensor, dtype: np.dtype, fmt: str) -> object:
    """The tensor's fill as a value of ``dtype`` (a dense level stores it where nothing is stored)."""
    fill = getattr(st, "fill", 0)
    if dtype.kind in "iu" and not (isinstance(fill, (int, np.integer)) or float(fill).is_integer()):
        raise InputError(f"storage format '{fmt}': a dense level of an integer tensor cannot hold its fill {fill}")
    return fill


#: today's CSF, the format the language's ``sparse`` means (:data:`~.formats.DEFAULT_FORMAT`)
CSF_FORMAT = register(CSFFormat())
register_family("csf", CSFFormat.parse)
