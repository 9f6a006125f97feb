"""Dataset export and import jobs: a task's (or job's, or project's) annotations to a
format's files and back.

The caller gathers what the read side knows (labels, frames, annotations) into a
`TaskDataset`; these functions only write or read files.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from core.annotations import LabeledData
from core.labels import LabelSpec
from core.segments import parse_frame_filter
from workers.formats.dataset import FrameInfo, ImageSource, TaskDataset
from workers.formats.registry import find_exporter, find_importer
from workers.project_datasets import by_subset, merge_tasks, merged_images


def export_dataset(
    dataset: TaskDataset, format_name: str, target: Path, images: ImageSource | None
) -> list[str]:
    """Writes the export zip to `target` (atomically); returns what the format dropped."""
    exporter = find_exporter(format_name).exporter
    assert exporter is not None
    with _atomic_zip(target) as archive:
        return exporter(dataset, archive, images=images)


def export_project(
    name: str,
    labels: list[LabelSpec],
    tasks: list[tuple[int, TaskDataset]],
    format_name: str,
    target: Path,
    images_of_task: Callable[[int], ImageSource] | None,
) -> list[str]:
    """Writes the export zip of a project's tasks, their subsets kept apart as the format
    lays them out; returns what the format dropped."""
    fmt = find_exporter(format_name)
    assert fmt.exporter is not None
    warnings: list[str] = []
    with _atomic_zip(target) as archive:
        if fmt.merges_subsets:
            groups = {"": tasks}
        else:
            groups = by_subset(tasks) or {"": []}
        for subset, group in groups.items():
            dataset, parts = merge_tasks(name, labels, group, subset=subset)
            images = merged_images(parts, images_of_task) if images_of_task else None
            warnings += fmt.exporter(dataset, archive, images=images)
    return warnings


@contextmanager
def _atomic_zip(target: Path) -> Iterator[zipfile.ZipFile]:
    partial = target.with_suffix(".partial")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Level 1: a third of the default level's time, files a fifth larger.
    with _FirstCopyWins(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        yield archive
    partial.replace(target)


class _FirstCopyWins(zipfile.ZipFile):
    """A ZIP keeping the first copy of a member written twice: the files every subset's
    export writes alike (a label list, say) are written once."""

    def open(self, name: Any, mode: str = "r", *args: Any, **kwargs: Any) -> IO[bytes]:
        member = name.filename if isinstance(name, zipfile.ZipInfo) else name
        if mode == "w" and member in self.NameToInfo:
            return io.BytesIO()
        return super().open(name, mode, *args, **kwargs)  # type: ignore[arg-type]


def import_annotations(source: Path, format_name: str, dataset: TaskDataset) -> LabeledData:
    importer = find_importer(format_name).importer
    assert importer is not None
    return importer(source, dataset.labels, dataset.frames)


def frames_of(data: dict, first: int = 0, last: int | None = None) -> list[FrameInfo]:
    """FrameInfo for task frames first..last from a task's data document (a video's frames
    are named by their frame number in the video, as CVAT names them)."""
    frames = data["frames"]
    if data.get("video") is not None:
        video = frames[0]
        stop = data["size"] - 1 if last is None else last
        step = parse_frame_filter(data["frame_filter"])
        return [
            FrameInfo(
                index,
                f"frame_{data['start_frame'] + index * step:06d}",
                video["width"],
                video["height"],
            )
            for index in range(first, stop + 1)
        ]
    stop = len(frames) - 1 if last is None else last
    start, step = data.get("start_frame", 0), parse_frame_filter(data.get("frame_filter", ""))
    return [
        FrameInfo(
            index,
            frames[index]["name"],
            frames[index]["width"],
            frames[index]["height"],
            start + index * step,
        )
        for index in range(first, stop + 1)
    ]
