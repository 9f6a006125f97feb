"""A project's dataset: its tasks as one frame sequence, and back.

Export merges the project's tasks into one `TaskDataset` (frames numbered on across tasks,
each frame keeping its task's subset), or one per subset for formats that lay subsets out
as separate files. Import reads the images of an archive grouped by subset (each subset
becomes a task, as in CVAT), reads the annotations once against all of those frames, and
splits them back by subset.
"""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

import msgspec

from core.annotations import LabeledData, Shape, Tag, Track
from core.labels import LabelSpec
from core.task_annotations import cut_track
from workers.formats.archives import check_members
from workers.formats.dataset import FormatError, FrameInfo, ImageSource, TaskDataset
from workers.formats.registry import find_importer
from workers.images import IMAGE_EXTENSIONS, probe_image

DEFAULT_SUBSET = "default"
IMAGES_FOLDER = "images"


@dataclass(frozen=True)
class TaskPart:
    """One task of the project: its dataset and where its frames start in the merged one."""

    task_id: int
    dataset: TaskDataset
    offset: int


def merge_tasks(
    name: str,
    labels: list[LabelSpec],
    datasets: Iterable[tuple[int, TaskDataset]],
    *,
    subset: str = "",
) -> tuple[TaskDataset, list[TaskPart]]:
    """One dataset of the tasks, frames numbered on. Without ``subset`` each frame carries
    its task's subset; with it the dataset is that one subset."""
    parts: list[TaskPart] = []
    frames: list[FrameInfo] = []
    merged = LabeledData(tags=[], shapes=[], tracks=[])
    offset = 0
    for task_id, dataset in datasets:
        task_subset = "" if subset else dataset.subset or DEFAULT_SUBSET
        ordered = sorted(dataset.frames, key=lambda f: f.index)
        first = ordered[0].index if ordered else 0
        shift = offset - first
        frames += [
            # numbered across the project's tasks, as CVAT numbers a project's frames
            replace(frame, index=frame.index + shift, number=None, subset=task_subset)
            for frame in ordered
        ]
        _extend(merged, shift_frames(dataset.annotations, shift))
        parts.append(TaskPart(task_id, dataset, offset))
        offset += len(ordered)
    return TaskDataset(
        name=name, labels=labels, frames=frames, annotations=merged, subset=subset
    ), parts


def merged_images(
    parts: list[TaskPart], image_of_task: Callable[[int], ImageSource]
) -> ImageSource:
    """The image source of a merged dataset: global frame number to its task's image."""
    sources = {part.task_id: image_of_task(part.task_id) for part in parts}

    def image(index: int) -> tuple[str, bytes]:
        part = next(p for p in reversed(parts) if p.offset <= index)
        first = min(frame.index for frame in part.dataset.frames)
        return sources[part.task_id](index - part.offset + first)

    return image


def by_subset(datasets: list[tuple[int, TaskDataset]]) -> dict[str, list[tuple[int, TaskDataset]]]:
    """The project's task datasets grouped by subset, in task order."""
    groups: dict[str, list[tuple[int, TaskDataset]]] = {}
    for task_id, dataset in datasets:
        groups.setdefault(dataset.subset or DEFAULT_SUBSET, []).append((task_id, dataset))
    return groups


def shift_frames(data: LabeledData, shift: int) -> LabeledData:
    """The same objects with every frame number moved by ``shift``."""
    if shift == 0:
        return data
    return LabeledData(
        tags=[_moved_tag(tag, shift) for tag in data.tags],
        shapes=[_moved_shape(shape, shift) for shape in data.shapes],
        tracks=[_moved_track(track, shift) for track in data.tracks],
    )


def _moved_tag(tag: Tag, shift: int) -> Tag:
    return msgspec.structs.replace(tag, frame=tag.frame + shift)


def _moved_shape(shape: Shape, shift: int) -> Shape:
    return msgspec.structs.replace(
        shape,
        frame=shape.frame + shift,
        elements=[_moved_shape(element, shift) for element in shape.elements],
    )


def _moved_track(track: Track, shift: int) -> Track:
    return msgspec.structs.replace(
        track,
        frame=track.frame + shift,
        shapes=[msgspec.structs.replace(s, frame=s.frame + shift) for s in track.shapes],
        elements=[_moved_track(element, shift) for element in track.elements],
    )


def _extend(target: LabeledData, part: LabeledData) -> None:
    target.tags.extend(part.tags)
    target.shapes.extend(part.shapes)
    target.tracks.extend(part.tracks)


# Import


@dataclass
class SubsetImages:
    """The images of one subset in an import archive: frame name -> archive member."""

    name: str
    members: dict[str, str]


