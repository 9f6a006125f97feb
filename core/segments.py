"""Pure task-layout arithmetic, CVAT-compatible; no I/O happens here.

What this module holds:

- ``segment_params`` / ``segment_ranges``: how a task's frames are split into annotation jobs
  (CVAT ``_generate_segment_params``), i.e. the effective ``segment_size``/``overlap`` stored
  on the task and the inclusive ``(start, stop)`` task-relative frame range of every job.
- ``order_files``: the DataRequest ``sorting_method`` applied to uploaded file names.
- ``default_chunk_size``: the chunk size CVAT picks for an image set when none is given.
- ``frame_range``: which media frames a task keeps, given ``start_frame``/``stop_frame``/step.
- ``parse_frame_filter``: the step encoded in a DataRequest ``frame_filter`` string.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from typing import Literal

from natsort import os_sorted

SortingMethod = Literal["lexicographical", "natural", "predefined", "random"]
SORTING_METHODS: frozenset[str] = frozenset({"lexicographical", "natural", "predefined", "random"})

DEFAULT_VIDEO_OVERLAP = 5
DEFAULT_VIDEO_CHUNK_SIZE = 36

_FRAME_FILTER_RE = re.compile(r"^\s*step\s*=\s*([1-9]\d*)\s*$")


# --- segments -------------------------------------------------------------------------------


def segment_params(
    size: int, segment_size: int | None, overlap: int | None, *, is_video: bool = False
) -> tuple[int, int]:
    """Return the effective ``(segment_size, overlap)`` CVAT stores on the task.

    ``segment_size`` 0/None or larger than ``size`` means one job for everything. A missing
    ``overlap`` defaults to 5 for video (interpolation mode) and 0 otherwise; either way it is
    capped at ``segment_size // 2``.
    """
    _require_non_negative(size=size, segment_size=segment_size or 0, overlap=overlap or 0)
    if not segment_size or segment_size > size:
        segment_size = size
    if overlap is None:
        overlap = DEFAULT_VIDEO_OVERLAP if is_video else 0
    return segment_size, min(overlap, segment_size // 2)


def segment_ranges(
    size: int, segment_size: int | None, overlap: int | None, *, is_video: bool = False
) -> list[tuple[int, int]]:
    """Inclusive ``(start, stop)`` task-relative frame ranges, one per annotation job.

    Mirrors CVAT: starts are ``range(0, size - overlap, segment_size - overlap)`` and
    ``stop = min(start + segment_size - 1, size - 1)``. An empty task has no segments.
    """
    segment_size, overlap = segment_params(size, segment_size, overlap, is_video=is_video)
    if size == 0:
        return []
    step = segment_size - overlap
    return [
        (start, min(start + segment_size - 1, size - 1)) for start in range(0, size - overlap, step)
    ]


def _require_non_negative(**values: int) -> None:
    for name, value in values.items():
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")


# --- file ordering --------------------------------------------------------------------------


def order_files(
    names: Sequence[str],
    method: SortingMethod,
    *,
    upload_order: Sequence[str] | None = None,
    seed: int | None = None,
) -> list[str]:
    """Order uploaded file names by a DataRequest ``sorting_method``.

    - ``lexicographical``: ``sorted()``;
    - ``natural``: ``natsort.os_sorted`` (``img2`` before ``img10``);
    - ``predefined``: ``upload_order`` when given (it must name exactly the same files, as
      CVAT's ``upload_file_order`` check demands), else ``names`` unchanged;
    - ``random``: shuffled with ``random.Random(seed)``; the caller picks and stores the seed
      so the order can be reproduced.
    """
    if method == "lexicographical":
        return sorted(names)
    if method == "natural":
        return list(os_sorted(names))
    if method == "predefined":
        return _predefined_order(names, upload_order)
    if method == "random":
        shuffled = list(names)
        random.Random(seed).shuffle(shuffled)
        return shuffled
    raise ValueError(
        f"Unknown sorting method {method!r}; expected one of {', '.join(sorted(SORTING_METHODS))}"
    )


def _predefined_order(names: Sequence[str], upload_order: Sequence[str] | None) -> list[str]:
    if upload_order is None:
        return list(names)
    expected, given = Counter(names), Counter(upload_order)
    if expected != given:
        mismatching = sorted(((expected - given) + (given - expected)).keys())
        shown = ", ".join(mismatching[:5]) + (" ..." if len(mismatching) > 5 else "")
        raise ValueError(
            "Uploaded files do not match the 'upload_file_order' field contents. "
            f"Mismatching files: {shown}"
        )
    return list(upload_order)


# --- chunks and frame selection -------------------------------------------------------------


def default_chunk_size(width: int, height: int) -> int:
    """CVAT's default image-set chunk size for frames of ``width`` x ``height`` pixels."""
    if width <= 0 or height <= 0:
        raise ValueError(f"frame size must be positive, got {width}x{height}")
    return max(2, min(72, 36 * 1920 * 1080 // (width * height)))


def frame_range(count: int, start_frame: int, stop_frame: int | None, step: int) -> list[int]:
    """Absolute media frame numbers a task keeps out of ``count`` media frames.

    Like CVAT's media readers: ``stop_frame`` is inclusive and clamped to ``count - 1``;
    ``None`` *and 0* both mean "up to the last frame" (CVAT tests ``if not stop``).
    Raises ValueError when the selection is empty or the arguments are out of range.
    """
    if count <= 0:
        raise ValueError("No media frames found")
    if step < 1:
        raise ValueError(f"Frame step must be >= 1, got {step}")
    if start_frame < 0 or (stop_frame is not None and stop_frame < 0):
        raise ValueError("start_frame and stop_frame must be >= 0")
    stop = count - 1 if not stop_frame else min(stop_frame, count - 1)
    if start_frame > stop:
        raise ValueError(
            f"start_frame {start_frame} is past the last selected frame {stop} "
            f"(the media has {count} frames)"
        )
    return list(range(start_frame, stop + 1, step))


def parse_frame_filter(text: str) -> int:
    """Return the step N of a ``frame_filter`` like ``"step=N"``; ``""`` means 1."""
    if not text or not text.strip():
        return 1
    match = _FRAME_FILTER_RE.match(text)
    if match is None:
        raise ValueError(
            f"Invalid frame_filter {text!r}: expected 'step=N' with N a positive integer"
        )
    return int(match.group(1))
