"""CVAT's native XML formats: "CVAT for images 1.1" and "CVAT for video 1.1" export (manual
2.28.1 and 2.29).

Images layout: one ``<image id name width height>`` per frame (empty ones too) holding its
shapes (ordered by z_order) and tags. Tracks are written as their visible per-frame shapes,
without track ids, as CVAT does ("track id will be lost").

Video layout: one ``<track id label source>`` per track with one element per frame carrying
``frame keyframe outside occluded``: the visible frames, interpolated ones with
``keyframe="0"``, and the outside keyframes. Plain shapes become one-frame tracks ending
with an outside keyframe on the next frame (unless that is past the last frame). Tags are
not carried.

Frame numbers (``<image id>``, a track's ``frame``) are CVAT's: ``start_frame + index *
step`` of the task's data, as CVAT writes them.

The reading ("CVAT 1.1" import) is in `workers.formats.cvat_import`.
"""

from __future__ import annotations

import zipfile
from collections import defaultdict
from collections.abc import Iterable, Sequence

from lxml import etree

from core.annotations import (
    AttributeValue,
    Shape,
    Tag,
    Track,
    TrackedShape,
)
from core.interpolation import interpolate_skeleton, interpolate_track
from workers.formats import cvat_xml as cx
from workers.formats.archives import write_images
from workers.formats.dataset import FrameInfo, ImageSource, TaskDataset
from workers.formats.mapping import LabelIndex
from workers.formats.tracks import flatten

ANNOTATIONS_FILE = "annotations.xml"


# --- export: common -------------------------------------------------------------------------

LEVELS = tuple("  " * level for level in range(8))


def _write_document(out: zipfile.ZipFile, dataset: TaskDataset, body: Iterable[str]) -> None:
    """annotations.xml: ``<version>``, ``<meta>`` and the ``body`` fragments (elements as
    text indented one level), as lxml writes and indents a document."""
    with out.open(ANNOTATIONS_FILE, "w") as stream:
        stream.write(b"<?xml version='1.0' encoding='utf-8'?>\n<annotations>")
        version = etree.Element("version")
        version.text = "1.1"
        for element in (version, cx.meta_element(dataset)):
            etree.indent(element, space="  ", level=1)
            stream.write(b"\n  " + etree.tostring(element, encoding="utf-8"))
        for fragment in body:
            stream.write(b"\n" + fragment.encode())
        stream.write(b"\n</annotations>")


class _Names:
    """Label and attribute names by id, escaped for XML once."""

    def __init__(self, labels: LabelIndex) -> None:
        self.labels = labels
        self.quoted: dict[int, str | None] = {}
        self.attributes: dict[int, dict[int, str]] = {}

    def label(self, label_id: int) -> str | None:
        if label_id not in self.quoted:
            name = self.labels.name(label_id)
            self.quoted[label_id] = None if name is None else cx.quoted(name)
        return self.quoted[label_id]

    def attribute_lines(
        self, pad: str, label_id: int, values: Sequence[AttributeValue]
    ) -> list[str]:
        if not values:
            return []
        names = self.attributes.get(label_id)
        if names is None:
            names = self.attributes[label_id] = self.labels.attribute_names(label_id)
        return [
            cx.attribute_markup(pad, names[v.spec_id], v.value)
            for v in values
            if v.spec_id in names
        ]


# --- export: CVAT for images ----------------------------------------------------------------


def export_images(
    dataset: TaskDataset, out: zipfile.ZipFile, *, images: ImageSource | None = None
) -> list[str]:
    """Write annotations.xml in the images layout (and the frames under images/)."""
    names = _Names(LabelIndex(dataset.labels))
    flat, warnings = flatten(dataset.annotations, dataset.stop_frame)
    shapes: dict[int, list[Shape]] = defaultdict(list)
    for item in flat:
        shapes[item.shape.frame].append(item.shape)
    tags: dict[int, list[Tag]] = defaultdict(list)
    for tag in dataset.annotations.tags:
        tags[tag.frame].append(tag)
    known = {frame.index for frame in dataset.frames}
    _warn_unknown_frames(set(shapes) | set(tags), known, warnings)
    body = (
        _image_markup(frame, shapes[frame.index], tags[frame.index], names, warnings)
        for frame in sorted(dataset.frames, key=lambda f: f.index)
    )
    _write_document(out, dataset, body)
    if images is not None:
        _write_frames(out, dataset.frames, images)
    return warnings


