"""What an update adds where a sparse tensor holds its fill: the arithmetic both the
language's admission check and the ``sparse-iterate`` pass rely on.

Skipping an unstored entry is exact only if the update it would have made changes
nothing: ``+=`` of 0, ``min=`` of +inf or NaN, ``max=`` of -inf or NaN (a NaN never
replaces the current min/max).  The right-hand side is evaluated over a small domain:

* a number: known exactly (the fill, a literal, or what they fold to);
* :data:`FINITE`: unknown but finite (a read of anything else);
* ``None``: nothing known (``inf * x``: its sign depends on x).

Treating other reads as finite is what the documentation promises under ``+=`` (an
unstored entry times an infinite factor is NaN by the definition, and skipped in
practice).  Under ``min=``/``max=`` it is exact whatever they hold: an update this
domain proves to be ±inf has an infinite addend, and an infinite or NaN unknown can
only turn it into NaN, which changes nothing either.
"""

from __future__ import annotations

import math

from ..dtypes import identity

#: an unknown but finite value
FINITE = "finite"

Abstract = float | int | str | None



def _float(v: int | float) -> float:
    """``v`` as a float; an integer beyond the float range is ±inf, as the literal would be."""
    try:
        return float(v)
    except OverflowError:
        return math.inf if v > 0 else -math.inf


def _exact(a, b, op) -> int | float:
    """``a op b`` exactly for two integers, in floats (IEEE) as soon as one is a float."""
    if isinstance(a, int) and isinstance(b, int):
        return op(a, b)
    return op(_float(a), _float(b))


def neg(a: Abstract) -> Abstract:
    return a if a is None or a == FINITE else -a


def mul(a: Abstract, b: Abstract) -> Abstract:
    if a is None or b is None:
        return None
    if a == FINITE or b == FINITE:
        other = b if a == FINITE else a
        if other == FINITE:
            return FINITE
        if isinstance(other, float) and math.isnan(other):
            return other
        if isinstance(other, float) and math.isinf(other):
            return None  # inf * unknown: unknown sign
        return 0 if other == 0 else FINITE
    return _exact(a, b, lambda x, y: x * y)


def add(a: Abstract, b: Abstract) -> Abstract:
    if a is None or b is None:
        return None
    if a == FINITE or b == FINITE:
        other = b if a == FINITE else a
        return other if isinstance(other, float) and not math.isfinite(other) else FINITE
    return _exact(a, b, lambda x, y: x + y)  # inf + -inf is NaN


def no_change(v: Abstract, reduction: str) -> bool:
    """Whether an update of ``v`` under ``reduction`` (``+``, ``min``, ``max``) changes nothing."""
    if v is None or v == FINITE:
        return False
    if reduction in ("min", "max") and isinstance(v, float) and math.isnan(v):
        return True
    return v == identity(reduction, "float64")  # the float identity: a fill of inf is +inf
