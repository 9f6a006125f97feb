"""The "PASCAL VOC 1.1" format (manual 2.28.8), laid out as Datumaro's VOC exporter does:

    Annotations/<id>.xml                  # detection: one <object> per rectangle
    ImageSets/Main/default.txt            # item ids (frame file names without extension)
    ImageSets/Main/<label>_default.txt    # classification: "<id>  1" / "<id> -1" per label
    ImageSets/Segmentation/default.txt, SegmentationClass/, SegmentationObject/
    labelmap.txt                          # label:color_rgb:parts:actions, VOC palette colors
    JPEGImages/                           # the frames, when images are exported

Rectangles are ``<object>``s: ``name``, ``truncated`` and ``difficult`` (the label's
checkbox attributes of those names), ``occluded``, ``bndbox`` (``xmin ymin xmax ymax``),
``pose`` when the label has such an attribute, and the label's other attributes, a rotation
and a track's ``track_id``/``keyframe`` under ``<attributes>``. Tags are the classification
lists (their attributes are not carried). Polygons, masks and ellipses are painted into the
segmentation PNGs (see `segmentation_mask`) and come back as polygons. Other shapes are left
out with a warning.

Import accepts that layout or a flat ZIP of XML files; an ``<object>``'s frame is the one
whose file name matches ``<filename>``, else whose number the name holds (``12.jpg``,
``frame_000012.jpg``), else the XML file's own name. Checkbox attributes named in an
object's ``<actions>`` are read too.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from core.annotations import LabeledData, Tag
from core.labels import LabelSpec
from workers.formats import cvat_xml as cx
from workers.formats.archives import read_annotation_files, write_images
from workers.formats.dataset import FormatError, FrameInfo, ImageSource, TaskDataset
from workers.formats.mapping import FrameIndex, LabelIndex
from workers.formats.object_fields import ObjectFields, TrackFrames
from workers.formats.segmentation_mask import (
    is_segmentation_member,
    read_segmentation,
    voc_colormap,
    write_segmentation,
)
from workers.formats.tracks import FlatShape, flatten
from workers.formats.xml_safe import iter_children

DETECTED = ("rectangle",)
SEGMENTED = ("polygon", "mask", "ellipse")
NATIVE = ("truncated", "difficult", "pose", "occluded")
_FRAME_NUMBER = re.compile(r"^(?:frame_)?(\d+)$")

# --- export ---------------------------------------------------------------------------------


def export_pascal_voc(
    dataset: TaskDataset, out: zipfile.ZipFile, *, images: ImageSource | None = None
) -> list[str]:
    """Write the VOC detection, classification and segmentation files (and JPEGImages/)."""
    subset = dataset.subset or "default"
    flat, warnings = flatten(dataset.annotations, dataset.stop_frame)
    carried = DETECTED + SEGMENTED
    dropped = Counter(item.shape.type for item in flat if item.shape.type not in carried)
    for shape_type, count in sorted(dropped.items()):
        warnings.append(f"{count} {shape_type} shapes were left out (VOC does not carry them)")
    if any(tag.attributes for tag in dataset.annotations.tags):
        warnings.append("the attributes of tags were left out (VOC does not carry them)")
    labels = LabelIndex(dataset.labels)
    boxes: dict[int, list[FlatShape]] = defaultdict(list)
    for item in flat:
        if item.shape.type in DETECTED:
            boxes[item.shape.frame].append(item)
    segmented = [item for item in flat if item.shape.type in SEGMENTED]
    painted = {item.shape.frame for item in segmented}
    frames = sorted(dataset.frames, key=lambda f: f.index)
    for frame in frames:
        document = _annotation_xml(frame, boxes[frame.index], labels, frame.index in painted)
        out.writestr(f"Annotations/{frame.item_id}.xml", document)
    ids = [frame.item_id for frame in frames]
    out.writestr(f"ImageSets/Main/{subset}.txt", "".join(f"{i}\n" for i in ids))
    tagged: dict[int, set[int]] = defaultdict(set)
    for tag in dataset.annotations.tags:
        tagged[tag.label_id].add(tag.frame)
    for label in dataset.labels:
        lines = [f"{f.item_id} {' 1' if f.index in tagged[label.id] else '-1'}\n" for f in frames]
        out.writestr(f"ImageSets/Main/{list_name(label)}_{subset}.txt", "".join(lines))
    write_segmentation(out, dataset, segmented, voc_colormap(dataset.labels), warnings)
    if images is not None:
        write_images(out, frames, images, "JPEGImages")
    return warnings


def _annotation_xml(
    frame: FrameInfo, boxes: list[FlatShape], labels: LabelIndex, segmented: bool
) -> bytes:
    root = etree.Element("annotation")
    etree.SubElement(root, "folder").text = ""
    etree.SubElement(root, "filename").text = cx.clean(frame.name)
    source = etree.SubElement(root, "source")
    for tag in ("database", "annotation", "image"):
        etree.SubElement(source, tag).text = "Unknown"
    size = etree.SubElement(root, "size")
    etree.SubElement(size, "width").text = str(frame.width)
    etree.SubElement(size, "height").text = str(frame.height)
    etree.SubElement(size, "depth").text = ""
    etree.SubElement(root, "segmented").text = "1" if segmented else "0"
    for item in sorted(boxes, key=lambda b: b.shape.z_order):
        label = labels.by_id.get(item.shape.label_id)
        if label is not None:
            root.append(_object_element(item, label))
    etree.indent(root, space="  ")
    return etree.tostring(root, encoding="utf-8", xml_declaration=True)


def _object_element(item: FlatShape, label: LabelSpec) -> etree._Element:
    shape = item.shape
    values = {spec.name: spec.default_value for spec in label.attributes}
    names = {spec.id: spec.name for spec in label.attributes}
    values.update({names[v.spec_id]: v.value for v in shape.attributes if v.spec_id in names})
    element = etree.Element("object")
    etree.SubElement(element, "name").text = cx.clean(label.name)
    if "pose" in values:
        etree.SubElement(element, "pose").text = cx.clean(values["pose"])
    for name in ("truncated", "difficult"):
        if name in values:
            etree.SubElement(element, name).text = _bit(values[name])
    etree.SubElement(element, "occluded").text = "1" if shape.occluded else "0"
    box = etree.SubElement(element, "bndbox")
    for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), shape.points[:4], strict=False):
        etree.SubElement(box, tag).text = repr(float(value))
    extras = {name: value for name, value in values.items() if name not in NATIVE}
    if shape.rotation:
        extras["rotation"] = repr(float(shape.rotation))
    if item.track_id is not None:
        extras["track_id"] = str(item.track_id)
        extras["keyframe"] = "true" if item.keyframe else "false"
    if extras:
        attributes = etree.SubElement(element, "attributes")
        for name, value in extras.items():
            attribute = etree.SubElement(attributes, "attribute")
            etree.SubElement(attribute, "name").text = cx.clean(name)
            etree.SubElement(attribute, "value").text = cx.clean(value)
    return element


def list_name(label: LabelSpec) -> str:
    """A label's name as its classification list names it (no folder separators)."""
    return label.name.replace("/", "_").replace("\\", "_")


