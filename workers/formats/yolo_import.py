"""Reading the YOLO family (see workers/formats/yolo.py for the layouts): label files are
matched to frames by name without extension, else by a frame number as the file name; a class
number without a name, a label the task lacks, a field that is not a finite number, or a line
of the wrong length refuses the file."""

from __future__ import annotations

import math
import posixpath
import re
from collections.abc import Callable, Container, Sequence
from pathlib import Path

import numpy as np
import yaml

from core.annotations import LabeledData, Shape
from core.labels import LabelSpec
from workers.formats.archives import read_annotation_files
from workers.formats.dataset import FormatError, FrameInfo
from workers.formats.mapping import FrameIndex, LabelIndex
from workers.formats.yolo import (
    DETECTION,
    MAX_CONFIG_BYTES,
    ORIENTED,
    POSE,
    POSE_OCCLUDED,
    POSE_OUTSIDE,
    POSE_VISIBLE,
    SEGMENTATION,
    YOLO,
    Flavor,
)


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
        self, flavor: Flavor, labels: Sequence[LabelSpec], frames: Sequence[FrameInfo]
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


def _ultralytics_importer(flavor: Flavor) -> Callable[..., LabeledData]:
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
