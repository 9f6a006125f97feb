"""The "Segmentation mask 1.1" format (manual 2.28.9), and the VOC segmentation layout that
"PASCAL VOC 1.1" shares:

    labelmap.txt                      # label:color_rgb:parts:actions, background first
    ImageSets/Segmentation/default.txt  # item ids (frame file names without extension)
    SegmentationClass/<id>.png        # each pixel painted with its label's color
    SegmentationObject/<id>.png       # each pixel painted with its instance's VOC color

Export: rectangles (rotated ones as their corners), polygons, masks and ellipses are painted
in z_order, one instance per shape or per group (labelled as its largest member), instance
``n`` in the n-th color of the VOC palette; the labelmap gives each label its CVAT color
(Segmentation mask) or its VOC palette color (Pascal VOC). Polygons are filled as OpenCV
does (pixels whose centres are inside or on the outline), so a polygon traced from a mask
fills that mask again. Attributes, tags, tracks' identity and the other shape types are not
carried; tracks are painted frame by frame.

Import: each instance of SegmentationObject becomes polygons tracing its outer borders
(holes are filled, parts under 3 pixels wide dropped), several of one instance sharing a
group, labelled by the class its pixels hold in SegmentationClass; without
SegmentationObject each class is one instance. PNGs may be RGB (colors from labelmap.txt,
else the VOC palette) or 1-channel (the labelmap line index). A PNG must have its frame's
size; its header is checked before it is decoded.
"""

from __future__ import annotations

import posixpath
import struct
import zipfile
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core.annotations import LabeledData, Shape
from core.labels import LabelSpec
from workers.formats import masks
from workers.formats.archives import read_annotation_files, write_images
from workers.formats.coco import frame_instances
from workers.formats.dataset import FormatError, FrameInfo, ImageSource, TaskDataset
from workers.formats.mapping import FrameIndex, LabelIndex
from workers.formats.tracks import FlatShape, flatten

Color = tuple[int, int, int]
PAINTED = ("rectangle", "polygon", "mask", "ellipse")
BACKGROUND = "background"
VOID = 255
LABELMAP = "labelmap.txt"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SUBPIXEL_BITS = 8
MAX_UNMATCHED_PIXELS = 1 << 25


def voc_color(index: int) -> Color:
    """The ``index``-th color of the Pascal VOC palette (bits of the index spread over RGB)."""
    red = green = blue = 0
    for bit in range(7, -1, -1):
        red |= (index & 1) << bit
        green |= ((index >> 1) & 1) << bit
        blue |= ((index >> 2) & 1) << bit
        index >>= 3
    return red, green, blue


VOC_PALETTE: list[Color] = [voc_color(index) for index in range(256)]


def hex_color(text: str) -> Color:
    digits = text.lstrip("#")
    try:
        return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)
    except ValueError:
        return 0, 0, 0


# --- labelmap -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelmapEntry:
    name: str
    color: Color | None
    parts: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()


def label_colormap(labels: Sequence[LabelSpec]) -> list[LabelmapEntry]:
    """Background, then each top-level label in its CVAT color (Segmentation mask)."""
    entries = [LabelmapEntry(label.name, hex_color(label.color)) for label in labels]
    if all(label.name != BACKGROUND for label in labels):
        entries.insert(0, LabelmapEntry(BACKGROUND, (0, 0, 0)))
    return entries


def voc_colormap(labels: Sequence[LabelSpec]) -> list[LabelmapEntry]:
    """Background, then each top-level label in the VOC palette color of its index."""
    names = [label.name for label in labels if label.name != BACKGROUND]
    return [
        LabelmapEntry(name, VOC_PALETTE[index % 256])
        for index, name in enumerate([BACKGROUND, *names])
    ]


def labelmap_text(entries: Sequence[LabelmapEntry]) -> str:
    lines = ["# label:color_rgb:parts:actions"]
    for entry in entries:
        color = ",".join(str(c) for c in entry.color) if entry.color else ""
        lines.append(f"{entry.name}:{color}:{','.join(entry.parts)}:{','.join(entry.actions)}")
    return "\n".join(lines) + "\n"


def parse_labelmap(raw: bytes) -> list[LabelmapEntry]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError("labelmap.txt is not UTF-8 text") from None
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) != 4 or not fields[0]:
            raise FormatError(f"labelmap.txt line {number} is not 'label:color_rgb:parts:actions'")
        entries.append(
            LabelmapEntry(
                fields[0],
                _parse_color(fields[1], number),
                tuple(p for p in fields[2].split(",") if p),
                tuple(a for a in fields[3].split(",") if a),
            )
        )
    return entries


