"""The "COCO 1.0" format: instances export and import (manual 2.28.6), laid out as CVAT's
Datumaro-based exporter does.

Export: ``annotations/instances_<subset|default>.json`` (+ ``images/<subset>/`` files).
Categories are the task's labels (skeleton nodes too, with their skeleton as
supercategory), ids from 1; images are numbered from 1 in frame order. Rectangles, polygons,
masks and ellipses are carried, everything else is left out with a warning. Shapes sharing
a group on a frame become one instance, whose properties come from its largest member
and whose bbox spans all of them. An instance is a crowd (``iscrowd: 1``, uncompressed RLE
over the whole image) when its leader has a true ``is_crowd`` attribute, or, without one,
when it holds a mask of the leader's label; ellipses are rasterized into masks. Otherwise
its polygons are the segmentation, and a lone rectangle has an empty one. ``attributes``
holds every attribute of the label (defaults filled, numbers as numbers, checkboxes as
booleans), ``occluded``, ``rotation`` for rectangles and ellipses, and for track frames
``track_id`` and ``keyframe``; ``score`` is written when it is not 1.

Import: the ``instances_*.json`` (or ``person_keypoints_*.json``) files of a ZIP, else its
JSON files, or a bare JSON file. Polygons become polygon shapes (several of one instance
share a new group), RLE becomes a mask, an empty segmentation a rectangle from ``bbox``.
Shapes with a ``track_id`` rebuild tracks from their keyframes, a gap in frames meaning the
track was outside. Images are matched to frames by file name without extension.
"""

from __future__ import annotations

import math
import posixpath
import zipfile
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path

import msgspec
import numpy as np

from core.annotations import LabeledData, Shape
from core.labels import LabelSpec, all_labels
from workers.formats import masks
from workers.formats.archives import read_annotation_files, write_images
from workers.formats.dataset import FormatError, FrameInfo, ImageSource, TaskDataset
from workers.formats.mapping import FrameIndex, LabelIndex
from workers.formats.object_fields import (
    ObjectFields,
    PlainAttributes,
    TrackFrames,
    attributes_dict,
    finite,
    list_of_dicts,
    parse_json,
    whole,
)
from workers.formats.tracks import FlatShape, flatten

CARRIED = ("rectangle", "polygon", "mask", "ellipse")
_PLAIN_NUMBERS = (int, float)  # not bool: type(True) is bool

# --- export ---------------------------------------------------------------------------------


@dataclass
class _Part:
    """One shape of an instance, measured."""

    item: FlatShape
    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    area: float
    bitmap: np.ndarray | None = None  # full-image bitmap for masks and ellipses


def export_coco(
    dataset: TaskDataset, out: zipfile.ZipFile, *, images: ImageSource | None = None
) -> list[str]:
    """Write annotations/instances_<subset>.json (and the frames under images/<subset>/)."""
    subset = dataset.subset or "default"
    labels = LabelIndex(dataset.labels)
    categories = category_ids(dataset.labels)
    flat, warnings = flatten(dataset.annotations, dataset.stop_frame)
    carried = _carried(flat, dataset.annotations.tags, warnings)
    frames = sorted(dataset.frames, key=lambda f: f.index)
    by_frame: dict[int, list[FlatShape]] = defaultdict(list)
    for item in carried:
        by_frame[item.shape.frame].append(item)
    annotations: list[dict] = []
    for image_id, frame in enumerate(frames, start=1):
        areas = _PolygonAreas(frame)
        for instance in frame_instances(by_frame.pop(frame.index, [])):
            entry = _lone_annotation(instance, image_id, categories, areas)
            if entry is None:
                entry = _annotation(instance, frame, image_id, labels, categories, warnings)
            if entry is not None:
                entry["id"] = len(annotations) + 1
                annotations.append(entry)
        areas.fill()
    if by_frame:
        warnings.append(f"objects on frames {sorted(by_frame)[:10]} outside the task were left out")
    document = {
        "licenses": [{"name": "", "id": 0, "url": ""}],
        "info": info_block(),
        "categories": [
            {"id": ident, "name": label.name, "supercategory": parent}
            for label, ident, parent in categories.values()
        ],
        "images": [image_entry(image_id, frame) for image_id, frame in enumerate(frames, start=1)],
        "annotations": annotations,
    }
    out.writestr(f"annotations/instances_{subset}.json", msgspec.json.encode(document))
    if images is not None:
        write_images(out, frames, images, f"images/{subset}")
    return warnings


