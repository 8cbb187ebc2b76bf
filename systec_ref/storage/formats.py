"""Storage formats: what a kernel is handed for one stored face of a sparse tensor, described once.

A :class:`~systec_ref.storage.symmetric.SparseTensor` keeps its entries by face (canonical-only
for a symmetric tensor, see :mod:`.faces`); a *storage format* says how a kernel sees one face:

* its levels, outermost first, one per stored mode (:func:`~.faces.face_modes`), each of a
  *level kind*: :class:`Compressed` (the children of parent position ``q`` are the
  positions ``pos[q] .. pos[q+1]-1``, position ``p`` has coordinate ``crd[p]``) or
  :class:`Dense` (every coordinate ``0 .. size-1`` of the mode, position ``q*size + i``: no
  array at all; a value at a point the tensor does not store holds the fill);
* for each level its arrays (:class:`Array`): a name stem (``pos``: ``pos0``, ``pos1``, ...) and
  an element type (:class:`IndexType`);
* the values array, indexed by the position of the last level, of the tensor's element type;
* how to get those arrays out of a stored face (:meth:`SparseFormat.arrays`), and which point
  each value stands for (:meth:`SparseFormat.value_coords`).

Every consumer reads this description and nothing else: the ``sparse-iterate`` pass (which level
kinds it iterates, and the format's name, recorded as the program's ``sparse_format`` fact), the
interpreter, the C emitter and the calling convention (``emit/abi.py``: one parameter per array),
the runtime (packing the arrays) and the name checker (``lang/names.py``: the C names of the
arrays, ``<tensor>_<face>_<array>``, which a kernel may not use).

Formats are registered by name (:func:`register`, :func:`get`); the language's ``sparse`` means
:data:`DEFAULT_FORMAT`, today's CSF (:class:`~.csf.CSFFormat`).  A compile selects another by
name with the ``sparse_format`` compile option, which ``sparse-iterate`` reads from its options
(``tests/test_storage_format.py`` declares one and selects it so).  Adding a format: describe it (a subclass of
:class:`SparseFormat`, or a :class:`~.csf.CSFFormat` with other names or index types) and
:func:`register` it; a new *level kind* is a new class beside :class:`Compressed`, handled by a
``case`` in each consumer (each raises :func:`~systec_ref.term.unknown` on a kind it lacks).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol, Union

import numpy as np

from ..errors import InternalError, SystecError
from ..term import unknown
from .faces import face_modes

#: the format the language's ``sparse`` means (registered by :mod:`.csf`)
DEFAULT_FORMAT = "csf"


@dataclass(frozen=True)
class IndexType:
    """The element type of a position or coordinate array: its names in numpy and C."""

    name: str
    numpy: type
    c_type: str
    #: the largest value it holds (computed once: arrays are checked against it on every call)
    high: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "high", int(np.iinfo(self.numpy).max))


INT64 = IndexType("int64", np.int64, "int64_t")
INT32 = IndexType("int32", np.int32, "int32_t")
#: index types by name
INDEX_TYPES = {t.name: t for t in (INT32, INT64)}


@dataclass(frozen=True)
class Array:
    """One array a format passes for a face: named ``<stem><level>`` (``pos0``), or ``<stem>`` for the
    values; its C name is the face's name, ``_``, then this (see ``lang/names.py``)."""

    stem: str
    #: the level it belongs to; None for the values
    level: int | None
    #: the element type of its entries; None: the tensor's element type (the values)
    type: IndexType | None

    def __post_init__(self) -> None:
        # arrays key the dicts a kernel call fills: hash once, not on every lookup
        object.__setattr__(self, "_hash", hash((self.stem, self.level, self.type)))

    def __hash__(self) -> int:
        return self._hash  # type: ignore[attr-defined]

    @property
    def name(self) -> str:
        return self.stem if self.level is None else f"{self.stem}{self.level}"

    def pattern(self) -> str:
        """A regular expression for this array's name at any level."""
        return re.escape(self.stem) + ("" if self.level is None else r"\d+")


@dataclass(frozen=True)
class Compressed:
    """A compressed level: positions ``pos[q] .. pos[q+1]-1`` under parent position ``q`` (``q = 0`` at the
    first level), position ``p`` with coordinate ``crd[p]``; within each fiber the coordinates increase
    with the position (``sparse-iterate`` walks a fiber from a given position: ``SparseLevel.start``)."""

    pos: Array
    crd: Array


@dataclass(frozen=True)
class Dense:
    """A dense level: every coordinate ``i`` in ``0 .. size-1`` of its mode (``size``: the mode's extent)
    under parent position ``q`` (``q = 0`` at the first level), at position ``q*size + i``.  It passes no
    array; the level below it (or the values) has one slot per position, the fill where nothing is
    stored.  Worth it where a mode is (nearly) full: no coordinate to load, and the loop bound is
    known."""


