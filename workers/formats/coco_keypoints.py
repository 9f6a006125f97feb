"""The "COCO Keypoints 1.0" format (manual 2.28.7): skeletons as COCO person keypoints, laid
out as CVAT's Datumaro-based exporter does.

Export: ``annotations/person_keypoints_<subset|default>.json`` (+ ``images/<subset>/``).
Categories and images are those of "COCO 1.0"; a skeleton's category also lists its points
(``keypoints``, in the label's order) and edges (``skeleton``, 1-based pairs). Each skeleton
(and each visible frame of a skeleton track) is one annotation: ``keypoints`` as
``[x, y, v, ...]`` with ``v`` 0 for an outside point, 1 for an occluded one and 2 for a
visible one, ``num_keypoints`` (points with ``v > 0``), ``bbox`` and ``area`` of the visible
points, an empty ``segmentation``, and ``attributes`` as in "COCO 1.0" (``track_id`` and
``keyframe`` for track frames). Other shapes, tags and the attributes of skeleton points are
left out with a warning.

Import: the ``person_keypoints_*.json`` files of a ZIP (else its JSON files) or a bare JSON
file. Annotations with ``keypoints`` become skeletons of the category's label, their points
matched by name; annotations without keypoints (plain boxes) are skipped as CVAT does; a
point the file does not list comes back outside.
"""

from __future__ import annotations

import json
import posixpath
import zipfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from core.annotations import LabeledData, Shape
from core.labels import LabelSpec
from workers.formats.archives import read_annotation_files, write_images
from workers.formats.coco import category_ids, image_entry, info_block, names_by_id
from workers.formats.dataset import FormatError, FrameInfo, ImageSource, TaskDataset
from workers.formats.datumaro import skeleton_joints
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

# --- export ---------------------------------------------------------------------------------


def export_coco_keypoints(
    dataset: TaskDataset, out: zipfile.ZipFile, *, images: ImageSource | None = None
) -> list[str]:
    """Write annotations/person_keypoints_<subset>.json (and the frames under images/)."""
    subset = dataset.subset or "default"
    labels = LabelIndex(dataset.labels)
    categories = category_ids(dataset.labels)
    flat, warnings = flatten(dataset.annotations, dataset.stop_frame)
    dropped = Counter(item.shape.type for item in flat if item.shape.type != "skeleton")
    for shape_type, count in sorted(dropped.items()):
        warnings.append(f"{count} {shape_type} shapes were left out (COCO Keypoints has none)")
    if dataset.annotations.tags:
        warnings.append(f"{len(dataset.annotations.tags)} tags were left out (not carried)")
    skeletons = [item for item in flat if item.shape.type == "skeleton"]
    if any(node.attributes for item in skeletons for node in item.shape.elements):
        warnings.append("the attributes of skeleton points were left out (not carried)")
    frames = sorted(dataset.frames, key=lambda f: f.index)
    image_ids = {frame.index: image_id for image_id, frame in enumerate(frames, start=1)}
    annotations = []
    for item in sorted(skeletons, key=lambda i: (i.shape.frame, i.shape.z_order)):
        image_id = image_ids.get(item.shape.frame)
        label = labels.by_id.get(item.shape.label_id)
        if image_id is None or label is None:
            warnings.append(f"a skeleton on frame {item.shape.frame} was left out")
            continue
        entry = _annotation(item, label, image_id, categories[label.id][1])
        entry["id"] = len(annotations) + 1
        annotations.append(entry)
    document = {
        "licenses": [{"name": "", "id": 0, "url": ""}],
        "info": info_block(),
        "categories": [
            _category(label, ident, parent) for label, ident, parent in categories.values()
        ],
        "images": [image_entry(image_ids[frame.index], frame) for frame in frames],
        "annotations": annotations,
    }
    out.writestr(f"annotations/person_keypoints_{subset}.json", json.dumps(document))
    if images is not None:
        write_images(out, frames, images, f"images/{subset}")
    return warnings


def _category(label: LabelSpec, ident: int, parent: str) -> dict:
    return {
        "id": ident,
        "name": label.name,
        "supercategory": parent,
        "keypoints": [sub.name for sub in label.sublabels],
        "skeleton": skeleton_joints(label.svg) if label.type == "skeleton" else [],
    }