def info_block() -> dict:
    keys = ("contributor", "date_created", "description", "url", "version", "year")
    return dict.fromkeys(keys, "")


def image_entry(image_id: int, frame: FrameInfo) -> dict:
    return {
        "id": image_id,
        "width": frame.width,
        "height": frame.height,
        "file_name": frame.name,
        "license": 0,
        "flickr_url": "",
        "coco_url": "",
        "date_captured": 0,
    }


def category_ids(labels: Sequence[LabelSpec]) -> dict[int, tuple[LabelSpec, int, str]]:
    """label id -> (label, category id, supercategory)."""
    parents = {sub.id: label.name for label in labels for sub in label.sublabels}
    return {
        label.id: (label, index, parents.get(label.id, ""))
        for index, label in enumerate(all_labels(labels), start=1)
    }


def _carried(flat: list[FlatShape], tags: Sequence, warnings: list[str]) -> list[FlatShape]:
    dropped = Counter(item.shape.type for item in flat if item.shape.type not in CARRIED)
    for shape_type, count in sorted(dropped.items()):
        warnings.append(f"{count} {shape_type} shapes were left out (COCO does not carry them)")
    if tags:
        warnings.append(f"{len(tags)} tags were left out (COCO does not carry them)")
    return [item for item in flat if item.shape.type in CARRIED]


def frame_instances(items: list[FlatShape]) -> list[list[FlatShape]]:
    """Shapes of one frame grouped: a nonzero group is one instance, others stand alone."""
    groups: dict[int, list[FlatShape]] = defaultdict(list)
    alone: list[list[FlatShape]] = []
    for item in items:
        if item.shape.group:
            groups[item.shape.group].append(item)
        else:
            alone.append([item])
    return [*groups.values(), *alone]


class _PolygonAreas:
    """The areas of a frame's lone polygons, as COCO rasterizes them, computed at once."""

    def __init__(self, frame: FrameInfo) -> None:
        self.frame = frame
        self.waiting: list[tuple[dict, list[float]]] = []

    def later(self, entry: dict, polygon: list[float]) -> None:
        if len(polygon) >= 6:
            self.waiting.append((entry, polygon))
        else:
            entry["area"] = 0.0

    def fill(self) -> None:
        if not self.waiting:
            return
        polygons = [polygon for _, polygon in self.waiting]
        areas = masks.polygon_areas(polygons, self.frame.height, self.frame.width)
        for (entry, _), area in zip(self.waiting, areas, strict=True):
            entry["area"] = area
        self.waiting.clear()


def _lone_annotation(
    instance: list[FlatShape],
    image_id: int,
    categories: dict[int, tuple[LabelSpec, int, str]],
    areas: _PolygonAreas,
) -> dict | None:
    """The entry of an instance that is one rectangle, or one polygon of a label without an
    ``is_crowd`` attribute (the common case, without rasterizing); None for any other
    instance, which `_annotation` writes."""
    if len(instance) != 1:
        return None
    item = instance[0]
    shape = item.shape
    points = shape.points
    category = categories.get(shape.label_id)
    if category is None or (shape.type != "rectangle" and _has_crowd_attribute(category[0])):
        return None
    if shape.type == "mask":
        return _lone_mask_annotation(item, image_id, category, areas.frame)
    if shape.type not in ("rectangle", "polygon") or len(points) < 4 or len(points) % 2:
        return None
    xs, ys = points[0::2], points[1::2]
    x0, y0, x1, y1 = float(min(xs)), float(min(ys)), float(max(xs)), float(max(ys))
    entry: dict = {
        "id": 0,
        "image_id": image_id,
        "category_id": category[1],
        "segmentation": [],
        "area": float((x1 - x0) * (y1 - y0)),
        "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
        "iscrowd": 0,
        "attributes": attributes_dict(item, category[0]),
    }
    if shape.type == "polygon":
        polygon = list(map(round, map(float, points), repeat(2, len(points))))
        entry["segmentation"] = [polygon]
        areas.later(entry, polygon)
    if shape.score != 1.0:
        entry["score"] = float(shape.score)
    return entry


