"""Tokens of the ``.ein`` language.

Newlines end statements, except inside brackets or parentheses, so a long
right-hand side may be wrapped.  ``#`` starts a comment that runs to the end
of the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import Location, SourceError
from .ast import Pos

KEYWORDS = frozenset(
    "kernel in out symmetric dense sparse fill float64 float32 int64 order inf min max".split()
)

_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r]+)
  | (?P<comment>\#[^\n]*)
  | (?P<newline>\n)
  | (?P<number>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\+=|[\[\](),+\-*=])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str  # 'name', 'int', 'float', 'op', 'newline', 'eof'
    text: str
    pos: Pos


class Source:
    """The text of one ``.ein`` file and how to point into it."""

    def __init__(self, text: str, path: str = "<string>"):
        self.text = text
        self.path = path
        self.lines = text.split("\n")

    def loc(self, pos: Pos) -> Location:
        line = self.lines[pos.line - 1] if 0 < pos.line <= len(self.lines) else ""
        return Location(self.path, max(pos.line, 1), max(pos.col, 1), line, pos.width)

    def error(self, message: str, pos: Pos, expected: str | None = None) -> SourceError:
        return SourceError(message, self.loc(pos), expected)


def tokenize(src: Source) -> list[Token]:
    toks: list[Token] = []
    line, line_start, depth = 1, 0, 0
    opened: list[Token] = []  # brackets not yet closed, to report one that never is
    text, i = src.text, 0
    while i < len(text):
        m = _TOKEN.match(text, i)
        col = i - line_start + 1
        if not m:
            ch = text[i]
            shown = repr(ch) if ch.isprintable() else f"U+{ord(ch):04X}"
            raise src.error(f"unexpected character {shown}", Pos(line, col, 1),
                            "a name, a number, or one of [ ] ( ) , + - * = += min= max=")
        kind, tok = m.lastgroup, m.group()
        pos = Pos(line, col, len(tok))
        i = m.end()
        if kind == "newline":
            if depth == 0:
                toks.append(Token("newline", "\n", pos))
            line, line_start = line + 1, i
        elif kind == "number":
            # a number glued to letters ('2x') is a typo, not two tokens
            if i < len(text) and (text[i].isalpha() or text[i] == "_"):
                j = i
                while j < len(text) and (text[j].isalnum() or text[j] == "_"):
                    j += 1
                raise src.error(f"malformed number {text[m.start():j]!r}",
                                Pos(line, col, j - m.start()), "a number or a name")
            is_float = any(c in tok for c in ".eE")
            toks.append(Token("float" if is_float else "int", tok, pos))
        elif kind == "name":
            if tok in ("min", "max") and text.startswith("=", i):
                toks.append(Token("op", tok + "=", Pos(line, col, 4)))
                i += 1
            else:
                toks.append(Token("name", tok, pos))
        elif kind == "op":
            if tok in "[(":
                depth += 1
                opened.append(Token("op", tok, pos))
            elif tok in "])":
                depth = max(0, depth - 1)
                if opened:
                    opened.pop()
            toks.append(Token("op", tok, pos))
    if opened:
        # newlines inside brackets are swallowed, so the parser would only see the
        # damage at the end of the file; point at the bracket itself instead
        t = opened[0]
        raise src.error(f"'{t.text}' is never closed", t.pos, f"a matching '{']' if t.text == '[' else ')'}'")
    col = i - line_start + 1
    toks.append(Token("newline", "\n", Pos(line, col, 1)))
    toks.append(Token("eof", "", Pos(line, col, 1)))
    return toks
