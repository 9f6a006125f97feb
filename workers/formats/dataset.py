"""The neutral in-memory form of a task's annotations that every format reads and writes.

An exporter receives a `TaskDataset` (labels, frames, task-level annotations) and writes a
format; an importer reads a format and returns `LabeledData` for the labels and frames it was
given. `FormatError` is the one user-facing refusal an importer raises, for hostile and for
malformed input alike.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass

from core.annotations import LabeledData
from core.labels import LabelSpec

ImageSource = Callable[[int], tuple[str, bytes]]
"""Gives a frame's file name and bytes by frame number, for exports with images."""


class FormatError(ValueError):
    """A user-facing reason why an uploaded annotation file was refused."""


@dataclass(frozen=True)
class FrameInfo:
    """One frame of the task: its task-relative number, file name and stored size, the
    number CVAT's files give it (``start_frame + index * step``) when that differs, and in a
    project's merged dataset its task's subset."""

    index: int
    name: str
    width: int
    height: int
    number: int | None = None
    subset: str = ""

    @property
    def cvat_number(self) -> int:
        return self.index if self.number is None else self.number

    @property
    def item_id(self) -> str:
        """The frame's Datumaro item id: its file name without extension, relative, with
        forward slashes and no ``.``/``..`` parts (it names files in exports)."""
        stem = posixpath.splitext(self.name.replace("\\", "/"))[0]
        return "/".join(p for p in stem.split("/") if p not in ("", ".", "..")) or str(self.index)


@dataclass
class TaskDataset:
    """A task's annotations with what a format needs around them.

    ``labels`` are the top-level labels (skeleton nodes as their sublabels) with the ids the
    annotations use; ``annotations`` are task-level (all jobs merged). The optional task
    details only decorate the CVAT XML ``<meta>`` block.
    """

    name: str
    labels: list[LabelSpec]
    frames: list[FrameInfo]
    annotations: LabeledData
    subset: str = ""
    task_id: int | None = None
    mode: str = "annotation"
    created: str = ""
    updated: str = ""
    dumped: str = ""

    @property
    def stop_frame(self) -> int:
        """The last frame number of the task (-1 without frames)."""
        return max((frame.index for frame in self.frames), default=-1)

    def frame_numbers(self) -> dict[int, int]:
        """CVAT's frame number of each task-relative frame index."""
        return {frame.index: frame.cvat_number for frame in self.frames}
