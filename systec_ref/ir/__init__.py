"""The loop-nest IR: node classes (``nodes``), a pseudo-code printer (``printer``), a graph view
(``graph``), the verifier every stage must pass (``verify``), and the helpers every pass shares:
index variables (``index``), fresh names (``names``) and body edits (``edit``).  The node base and
the generic walks are in :mod:`systec_ref.term`."""

from .graph import to_graph
from .nodes import *  # noqa: F401,F403  (the node classes are this package's vocabulary)
from .printer import print_program
from .verify import verify

__all__ = ["print_program", "to_graph", "verify"]
