"""Editing programs: replacing a body, splicing blocks without a comment."""

from __future__ import annotations

import dataclasses

from ..term import postwalk
from .nodes import Block, Program


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


def replace_body(p: Program, body: Block) -> Program:
    return dataclasses.replace(p, body=flatten_blocks(body))