def _lone_mask_annotation(
    item: FlatShape, image_id: int, category: tuple[LabelSpec, int, str], frame: FrameInfo
) -> dict | None:
    """A mask alone is a crowd: its RLE, made from the columns its box spans."""
    try:
        local, left, top = masks.cvat_mask_bitmap(item.shape.points, frame.width * frame.height)
    except FormatError:
        return None
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + local.shape[1], frame.width), min(top + local.shape[0], frame.height)
    if x0 >= x1 or y0 >= y1:
        return None
    band = np.zeros((frame.height, x1 - x0), dtype=np.uint8)
    band[y0:y1] = local[y0 - top : y1 - top, x0 - left : x1 - left]
    rows, cols = np.flatnonzero(band.any(axis=1)), np.flatnonzero(band.any(axis=0))
    if rows.size == 0:
        return None
    bx0, by0 = float(cols[0] + x0), float(rows[0])
    bx1, by1 = float(cols[-1] + 1 + x0), float(rows[-1] + 1)
    entry: dict = {
        "id": 0,
        "image_id": image_id,
        "category_id": category[1],
        "segmentation": masks.coco_rle(band, x0, frame.width),
        "area": float(np.count_nonzero(band)),
        "bbox": [round(v, 2) for v in (bx0, by0, bx1 - bx0, by1 - by0)],
        "iscrowd": 1,
        "attributes": attributes_dict(item, category[0]),
    }
    if item.shape.score != 1.0:
        entry["score"] = float(item.shape.score)
    return entry


def _has_crowd_attribute(label: LabelSpec) -> bool:
    return any(spec.name == "is_crowd" for spec in label.attributes)


def _annotation(
    instance: list[FlatShape],
    frame: FrameInfo,
    image_id: int,
    labels: LabelIndex,
    categories: dict[int, tuple[LabelSpec, int, str]],
    warnings: list[str],
) -> dict | None:
    try:
        parts = [_measure(item, frame) for item in instance]
    except (IndexError, ValueError, FormatError) as error:
        warnings.append(f"an object on frame {frame.index} was left out: {error}")
        return None
    leader = max(parts, key=lambda part: part.area)
    category = categories.get(leader.item.shape.label_id)
    if category is None:
        warnings.append(f"an object on frame {frame.index} has an unknown label")
        return None
    label = category[0]
    segmentation, area, crowd = _segmentation(parts, leader, label, frame)
    x0 = min(p.box[0] for p in parts)
    y0 = min(p.box[1] for p in parts)
    x1 = max(p.box[2] for p in parts)
    y1 = max(p.box[3] for p in parts)
    entry: dict = {
        "id": 0,
        "image_id": image_id,
        "category_id": category[1],
        "segmentation": segmentation,
        "area": float(area if segmentation else (x1 - x0) * (y1 - y0)),
        "bbox": [round(v, 2) for v in (x0, y0, x1 - x0, y1 - y0)],
        "iscrowd": int(crowd),
        "attributes": attributes_dict(leader.item, label),
    }
    if leader.item.shape.score != 1.0:
        entry["score"] = float(leader.item.shape.score)
    return entry


def _measure(item: FlatShape, frame: FrameInfo) -> _Part:
    shape = item.shape
    points = [float(v) for v in shape.points]
    if shape.type in ("rectangle", "polygon"):
        xs, ys = points[0::2], points[1::2]
        box = (min(xs), min(ys), max(xs), max(ys))
        if shape.type == "rectangle":
            area = (box[2] - box[0]) * (box[3] - box[1])
        else:
            area = _shoelace(points)
        return _Part(item, box, area)
    bitmap = _shape_bitmap(shape, frame)
    rows, cols = np.flatnonzero(bitmap.any(axis=1)), np.flatnonzero(bitmap.any(axis=0))
    if rows.size == 0:
        raise ValueError(f"the {shape.type} covers no pixel of the frame")
    box = (float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))
    return _Part(item, box, float(np.count_nonzero(bitmap)), bitmap)


def _shape_bitmap(shape: Shape, frame: FrameInfo) -> np.ndarray:
    if frame.width <= 0 or frame.height <= 0:
        raise ValueError("the frame has no size")
    if shape.type == "ellipse":
        return masks.ellipse_bitmap(shape.points, shape.rotation, frame.height, frame.width)
    box, left, top = masks.cvat_mask_bitmap(shape.points, frame.width * frame.height)
    canvas = np.zeros((frame.height, frame.width), dtype=np.uint8)
    masks.paste(canvas, box.astype(np.uint8), left, top)
    return canvas


def _shoelace(points: Sequence[float]) -> float:
    xs, ys = points[0::2], points[1::2]
    total = sum(xs[i] * ys[i - 1] - xs[i - 1] * ys[i] for i in range(len(xs)))
    return abs(total) / 2


