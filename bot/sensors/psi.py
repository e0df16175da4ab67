"""Population Stability Index: how far a recent distribution moved from a baseline one.

Bins are the baseline's quantiles (``bins`` of equal baseline share, fewer when values repeat);
with ``p_i`` the baseline's share and ``q_i`` the recent window's share of bin ``i``,

    PSI = sum_i (q_i - p_i) * ln(q_i / p_i)

Empty bins would make the logarithm infinite, so every share is floored at ``EPSILON``. Usual
reading: below 0.1 no real change, 0.1-0.25 a moderate shift worth a look, above 0.25 a shift.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

EPSILON = 1e-4


def quantile_edges(baseline: Sequence[float], bins: int) -> list[float]:
    """Inner bin edges: the baseline's ``k/bins`` quantiles, duplicates removed (a bin holds
    values up to and including its upper edge)."""
    ordered = sorted(baseline)
    if not ordered:
        return []
    edges: list[float] = []
    for k in range(1, bins):
        value = ordered[min(len(ordered) - 1, math.ceil(k * len(ordered) / bins) - 1)]
        if not edges or value > edges[-1]:
            edges.append(value)
    if edges and edges[-1] >= ordered[-1]:
        edges.pop()  # a last edge at the maximum would leave the top bin empty by construction
    return edges


def shares(values: Sequence[float], edges: Sequence[float]) -> list[float]:
    counts = [0] * (len(edges) + 1)
    for value in values:
        counts[bisect.bisect_left(edges, value)] += 1
    total = len(values) or 1
    return [c / total for c in counts]


def psi(baseline: Sequence[float], current: Sequence[float], bins: int = 10) -> float:
    """PSI of ``current`` against ``baseline`` (0 when either is empty: no evidence of a shift)."""
    if not baseline or not current:
        return 0.0
    edges = quantile_edges(baseline, bins)
    expected, actual = shares(baseline, edges), shares(current, edges)
    total = 0.0
    for p, q in zip(expected, actual, strict=True):
        p, q = max(p, EPSILON), max(q, EPSILON)
        total += (q - p) * math.log(q / p)
    return total