def _parse_color(text: str, line: int) -> Color | None:
    if not text.strip():
        return None
    parts = text.split(",")
    try:
        values = [int(part) for part in parts]
    except ValueError:
        values = []
    if len(values) != 3 or not all(0 <= v <= 255 for v in values):
        raise FormatError(f"labelmap.txt line {line}: {text!r} is not an r,g,b color")
    return values[0], values[1], values[2]


# --- export ---------------------------------------------------------------------------------


def export_segmentation_mask(
    dataset: TaskDataset, out: zipfile.ZipFile, *, images: ImageSource | None = None
) -> list[str]:
    """Write labelmap.txt, ImageSets/Segmentation/ and the class and instance PNGs."""
    flat, warnings = flatten(dataset.annotations, dataset.stop_frame)
    dropped = Counter(item.shape.type for item in flat if item.shape.type not in PAINTED)
    for shape_type, count in sorted(dropped.items()):
        warnings.append(f"{count} {shape_type} shapes were left out (masks do not carry them)")
    if dataset.annotations.tags:
        warnings.append(f"{len(dataset.annotations.tags)} tags were left out (not carried)")
    if any(item.shape.attributes for item in flat if item.shape.type in PAINTED):
        warnings.append("attributes were left out (masks do not carry them)")
    write_segmentation(out, dataset, flat, label_colormap(dataset.labels), warnings)
    if images is not None:
        write_images(out, dataset.frames, images, "JPEGImages")
    return warnings


def write_segmentation(
    out: zipfile.ZipFile,
    dataset: TaskDataset,
    flat: list[FlatShape],
    colormap: list[LabelmapEntry],
    warnings: list[str],
) -> None:
    """The segmentation part of a VOC dataset, painting the ``PAINTED`` shapes of ``flat``."""
    subset = dataset.subset or "default"
    class_of = {entry.name: index for index, entry in enumerate(colormap)}
    labels = LabelIndex(dataset.labels)
    by_frame: dict[int, list[FlatShape]] = defaultdict(list)
    for item in flat:
        if item.shape.type in PAINTED:
            by_frame[item.shape.frame].append(item)
    frames = sorted(dataset.frames, key=lambda f: f.index)
    class_colors = [entry.color or (0, 0, 0) for entry in colormap]
    ids = []
    for frame in frames:
        ident = frame.item_id
        ids.append(ident)
        classes, objects = _paint(frame, by_frame.pop(frame.index, []), labels, class_of, warnings)
        out.writestr(f"SegmentationClass/{ident}.png", _png(classes, class_colors))
        out.writestr(f"SegmentationObject/{ident}.png", _png(objects, VOC_PALETTE))
    if by_frame:
        warnings.append(f"objects on frames {sorted(by_frame)[:10]} outside the task were left out")
    out.writestr(f"ImageSets/Segmentation/{subset}.txt", "".join(f"{i}\n" for i in ids))
    out.writestr(LABELMAP, labelmap_text(colormap))


def _paint(
    frame: FrameInfo,
    items: list[FlatShape],
    labels: LabelIndex,
    class_of: dict[str, int],
    warnings: list[str],
) -> tuple[np.ndarray, np.ndarray]:
    classes = np.zeros((frame.height, frame.width), dtype=np.uint8)
    objects = np.zeros_like(classes)
    instances = frame_instances(items)
    instances.sort(key=lambda group: min(item.shape.z_order for item in group))
    number = 0
    for instance in instances:
        bitmaps = []
        for item in instance:
            try:
                bitmaps.append((item, shape_bitmap(item.shape, frame)))
            except (IndexError, ValueError, FormatError) as error:
                warnings.append(f"a {item.shape.type} on frame {frame.index} was left out: {error}")
        if not bitmaps:
            continue
        leader = max(bitmaps, key=lambda pair: int(pair[1].sum()))[0]
        name = labels.name(leader.shape.label_id)
        if name not in class_of or class_of[name] >= VOID:
            warnings.append(f"an object on frame {frame.index} has a label without a class")
            continue
        if number == VOID - 1:
            warnings.append(f"frame {frame.index} has more than 254 objects; the rest was left out")
            break
        number += 1
        union = np.zeros_like(classes, dtype=bool)
        for _, bitmap in bitmaps:
            union |= bitmap.astype(bool)
        classes[union] = class_of[name]
        objects[union] = number
    return classes, objects