def _write_frames(out: zipfile.ZipFile, frames: Sequence[FrameInfo], images: ImageSource) -> None:
    """Frames under images/, or images/<subset>/ for frames of a project's subset."""
    by_folder: dict[str, list[FrameInfo]] = defaultdict(list)
    for frame in frames:
        by_folder[f"images/{frame.subset}" if frame.subset else "images"].append(frame)
    for folder, members in by_folder.items():
        write_images(out, members, images, folder)


def _warn_unknown_frames(used: set[int], known: set[int], warnings: list[str]) -> None:
    missing = sorted(used - known)
    if missing:
        warnings.append(f"objects on frames {missing[:10]} outside the task were left out")


def _image_markup(
    frame: FrameInfo,
    shapes: list[Shape],
    tags: list[Tag],
    names: _Names,
    warnings: list[str],
) -> str:
    subset = f' subset="{cx.quoted(frame.subset)}"' if frame.subset else ""
    attributes = (
        f' id="{frame.cvat_number}" name="{cx.quoted(frame.name)}"{subset}'
        f' width="{frame.width}" height="{frame.height}"'
    )
    children = []
    for shape in sorted(shapes, key=lambda s: s.z_order):
        child = _shape_markup(shape, names, warnings, 2)
        if child is not None:
            children.append(child)
    children.extend(_tag_markup(tag, names) for tag in tags)
    return cx.element_markup(LEVELS[1], "image", attributes, children)


def _shape_markup(
    shape: Shape, names: _Names, warnings: list[str], level: int, *, node: bool = False
) -> str | None:
    label = names.label(shape.label_id)
    tag = cx.TYPE_TO_TAG.get(shape.type)
    if label is None or tag is None:
        warnings.append(f"shape {shape.id} has an unknown label or type and was left out")
        return None
    try:
        geometry = cx.geometry_markup(shape.type, shape.points, shape.rotation)
    except (IndexError, ValueError) as error:
        warnings.append(f"shape {shape.id} ({shape.type}) was left out: {error}")
        return None
    attributes = f' label="{label}" source="{cx.quoted(shape.source)}"'
    if node:
        attributes += f' outside="{cx.flag(shape.outside)}"'
    if shape.type != "skeleton":
        attributes += f' occluded="{cx.flag(shape.occluded)}"'
    attributes += geometry
    if not node:
        attributes += f' z_order="{shape.z_order}"'
    if shape.group:
        attributes += f' group_id="{shape.group}"'
    children = []
    for part in shape.elements:
        child = _shape_markup(part, names, warnings, level + 1, node=True)
        if child is not None:
            children.append(child)
    children += names.attribute_lines(LEVELS[level + 1], shape.label_id, shape.attributes)
    return cx.element_markup(LEVELS[level], tag, attributes, children)


def _tag_markup(tag: Tag, names: _Names) -> str:
    attributes = f' label="{names.label(tag.label_id) or ""}" source="{cx.quoted(tag.source)}"'
    if tag.group:
        attributes += f' group_id="{tag.group}"'
    children = names.attribute_lines(LEVELS[3], tag.label_id, tag.attributes)
    return cx.element_markup(LEVELS[2], "tag", attributes, children)


# --- export: CVAT for video -----------------------------------------------------------------


def export_video(
    dataset: TaskDataset, out: zipfile.ZipFile, *, images: ImageSource | None = None
) -> list[str]:
    """Write annotations.xml in the video layout (and the frames under images/)."""
    names = _Names(LabelIndex(dataset.labels))
    stop = dataset.stop_frame
    numbers = dataset.frame_numbers()
    warnings: list[str] = []
    if dataset.annotations.tags:
        warnings.append(f"{len(dataset.annotations.tags)} tags were left out (not carried)")
    tracks = [*dataset.annotations.tracks]
    tracks.extend(shape_as_track(shape, stop) for shape in dataset.annotations.shapes)
    body = (
        markup
        for index, track in enumerate(tracks)
        if (markup := _track_markup(index, track, stop, numbers, names, warnings)) is not None
    )
    _write_document(out, dataset, body)
    if images is not None:
        _write_frames(out, dataset.frames, images)
    return warnings


