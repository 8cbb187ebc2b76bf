"""The two exception families: the user's errors and ours.

Every error a user can cause (bad source text, bad arrays, a missing tool) is a
``SystecError``: the CLI prints ``str(err)`` and exits with status 2.

An :class:`InternalError` means the compiler itself went wrong: a stage that reads
out of range, a program the IR verifier rejects, a visitor meeting a node type it
does not know.  It is deliberately *not* a ``SystecError`` — the input was fine, the
compiler is not — and the CLI reports it, like any other escaping exception, as an
internal error with status 3.
"""

from __future__ import annotations

from dataclasses import dataclass


class SystecError(Exception):
    """Base class of every error caused by user input or the environment."""


@dataclass(frozen=True)
class Location:
    """A point in a source file; ``line`` and ``col`` are 1-based."""

    path: str
    line: int
    col: int
    source_line: str = ""
    width: int = 1


class SourceError(SystecError):
    """A syntax or semantic error in ``.ein`` text, located by file:line:col."""

    def __init__(self, message: str, loc: Location, expected: str | None = None):
        self.message = message
        self.loc = loc
        self.expected = expected
        super().__init__(self.render())

    def render(self) -> str:
        loc = self.loc
        head = f"{loc.path}:{loc.line}:{loc.col}: error: {self.message}"
        if self.expected:
            head += f" (expected {self.expected})"
        if not loc.source_line:
            return head
        text = loc.source_line.rstrip("\n").expandtabs(1)
        caret = " " * (loc.col - 1) + "^" + "~" * max(0, loc.width - 1)
        return f"{head}\n    {text}\n    {caret}"


class InputError(SystecError):
    """An array handed to a kernel is wrong: shape, dtype, layout or symmetry."""


class ToolError(SystecError):
    """A system tool the project needs (a C compiler, Graphviz) is missing or failed."""


class InternalError(Exception):
    """The compiler produced or met something it must not have: a bug of systec_ref, never the user's."""


class UnknownNode(InternalError):
    """A visitor met a node type it does not handle."""

    def __init__(self, node_type: str, visitor: str):
        self.node_type, self.visitor = node_type, visitor
        super().__init__(f"{visitor}: unknown node type {node_type}")


class MiscompileError(InternalError):
    """A stage of the pipeline is not a valid program (the verifier's or the interpreter's finding)."""
