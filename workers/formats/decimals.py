"""Many ``"%d %.6f %.6f ...\\n"`` lines at once, as text: numpy writes the digits of rows
whose fields it can write exactly, Python's formatting the others.

Formatting floats one by one is most of a YOLO export. A row is written by numpy when its
first field is one digit and its values are in [0, 10) and not within a millionth of a
rounding tie, so that rounding ``value * 1e6`` to an integer gives the digits ``%.6f``
(correctly rounded) gives; any other row is formatted by Python.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_SCALE = 10**6
_POWERS = 10 ** np.arange(5, -1, -1, dtype=np.int64)  # the six decimals, first to last
_TIE_MARGIN = 1e-6  # far above float64's error on value * 1e6 for values below 10


def _row_format(count: int) -> str:
    return "%d" + " %.6f" * count + "\n"


def format_rows(first: np.ndarray, values: np.ndarray, ends: Sequence[int]) -> list[str]:
    """The text of each group of rows (``ends``: where each group ends, ascending, the last
    the row count); row i is ``"%d %.6f %.6f ...\n" % (first[i], *values[i])``."""
    rows, count = values.shape
    text, exact = _numpy_rows(first, values)
    line_format = _row_format(count)
    groups = []
    start = 0
    for end in ends:
        if exact[start:end].all():
            groups.append(text[start:end].tobytes().decode("ascii"))
        else:
            lines = [
                text[row].tobytes().decode("ascii")
                if exact[row]
                else line_format % (int(first[row]), *values[row].tolist())
                for row in range(start, end)
            ]
            groups.append("".join(lines))
        start = end
    return groups


def _numpy_rows(first: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the rows as a matrix of ASCII codes, which rows of it are exact)."""
    rows, count = values.shape
    width = 2 + 9 * count
    with np.errstate(invalid="ignore"):
        scaled = values * _SCALE
        rounded = np.rint(scaled)
        near_tie = np.abs(scaled - np.floor(scaled) - 0.5) <= _TIE_MARGIN
        writable = (
            np.isfinite(scaled) & (values >= 0) & ~np.signbit(values) & (rounded < 10 * _SCALE)
        )
    exact = writable.all(axis=1) & (first >= 0) & (first <= 9)
    numbers = np.where(exact[:, None], rounded, 0).astype(np.int64)
    text = np.full((rows, width), ord(" "), dtype=np.uint8)
    text[:, 0] = np.where(exact, first, 0) + ord("0")
    text[:, -1] = ord("\n")
    for column in range(count):
        start = 2 + 9 * column
        whole, decimals = np.divmod(numbers[:, column], _SCALE)
        text[:, start] = whole + ord("0")
        text[:, start + 1] = ord(".")
        digits = (decimals[:, None] // _POWERS) % 10
        text[:, start + 2 : start + 8] = digits + ord("0")
    _write_near_ties(text, values, near_tie & exact[:, None], exact)
    return text, exact


def _write_near_ties(
    text: np.ndarray, values: np.ndarray, near_tie: np.ndarray, exact: np.ndarray
) -> None:
    """Python's digits for the values close to a rounding tie (value * 1e6 has lost which
    side of it the value is); a row where such a value reaches 10 becomes not exact."""
    rows, columns = np.nonzero(near_tie)
    if rows.size == 0:
        return
    written = [f"{value:.6f}" for value in values[rows, columns].tolist()]
    fits = np.array([len(digits) == 8 for digits in written])
    exact[rows[~fits]] = False
    if fits.any():
        chosen = "".join(digits for digits, ok in zip(written, fits.tolist(), strict=True) if ok)
        codes = np.frombuffer(chosen.encode("ascii"), dtype=np.uint8).reshape(-1, 8)
        starts = 2 + 9 * columns[fits]
        text[rows[fits, None], starts[:, None] + np.arange(8)] = codes
