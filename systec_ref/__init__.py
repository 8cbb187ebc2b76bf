"""systec_ref: a staged reference compiler for symmetric sparse tensor kernels.

``compile(text)`` / ``load(path)`` give a :class:`Kernel`; ``Kernel.stages``
lists the named programs from ``lower`` to the optimized nest; ``Kernel.run``
computes a result.  See the README and ``tutorials/``.
"""

from . import storage
from .api import Kernel, Result, compile, load
from .check import check
from .compare import agree
from .errors import InputError, SourceError, SystecError, ToolError
from .tensors import random_inputs as _random_inputs

__version__ = "0.1.0"


def random_inputs(kernel: Kernel, sizes: dict[str, int] | None = None, seed: int = 0,
                  density: float = 1.0):
    """Inputs for ``kernel`` that honour its declarations (see :func:`systec_ref.tensors.random_inputs`)."""
    return _random_inputs(kernel.ast if isinstance(kernel, Kernel) else kernel, sizes, seed, density)


__all__ = ["InputError", "Kernel", "Result", "SourceError", "SystecError", "ToolError", "agree", "storage", "check",
           "compile", "load", "random_inputs"]
