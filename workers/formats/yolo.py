"""The YOLO family (manual 2.28.10-2.28.12), laid out as CVAT's Datumaro-based exporters do.

"YOLO 1.1" (darknet): ``obj.names`` (one label a line), ``obj.data``,
``obj_<subset>_data/<frame>.txt`` for every frame (and the images beside them) and
``<subset>.txt`` listing ``data/obj_<subset>_data/<image>``. The "Ultralytics YOLO ..."
formats: ``data.yaml`` (``path``, ``<subset>: <subset>.txt``, ``names: {index: name}``,
``kpt_shape`` for Pose), ``labels/<subset>/<frame>.txt`` for each annotated frame,
``images/<subset>/<image>`` and ``<subset>.txt`` listing ``images/<subset>/<image>``.
A task without a subset exports as ``train``. Classes are the top-level labels in task
order (Pose: the skeleton labels). Coordinates are relative to the frame size, six decimals.

What each line carries:
- YOLO 1.1 and Detection: ``class cx cy w h`` of a rectangle (rotated ones are left out);
- Oriented Bounding Boxes: ``class x1 y1 .. x4 y4``, a rectangle's corners, rotated;
- Segmentation: ``class x1 y1 x2 y2 ..`` of a polygon; masks become their outer contours;
- Pose: ``class cx cy w h`` of the visible points, then ``x y v`` per skeleton point in the
  skeleton's order (v: 2 visible, 1 occluded, 0 outside), padded with ``0 0 0`` up to the
  largest skeleton;
- Classification: tags, as ``<subset>/<label>/<image>`` files and ``<subset>/labels.json``
  (``{frame name without extension: [label, ...]}``, CVAT's extension, read back first).
Tracks are written as their interpolated shapes on each visible frame; attributes, groups,
z order and everything of another kind are left out with a warning.

Reading them back: workers/formats/yolo_import.py.
"""

from __future__ import annotations

import math
import posixpath
import re
import zipfile
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import yaml

from core.annotations import Shape
from core.labels import LabelSpec
from workers.formats import masks
from workers.formats.archives import safe_archive_name
from workers.formats.dataset import FrameInfo, ImageSource, TaskDataset
from workers.formats.decimals import format_rows
from workers.formats.tracks import track_frames

DEFAULT_SUBSET = "train"
DARKNET_RESERVED = ("backup", "classes", "names")
POSE_VISIBLE, POSE_OCCLUDED, POSE_OUTSIDE = 2, 1, 0
MAX_CONFIG_BYTES = 1 << 20
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".jxr")

LineWriter = Callable[[Shape, FrameInfo, "_Classes"], str | None]
Lines = dict[int, list[str]]  # frame number -> lines of its label file
BatchWriter = Callable[[list[Shape], dict[int, FrameInfo], "_Classes", Counter[str]], Lines]


# --- export ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Classes:
    """Class numbers of the labels a format writes, and for Pose the point count."""

    labels: list[LabelSpec]
    index: dict[int, int]
    points: int = 0

    @classmethod
    def of(cls, labels: Sequence[LabelSpec], *, skeletons: bool = False) -> _Classes:
        chosen = [label for label in labels if label.sublabels or not skeletons]
        points = max((len(label.sublabels) for label in chosen), default=0)
        return cls(chosen, {label.id: i for i, label in enumerate(chosen)}, points)


@dataclass(frozen=True)
class Flavor:
    """One format of the family: what it carries and how it writes a line."""

    title: str
    kind: str  # box, oriented, polygon, pose: what one line of a label file holds
    carried: tuple[str, ...]
    write_lines: BatchWriter
    skeletons: bool = False


def _number(value: float) -> str:
    return f"{value:.6f}"


def _center_box(xs: Sequence[float], ys: Sequence[float], frame: FrameInfo) -> str:
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    w, h = frame.width, frame.height
    return (
        f"{_number((x0 + x1) / 2 / w)} {_number((y0 + y1) / 2 / h)} "
        f"{_number((x1 - x0) / w)} {_number((y1 - y0) / h)}"
    )


