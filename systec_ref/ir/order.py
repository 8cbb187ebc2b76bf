"""What the loops around a point of a program say about the order of their variables.

Every enclosing ``for v in lo..hi`` gives ``v >= lo`` and ``v < hi``; a bound that is a loop variable
plus a constant (``i + 1``) or a constant gives a difference constraint ``x - y >= c``.  Subscripts
``u + a`` and ``w + b`` are in order (``u + a <= w + b``) when the constraints imply ``w - u >= a - b``:
the longest path from ``u`` to ``w`` in the graph of constraints (Bellman-Ford over the few variables
in scope; every path is a sum of true inequalities, so whatever it finds is sound, and a loop whose
bounds contradict each other never runs its body).  Used where a read of a packed input must be
proved canonical: the C emitter (``emit/packed.py``) and ``blas-calls`` (splitting a slab copy so that
every piece reads sorted subscripts).

Example: inside ``for i in 0..n: for j in i+1..n: for l in j+4..n`` the constraints are ``j - i >= 1``
and ``l - j >= 4``, so ``i + 4 <= l`` holds and ``j + 5 <= l`` does not follow.
"""

from __future__ import annotations

from .nodes import And, Cmp, IConst, Idx, IMin, IPlus, Loop, Or

#: the variable standing for the constant 0 in the constraints
_ZERO = ""


def _linear(e) -> tuple[str, int] | None:
    """``e`` as (variable, constant): ``i + 3`` is ("i", 3), ``5`` is ("", 5); None for anything else."""
    match e:
        case Idx(name):
            return name, 0
        case IConst(value):
            return _ZERO, value
        case IPlus(base, offset):
            inner = _linear(base)
            return None if inner is None else (inner[0], inner[1] + offset)
        case _:
            return None


class Order:
    """What the enclosing loops say about the order of their variables: constraints ``x - y >= c``."""

    def __init__(self) -> None:
        self.facts: list[tuple[str, str, int]] = []

    def save(self) -> list[tuple[str, str, int]]:
        return list(self.facts)

    def restore(self, saved: list[tuple[str, str, int]]) -> None:
        self.facts = saved

    def forget(self, names: set[str]) -> None:
        """``names`` are bound anew (or rearranged): nothing known of them holds any longer."""
        self.facts = [f for f in self.facts if f[0] not in names and f[1] not in names]

    def enter(self, loop: Loop) -> None:
        """Inside ``loop``: its variable is ``>= lo`` and ``< hi``."""
        v = loop.var
        self.forget({v})
        lo = _linear(loop.lo)
        if lo is not None:
            self.facts.append((v, lo[0], lo[1]))
        for hi in loop.hi.args if isinstance(loop.hi, IMin) else (loop.hi,):
            b = _linear(hi)
            if b is not None:  # v < w + c, i.e. w - v >= 1 - c
                self.facts.append((b[0], v, 1 - b[1]))

    def assume(self, cond) -> None:
        """Inside the branch ``if cond`` takes: what ``cond`` says of the order of its subscripts (a
        comparison of two of the linear forms, every term of an ``And``, the one term of an ``Or`` of one;
        an ``Or`` of several holds by one term or another, so it says nothing the branch can rely on)."""
        match cond:
            case Cmp(op, a, b):
                la, lb = _linear(a), _linear(b)
                if la is None or lb is None:
                    return
                (x, cx), (y, cy) = la, lb  # a = x + cx, b = y + cy
                if op in ("<", "<=", "=="):  # y - x >= cx - cy (+1 when strict)
                    self.facts.append((y, x, cx - cy + (op == "<")))
                if op in (">", ">=", "=="):  # x - y >= cy - cx (+1 when strict)
                    self.facts.append((x, y, cy - cx + (op == ">")))
            case And(terms):
                for t in terms:
                    self.assume(t)
            case Or((only,)):
                self.assume(only)
            case _:
                pass

    def _longest(self, src: str) -> dict[str, int]:
        """The largest ``c`` with ``x - src >= c`` implied, for each reachable ``x``."""
        best = {src: 0}
        for _ in range(len(self.facts) + 1):
            changed = False
            for x, y, c in self.facts:
                if y in best and best[y] + c > best.get(x, -(1 << 62)):
                    best[x] = best[y] + c
                    changed = True
            if not changed:
                break
        return best

    def in_order(self, a, b) -> bool:
        """Is subscript ``a <= b`` wherever this point of the program runs?"""
        la, lb = _linear(a), _linear(b)
        if la is None or lb is None:
            return False
        if la[0] == lb[0]:
            return la[1] <= lb[1]
        return self._longest(la[0]).get(lb[0], -(1 << 62)) >= la[1] - lb[1]

    def chain(self, exprs: list) -> list[int] | None:
        """An order of ``exprs`` (their positions) in which each is provably ``<=`` the next, or None.  Built
        smallest first: at each step an expression provably ``<=`` every one left (the given order first)."""
        left, out = list(range(len(exprs))), []
        while left:
            first = next((a for a in left if all(self.in_order(exprs[a], exprs[b]) for b in left if b != a)), None)
            if first is None:
                return None
            out.append(first)
            left.remove(first)
        return out
