"""CVAT's `match_segments`: a Hungarian assignment on 1 - similarity, with a threshold."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment


@dataclass
class Matching:
    """Indices into the two lists: pairs with the same label, pairs without, the rest."""

    matches: list[tuple[int, int]] = field(default_factory=list)
    mismatches: list[tuple[int, int]] = field(default_factory=list)
    a_unmatched: list[int] = field(default_factory=list)
    b_unmatched: list[int] = field(default_factory=list)


def match_segments(
    similarity: np.ndarray,
    threshold: float,
    same_label: Callable[[int, int], bool],
) -> Matching:
    """`similarity[i, j]` of a[i] and b[j]; a pair is kept when 1 - sim <= 1 - threshold."""
    count_a, count_b = similarity.shape
    if not count_a or not count_b:
        return Matching(a_unmatched=list(range(count_a)), b_unmatched=list(range(count_b)))
    size = max(count_a, count_b)
    cost = np.ones((size, size))
    cost[:count_a, :count_b] = 1 - similarity
    cost[~np.isfinite(cost)] = 1
    cost[cost > 1 - threshold] = 1
    rows, cols = linear_sum_assignment(cost)
    result = Matching()
    for i, j, dist in zip(rows.tolist(), cols.tolist(), cost[rows, cols].tolist(), strict=True):
        if dist > 1 - threshold or dist == 1:
            if i < count_a:
                result.a_unmatched.append(i)
            if j < count_b:
                result.b_unmatched.append(j)
        elif same_label(i, j):
            result.matches.append((i, j))
        else:
            result.mismatches.append((i, j))
    return result