def _relative(points: Sequence[float], frame: FrameInfo) -> str:
    w, h = frame.width, frame.height
    return " ".join(_number(value / (w if i % 2 == 0 else h)) for i, value in enumerate(points))


def _box_lines(
    shapes: list[Shape], frames: dict[int, FrameInfo], classes: _Classes, skipped: Counter[str]
) -> Lines:
    """``class cx cy w h`` of each unrotated rectangle, computed for all at once and written
    as one text per frame."""
    upright = [shape for shape in shapes if shape.rotation % 360 <= 1e-5]
    if len(upright) < len(shapes):
        skipped["rotated rectangle shapes"] += len(shapes) - len(upright)
    lines: Lines = defaultdict(list)
    if not upright:
        return lines
    points = np.array([shape.points for shape in upright], dtype=np.float64)
    frame_numbers = np.fromiter((s.frame for s in upright), np.int64, len(upright))
    used, where = np.unique(frame_numbers, return_inverse=True)
    sizes = np.array([(frames[f].width, frames[f].height) for f in used.tolist()], np.float64)
    x0, x1 = points[:, 0::2].min(axis=1), points[:, 0::2].max(axis=1)
    y0, y1 = points[:, 1::2].min(axis=1), points[:, 1::2].max(axis=1)
    width, height = sizes[where, 0], sizes[where, 1]
    values = np.column_stack(
        [(x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width, (y1 - y0) / height]
    )
    numbers = np.fromiter((classes.index[s.label_id] for s in upright), np.int64, len(upright))
    order = np.argsort(where, kind="stable")
    ends = np.cumsum(np.bincount(where, minlength=len(used))).tolist()
    texts = format_rows(numbers[order], values[order], ends)
    for frame, text in zip(used.tolist(), texts, strict=True):
        lines[frame].append(text)
    return lines


def _one_by_one(write_line: LineWriter) -> BatchWriter:
    """A batch writer calling ``write_line`` for each shape (None: not written)."""

    def write_lines(
        shapes: list[Shape], frames: dict[int, FrameInfo], classes: _Classes, skipped: Counter[str]
    ) -> Lines:
        lines: Lines = defaultdict(list)
        for shape in shapes:
            line = write_line(shape, frames[shape.frame], classes)
            if line is None:
                skipped[_unwritten(shape)] += 1
            else:
                lines[shape.frame].append(line)
        return lines

    return write_lines


def rotated_corners(points: Sequence[float], rotation: float) -> list[float]:
    """The four corners of a CVAT rectangle turned ``rotation`` degrees about its center."""
    x0, y0, x1, y1 = points
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    angle = math.radians(rotation)
    cos, sin = math.cos(angle), math.sin(angle)
    corners = []
    for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1)):
        corners += [cx + cos * (x - cx) - sin * (y - cy), cy + sin * (x - cx) + cos * (y - cy)]
    return corners


def _oriented_line(shape: Shape, frame: FrameInfo, classes: _Classes) -> str | None:
    corners = rotated_corners(shape.points, shape.rotation)
    return f"{classes.index[shape.label_id]} {_relative(corners, frame)}\n"


def _polygon_line(shape: Shape, frame: FrameInfo, classes: _Classes) -> str | None:
    label = classes.index[shape.label_id]
    if shape.type == "polygon":
        return f"{label} {_relative(shape.points, frame)}\n"
    bitmap, left, top = masks.cvat_mask_bitmap(shape.points, frame.width * frame.height)
    lines = []
    for polygon in masks.bitmap_polygons(np.pad(bitmap, 1)):
        moved = [v + (left - 1 if i % 2 == 0 else top - 1) for i, v in enumerate(polygon)]
        lines.append(f"{label} {_relative(moved, frame)}\n")
    return "".join(lines) or None


