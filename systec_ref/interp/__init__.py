"""The reference interpreter: the einsum definition and loop-nest programs."""

from .counts import Counts
from .definition import run_definition
from .loops import InterpError, run_program

__all__ = ["Counts", "InterpError", "run_definition", "run_program"]