def shape_as_track(shape: Shape, stop_frame: int) -> Track:
    """A one-frame track for a shape, ended by an outside keyframe on the next frame."""
    elements = [
        Track(
            label_id=part.label_id,
            frame=shape.frame,
            shapes=_one_frame(part, stop_frame),
            source=part.source,
        )
        for part in shape.elements
    ]
    return Track(
        label_id=shape.label_id,
        frame=shape.frame,
        shapes=_one_frame(shape, stop_frame),
        group=shape.group,
        source=shape.source,
        elements=elements,
    )


def _one_frame(shape: Shape, stop_frame: int) -> list[TrackedShape]:
    key = TrackedShape(
        type=shape.type,
        frame=shape.frame,
        points=list(shape.points),
        occluded=shape.occluded,
        outside=shape.outside,
        z_order=shape.z_order,
        rotation=shape.rotation,
        attributes=list(shape.attributes),
    )
    if shape.frame + 1 > stop_frame:
        return [key]
    ending = TrackedShape(
        type=key.type,
        frame=shape.frame + 1,
        points=key.points,
        occluded=key.occluded,
        outside=True,
        z_order=key.z_order,
        rotation=key.rotation,
        attributes=key.attributes,
    )
    return [key, ending]


def _track_markup(
    index: int,
    track: Track,
    stop: int,
    numbers: dict[int, int],
    names: _Names,
    warnings: list[str],
) -> str | None:
    label = names.label(track.label_id)
    if label is None or not track.shapes:
        warnings.append(f"track {track.id} has an unknown label or no shapes and was left out")
        return None
    attributes = f' id="{index}" label="{label}" source="{cx.quoted(track.source)}"'
    if track.group:
        attributes += f' group_id="{track.group}"'
    try:
        if track.shapes[0].type == "skeleton":
            children = _skeleton_track_children(track, stop, numbers, names)
        else:
            children = _track_children(track, stop, numbers, names)
    except (IndexError, ValueError) as error:
        warnings.append(f"track {track.id} was left out: {error}")
        return None
    return cx.element_markup(LEVELS[1], "track", attributes, children)


def _track_children(track: Track, stop: int, numbers: dict[int, int], names: _Names) -> list[str]:
    frames = interpolate_track(track.shapes, stop_frame=stop, include_outside=True)
    children = []
    for frame in frames:
        if frame.outside and not frame.keyframe:
            continue
        attributes = (
            f' frame="{numbers.get(frame.frame, frame.frame)}"'
            f' keyframe="{cx.flag(frame.keyframe)}" outside="{cx.flag(frame.outside)}"'
            f' occluded="{cx.flag(frame.occluded)}"'
            f"{cx.geometry_markup(frame.type, frame.points, frame.rotation)}"
            f' z_order="{frame.z_order}"'
        )
        values = [*frame.attributes, *track.attributes]
        lines = names.attribute_lines(LEVELS[3], track.label_id, values)
        children.append(cx.element_markup(LEVELS[2], cx.TYPE_TO_TAG[frame.type], attributes, lines))
    return children


def _skeleton_track_children(
    track: Track, stop: int, numbers: dict[int, int], names: _Names
) -> list[str]:
    nodes = {element.label_id: element for element in track.elements}
    children = []
    for frame in interpolate_skeleton(track, stop_frame=stop, include_outside=True):
        parent = frame.shape
        elements = frame.elements
        keyframe = parent.keyframe or any(e.keyframe for e in elements.values())
        hidden = parent.outside or all(e.outside for e in elements.values())
        if not elements or (hidden and not keyframe):
            continue
        lines = []
        for label_id, node in elements.items():
            node_attributes = (
                f' label="{names.label(label_id) or ""}" keyframe="{cx.flag(node.keyframe)}"'
                f' outside="{cx.flag(node.outside)}" occluded="{cx.flag(node.occluded)}"'
                f' points="{cx.points_text(node.points)}"'
            )
            values = [*node.attributes, *nodes[label_id].attributes]
            node_lines = names.attribute_lines(LEVELS[4], label_id, values)
            lines.append(cx.element_markup(LEVELS[3], "points", node_attributes, node_lines))
        values = [*parent.attributes, *track.attributes]
        lines += names.attribute_lines(LEVELS[3], track.label_id, values)
        attributes = (
            f' frame="{numbers.get(parent.frame, parent.frame)}"'
            f' keyframe="{cx.flag(parent.keyframe)}" z_order="{parent.z_order}"'
        )
        children.append(cx.element_markup(LEVELS[2], "skeleton", attributes, lines))
    return children
