"""CVAT's native XML formats: "CVAT for images 1.1" and "CVAT for video 1.1" export, and the
"CVAT 1.1" import that reads both (manual 2.28.1 and 2.29).

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

Import reads ``<image>`` shapes and tags (frames matched by file name without extension,
then by id) and ``<track>`` keyframes (frames by number); skeleton tracks rebuild their
points' tracks from the ``<points>`` of each ``<skeleton>`` frame; labels and attributes are
matched by name, attributes the label lacks are dropped, an unknown label is refused.
Imported objects have source "file" and no ids, as in CVAT. Unlike CVAT, a mask track stays
a track.
"""

from __future__ import annotations

import zipfile
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from lxml import etree

from core.annotations import (
    AttributeValue,
    LabeledData,
    Shape,
    Tag,
    Track,
    TrackedShape,
)
from core.interpolation import interpolate_skeleton, interpolate_track
from core.labels import LabelSpec
from workers.formats import cvat_xml as cx
from workers.formats.archives import read_annotation_files, write_images
from workers.formats.dataset import FormatError, FrameInfo, ImageSource, TaskDataset
from workers.formats.mapping import FrameIndex, LabelIndex, attribute_value
from workers.formats.tracks import Observation, TrackParts, flatten, rebuild_track
from workers.formats.xml_safe import MAX_DEPTH, feed_events, iter_children

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


# --- import ---------------------------------------------------------------------------------
# A document is read as a stream of parser events (`_Events`): the plain shapes and tags of
# an <image> (with their <attribute> values) are made straight from the parser's attribute
# dicts, without an element object; anything else (skeletons, masks, tracks, a value that
# is not well formed) is rebuilt as a small element tree for the element readers. Rebuilt
# elements know no line numbers, so on any refusal the document is read again element by
# element, whose errors name the line.


class _Unusual(Exception):
    """Markup the event reader leaves to the element reader (CVAT never writes it)."""


def _empty() -> LabeledData:
    return LabeledData(tags=[], shapes=[], tracks=[])