def archive_subsets(path: Path) -> list[SubsetImages]:
    """The images an archive carries, by subset.

    ``images/<subset>/<name>`` is an image of that subset (CVAT's project layout),
    ``images/<name>`` and images anywhere else are of the default subset.
    """
    if not zipfile.is_zipfile(path):
        raise FormatError("a project dataset must be a ZIP archive")
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError) as error:
        raise FormatError(f"the archive cannot be read: {error}") from error
    check_members(members)
    subsets: dict[str, SubsetImages] = {}
    for member in members:
        if member.is_dir() or member.filename.startswith("__MACOSX/"):
            continue
        parts = PurePosixPath(member.filename.replace("\\", "/")).parts
        if PurePosixPath(parts[-1]).suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        if parts[0] == IMAGES_FOLDER and len(parts) > 2:
            subset, name = parts[1], "/".join(parts[2:])
        elif parts[0] == IMAGES_FOLDER:
            subset, name = DEFAULT_SUBSET, parts[1]
        else:
            subset, name = DEFAULT_SUBSET, "/".join(parts)
        group = subsets.setdefault(subset, SubsetImages(subset, {}))
        if name in group.members:
            raise FormatError(f"the image {name!r} appears twice in subset {subset!r}")
        group.members[name] = member.filename
    if not subsets:
        raise FormatError("the archive carries no images; a project import makes tasks of them")
    # In the order the archive holds them: that is the order of the frame numbers an
    # export wrote, which tell apart images of the same name in different subsets.
    return list(subsets.values())


def extract_subset(path: Path, subset: SubsetImages, target: Path) -> list[str]:
    """Writes the subset's images (flat, by base name) into ``target``; returns the file
    names in frame order (sorted, as a task's lexicographical sorting orders them)."""
    target.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    seen: set[str] = set()
    with zipfile.ZipFile(path) as archive:
        for name in sorted(subset.members):
            flat = PurePosixPath(name).name
            if flat in seen or flat.startswith("."):
                raise FormatError(f"the image name {flat!r} is used twice in {subset.name!r}")
            seen.add(flat)
            with archive.open(subset.members[name]) as source, (target / flat).open("wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
            written.append(flat)
    return sorted(written)


def split_by_spans(data: LabeledData, spans: list[tuple[int, int]]) -> list[LabeledData]:
    """Annotations on merged frames, cut into one part per [start, stop] span and moved so
    that each part's frames count from 0."""
    parts = []
    for start, stop in spans:
        part = LabeledData(
            tags=[t for t in data.tags if start <= t.frame <= stop],
            shapes=[s for s in data.shapes if start <= s.frame <= stop],
            tracks=[
                piece
                for track in data.tracks
                if (piece := cut_track(track, start, stop)) is not None
            ],
        )
        parts.append(shift_frames(part, -start))
    return parts


@dataclass
class SubsetImport:
    """One subset of an import, ready to become a task: its images extracted to ``folder``
    (in frame order) and its annotations with frames counted from 0."""

    name: str
    folder: Path
    names: list[str]
    annotations: LabeledData


def prepare_import(
    source: Path, format_name: str, labels: list[LabelSpec], staging: Path
) -> list[SubsetImport]:
    """Reads a project dataset archive completely (images and annotations) before anything
    is written, so that a bad archive changes nothing."""
    importer = find_importer(format_name).importer
    assert importer is not None
    frames: list[FrameInfo] = []
    subsets: list[tuple[SubsetImages, Path, list[str]]] = []
    spans: list[tuple[int, int]] = []
    found = archive_subsets(source)
    shared = _names_in_several(found)
    for number, subset in enumerate(found):
        folder = staging / str(number)
        names = extract_subset(source, subset, folder)
        start = len(frames)
        for name in names:
            info = probe_image(folder / name)
            # An image name several subsets use is told apart by its subset (or its number).
            known_as = f"{subset.name}/{name}" if name in shared else name
            frames.append(
                FrameInfo(len(frames), known_as, info.width, info.height, subset=subset.name)
            )
        subsets.append((subset, folder, names))
        spans.append((start, len(frames) - 1))
    annotations = split_by_spans(importer(source, labels, frames), spans)
    return [
        SubsetImport(subset.name, folder, names, part)
        for (subset, folder, names), part in zip(subsets, annotations, strict=True)
    ]


def _names_in_several(subsets: list[SubsetImages]) -> set[str]:
    seen: dict[str, int] = {}
    for subset in subsets:
        for name in {PurePosixPath(member).name for member in subset.members}:
            seen[name] = seen.get(name, 0) + 1
    return {name for name, count in seen.items() if count > 1}