#: the level kinds
Level = Union[Compressed, Dense]


@dataclass(frozen=True)
class FaceFormat:
    """What a format stores for one face: its levels, outermost first, and its values."""

    levels: tuple[Level, ...]
    vals: Array

    def arrays(self) -> tuple[Array, ...]:
        """Every array of the face, in the order a kernel takes them: each level's, then the values."""
        out: list[Array] = []
        for level in self.levels:
            match level:
                case Compressed(pos, crd):
                    out += [pos, crd]
                case Dense():
                    pass
                case _:
                    raise unknown(level, "storage format description")
        return (*out, self.vals)


class StoredTensor(Protocol):
    """What a format reads of a stored tensor (a :class:`~.symmetric.SparseTensor`): its faces, each a
    :class:`~.csf.CSF` over the modes the face stores."""

    shape: tuple[int, ...]
    symmetry: tuple[tuple[int, ...], ...]
    faces: dict
    dtype: np.dtype
    fill: float

    def face_coords(self, key: tuple[int, ...]) -> np.ndarray: ...

    def face_name(self, key: tuple[int, ...]) -> str: ...


class SparseFormat(ABC):
    """A storage format: how each face of a stored tensor is handed to a kernel."""

    #: the name it is registered and recorded under (the ``sparse_format`` fact of a program)
    name: str

    @abstractmethod
    def face(self, levels: int, key: tuple[int, ...] = ()) -> FaceFormat:
        """The description of face ``key`` (of ``levels`` stored modes)."""

    @abstractmethod
    def arrays(self, st: StoredTensor, key: tuple[int, ...], dtype: np.dtype) -> dict[Array, np.ndarray]:
        """The arrays of face ``key`` of ``st`` (an absent face: an empty one), each by its :class:`Array`,
        of its element type (``dtype`` for the values) and C-contiguous."""

    def value_coords(self, st: StoredTensor, key: tuple[int, ...]) -> np.ndarray:
        """The full coordinates of the point each value of face ``key`` stands for, in the order of the
        values (shape (values, order)).  The default: the order the face stores them in."""
        if key not in st.faces:
            return np.zeros((0, len(st.shape)), dtype=np.int64)
        return st.face_coords(key)

    # -- derived from the description -------------------------------------------------
    def layout(self, order: int, symmetry: tuple[tuple[int, ...], ...], key: tuple[int, ...]) -> FaceFormat:
        """The description of face ``key`` of a tensor of ``order`` modes stored with ``symmetry``
        (``key == ()``: the one face of full storage).  Cached: it is asked on every kernel call."""
        return _layout(self, order, symmetry, key)

    def array_patterns(self) -> tuple[str, ...]:
        """Regular expressions for the names of every array this format passes (each level names its
        arrays alike, by stem and level number: one level shows them all)."""
        return tuple(dict.fromkeys(a.pattern() for a in self.face(1).arrays()))


@lru_cache(maxsize=1024)
def _layout(fmt: SparseFormat, order: int, symmetry: tuple[tuple[int, ...], ...], key: tuple[int, ...]) -> FaceFormat:
    return fmt.face(len(face_modes(order, symmetry, key)), key)


_FORMATS: dict[str, SparseFormat] = {}
#: parsers of parametric names (``csf[pos=int32,...]``), by the name before ``[``
_FAMILIES: dict[str, Callable[[str], SparseFormat]] = {}


def register(fmt: SparseFormat) -> SparseFormat:
    """Make ``fmt`` selectable by its name (registering the same description twice is harmless)."""
    have = _FORMATS.get(fmt.name)
    if have is not None and have != fmt:
        raise InternalError(f"storage format '{fmt.name}' is registered already, as another description")
    _FORMATS[fmt.name] = fmt
    return fmt


def register_family(stem: str, parse: Callable[[str], SparseFormat]) -> None:
    """Let :func:`get` make a format from a parametric name ``<stem>[...]`` (e.g. the widths and dense
    levels chosen from data, :func:`systec_ref.storage.choose.choose_format`), in any process: a program's
    facts hold the name only."""
    _FAMILIES[stem] = parse


def get(name: str) -> SparseFormat:
    """The registered format called ``name`` (or one its family's parser makes from the name)."""
    have = _FORMATS.get(name)
    if have is not None:
        return have
    stem = name.split("[", 1)[0]
    if "[" in name and stem in _FAMILIES:
        return register(_FAMILIES[stem](name))
    families = "".join(f"; or {stem}[...]" for stem in sorted(_FAMILIES))
    raise SystecError(f"unknown storage format '{name}' (registered: {', '.join(sorted(_FORMATS))}{families})")


def registered() -> tuple[SparseFormat, ...]:
    """Every registered format, by name."""
    return tuple(_FORMATS[n] for n in sorted(_FORMATS))