def _pose_line(shape: Shape, frame: FrameInfo, classes: _Classes) -> str | None:
    label = next(label for label in classes.labels if label.id == shape.label_id)
    by_node = {element.label_id: element for element in shape.elements}
    visible = [e for e in shape.elements if not e.outside and len(e.points) >= 2]
    if not visible:
        return None
    box = _center_box([e.points[0] for e in visible], [e.points[1] for e in visible], frame)
    fields = []
    for node in label.sublabels:
        element = by_node.get(node.id)
        if element is None or len(element.points) < 2:
            fields.append(f"0.0 0.0 {POSE_OUTSIDE}")
            continue
        flag = POSE_OCCLUDED if element.occluded else POSE_VISIBLE
        flag = POSE_OUTSIDE if element.outside else flag
        fields.append(f"{_relative(element.points[:2], frame)} {flag}")
    fields += [f"0.0 0.0 {POSE_OUTSIDE}"] * (classes.points - len(label.sublabels))
    return f"{classes.index[shape.label_id]} {box} {' '.join(fields)}\n"


YOLO = Flavor("YOLO", "box", ("rectangle",), _box_lines)
DETECTION = Flavor("Ultralytics YOLO Detection", "box", ("rectangle",), _box_lines)
ORIENTED = Flavor(
    "Ultralytics YOLO Oriented Bounding Boxes",
    "oriented",
    ("rectangle",),
    _one_by_one(_oriented_line),
)
SEGMENTATION = Flavor(
    "Ultralytics YOLO Segmentation", "polygon", ("polygon", "mask"), _one_by_one(_polygon_line)
)
POSE = Flavor(
    "Ultralytics YOLO Pose", "pose", ("skeleton",), _one_by_one(_pose_line), skeletons=True
)


def subset_name(dataset: TaskDataset, reserved: Sequence[str] = ()) -> str:
    """The task's subset as a folder name; ``train`` without one (as Datumaro exports)."""
    name = re.sub(r"[^\w.-]", "_", dataset.subset.strip()).strip(".")
    if not name or name.lower() == "default" or name in reserved:
        return DEFAULT_SUBSET
    return name


def stem(name: str) -> str:
    return posixpath.splitext(safe_archive_name(name))[0]


def _lines_by_frame(
    dataset: TaskDataset, flavor: Flavor, classes: _Classes, warnings: list[str]
) -> Lines:
    skipped: Counter[str] = Counter()
    frames = {f.index: f for f in dataset.frames if f.width > 0 and f.height > 0}
    carried = _carried(dataset, flavor, classes, skipped, warnings)
    placed = [shape for shape in carried if shape.frame in frames]
    if len(placed) < len(carried):
        skipped["shapes outside the task's frames"] += len(carried) - len(placed)
    lines = flavor.write_lines(placed, frames, classes, skipped)
    for what, count in sorted(skipped.items()):
        warnings.append(f"{count} {what} were left out ({flavor.title} does not carry them)")
    if dataset.annotations.tags:
        count = len(dataset.annotations.tags)
        warnings.append(f"{count} tags were left out ({flavor.title} does not carry them)")
    with_attributes = sum(1 for shape in placed if shape.attributes)
    if with_attributes:
        warnings.append(
            f"the attributes of {with_attributes} shapes were left out "
            f"({flavor.title} does not carry attributes)"
        )
    return lines


def _carried(
    dataset: TaskDataset,
    flavor: Flavor,
    classes: _Classes,
    skipped: Counter[str],
    warnings: list[str],
) -> list[Shape]:
    """The shapes of the kinds the format carries, tracks as their visible frames."""
    data = dataset.annotations
    stop_frame = dataset.stop_frame
    carried = []
    for shape in data.shapes:
        if shape.type in flavor.carried and shape.label_id in classes.index:
            carried.append(shape)
        else:
            skipped[f"{shape.type} shapes"] += 1
    for number, track in enumerate(data.tracks):
        kind = track.shapes[0].type if track.shapes else "empty"
        if kind not in flavor.carried or track.label_id not in classes.index:
            skipped[f"{kind} tracks"] += 1
            continue
        try:
            carried.extend(item.shape for item in track_frames(track, number, stop_frame))
        except ValueError as error:
            warnings.append(f"track {track.id} was left out: {error}")
    return carried