def _segmentation(
    parts: list[_Part], leader: _Part, label: LabelSpec, frame: FrameInfo
) -> tuple[list | dict, float, bool]:
    polygons = [p.item.shape.points for p in parts if p.item.shape.type == "polygon"]
    bitmaps = [p for p in parts if p.bitmap is not None]
    if not polygons and not bitmaps:
        return [], 0.0, False
    if _is_crowd(leader, label, bitmaps):
        canvas = masks.polygons_bitmap(polygons, frame.height, frame.width)
        for part in bitmaps:
            canvas |= part.bitmap.astype(np.uint8)
        return masks.coco_rle(canvas), float(np.count_nonzero(canvas)), True
    for part in bitmaps:
        polygons.extend(masks.bitmap_polygons(part.bitmap))
    flat = [[round(float(v), 2) for v in poly] for poly in polygons]
    return flat, masks.polygons_area(flat, frame.height, frame.width), False


def _is_crowd(leader: _Part, label: LabelSpec, bitmaps: list[_Part]) -> bool:
    spec = next((s for s in label.attributes if s.name == "is_crowd"), None)
    if spec is not None:
        given = {v.spec_id: v.value for v in leader.item.shape.attributes}
        value = given.get(spec.id, spec.default_value)
        return value.strip().lower() in ("true", "1")
    return any(p.item.shape.label_id == leader.item.shape.label_id for p in bitmaps)


# --- import ---------------------------------------------------------------------------------


def import_coco(source: Path, labels: list[LabelSpec], frames: list[FrameInfo]) -> LabeledData:
    """Read a COCO instances JSON file, or the instances files of a ZIP, for the given task."""
    documents = _chosen(read_annotation_files(source, (".json",)))
    reader = _CocoReader(labels, frames)
    for name, document in documents:
        reader.read(name, document)
    return reader.finish()


