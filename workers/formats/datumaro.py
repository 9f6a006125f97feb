"""The "Datumaro 1.0" format (manual 2.28.2): ``annotations/<subset>.json`` (+
``images/<subset>/`` files), laid out as Datumaro's own JSON format that CVAT exports.

The document holds ``info``, ``categories`` (``label.labels`` as ``{name, parent,
attributes}``, skeleton nodes after their skeleton with it as parent; ``points.items`` naming
each skeleton's nodes and joints) and one item per frame: ``{id, annotations, image: {path,
size}, attr: {frame}}``, the id being the frame's file name without extension.

Annotations carry every CVAT object: tags (``label``), ``bbox`` ``[x, y, w, h]``,
``polygon``/``polyline``/``points`` (flat ``points``; points with ``visibility``),
``ellipse`` (``points`` = its box corners), ``cuboid_2d`` (CVAT's 8 points as [x, y] pairs,
flat lists read too), ``mask``
(pycocotools' compressed ``rle`` over the whole image) and ``skeleton`` (``elements``, points
whose visibility is 0 outside, 1 occluded, 2 visible). Each has ``id``, ``label_id`` (index
into the labels), ``group``, ``z_order`` and ``attributes`` (see `object_fields`). Tracks are
written as their visible frames with ``track_id`` and ``keyframe`` and rebuilt on import.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import msgspec
import numpy as np
from pycocotools import mask as mask_utils

from core.annotations import LabeledData, Shape, Tag
from core.labels import LabelSpec, all_labels
from workers.formats import masks
from workers.formats.archives import read_annotation_files, write_images
from workers.formats.dataset import FormatError, FrameInfo, ImageSource, TaskDataset
from workers.formats.mapping import FrameIndex, LabelIndex
from workers.formats.object_fields import (
    ObjectFields,
    TrackFrames,
    as_tracked,
    attributes_dict,
    list_of_dicts,
    numbers,
    parse_json,
    whole,
)
from workers.formats.tracks import FlatShape, flatten

VISIBLE, HIDDEN, ABSENT = 2, 1, 0
PLAIN_POINT_TYPES = {"polygon": "polygon", "polyline": "polyline", "points": "points"}
_NODE_ID = re.compile(r'data-node-(?:from|to)="(\d+)"')
_EDGE = re.compile(r"<line\b[^>]*>")

# --- export ---------------------------------------------------------------------------------


def export_datumaro(
    dataset: TaskDataset, out: zipfile.ZipFile, *, images: ImageSource | None = None
) -> list[str]:
    """Write annotations/<subset>.json (and the frames under images/<subset>/)."""
    subset = dataset.subset or "default"
    flat, warnings = flatten(dataset.annotations, dataset.stop_frame)
    sizes = {frame.index: (frame.height, frame.width) for frame in dataset.frames}
    writer = _Writer(dataset.labels, sizes, warnings)
    by_frame: dict[int, list[dict]] = defaultdict(list)
    for tag in dataset.annotations.tags:
        by_frame[tag.frame].append(writer.tag(tag))
    for item in flat:
        entry = writer.shape(item)
        if entry is not None:
            by_frame[item.shape.frame].append(entry)
    frames = sorted(dataset.frames, key=lambda f: f.index)
    items = []
    for frame in frames:
        annotations = by_frame.pop(frame.index, [])
        for number, entry in enumerate(annotations):
            entry["id"] = number
        items.append(_item(frame, annotations))
    if by_frame:
        warnings.append(f"objects on frames {sorted(by_frame)[:10]} outside the task were left out")
    document = {"info": {}, "categories": _categories(dataset.labels), "items": items}
    out.writestr(f"annotations/{subset}.json", json.dumps(document))
    if images is not None:
        write_images(out, frames, images, f"images/{subset}")
    return warnings


def _item(frame: FrameInfo, annotations: list[dict]) -> dict:
    return {
        "id": frame.item_id,
        "annotations": annotations,
        "image": {"path": frame.name, "size": [frame.height, frame.width]},
        "attr": {"frame": frame.cvat_number},
    }


def _categories(labels: Sequence[LabelSpec]) -> dict:
    flat = all_labels(labels)
    parents = {sub.id: label.name for label in labels for sub in label.sublabels}
    index = {label.id: position for position, label in enumerate(flat)}
    return {
        "label": {
            "labels": [
                {
                    "name": label.name,
                    "parent": parents.get(label.id, ""),
                    "attributes": sorted(spec.name for spec in label.attributes),
                }
                for label in flat
            ],
            "attributes": ["occluded"],
        },
        "points": {
            "items": [
                {
                    "label_id": index[label.id],
                    "labels": [sub.name for sub in label.sublabels],
                    "joints": skeleton_joints(label.svg),
                }
                for label in labels
                if label.type == "skeleton"
            ]
        },
    }


def skeleton_joints(svg: str) -> list[list[int]]:
    """The [from, to] node numbers (1-based, as CVAT numbers them) of a skeleton's edges."""
    joints = []
    for edge in _EDGE.findall(svg):
        ends = _NODE_ID.findall(edge)
        if len(ends) == 2:
            joints.append([int(ends[0]), int(ends[1])])
    return joints


