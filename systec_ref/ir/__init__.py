"""The loop-nest IR: node classes, a pseudo-code printer and a graph view."""

from .graph import to_graph
from .nodes import *  # noqa: F401,F403  (the node classes are this package's vocabulary)
from .printer import print_program

__all__ = ["print_program", "to_graph"]