def _bit(value: str) -> str:
    return "1" if value.strip().lower() in ("true", "1") else "0"


# --- import ---------------------------------------------------------------------------------


def import_pascal_voc(
    source: Path, labels: list[LabelSpec], frames: list[FrameInfo]
) -> LabeledData:
    """Read the Annotations XML, classification lists and segmentation PNGs of a VOC ZIP."""
    if not zipfile.is_zipfile(source):
        raise FormatError("upload a ZIP archive of VOC annotation files")
    files = read_annotation_files(source, (".xml", ".txt", ".png"), _is_voc_member)
    if not files:
        raise FormatError("the archive holds no VOC annotation file")
    reader = _VocReader(labels, frames)
    for name, raw in files:
        if name.lower().endswith(".xml"):
            reader.annotation(name, raw)
        elif _folder_of(name) == "Main":
            reader.classification(name, raw)
    segmentation = {name: raw for name, raw in files if not name.lower().endswith(".xml")}
    default_colormap = voc_colormap(labels)
    reader.data.shapes.extend(read_segmentation(segmentation, labels, frames, default_colormap))
    return reader.tracks.finish(reader.data)


def _folder_of(name: str) -> str:
    parts = name.split("/")
    return parts[-2] if len(parts) >= 2 else ""


def _is_voc_member(name: str) -> bool:
    """Annotation XML (anywhere but among images), the Main lists, labelmap and the PNGs of
    the segmentation folders."""
    if name.lower().endswith(".xml"):
        return "JPEGImages" not in name.split("/")
    if name.lower().endswith(".txt") and _folder_of(name) == "Main":
        return True
    return is_segmentation_member(name)


@dataclass
class _Object:
    """One <object> as read, before its frame is known."""

    label: LabelSpec
    box: list[float]
    fields: ObjectFields


@dataclass
class _Document:
    filename: str | None = None
    objects: list[_Object] = field(default_factory=list)