class _Writer:
    def __init__(
        self,
        labels: Sequence[LabelSpec],
        sizes: dict[int, tuple[int, int]],
        warnings: list[str],
    ) -> None:
        self.labels = LabelIndex(labels)
        self.sizes = sizes
        self.index = {label.id: position for position, label in enumerate(all_labels(labels))}
        self.warnings = warnings

    def tag(self, tag: Tag) -> dict:
        label = self.labels.by_id[tag.label_id]
        return {
            "id": 0,
            "type": "label",
            "attributes": attributes_dict(FlatShape(_tag_as_shape(tag)), label),
            "group": tag.group or 0,
            "label_id": self.index[tag.label_id],
        }

    def shape(self, item: FlatShape) -> dict | None:
        shape = item.shape
        label = self.labels.by_id.get(shape.label_id)
        if label is None:
            self.warnings.append(f"a {shape.type} on frame {shape.frame} has an unknown label")
            return None
        try:
            geometry = self._geometry(shape)
        except (IndexError, ValueError, FormatError) as error:
            self.warnings.append(f"a {shape.type} on frame {shape.frame} was left out: {error}")
            return None
        return {
            "id": 0,
            **geometry,
            "attributes": attributes_dict(item, label),
            "group": shape.group or 0,
            "label_id": self.index[shape.label_id],
            "z_order": shape.z_order,
        }

    def _geometry(self, shape: Shape) -> dict:
        points = [float(v) for v in shape.points]
        if shape.type == "rectangle":
            x0, y0, x1, y1 = points[:4]
            return {"type": "bbox", "bbox": [x0, y0, x1 - x0, y1 - y0]}
        if shape.type in PLAIN_POINT_TYPES:
            if len(points) % 2:
                raise ValueError("an odd number of coordinates")
            entry: dict = {"type": shape.type, "points": points}
            if shape.type == "points":
                entry["visibility"] = [VISIBLE] * (len(points) // 2)
            return entry
        if shape.type == "ellipse":
            cx, cy, right, top = points[:4]
            rx, ry = right - cx, cy - top
            return {"type": "ellipse", "points": [cx - rx, cy - ry, cx + rx, cy + ry]}
        if shape.type == "cuboid":
            if len(points) != 16:
                raise ValueError("a cuboid has 8 points")
            pairs = [[x, y] for x, y in zip(points[0::2], points[1::2], strict=True)]
            return {"type": "cuboid_2d", "points": pairs}
        if shape.type == "mask":
            return {"type": "mask", "rle": self._rle(shape)}
        if shape.type == "skeleton":
            return {"type": "skeleton", "elements": [self._node(node) for node in shape.elements]}
        raise ValueError(f"unknown shape type {shape.type!r}")

    def _rle(self, shape: Shape) -> dict:
        height, width = self.sizes.get(shape.frame, (0, 0))
        bitmap, left, top = masks.cvat_mask_bitmap(shape.points, height * width)
        canvas = np.zeros((height, width), dtype=np.uint8)
        masks.paste(canvas, bitmap.astype(np.uint8), left, top)
        encoded = mask_utils.encode(np.asfortranarray(canvas))
        return {"counts": encoded["counts"].decode("ascii"), "size": [height, width]}

    def _node(self, node: Shape) -> dict:
        label = self.labels.by_id[node.label_id]
        visibility = ABSENT if node.outside else HIDDEN if node.occluded else VISIBLE
        return {
            "id": 0,
            "type": "points",
            "points": [float(v) for v in node.points],
            "visibility": [visibility] * (len(node.points) // 2),
            "attributes": attributes_dict(FlatShape(node), label),
            "group": 0,
            "label_id": self.index[node.label_id],
            "z_order": 0,
        }


def _tag_as_shape(tag: Tag) -> Shape:
    return Shape("tag", tag.label_id, tag.frame, attributes=tag.attributes)


# --- import ---------------------------------------------------------------------------------


def import_datumaro(source: Path, labels: list[LabelSpec], frames: list[FrameInfo]) -> LabeledData:
    """Read the annotations/*.json of a Datumaro ZIP (or a bare JSON file) for the task."""
    files = read_annotation_files(source, (".json",))
    chosen = [f for f in files if f[0].startswith("annotations/")] or files
    if not chosen:
        raise FormatError("the archive holds no annotations/*.json file")
    reader = _Reader(labels, frames)
    for name, raw in chosen:
        reader.read(name, raw)
    return reader.tracks.finish(reader.data)


class _Reader:
    def __init__(self, labels: Sequence[LabelSpec], frames: Sequence[FrameInfo]) -> None:
        self.labels = LabelIndex(labels)
        self.frames = FrameIndex(frames)
        self.data = LabeledData(tags=[], shapes=[], tracks=[])
        self.tracks = TrackFrames(self.frames.stop_frame)

    def read(self, name: str, raw: bytes) -> None:
        document = parse_json(name, raw, "Datumaro")
        categories = document.get("categories", {})
        if not isinstance(categories, dict) or not isinstance(categories.get("label"), dict):
            raise FormatError(f"{name}: 'categories' has no 'label' section")
        names = self._label_names(name, categories["label"])
        for item in list_of_dicts(document, "items", name):
            entries = list_of_dicts(item, "annotations", name)
            if not entries:
                continue  # an empty item needs no frame (a task export read into a job)
            frame = self._frame(name, item)
            for entry in entries:
                where = f"{name}: item {item.get('id')!r}, annotation {entry.get('id')!r}"
                self._annotation(name, entry, names, frame, where)

    @staticmethod
    def _label_names(name: str, section: dict) -> list[tuple[str, str]]:
        """(name, parent) of each label index."""
        result = []
        for entry in list_of_dicts(section, "labels", name):
            label, parent = entry.get("name"), entry.get("parent") or ""
            if not isinstance(label, str) or not isinstance(parent, str):
                raise FormatError(f"{name}: a label has no name")
            result.append((label, parent))
        return result

    def _frame(self, name: str, item: dict) -> FrameInfo:
        ident = item.get("id")
        if not isinstance(ident, str | int) or isinstance(ident, bool):
            raise FormatError(f"{name}: an item has no id")
        attr = item.get("attr") or {}
        number = attr.get("frame") if isinstance(attr, dict) else None
        number = number if isinstance(number, int) and not isinstance(number, bool) else None
        image = item.get("image") or item.get("media") or {}
        path = image.get("path") if isinstance(image, dict) else None
        found = self.frames.match(path) if isinstance(path, str) else None
        return found or self.frames.require_item(str(ident), number)

    def _label(self, names: list[tuple[str, str]], raw: object, where: str) -> tuple[str, str]:
        index = whole(raw, f"{where}: label_id")
        if not 0 <= index < len(names):
            raise FormatError(f"{where}: label_id {index} is not in the categories")
        return names[index]

    def _annotation(
        self, name: str, entry: dict, names: list[tuple[str, str]], frame: FrameInfo, where: str
    ) -> None:
        kind = entry.get("type")
        label_name, parent = self._label(names, entry.get("label_id"), where)
        if parent:
            raise FormatError(f"{where}: the skeleton point {label_name!r} stands alone")
        label = self.labels.top(label_name)
        fields = ObjectFields.read(entry.get("attributes", {}), entry, label, where)
        group = whole(entry.get("group", 0), f"{where}: group")
        z_order = whole(entry.get("z_order", 0), f"{where}: z_order")
        if kind == "label":
            self.data.tags.append(
                Tag(label.id, frame.index, group=group, source="file", attributes=fields.attributes)
            )
            return
        shape_type, points = self._geometry(entry, kind, frame, where)
        if points is None:
            return
        nodes = []
        if shape_type == "skeleton":
            nodes = self._nodes(name, entry, names, label, frame, where)
        if fields.track_id is not None:
            elements = [(node.label_id, as_tracked(node)) for node in nodes]
            shape = fields.tracked(shape_type, points, frame.index, z_order)
            self.tracks.add(name, fields.track_id, label, shape, fields.keyframe, group, elements)
            return
        self.data.shapes.append(
            fields.shape(
                shape_type, points, label, frame.index, group, z_order=z_order, elements=nodes
            )
        )

    def _geometry(
        self, entry: dict, kind: object, frame: FrameInfo, where: str
    ) -> tuple[str, list[float] | None]:
        if kind == "bbox":
            box = numbers(entry.get("bbox"), f"{where}: bbox")
            if len(box) != 4 or box[2] < 0 or box[3] < 0:
                raise FormatError(f"{where}: a bbox is [x, y, width, height]")
            return "rectangle", [box[0], box[1], box[0] + box[2], box[1] + box[3]]
        if kind in PLAIN_POINT_TYPES:
            points = numbers(entry.get("points"), f"{where}: points")
            least = {"polygon": 6, "polyline": 4, "points": 2}[kind]  # type: ignore[index]
            if len(points) % 2 or len(points) < least:
                raise FormatError(f"{where}: too few or unpaired points for a {kind}")
            return PLAIN_POINT_TYPES[kind], points  # type: ignore[index]
        if kind == "ellipse":
            x0, y0, x1, y1 = self._exactly(entry, 4, where)
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            return "ellipse", [cx, cy, x1, y0]
        if kind == "cuboid_2d":
            raw = entry.get("points")
            if isinstance(raw, list) and all(isinstance(p, list) for p in raw):
                entry = {"points": [v for pair in raw for v in pair]}
            return "cuboid", self._exactly(entry, 16, where)
        if kind == "mask":
            rle = entry.get("rle")
            if not isinstance(rle, dict):
                raise FormatError(f"{where}: a mask needs an 'rle' object")
            bitmap = masks.coco_rle_bitmap(rle, frame.height, frame.width)
            return "mask", masks.bitmap_to_cvat(bitmap)
        if kind == "skeleton":
            return "skeleton", []
        raise FormatError(f"{where}: the annotation type {kind!r} is not supported")

    @staticmethod
    def _exactly(entry: dict, count: int, where: str) -> list[float]:
        points = numbers(entry.get("points"), f"{where}: points")
        if len(points) != count:
            raise FormatError(f"{where}: expected {count} coordinates, got {len(points)}")
        return points

    def _nodes(
        self,
        name: str,
        entry: dict,
        names: list[tuple[str, str]],
        skeleton: LabelSpec,
        frame: FrameInfo,
        where: str,
    ) -> list[Shape]:
        nodes = []
        for element in list_of_dicts(entry, "elements", name):
            node_name, parent = self._label(names, element.get("label_id"), where)
            if parent != skeleton.name:
                raise FormatError(f"{where}: {node_name!r} is not a point of {skeleton.name!r}")
            node = self.labels.node(skeleton, node_name)
            points = numbers(element.get("points"), f"{where}: points")
            if len(points) != 2:
                raise FormatError(f"{where}: a skeleton point has one x, y pair")
            visibility = element.get("visibility", [VISIBLE])
            state = visibility[0] if isinstance(visibility, list) and visibility else VISIBLE
            fields = ObjectFields.read(element.get("attributes", {}), element, node, where)
            node_shape = fields.shape("points", points, node, frame.index)
            nodes.append(
                msgspec.structs.replace(
                    node_shape,
                    outside=state == ABSENT,
                    occluded=state == HIDDEN or fields.occluded,
                    score=1.0,
                )
            )
        return nodes