class _Reader:
    """Reads the objects of CVAT XML documents for one task."""

    def __init__(self, labels: Sequence[LabelSpec], frames: Sequence[FrameInfo]) -> None:
        self.labels = LabelIndex(labels)
        self.frames = FrameIndex(frames)
        self.data = _empty()

    def read(self, document: bytes) -> LabeledData:
        """The objects of one document: from its parser events, else (when those are
        refused, or unusual) element by element, refusing with the line."""
        self.data = _empty()
        try:
            feed_events(document, "annotations", _Events(self))
        except (FormatError, _Unusual):
            return self.read_elements(document)
        return self.data

    def read_elements(self, document: bytes) -> LabeledData:
        self.data = _empty()
        for element in iter_children(document, "annotations"):
            if element.tag == "image":
                self._image(element)
            elif element.tag == "track":
                self.track(element)
        return self.data

    # images

    def frame(self, name: str | None, number: str | None) -> int:
        """The index of the frame an ``<image name id>`` stands for."""
        return self.frames.require(name, _optional_int(number)).index

    def _image(self, element: etree._Element) -> None:
        frame = self.frame(element.get("name"), element.get("id"))
        for child in element:
            self.child(child, frame)

    def child(self, element: etree._Element, frame: int) -> None:
        """A tag or shape of an ``<image>`` (other elements are ignored)."""
        if element.tag == "tag":
            self.data.tags.append(self._tag(element, frame))
        elif element.tag in cx.TAG_TO_TYPE:
            shape = None
            if not len(element):
                shape = self.plain_shape(element.tag, dict(element.items()), frame, ())
            self.data.shapes.append(shape or self._shape(element, frame))

    def plain_shape(
        self,
        tag: str,
        fields: dict[str, str],
        frame: int,
        attributes: Sequence[tuple[str, str]],
    ) -> Shape | None:
        """The shape of a box, polygon, polyline or points element from its XML attributes
        and ``<attribute>`` (name, text) pairs when its fields are all well formed (the
        common case, read in one go); None for anything else, which `_shape` reads field by
        field, naming what is wrong."""
        shape_type = cx.PLAIN_TAGS.get(tag)
        label = self.labels.by_name.get(fields.get("label", ""))
        if shape_type is None or label is None:
            return None
        get = fields.get
        try:
            points = cx.plain_points(shape_type, fields)
            occluded = cx.FLAGS[get("occluded", "0")]
            z_order = cx.whole_number(get("z_order"))
            group = cx.whole_number(get("group_id"))
            rotation = get("rotation")
            rotation = 0.0 if rotation is None else float(rotation)
        except (KeyError, ValueError):
            return None
        if points is None:
            return None
        total = sum(points) + rotation
        if total - total:  # not finite (or so large it overflows: read field by field)
            return None
        return Shape(
            shape_type,
            label.id,
            frame,
            points,
            occluded,
            False,
            z_order,
            rotation,
            group,
            "file",
            attributes=self._attribute_values(label, attributes) if attributes else [],
        )

    def plain_tag(
        self, fields: dict[str, str], frame: int, attributes: Sequence[tuple[str, str]]
    ) -> Tag | None:
        """A ``<tag>`` from its XML attributes, as `plain_shape` reads a shape."""
        label = self.labels.by_name.get(fields.get("label", ""))
        if label is None:
            return None
        try:
            group = cx.whole_number(fields.get("group_id"))
        except ValueError:
            return None
        return Tag(
            label_id=label.id,
            frame=frame,
            group=group,
            source="file",
            attributes=self._attribute_values(label, attributes) if attributes else [],
        )

    def _tag(self, element: etree._Element, frame: int) -> Tag:
        label = self.labels.top(element.get("label"))
        return Tag(
            label_id=label.id,
            frame=frame,
            group=cx.integer(element, "group_id", 0),
            source="file",
            attributes=self._attributes(element, label),
        )

    def _shape(self, element: etree._Element, frame: int) -> Shape:
        label = self.labels.top(element.get("label"))
        shape_type = cx.TAG_TO_TYPE[element.tag]
        elements = []
        if shape_type == "skeleton":
            elements = [
                self._node(child, label, frame) for child in element if child.tag in cx.TAG_TO_TYPE
            ]
        return Shape(
            type=shape_type,
            label_id=label.id,
            frame=frame,
            points=self._geometry(element, shape_type, frame),
            occluded=cx.boolean(element, "occluded"),
            z_order=cx.integer(element, "z_order", 0),
            rotation=cx.number(element, "rotation", 0.0),
            group=cx.integer(element, "group_id", 0),
            source="file",
            attributes=self._attributes(element, label),
            elements=elements,
        )

    def _node(self, element: etree._Element, skeleton: LabelSpec, frame: int) -> Shape:
        node = self.labels.node(skeleton, element.get("label"))
        shape_type = cx.TAG_TO_TYPE[element.tag]
        return Shape(
            type=shape_type,
            label_id=node.id,
            frame=frame,
            points=self._geometry(element, shape_type, frame),
            occluded=cx.boolean(element, "occluded"),
            outside=cx.boolean(element, "outside"),
            source="file",
            attributes=self._attributes(element, node),
        )

    def _geometry(self, element: etree._Element, shape_type: str, frame: int) -> list[float]:
        points = cx.read_geometry(element, shape_type)
        info = self.frames.by_index[frame]
        if shape_type == "mask" and info.width > 0 and info.height > 0:
            if points[-2] >= info.width or points[-1] >= info.height:
                raise FormatError(
                    f"<mask> on line {element.sourceline} reaches past the frame "
                    f"({info.width}x{info.height})"
                )
        return points

    def _attributes(self, element: etree._Element, label: LabelSpec) -> list[AttributeValue]:
        pairs = [
            (child.get("name") or "", child.text or "")
            for child in element
            if child.tag == "attribute"
        ]
        return self._attribute_values(label, pairs)

    def _attribute_values(
        self, label: LabelSpec, pairs: Iterable[tuple[str, str]]
    ) -> list[AttributeValue]:
        """The label's values among (name, text) pairs; the first of a name counts."""
        values: list[AttributeValue] = []
        for name, text in pairs:
            value = attribute_value(label, name, text)
            if value is not None and all(v.spec_id != value.spec_id for v in values):
                values.append(value)
        return values

    # tracks

    def track(self, element: etree._Element) -> None:
        label = self.labels.top(element.get("label"))
        parts = TrackParts(label, cx.integer(element, "group_id", 0))
        for child in element:
            if child.tag in cx.TAG_TO_TYPE:
                self._track_frame(child, parts)
        sublabels = {sub.id: sub for sub in label.sublabels}
        track = rebuild_track(
            parts, stop_frame=self.frames.stop_frame, infer_outside=False, sublabels=sublabels
        )
        if track is not None:
            self.data.tracks.append(track)

    def _track_frame(self, element: etree._Element, parts: TrackParts) -> None:
        frame = self.frames.frame_number(cx.integer(element, "frame"))
        shape_type = cx.TAG_TO_TYPE[element.tag]
        keyframe = cx.boolean(element, "keyframe", True)
        shape = self._tracked_shape(element, shape_type, frame, parts.label)
        parts.observations.append(Observation(shape, keyframe))
        if shape_type != "skeleton":
            return
        for child in element:
            if child.tag not in cx.TAG_TO_TYPE:
                continue
            node = self.labels.node(parts.label, child.get("label"))
            node_shape = self._tracked_shape(child, cx.TAG_TO_TYPE[child.tag], frame, node)
            node_key = cx.boolean(child, "keyframe", True)
            parts.elements.setdefault(node.id, []).append(Observation(node_shape, node_key))

    def _tracked_shape(
        self, element: etree._Element, shape_type: str, frame: int, label: LabelSpec
    ) -> TrackedShape:
        return TrackedShape(
            type=shape_type,
            frame=frame,
            points=self._geometry(element, shape_type, frame),
            occluded=cx.boolean(element, "occluded"),
            outside=cx.boolean(element, "outside"),
            z_order=cx.integer(element, "z_order", 0),
            rotation=cx.number(element, "rotation", 0.0),
            attributes=self._attributes(element, label),
        )


