"""systec_ref: a staged reference compiler for symmetric sparse tensor kernels.

``compile(text)`` / ``load(path)`` give a :class:`Kernel`; ``Kernel.stages``
lists the named programs from ``lower`` to the optimized nest; ``Kernel.run``
computes a result.  See the README and ``tutorials/``.
"""

from . import storage
from .api import InterpreterFallbackWarning, Kernel, Prepared, Result, compile, load
from .check import check
from .compare import agree
from .einsum import PreparedEinsum, einsum, einsum_kernel, einsum_prepare
from .emit.cache import CacheWarning
from .errors import InputError, SourceError, SystecError, ToolError
from .storage.faces import symmetrize
from .storage.packed import PackedTensor
from .storage.symmetric import SparseTensor
from .tensors import random_inputs as _random_inputs

__version__ = "0.1.0"


def explain_view(kernel: Kernel, sizes: dict[str, int] | None = None, verify: bool = True, seed: int = 0):
    """What ``explain`` shows, as a Jupyter display (see :func:`systec_ref.viz.notebook.explain_view`)."""
    from .viz.notebook import explain_view as view  # the drawing code is imported when asked for

    return view(kernel, sizes, verify, seed)


def random_inputs(kernel: Kernel, sizes: dict[str, int] | None = None, seed: int = 0,
                  density: float = 1.0):
    """Inputs for ``kernel`` that honour its declarations (see :func:`systec_ref.tensors.random_inputs`)."""
    return _random_inputs(kernel.ast if isinstance(kernel, Kernel) else kernel, sizes, seed, density)


__all__ = ["CacheWarning", "InputError", "InterpreterFallbackWarning", "Kernel", "PackedTensor", "Prepared",
           "PreparedEinsum",
           "Result", "SourceError", "SparseTensor", "SystecError", "ToolError", "agree", "check", "compile", "einsum",
           "einsum_kernel",
           "einsum_prepare", "explain_view", "load", "random_inputs", "storage", "symmetrize"]