def _annotation(item: FlatShape, label: LabelSpec, image_id: int, category_id: int) -> dict:
    nodes = {node.label_id: node for node in item.shape.elements}
    keypoints: list[float] = []
    visible: list[tuple[float, float]] = []
    for sub in label.sublabels:
        node = nodes.get(sub.id)
        if node is None or len(node.points) < 2:
            keypoints.extend([0.0, 0.0, ABSENT])
            continue
        x, y = float(node.points[0]), float(node.points[1])
        state = ABSENT if node.outside else HIDDEN if node.occluded else VISIBLE
        keypoints.extend([x, y, state])
        if state != ABSENT:
            visible.append((x, y))
    if visible:
        x0, y0 = min(p[0] for p in visible), min(p[1] for p in visible)
        x1, y1 = max(p[0] for p in visible), max(p[1] for p in visible)
    else:
        x0 = y0 = x1 = y1 = 0.0
    entry: dict = {
        "id": 0,
        "image_id": image_id,
        "category_id": category_id,
        "segmentation": [],
        "area": float((x1 - x0) * (y1 - y0)),
        "bbox": [x0, y0, x1 - x0, y1 - y0],
        "iscrowd": 0,
        "attributes": attributes_dict(item, label),
        "keypoints": keypoints,
        "num_keypoints": len(visible),
    }
    if item.shape.score != 1.0:
        entry["score"] = float(item.shape.score)
    return entry


# --- import ---------------------------------------------------------------------------------


def import_coco_keypoints(
    source: Path, labels: list[LabelSpec], frames: list[FrameInfo]
) -> LabeledData:
    """Read COCO person keypoints JSON (bare, or the keypoints files of a ZIP)."""
    files = read_annotation_files(source, (".json",))
    if not files:
        raise FormatError("the archive holds no .json annotation file")
    chosen = [f for f in files if posixpath.basename(f[0]).startswith("person_keypoints_")]
    reader = _KeypointsReader(labels, frames)
    for name, raw in chosen or files:
        reader.read(name, raw)
    return reader.tracks.finish(reader.data)


class _KeypointsReader:
    def __init__(self, labels: Sequence[LabelSpec], frames: Sequence[FrameInfo]) -> None:
        self.labels = LabelIndex(labels)
        self.frames = FrameIndex(frames)
        self.data = LabeledData(tags=[], shapes=[], tracks=[])
        self.tracks = TrackFrames(self.frames.stop_frame)

    def read(self, name: str, raw: bytes) -> None:
        document = parse_json(name, raw, "COCO")
        points = self._keypoint_names(name, document)
        categories = names_by_id(document, "categories", "name", name, "category")
        images = names_by_id(document, "images", "file_name", name, "image")
        for index, entry in enumerate(list_of_dicts(document, "annotations", name)):
            if "keypoints" not in entry:
                continue
            where = f"{name}: annotation #{index} (id {entry.get('id')!r})"
            image_id = whole(entry.get("image_id"), f"{where}: image_id")
            if image_id not in images:
                raise FormatError(f"{where}: image {image_id} is not listed")
            frame = self.frames.require(images[image_id])
            category_id = whole(entry.get("category_id"), f"{where}: category_id")
            if category_id not in categories:
                raise FormatError(f"{where}: category {category_id} is not listed")
            self._skeleton(name, entry, categories[category_id], points[category_id], frame, where)

    @staticmethod
    def _keypoint_names(name: str, document: dict) -> dict[int, list[str]]:
        result = {}
        for category in list_of_dicts(document, "categories", name):
            names = category.get("keypoints", [])
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise FormatError(f"{name}: the keypoints of a category are not names")
            result[whole(category.get("id"), f"{name}: a category id")] = names
        return result

    def _skeleton(
        self,
        name: str,
        entry: dict,
        label_name: str,
        point_names: list[str],
        frame: FrameInfo,
        where: str,
    ) -> None:
        label = self.labels.top(label_name)
        if label.type != "skeleton":
            raise FormatError(f"{where}: the label {label.name!r} is not a skeleton")
        values = numbers(entry.get("keypoints"), f"{where}: keypoints")
        if len(values) != 3 * len(point_names):
            raise FormatError(
                f"{where}: {len(values)} keypoint values for {len(point_names)} points"
            )
        fields = ObjectFields.read(entry.get("attributes", {}), entry, label, where)
        found: dict[int, Shape] = {}
        for position, point_name in enumerate(point_names):
            x, y, state = values[3 * position : 3 * position + 3]
            if state not in (ABSENT, HIDDEN, VISIBLE):
                raise FormatError(f"{where}: visibility {state!r} is not 0, 1 or 2")
            node = self.labels.node(label, point_name)
            found[node.id] = _node(node, frame.index, [x, y], state)
        nodes = [
            found.get(sub.id) or _node(sub, frame.index, [0.0, 0.0], ABSENT)
            for sub in label.sublabels
        ]
        if fields.track_id is not None:
            elements = [(node.label_id, as_tracked(node)) for node in nodes]
            shape = fields.tracked("skeleton", [], frame.index)
            self.tracks.add(name, fields.track_id, label, shape, fields.keyframe, 0, elements)
            return
        self.data.shapes.append(fields.shape("skeleton", [], label, frame.index, elements=nodes))


def _node(label: LabelSpec, frame: int, points: list[float], state: float) -> Shape:
    return Shape(
        type="points",
        label_id=label.id,
        frame=frame,
        points=points,
        occluded=state == HIDDEN,
        outside=state == ABSENT,
        source="file",
    )
