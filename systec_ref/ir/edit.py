"""Editing programs: replacing a body, splicing blocks without a comment, seeing through blocks of one
statement."""

from __future__ import annotations

import dataclasses

from ..term import postwalk
from .nodes import Block, Program, Stmt


def flatten_blocks(node: object) -> object:
    """Splice blocks without a comment into the block that holds them."""
    def f(n):
        if isinstance(n, Block) and any(isinstance(s, Block) and not s.comment for s in n.body):
            out: list = []
            for s in n.body:
                out += s.body if isinstance(s, Block) and not s.comment else [s]
            return Block(tuple(out), n.comment)
        return None
    return postwalk(f)(node)


def unwrap(s: Stmt) -> tuple[Stmt, tuple[str, ...]]:
    """``s`` seen through blocks of one statement (a face's nest comes in a block that names the face),
    with those blocks' comments, outermost first."""
    comments: list[str] = []
    while isinstance(s, Block) and len(s.body) == 1:
        if s.comment:
            comments.append(s.comment)
        s = s.body[0]
    return s, tuple(comments)


def replace_body(p: Program, body: Block) -> Program:
    return dataclasses.replace(p, body=flatten_blocks(body))