def _unwritten(shape: Shape) -> str:
    if shape.type == "rectangle":
        return "rotated rectangle shapes"
    if shape.type == "skeleton":
        return "skeleton shapes without visible points"
    return f"empty {shape.type} shapes"


def image_name(frame: FrameInfo, images: ImageSource | None) -> tuple[str, bytes | None]:
    if images is None:
        return safe_archive_name(frame.name), None
    name, data = images(frame.index)
    suffix = posixpath.splitext(name)[1] or posixpath.splitext(frame.name)[1]
    return stem(frame.name) + suffix, data


def export_yolo(
    dataset: TaskDataset, out: zipfile.ZipFile, *, images: ImageSource | None = None
) -> list[str]:
    """YOLO 1.1: obj.names, obj.data, <subset>.txt and obj_<subset>_data/."""
    warnings: list[str] = []
    classes = _Classes.of(dataset.labels)
    subset = subset_name(dataset, DARKNET_RESERVED)
    lines = _lines_by_frame(dataset, YOLO, classes, warnings)
    folder = f"obj_{subset}_data"
    listed = []
    for frame in sorted(dataset.frames, key=lambda f: f.index):
        image, data = image_name(frame, images)
        out.writestr(f"{folder}/{stem(frame.name)}.txt", "".join(lines.get(frame.index, ())))
        if data is not None:
            out.writestr(f"{folder}/{image}", data)
        listed.append(f"data/{folder}/{image}\n")
    out.writestr(f"{subset}.txt", "".join(listed))
    out.writestr("obj.names", "".join(f"{label.name}\n" for label in classes.labels))
    out.writestr(
        "obj.data",
        f"classes = {len(classes.labels)}\n{subset} = data/{subset}.txt\n"
        "names = data/obj.names\nbackup = backup/\n",
    )
    return warnings


def _ultralytics_exporter(flavor: Flavor) -> Callable[..., list[str]]:
    def export(
        dataset: TaskDataset, out: zipfile.ZipFile, *, images: ImageSource | None = None
    ) -> list[str]:
        warnings: list[str] = []
        classes = _Classes.of(dataset.labels, skeletons=flavor.skeletons)
        subset = subset_name(dataset, ("path", "names", "kpt_shape", "nc"))
        lines = _lines_by_frame(dataset, flavor, classes, warnings)
        listed = []
        for frame in sorted(dataset.frames, key=lambda f: f.index):
            image, data = image_name(frame, images)
            if frame.index in lines:
                label_file = f"labels/{subset}/{stem(frame.name)}.txt"
                out.writestr(label_file, "".join(lines[frame.index]))
            if data is not None:
                out.writestr(f"images/{subset}/{image}", data)
            listed.append(f"images/{subset}/{image}\n")
        out.writestr(f"{subset}.txt", "".join(listed))
        config: dict[str, object] = {"path": ".", subset: f"{subset}.txt"}
        if flavor.skeletons:
            config["kpt_shape"] = [classes.points, 3]
        config["names"] = {i: label.name for i, label in enumerate(classes.labels)}
        out.writestr("data.yaml", yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
        return warnings

    export.__doc__ = f"{flavor.title} 1.0: data.yaml, <subset>.txt, images/ and labels/."
    return export


export_detection = _ultralytics_exporter(DETECTION)
export_oriented = _ultralytics_exporter(ORIENTED)
export_segmentation = _ultralytics_exporter(SEGMENTATION)
export_pose = _ultralytics_exporter(POSE)