class _Events:
    """Parser callbacks reading an annotations document into a `_Reader`: depth 1 is the
    root, 2 its ``<image>`` and ``<track>`` elements, 3 an image's tags and shapes, 4 their
    ``<attribute>`` values."""

    def __init__(self, reader: _Reader) -> None:
        self.reader = reader
        self.depth = 0
        self.frame: int | None = None  # the frame of the <image> being read
        self.pending: tuple[str, dict[str, str]] | None = None  # its plain child being read
        self.attributes: list[tuple[str, str]] = []  # that child's <attribute> values so far
        self.name = ""  # the <attribute> being read, and its text
        self.text: list[str] | None = None
        self.builder: etree.TreeBuilder | None = None  # an element being rebuilt, from depth:
        self.built_from = 0

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        self.depth += 1
        depth = self.depth
        if depth > MAX_DEPTH:
            raise _Unusual("elements nested too deep")
        if self.builder is not None:
            self.builder.start(tag, attrib)
        elif depth == 3:
            if self.frame is None:
                return
            if tag == "tag" or tag in cx.PLAIN_TAGS:
                self.pending = (tag, attrib)
                self.attributes = []
            elif tag in cx.TAG_TO_TYPE:
                self._build(tag, attrib)
        elif depth == 2:
            if tag == "image":
                self.frame = self.reader.frame(attrib.get("name"), attrib.get("id"))
            elif tag == "track":
                self._build(tag, attrib)
        elif self.pending is not None:
            if depth != 4 or tag != "attribute":
                raise _Unusual(f"<{tag}> inside <{self.pending[0]}>")
            self.name = attrib.get("name") or ""
            self.text = []

    def data(self, text: str) -> None:
        if self.builder is not None:
            self.builder.data(text)
        elif self.text is not None:
            self.text.append(text)

    def end(self, tag: str) -> None:
        depth = self.depth
        self.depth -= 1
        if self.builder is not None:
            self.builder.end(tag)
            if depth == self.built_from:
                self._built(self.builder.close())
        elif self.text is not None:
            self.attributes.append((self.name, "".join(self.text)))
            self.text = None
        elif self.pending is not None:
            self._plain(*self.pending)
            self.pending = None
        elif depth == 2:
            self.frame = None

    def close(self) -> None:
        return None

    def _plain(self, tag: str, fields: dict[str, str]) -> None:
        reader, frame = self.reader, self.frame
        assert frame is not None
        if tag == "tag":
            made_tag = reader.plain_tag(fields, frame, self.attributes)
            if made_tag is not None:
                reader.data.tags.append(made_tag)
                return
        else:
            shape = reader.plain_shape(tag, fields, frame, self.attributes)
            if shape is not None:
                reader.data.shapes.append(shape)
                return
        element = etree.Element(tag, fields)
        for name, text in self.attributes:
            etree.SubElement(element, "attribute", name=name).text = text
        reader.child(element, frame)

    def _build(self, tag: str, attrib: dict[str, str]) -> None:
        self.builder = etree.TreeBuilder()
        self.builder.start(tag, attrib)
        self.built_from = self.depth

    def _built(self, element: etree._Element) -> None:
        self.builder = None
        if element.tag == "track":
            self.reader.track(element)
        else:
            assert self.frame is not None
            self.reader.child(element, self.frame)


def _optional_int(raw: str | None) -> int | None:
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def import_cvat(source: Path, labels: list[LabelSpec], frames: list[FrameInfo]) -> LabeledData:
    """Read a CVAT XML file, or every .xml in a ZIP, into objects for the given task."""
    documents = read_annotation_files(source, (".xml",))
    if not documents:
        raise FormatError("the archive holds no .xml annotation file")
    reader = _Reader(labels, frames)
    data = _empty()
    for _name, document in documents:
        read = reader.read(document)
        data.tags.extend(read.tags)
        data.shapes.extend(read.shapes)
        data.tracks.extend(read.tracks)
    return data
