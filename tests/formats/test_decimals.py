"""Rows of six-decimal numbers written by numpy are the text Python's ``%.6f`` writes."""

from __future__ import annotations

import numpy as np

from workers.formats.decimals import format_rows


def _python_groups(first: np.ndarray, values: np.ndarray, ends: list[int]) -> list[str]:
    line = "%d" + " %.6f" * values.shape[1] + "\n"
    lines = [line % (int(f), *row) for f, row in zip(first, values.tolist(), strict=True)]
    starts = [0, *ends[:-1]]
    return ["".join(lines[start:end]) for start, end in zip(starts, ends, strict=True)]


def test_every_kind_of_value_is_written_as_python_writes_it() -> None:
    rng = np.random.default_rng(0)
    rows = 20_000
    values = rng.random((rows, 4)) * rng.choice([1, 10, 12, 1e-7, 1e7], (rows, 4))
    values[rng.random((rows, 4)) < 0.05] *= -1
    values[rng.random((rows, 4)) < 0.01] = -0.0
    ties = (rng.integers(0, 10**7, (rows, 4)) + 0.5) / 1e6  # near a rounding tie
    near = rng.random((rows, 4)) < 0.1
    values[near] = ties[near]
    dyadic = rng.integers(0, 2**20, rows) / 2**17  # exact ties (0.0078125 and such)
    values[:, 3] = np.where(rng.random(rows) < 0.3, dyadic, values[:, 3])
    values[rng.random((rows, 4)) < 0.001] = np.nan
    values[rng.random((rows, 4)) < 0.001] = np.inf
    values[0] = [9.9999995, 9.99999949, 0.0, 1.0]
    first = rng.integers(0, 14, rows)
    ends = sorted({*rng.integers(1, rows, 50).tolist(), rows})
    assert format_rows(first, values, ends) == _python_groups(first, values, ends)


def test_boxes_relative_to_a_frame_are_written_exactly() -> None:
    rng = np.random.default_rng(1)
    hundredths = rng.integers(0, 128_000, (5_000, 4)) / 100
    values = hundredths / np.array([1280.0, 720.0, 1280.0, 720.0])
    first = rng.integers(0, 3, 5_000)
    ends = list(range(50, 5_001, 50))
    assert format_rows(first, values, ends) == _python_groups(first, values, ends)
