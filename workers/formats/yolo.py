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

Import reads the same layouts; label files are matched to frames by name without extension,
else by a frame number as the file name. A class number without a name, a label the task
lacks, a field that is not a finite number, or a line of the wrong length refuses the file.
"""

from __future__ import annotations

import math
import posixpath
import re
import zipfile
from collections import Counter, defaultdict
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from core.annotations import LabeledData, Shape
from core.labels import LabelSpec
from workers.formats import masks
from workers.formats.archives import read_annotation_files, safe_archive_name
from workers.formats.dataset import FormatError, FrameInfo, ImageSource, TaskDataset
from workers.formats.decimals import format_rows
from workers.formats.mapping import FrameIndex, LabelIndex
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
class _Flavor:
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


YOLO = _Flavor("YOLO", "box", ("rectangle",), _box_lines)
DETECTION = _Flavor("Ultralytics YOLO Detection", "box", ("rectangle",), _box_lines)
ORIENTED = _Flavor(
    "Ultralytics YOLO Oriented Bounding Boxes",
    "oriented",
    ("rectangle",),
    _one_by_one(_oriented_line),
)
SEGMENTATION = _Flavor(
    "Ultralytics YOLO Segmentation", "polygon", ("polygon", "mask"), _one_by_one(_polygon_line)
)
POSE = _Flavor(
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
    dataset: TaskDataset, flavor: _Flavor, classes: _Classes, warnings: list[str]
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
    flavor: _Flavor,
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


def _ultralytics_exporter(flavor: _Flavor) -> Callable[..., list[str]]:
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


# --- import ---------------------------------------------------------------------------------


def _text(name: str, raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise FormatError(f"{name} is not UTF-8 text") from error


def _floats(fields: Sequence[str], where: str) -> list[float]:
    values = []
    for field in fields:
        try:
            value = float(field)
        except ValueError:
            raise FormatError(f"{where}: {field[:40]!r} is not a number") from None
        if not math.isfinite(value):
            raise FormatError(f"{where}: {field[:40]!r} is not a finite number")
        values.append(value)
    return values


def _class_number(field: str, names: Container[int], where: str) -> int:
    try:
        number = int(field)
    except ValueError:
        raise FormatError(f"{where}: the class {field[:40]!r} is not a whole number") from None
    if number not in names:
        raise FormatError(f"{where}: class {number} has no name in the label list")
    return number


class _YoloReader:
    """Turns the label files of one archive into shapes of the given task."""

    def __init__(
        self, flavor: _Flavor, labels: Sequence[LabelSpec], frames: Sequence[FrameInfo]
    ) -> None:
        self.flavor = flavor
        self.labels = LabelIndex(labels)
        self.frames = FrameIndex(frames)
        self.shapes: list[Shape] = []
        self.classes: dict[int, LabelSpec] = {}
        self.point_fields = 3
        self.pending: list[tuple[str, FrameInfo, str]] = []  # box files: name, frame, text

    def use_names(self, names: dict[int, str]) -> None:
        self.classes = {number: self.labels.top(name) for number, name in names.items()}
        if self.flavor.skeletons:
            for label in self.classes.values():
                if not label.sublabels:
                    raise FormatError(f"the label {label.name!r} is not a skeleton")

    def frame_of(self, item: str) -> FrameInfo:
        base = posixpath.basename(item)
        index = int(base) if base.isdigit() else None
        frame = self.frames.match(item, index)
        if frame is None:
            raise FormatError(f"the label file {item!r} does not match any frame of the task")
        if frame.width <= 0 or frame.height <= 0:
            raise FormatError(f"the frame {frame.name!r} has no known size")
        return frame

    def read_file(self, name: str, item: str, raw: bytes) -> None:
        text = _text(name, raw)
        if not text.strip():
            return
        frame = self.frame_of(item)
        if self.flavor.kind == "box":
            self.pending.append((name, frame, text))  # read all at once by finish()
        else:
            self._read_lines(name, frame, text)

    def finish(self) -> LabeledData:
        if self.pending and not self._boxes_at_once():
            for name, frame, text in self.pending:
                self._read_lines(name, frame, text)
        self.pending = []
        return LabeledData(shapes=self.shapes)

    def _read_lines(self, name: str, frame: FrameInfo, text: str) -> None:
        for number, line in enumerate(text.splitlines(), start=1):
            fields = line.split()
            if fields:
                self._line(fields, frame, f"{name}, line {number}")

    def _boxes_at_once(self) -> bool:
        """Reads the pending files with numpy when every line is a well-formed box; else
        reads nothing and says False, for the line-by-line reader to read or refuse."""
        rows: list[list[str]] = []
        sizes: list[tuple[int, int, int, int]] = []
        frames: list[int] = []
        for _, frame, text in self.pending:
            lines = [fields for fields in (line.split() for line in text.splitlines()) if fields]
            rows += lines
            sizes += [(frame.width, frame.height, frame.width, frame.height)] * len(lines)
            frames += [frame.index] * len(lines)
        if any(len(fields) != 5 for fields in rows):
            return False
        try:
            numbers = np.array([fields[0] for fields in rows], dtype=np.int64).tolist()
            values = np.array([fields[1:] for fields in rows], dtype=np.float64)
        except (ValueError, OverflowError):
            return False
        if not np.isfinite(values).all() or (values[:, 2:] < 0).any():
            return False
        if not all(number in self.classes for number in set(numbers)):
            return False
        # the same arithmetic as _box_points, so both paths give the same coordinates
        cx, cy, w, h = (values * np.array(sizes, dtype=np.float64)).T
        corners = np.column_stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]).tolist()
        label_ids = {number: label.id for number, label in self.classes.items()}
        self.shapes += [
            Shape("rectangle", label_ids[number], frame, points, source="file")
            for number, frame, points in zip(numbers, frames, corners, strict=True)
        ]
        return True

    def _line(self, fields: list[str], frame: FrameInfo, where: str) -> None:
        number = _class_number(fields[0], self.classes, where)
        label = self.classes[number]
        values = _floats(fields[1:], where)
        scaled = [v * (frame.width if i % 2 == 0 else frame.height) for i, v in enumerate(values)]
        kind = self.flavor.kind
        if kind == "box":
            self._add("rectangle", label, frame, _box_points(scaled, where))
        elif kind == "oriented":
            points, rotation = _oriented_box(scaled, where)
            self._add("rectangle", label, frame, points, rotation)
        elif kind == "polygon":
            if len(scaled) < 6 or len(scaled) % 2:
                raise FormatError(f"{where}: a polygon needs an even count of 6 or more values")
            self._add("polygon", label, frame, scaled)
        else:
            self._skeleton(label, frame, values, where)

    def _add(
        self,
        shape_type: str,
        label: LabelSpec,
        frame: FrameInfo,
        points: list[float],
        rotation: float = 0.0,
    ) -> None:
        self.shapes.append(
            Shape(
                type=shape_type,
                label_id=label.id,
                frame=frame.index,
                points=points,
                rotation=rotation,
                source="file",
            )
        )

    def _skeleton(
        self, label: LabelSpec, frame: FrameInfo, values: list[float], where: str
    ) -> None:
        step = self.point_fields
        if len(values) < 4 or (len(values) - 4) % step:
            raise FormatError(f"{where}: expected a box and points of {step} values each")
        points = [values[i : i + step] for i in range(4, len(values), step)]
        if len(points) < len(label.sublabels):
            raise FormatError(
                f"{where}: the skeleton {label.name!r} has {len(label.sublabels)} points, "
                f"the line {len(points)}"
            )
        elements = []
        for node, point in zip(label.sublabels, points, strict=False):
            flag = int(point[2]) if step == 3 else POSE_VISIBLE
            if flag not in (POSE_OUTSIDE, POSE_OCCLUDED, POSE_VISIBLE):
                raise FormatError(f"{where}: visibility {point[2]} is not 0, 1 or 2")
            elements.append(
                Shape(
                    type="points",
                    label_id=node.id,
                    frame=frame.index,
                    points=[point[0] * frame.width, point[1] * frame.height],
                    occluded=flag == POSE_OCCLUDED,
                    outside=flag == POSE_OUTSIDE,
                    source="file",
                )
            )
        self.shapes.append(
            Shape("skeleton", label.id, frame.index, [], source="file", elements=elements)
        )


def _box_points(values: list[float], where: str) -> list[float]:
    if len(values) != 4:
        raise FormatError(f"{where}: expected 'class cx cy w h', got {len(values) + 1} fields")
    cx, cy, w, h = values
    if w < 0 or h < 0:
        raise FormatError(f"{where}: the box has a negative size")
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def _oriented_box(values: list[float], where: str) -> tuple[list[float], float]:
    """A rectangle and its rotation from four corners, as ``rotated_corners`` wrote them."""
    if len(values) != 8:
        raise FormatError(f"{where}: expected a class and 4 corners, got {len(values) + 1} fields")
    xs, ys = values[0::2], values[1::2]
    cx, cy = sum(xs) / 4, sum(ys) / 4
    width = math.hypot(xs[1] - xs[0], ys[1] - ys[0])
    height = math.hypot(xs[2] - xs[1], ys[2] - ys[1])
    rotation = math.degrees(math.atan2(ys[1] - ys[0], xs[1] - xs[0])) % 360
    if rotation > 360 - 1e-6:
        rotation = 0.0
    points = [cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2]
    return points, rotation


def _darknet_names(files: dict[str, bytes]) -> dict[int, str]:
    chosen = [name for name in files if posixpath.basename(name).lower() == "obj.names"]
    if not chosen:
        raise FormatError("the archive holds no obj.names file")
    lines = _text(chosen[0], files[chosen[0]]).splitlines()
    return {i: line.strip() for i, line in enumerate(lines) if line.strip()}


def _darknet_lists(files: dict[str, bytes]) -> set[str]:
    """Base names of the image list files obj.data names (train.txt, valid.txt by default)."""
    lists = {"train.txt", "valid.txt"}
    for name, raw in files.items():
        if posixpath.basename(name).lower() != "obj.data":
            continue
        for line in _text(name, raw).splitlines():
            key, _, value = line.partition("=")
            if value and key.strip() not in ("classes", "names", "backup"):
                lists.add(posixpath.basename(value.strip()))
    return lists


def import_yolo(source: Path, labels: list[LabelSpec], frames: list[FrameInfo]) -> LabeledData:
    """YOLO 1.1: obj.names and the per-image .txt files anywhere in the archive."""
    files = dict(read_annotation_files(source, (".txt", ".names", ".data")))
    reader = _YoloReader(YOLO, labels, frames)
    reader.use_names(_darknet_names(files))
    lists = _darknet_lists(files)
    for name, raw in sorted(files.items()):
        parts = name.split("/")
        if not name.endswith(".txt") or (len(parts) == 1 and parts[0] in lists):
            continue
        if len(parts) > 1 and re.fullmatch(r"obj_.+_data", parts[0]):
            parts = parts[1:]
        reader.read_file(name, posixpath.splitext("/".join(parts))[0], raw)
    return reader.finish()


def _yaml_config(files: dict[str, bytes]) -> dict:
    chosen = sorted(n for n in files if posixpath.basename(n).lower() in ("data.yaml", "data.yml"))
    if not chosen:
        raise FormatError("the archive holds no data.yaml file")
    name = min(chosen, key=lambda n: n.count("/"))
    if len(files[name]) > MAX_CONFIG_BYTES:
        raise FormatError(f"{name} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        config = yaml.safe_load(_text(name, files[name]))
    except yaml.YAMLError as error:
        raise FormatError(f"{name} is not valid YAML: {error}") from None
    if not isinstance(config, dict):
        raise FormatError(f"{name} is not a YAML mapping")
    return config


def _yaml_names(config: dict) -> dict[int, str]:
    names = config.get("names")
    if isinstance(names, list):
        names = dict(enumerate(names))
    if not isinstance(names, dict) or not names:
        raise FormatError("data.yaml: 'names' is not a list or a mapping of class names")
    result = {}
    for key, value in names.items():
        if not isinstance(key, int) or isinstance(key, bool) or not isinstance(value, str | int):
            raise FormatError(f"data.yaml: names entry {key!r}: {value!r} is not number: name")
        result[key] = str(value)
    return result


def _point_fields(config: dict) -> int:
    shape = config.get("kpt_shape")
    valid = (
        isinstance(shape, list)
        and len(shape) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in shape)
        and shape[1] in (2, 3)
    )
    if not valid:
        raise FormatError("data.yaml: 'kpt_shape' is not [points, 2 or 3]")
    return shape[1]


def _ultralytics_importer(flavor: _Flavor) -> Callable[..., LabeledData]:
    def import_(source: Path, labels: list[LabelSpec], frames: list[FrameInfo]) -> LabeledData:
        files = dict(read_annotation_files(source, (".txt", ".yaml", ".yml")))
        config = _yaml_config(files)
        reader = _YoloReader(flavor, labels, frames)
        reader.use_names(_yaml_names(config))
        if flavor.skeletons:
            reader.point_fields = _point_fields(config)
        for name, raw in sorted(files.items()):
            parts = name.split("/")
            if not name.endswith(".txt") or "labels" not in parts[:-1]:
                continue
            parts = parts[parts.index("labels") + 1 :]
            item = "/".join(parts[1:] if len(parts) > 1 else parts)
            reader.read_file(name, posixpath.splitext(item)[0], raw)
        return reader.finish()

    import_.__doc__ = f"{flavor.title} 1.0: data.yaml and labels/<subset>/*.txt."
    return import_


import_detection = _ultralytics_importer(DETECTION)
import_oriented = _ultralytics_importer(ORIENTED)
import_segmentation = _ultralytics_importer(SEGMENTATION)
import_pose = _ultralytics_importer(POSE)
