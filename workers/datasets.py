"""Dataset export and import jobs: a task's (or job's) annotations to a format's files and back.

The caller gathers what the read side knows (labels, frames, annotations) into a
`TaskDataset`; these functions only write or read files.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

from core.annotations import LabeledData
from core.segments import parse_frame_filter
from workers.formats.dataset import FrameInfo, TaskDataset
from workers.formats.registry import find_exporter, find_importer

ImageSource = Callable[[int], tuple[str, bytes]]


def export_dataset(
    dataset: TaskDataset, format_name: str, target: Path, images: ImageSource | None
) -> list[str]:
    """Writes the export zip to `target` (atomically); returns what the format dropped."""
    exporter = find_exporter(format_name).exporter
    assert exporter is not None
    partial = target.with_suffix(".partial")
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        warnings = exporter(dataset, archive, images=images)
    partial.replace(target)
    return warnings


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
    return [
        FrameInfo(index, frames[index]["name"], frames[index]["width"], frames[index]["height"])
        for index in range(first, stop + 1)
    ]
