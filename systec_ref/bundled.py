"""The example kernels that ship inside the package, found by name (``mttkrp3``, ``sparse/ssymv``).

They are read through :mod:`importlib.resources`, so they are found the same way in a checkout, an
editable install and an installed wheel (``systec_ref/examples`` is a link to the checkout's
``examples/``; the wheel carries copies).
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

from .errors import SystecError

SUFFIX = ".ein"


def _root() -> Traversable:
    return resources.files("systec_ref") / "examples"


def _walk(folder: Traversable, prefix: str = "") -> list[str]:
    names: list[str] = []
    for entry in folder.iterdir():
        if entry.is_dir():
            names += _walk(entry, f"{prefix}{entry.name}/")
        elif entry.name.endswith(SUFFIX):
            names.append(prefix + entry.name[: -len(SUFFIX)])
    return names


def names() -> list[str]:
    """Every bundled example's name, sorted: ``bellman``, ..., ``sparse/ssymv``, ..."""
    root = _root()
    return sorted(_walk(root)) if root.is_dir() else []


def _normalized(name: str) -> str:
    # 'sparse/ssymv.ein' and 'sparse/ssymv' name the same example
    return name[: -len(SUFFIX)] if name.endswith(SUFFIX) else name


def is_bundled(name: str) -> bool:
    return _normalized(name) in names()


def unknown(name: str) -> SystecError:
    """The error for a name that is neither a file nor a bundled example: one line, listing the examples."""
    return SystecError(f"{name}: no such file, nor a bundled example (bundled: {', '.join(names())})")


def read(name: str) -> tuple[str, str]:
    """The source text of bundled example ``name`` and where it lies (for messages); an unknown name is a
    :class:`SystecError` that lists the bundled ones."""
    key = _normalized(name)
    if key not in names():
        raise unknown(name)
    folder = _root()
    *dirs, stem = key.split("/")
    for part in dirs:
        folder = folder / part
    entry = folder / (stem + SUFFIX)
    return entry.read_text(encoding="utf-8"), str(entry)