def shape_bitmap(shape: Shape, frame: FrameInfo) -> np.ndarray:
    """The pixels of a rectangle, polygon, ellipse or mask on its frame, as 0/1."""
    if frame.width <= 0 or frame.height <= 0:
        raise ValueError("the frame has no size")
    canvas = np.zeros((frame.height, frame.width), dtype=np.uint8)
    if shape.type == "mask":
        box, left, top = masks.cvat_mask_bitmap(shape.points, frame.width * frame.height)
        masks.paste(canvas, box.astype(np.uint8), left, top)
        return canvas
    if shape.type == "rectangle":
        outline = _box_corners(shape.points, shape.rotation)
    elif shape.type == "ellipse":
        outline = masks.ellipse_polygon(shape.points, shape.rotation)
    else:
        outline = [float(v) for v in shape.points]
    if len(outline) < 6 or len(outline) % 2:
        raise ValueError("too few points to fill")
    scaled = np.round(np.asarray(outline).reshape(-1, 2) * (1 << _SUBPIXEL_BITS))
    cv2.fillPoly(canvas, [scaled.astype(np.int32)], 1, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
    return canvas


def _box_corners(points: Sequence[float], rotation: float) -> list[float]:
    x0, y0, x1, y1 = (float(v) for v in points[:4])
    corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    if rotation:
        centre = corners.mean(axis=0)
        theta = np.deg2rad(rotation)
        turn = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        corners = (corners - centre) @ turn.T + centre
    return [float(v) for v in corners.ravel()]


def _png(indices: np.ndarray, palette: Sequence[Color]) -> bytes:
    lookup = np.zeros((256, 3), dtype=np.uint8)
    lookup[: len(palette)] = np.asarray(palette[:256], dtype=np.uint8)
    rgb = lookup[indices]
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise ValueError("the mask could not be encoded")
    return encoded.tobytes()


# --- import ---------------------------------------------------------------------------------


def import_segmentation_mask(
    source: Path, labels: list[LabelSpec], frames: list[FrameInfo]
) -> LabeledData:
    """Read the class and instance PNGs (and labelmap.txt) of a VOC segmentation ZIP."""
    if not zipfile.is_zipfile(source):
        raise FormatError("upload a ZIP archive with SegmentationClass/ and SegmentationObject/")
    files = read_segmentation_files(source)
    if not any(_folder(name) for name in files):
        raise FormatError("the archive holds no SegmentationClass/ or SegmentationObject/ PNG")
    return LabeledData(tags=[], shapes=read_segmentation(files, labels, frames), tracks=[])


def read_segmentation_files(source: Path) -> dict[str, bytes]:
    """labelmap.txt and the segmentation PNGs of a ZIP, by member name."""
    return dict(read_annotation_files(source, (".png", ".txt"), is_segmentation_member))


def is_segmentation_member(name: str) -> bool:
    """labelmap.txt, or a file under SegmentationClass/ or SegmentationObject/."""
    return posixpath.basename(name) == LABELMAP or _folder(name) != ""


SEGMENTATION_FOLDERS = ("SegmentationClass", "SegmentationObject")


def _split(name: str) -> tuple[str, str]:
    """(segmentation folder, item id) of a member such as ``SegmentationClass/dir/a.png``;
    ("", "") for other members."""
    parts = name.split("/")
    for position, part in enumerate(parts[:-1]):
        if part in SEGMENTATION_FOLDERS:
            return part, posixpath.splitext("/".join(parts[position + 1 :]))[0]
    return "", ""


def _folder(name: str) -> str:
    return _split(name)[0]


def read_segmentation(
    files: dict[str, bytes],
    labels: Sequence[LabelSpec],
    frames: Sequence[FrameInfo],
    default_colormap: list[LabelmapEntry] | None = None,
) -> list[Shape]:
    """Polygon shapes for the instances of the segmentation PNGs in ``files``."""
    labelmap_files = [raw for name, raw in files.items() if posixpath.basename(name) == LABELMAP]
    if labelmap_files:
        colormap = parse_labelmap(labelmap_files[0])
    else:
        colormap = default_colormap or voc_colormap(labels)
    reader = _MaskReader(colormap, LabelIndex(labels), FrameIndex(frames))
    pngs: dict[str, dict[str, bytes]] = {folder: {} for folder in SEGMENTATION_FOLDERS}
    for name, raw in files.items():
        folder, ident = _split(name)
        if folder:
            pngs[folder][ident] = raw
    class_pngs, object_pngs = pngs["SegmentationClass"], pngs["SegmentationObject"]
    shapes: list[Shape] = []
    for ident in sorted(set(class_pngs) | set(object_pngs)):
        shapes.extend(reader.item(ident, class_pngs.get(ident), object_pngs.get(ident)))
    return shapes


class _MaskReader:
    def __init__(
        self, colormap: list[LabelmapEntry], labels: LabelIndex, frames: FrameIndex
    ) -> None:
        self.colormap = colormap
        self.labels = labels
        self.frames = frames
        self.class_colors = _inverse(
            [entry.color for entry in colormap], "labelmap.txt has two labels of one color"
        )
        self.object_colors = _inverse(list(VOC_PALETTE), "")
        self.next_group = 1

    def item(self, ident: str, class_png: bytes | None, object_png: bytes | None) -> list[Shape]:
        if class_png is None:
            raise FormatError(f"SegmentationObject/{ident}.png has no SegmentationClass PNG")
        frame = self.frames.match_item(ident)
        size = None if frame is None else (frame.width, frame.height)
        where = f"SegmentationClass/{ident}"
        classes = self._indices(class_png, size, self.class_colors, where)
        if frame is None:
            if np.any((classes != 0) & (classes != VOID)):
                raise FormatError(f"the item {ident!r} does not match any frame of the task")
            return []  # an empty mask needs no frame (a task export read into a job)
        if object_png is None:
            objects = classes
        else:
            where = f"SegmentationObject/{ident}"
            objects = self._indices(object_png, size, self.object_colors, where)
        shapes = []
        for number in np.unique(objects):
            if number in (0, VOID):
                continue
            inside = objects == number
            counts = np.bincount(classes[inside], minlength=256)
            counts[[0, VOID]] = 0
            if not counts.any():
                continue
            shapes.extend(self._instance(inside, int(counts.argmax()), frame, ident))
        return shapes

    def _instance(
        self, inside: np.ndarray, class_index: int, frame: FrameInfo, ident: str
    ) -> list[Shape]:
        if class_index >= len(self.colormap):
            raise FormatError(f"SegmentationClass/{ident}.png uses class {class_index}")
        name = self.colormap[class_index].name
        if name == BACKGROUND:
            return []
        label = self.labels.top(name)
        polygons = masks.bitmap_polygons(inside.astype(np.uint8))
        group = 0
        if len(polygons) > 1:
            group, self.next_group = self.next_group, self.next_group + 1
        return [
            Shape("polygon", label.id, frame.index, polygon, group=group, source="file")
            for polygon in polygons
        ]

    def _indices(
        self, raw: bytes, size: tuple[int, int] | None, colors: dict[Color, int], where: str
    ) -> np.ndarray:
        image = decode_png(raw, size, where)
        if image.ndim == 2:
            return image.astype(np.uint8)
        rgb = image[..., 2::-1].astype(np.uint32)
        packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        result = np.zeros(packed.shape, dtype=np.uint8)
        for value in np.unique(packed):
            color = (int(value >> 16), int((value >> 8) & 255), int(value & 255))
            index = colors.get(color)
            if index is None:
                raise FormatError(f"{where}.png: the color {color} is not in the labelmap")
            result[packed == value] = index
        return result


def _inverse(colors: list[Color | None], duplicate_message: str) -> dict[Color, int]:
    result: dict[Color, int] = {}
    for index, color in enumerate(colors):
        if color is None:
            color = VOC_PALETTE[index % 256]
        if color in result:
            if duplicate_message:
                raise FormatError(f"{duplicate_message}: {color}")
            continue
        result[color] = index
    return result


def decode_png(raw: bytes, size: tuple[int, int] | None, where: str) -> np.ndarray:
    """A PNG's pixels (grayscale or BGR), refused unless its header gives ``size`` (width,
    height), or without a size, unless it has at most ``MAX_UNMATCHED_PIXELS``."""
    if len(raw) < 24 or not raw.startswith(_PNG_SIGNATURE) or raw[12:16] != b"IHDR":
        raise FormatError(f"{where}.png is not a PNG image")
    width, height = struct.unpack(">II", raw[16:24])
    if size is not None and (width, height) != size:
        raise FormatError(f"{where}.png is {width}x{height}, its frame {size[0]}x{size[1]}")
    if size is None and width * height > MAX_UNMATCHED_PIXELS:
        raise FormatError(f"{where}.png is {width}x{height}, larger than any frame")
    image = cv2.imdecode(np.frombuffer(raw, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.shape[:2] != (height, width):
        raise FormatError(f"{where}.png cannot be decoded")
    if image.ndim == 3 and image.shape[2] == 2:  # gray and alpha
        image = image[..., 0]
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[..., :3]
    if image.dtype != np.uint8:
        raise FormatError(f"{where}.png is not an 8-bit image")
    return image