class _VocReader:
    def __init__(self, labels: Sequence[LabelSpec], frames: Sequence[FrameInfo]) -> None:
        self.labels = LabelIndex(labels)
        self.frames = FrameIndex(frames)
        self.data = LabeledData(tags=[], shapes=[], tracks=[])
        self.tracks = TrackFrames(self.frames.stop_frame)

    def annotation(self, name: str, raw: bytes) -> None:
        document = _Document()
        for child in iter_children(raw, "annotation"):
            if child.tag == "filename":
                document.filename = (child.text or "").strip()
            elif child.tag == "object":
                document.objects.append(self._object(name, child))
        if not document.objects:
            return  # an empty image needs no frame (a task export read into a job)
        frame = self._frame(name, document.filename)
        for obj in document.objects:
            fields = obj.fields
            if fields.track_id is not None:
                shape = fields.tracked("rectangle", obj.box, frame.index)
                # one track spans the XML files of many frames
                self.tracks.add("", fields.track_id, obj.label, shape, fields.keyframe)
            else:
                self.data.shapes.append(fields.shape("rectangle", obj.box, obj.label, frame.index))

    def _frame(self, name: str, filename: str | None) -> FrameInfo:
        if filename:
            found = self.frames.match(filename)
            if found is not None:
                return found
            number = _FRAME_NUMBER.match(posixpath.splitext(posixpath.basename(filename))[0])
            if number and int(number.group(1)) in self.frames.by_number:
                return self.frames.by_number[int(number.group(1))]
        own = posixpath.splitext(name)[0].split("Annotations/", 1)[-1]
        found = self.frames.match_item(own)
        if found is None:
            raise FormatError(
                f"{name}: the image {filename or own!r} does not match any frame of the task"
            )
        return found

    def _object(self, name: str, element: etree._Element) -> _Object:
        where = f"{name}: <object> on line {element.sourceline}"
        label = self.labels.top((element.findtext("name") or "").strip())
        values: dict[str, object] = {}
        for tag in ("truncated", "difficult", "pose"):
            text = element.findtext(tag)
            if text is not None:
                values[tag] = _flag_text(text) if tag != "pose" else text.strip()
        for action in element.iterfind("actions/*"):
            values[action.tag] = _flag_text(action.text or "")
        for attribute in element.iterfind("attributes/attribute"):
            values[(attribute.findtext("name") or "").strip()] = attribute.findtext("value") or ""
        occluded = element.findtext("occluded")
        if occluded is not None:
            values["occluded"] = occluded.strip()
        fields = ObjectFields.read(_typed_reserved(values), {}, label, where)
        return _Object(label, self._box(element, where), fields)

    @staticmethod
    def _box(element: etree._Element, where: str) -> list[float]:
        box = element.find("bndbox")
        if box is None:
            raise FormatError(f"{where} has no <bndbox>")
        values = []
        for tag in ("xmin", "ymin", "xmax", "ymax"):
            text = box.findtext(tag)
            try:
                value = float(text) if text is not None else float("nan")
            except ValueError:
                raise FormatError(f"{where}: <{tag}> {text!r} is not a number") from None
            if value != value or value in (float("inf"), float("-inf")):
                raise FormatError(f"{where}: <{tag}> {text!r} is not a finite number")
            values.append(value)
        if values[2] < values[0] or values[3] < values[1]:
            raise FormatError(f"{where}: the box ends before it starts")
        return values

    def classification(self, name: str, raw: bytes) -> None:
        stem = posixpath.splitext(posixpath.basename(name))[0]
        label = next(
            (
                spec
                for spec in sorted(self.labels.labels, key=lambda s: -len(s.name))
                if stem.startswith(f"{list_name(spec)}_")
            ),
            None,
        )
        try:
            lines = raw.decode("utf-8").splitlines()
        except UnicodeDecodeError:
            raise FormatError(f"{name} is not UTF-8 text") from None
        for number, line in enumerate(lines, start=1):
            parts = line.split()
            if len(parts) < 2:
                continue  # the subset list itself, or a blank line
            if parts[-1] not in ("1", "-1", "0"):
                raise FormatError(f"{name} line {number}: {parts[-1]!r} is not 1, 0 or -1")
            if parts[-1] != "1":
                continue
            if label is None:
                raise FormatError(f"{name}: the label of {stem!r} does not exist in the task")
            frame = self.frames.require_item(" ".join(parts[:-1]))
            self.data.tags.append(Tag(label.id, frame.index, source="file"))


def _flag_text(text: str) -> str:
    return "true" if text.strip().lower() in ("1", "true") else "false"


def _typed_reserved(values: dict[str, object]) -> dict[str, object]:
    """Reserved fields typed as `ObjectFields` reads them; label attributes kept as text."""
    result = dict(values)
    if "rotation" in result:
        try:
            result["rotation"] = float(str(result["rotation"]))
        except ValueError:
            raise FormatError(f"the rotation {result['rotation']!r} is not a number") from None
    if "track_id" in result:
        try:
            result["track_id"] = int(str(result["track_id"]))
        except ValueError:
            raise FormatError(f"the track_id {result['track_id']!r} is not a number") from None
    return result
