"""Reading CVAT's XML ("CVAT 1.1" import of both the images and the video layout; manual
2.28.1 and 2.29); the writing is in `workers.formats.cvat_images`.

Import reads ``<image>`` shapes and tags (frames matched by file name without extension,
then by id) and ``<track>`` keyframes (frames by number); skeleton tracks rebuild their
points' tracks from the ``<points>`` of each ``<skeleton>`` frame; labels and attributes are
matched by name, attributes the label lacks are dropped, an unknown label is refused.
Imported objects have source "file" and no ids, as in CVAT. Unlike CVAT, a mask track stays
a track.

A document is read as a stream of parser events (`_Events`): the plain shapes and tags of
an <image> (with their <attribute> values) are made straight from the parser's attribute
dicts, without an element object; anything else (skeletons, masks, tracks, a value that
is not well formed) is rebuilt as a small element tree for the element readers. Rebuilt
elements know no line numbers, so on any refusal the document is read again element by
element, whose errors name the line.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from lxml import etree

from core.annotations import (
    AttributeValue,
    LabeledData,
    Shape,
    Tag,
    TrackedShape,
)
from core.labels import LabelSpec
from workers.formats import cvat_xml as cx
from workers.formats.archives import read_annotation_files
from workers.formats.dataset import FormatError, FrameInfo
from workers.formats.mapping import FrameIndex, LabelIndex, attribute_value
from workers.formats.tracks import Observation, TrackParts, rebuild_track
from workers.formats.xml_safe import MAX_DEPTH, feed_events, iter_children

ANNOTATIONS_FILE = "annotations.xml"


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