def _chosen(files: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    if not files:
        raise FormatError("the archive holds no .json annotation file")
    prefixes = ("instances_", "person_keypoints_")
    tasks = [f for f in files if posixpath.basename(f[0]).startswith(prefixes)]
    return tasks or files


class _CocoReader:
    """Collects shapes and track frames from COCO documents for one task."""

    def __init__(self, labels: Sequence[LabelSpec], frames: Sequence[FrameInfo]) -> None:
        self.labels = LabelIndex(labels)
        self.frames = FrameIndex(frames)
        self.data = LabeledData(tags=[], shapes=[], tracks=[])
        self.tracks = TrackFrames(self.frames.stop_frame)
        self.next_group = 1
        self.attribute_values = PlainAttributes()

    def read(self, name: str, raw: bytes) -> None:
        document = parse_json(name, raw, "COCO")
        self.image_frames: dict[int, FrameInfo] = {}
        categories = self._categories(name, document)
        images = self._images(name, document)
        self.category_labels: dict[int, LabelSpec] = {}
        for index, entry in enumerate(list_of_dicts(document, "annotations", name)):
            if not self._plain_annotation(entry):
                where = f"{name}: annotation #{index} (id {entry.get('id')!r})"
                self._annotation(name, entry, categories, images, where)

    def finish(self) -> LabeledData:
        return self.tracks.finish(self.data)

    def _categories(self, name: str, document: dict) -> dict[int, str]:
        return names_by_id(document, "categories", "name", name, "category")

    def _images(self, name: str, document: dict) -> dict[int, str]:
        return names_by_id(document, "images", "file_name", name, "image")

    def _plain_annotation(self, entry: dict) -> bool:
        """Read an entry of an image and category already met that is one rectangle or one
        polygon, all fields of the types the export writes (the common case, in one go);
        False, reading nothing, for any other entry: `_annotation` reads it, naming what is
        wrong."""
        image_id, category_id = entry.get("image_id"), entry.get("category_id")
        if type(image_id) is not int or type(category_id) is not int:
            return False
        frame = self.image_frames.get(image_id)
        label = self.category_labels.get(category_id)
        extras = entry.get("attributes", {})
        if frame is None or label is None or type(extras) is not dict or "score" in entry:
            return False
        occluded, rotation = extras.get("occluded", False), extras.get("rotation", 0.0)
        if type(occluded) is not bool or type(rotation) is not float or rotation - rotation:
            return False
        values = self.attribute_values.plain(label, extras)
        segmentation = entry.get("segmentation", [])
        if segmentation == []:
            points = _plain_box(entry.get("bbox"))
            shape_type, rotation = "rectangle", rotation % 360
        elif type(segmentation) is list and len(segmentation) == 1:
            points = _plain_polygon(segmentation[0])
            shape_type, rotation = "polygon", 0.0
        else:
            return False
        if values is None or points is None:
            return False
        self.data.shapes.append(
            Shape(
                type=shape_type,
                label_id=label.id,
                frame=frame.index,
                points=points,
                occluded=occluded,
                rotation=rotation,
                source="file",
                attributes=values,
            )
        )
        return True

    def _annotation(
        self,
        name: str,
        entry: dict,
        categories: dict[int, str],
        images: dict[int, str],
        where: str,
    ) -> None:
        image_id = whole(entry.get("image_id"), f"{where}: image_id")
        if image_id not in images:
            raise FormatError(f"{where}: image {image_id} is not listed")
        frame = self.image_frames.get(image_id)
        if frame is None:
            frame = self.image_frames[image_id] = self.frames.require(images[image_id])
        category_id = whole(entry.get("category_id"), f"{where}: category_id")
        if category_id not in categories:
            raise FormatError(f"{where}: category {category_id} is not listed")
        label = self.category_labels[category_id] = self.labels.top(categories[category_id])
        shapes = self._shapes(entry, frame, where)
        if not shapes:
            return
        common = ObjectFields.read(entry.get("attributes", {}), entry, label, where)
        if common.track_id is not None:
            tracked = common.tracked(*shapes[0], frame.index)
            self.tracks.add(name, common.track_id, label, tracked, common.keyframe)
            return
        group = 0
        if len(shapes) > 1:
            group, self.next_group = self.next_group, self.next_group + 1
        for shape_type, points in shapes:
            self.data.shapes.append(common.shape(shape_type, points, label, frame.index, group))

    def _shapes(self, entry: dict, frame: FrameInfo, where: str) -> list[tuple[str, list[float]]]:
        segmentation = entry.get("segmentation", [])
        if isinstance(segmentation, dict):
            points = masks.coco_rle_to_cvat(segmentation, frame.height, frame.width)
            return [("mask", points)] if points is not None else []
        if not isinstance(segmentation, list):
            raise FormatError(f"{where}: 'segmentation' is neither polygons nor RLE")
        polygons = [self._polygon(poly, where) for poly in segmentation]
        polygons = [poly for poly in polygons if len(poly) >= 6]
        if polygons:
            return [("polygon", poly) for poly in polygons]
        return [("rectangle", _box(entry.get("bbox"), where))]

    @staticmethod
    def _polygon(poly: object, where: str) -> list[float]:
        if not isinstance(poly, list) or len(poly) % 2:
            raise FormatError(f"{where}: a polygon is not a list of x, y numbers")
        if all(type(v) in _PLAIN_NUMBERS for v in poly) and all(map(math.isfinite, poly)):
            return [float(v) for v in poly]
        return [finite(v, f"{where}: a polygon coordinate") for v in poly]


def _plain_box(bbox: object) -> list[float] | None:
    """[x0, y0, x1, y1] of a bbox of four finite floats and no negative size, else None."""
    if type(bbox) is not list or len(bbox) != 4 or set(map(type, bbox)) != {float}:
        return None
    x, y, width, height = bbox
    total = x + y + width + height
    if total - total or width < 0 or height < 0:
        return None
    return [x, y, x + width, y + height]


def _plain_polygon(polygon: object) -> list[float] | None:
    """The polygon if it is at least 3 points of finite floats, else None."""
    if type(polygon) is not list or len(polygon) < 6 or len(polygon) % 2:
        return None
    if set(map(type, polygon)) != {float}:
        return None
    total = sum(polygon)
    return None if total - total else list(polygon)


def _box(bbox: object, where: str) -> list[float]:
    if not isinstance(bbox, list) or len(bbox) != 4:
        raise FormatError(f"{where}: has neither a segmentation nor a bbox [x, y, w, h]")
    what = f"{where}: a bbox value"
    x, y, width, height = (
        finite(bbox[0], what),
        finite(bbox[1], what),
        finite(bbox[2], what),
        finite(bbox[3], what),
    )
    if width < 0 or height < 0:
        raise FormatError(f"{where}: the bbox has a negative size")
    return [x, y, x + width, y + height]


def names_by_id(document: dict, key: str, field: str, name: str, what: str) -> dict[int, str]:
    """{id: entry[field]} of a COCO list such as categories or images, checked."""
    result = {}
    for entry in list_of_dicts(document, key, name):
        ident = whole(
            entry.get("id"),
            f"{name}: an {what} id" if what[0] in "aeiou" else f"{name}: a {what} id",
        )
        value = entry.get(field)
        if not isinstance(value, str):
            raise FormatError(f"{name}: {what} {ident} has no {field}")
        result[ident] = value
    return result
