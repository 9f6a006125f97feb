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
        rasters = []
        for item in instance:
            try:
                rasters.append((item, shape_raster(item.shape, frame)))
            except (IndexError, ValueError, FormatError) as error:
                warnings.append(f"a {item.shape.type} on frame {frame.index} was left out: {error}")
        if not rasters:
            continue
        leader = max(rasters, key=lambda pair: pair[1].area)[0]
        name = labels.name(leader.shape.label_id)
        if name not in class_of or class_of[name] >= VOID:
            warnings.append(f"an object on frame {frame.index} has a label without a class")
            continue
        if number == VOID - 1:
            warnings.append(f"frame {frame.index} has more than 254 objects; the rest was left out")
            break
        number += 1
        for _, raster in rasters:
            raster.paint(classes, class_of[name])
            raster.paint(objects, number)
    return classes, objects


@dataclass(frozen=True)
class Raster:
    """The pixels of a shape within its box on the frame: ``bitmap`` (bool) at (left, top)."""

    bitmap: np.ndarray
    left: int
    top: int

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.bitmap))

    def paint(self, canvas: np.ndarray, value: int) -> None:
        height, width = self.bitmap.shape
        region = canvas[self.top : self.top + height, self.left : self.left + width]
        region[self.bitmap] = value


def shape_raster(shape: Shape, frame: FrameInfo) -> Raster:
    """The pixels a rectangle, polygon, ellipse or mask covers on its frame (ValueError when
    it covers none)."""
    if frame.width <= 0 or frame.height <= 0:
        raise ValueError("the frame has no size")
    if shape.type == "mask":
        box, left, top = masks.cvat_mask_bitmap(shape.points, frame.width * frame.height)
        x0, y0 = max(left, 0), max(top, 0)
        x1 = min(left + box.shape[1], frame.width)
        y1 = min(top + box.shape[0], frame.height)
        if x0 >= x1 or y0 >= y1:
            raise ValueError("it covers no pixel of the frame")
        bitmap = box[y0 - top : y1 - top, x0 - left : x1 - left].astype(bool)
        return Raster(bitmap, x0, y0)
    if shape.type == "rectangle":
        outline = _box_corners(shape.points, shape.rotation)
    elif shape.type == "ellipse":
        outline = masks.ellipse_polygon(shape.points, shape.rotation)
    else:
        outline = [float(v) for v in shape.points]
    if len(outline) < 6 or len(outline) % 2:
        raise ValueError("too few points to fill")
    corners = np.asarray(outline).reshape(-1, 2)
    x0 = max(int(np.floor(corners[:, 0].min())), 0)
    y0 = max(int(np.floor(corners[:, 1].min())), 0)
    x1 = min(int(np.ceil(corners[:, 0].max())), frame.width - 1)
    y1 = min(int(np.ceil(corners[:, 1].max())), frame.height - 1)
    if x0 > x1 or y0 > y1:
        raise ValueError("it covers no pixel of the frame")
    canvas = np.zeros((y1 - y0 + 1, x1 - x0 + 1), dtype=np.uint8)
    # integer offsets keep the fixed-point rasterization identical to a whole-frame one
    scaled = np.round((corners - (x0, y0)) * (1 << _SUBPIXEL_BITS)).astype(np.int32)
    cv2.fillPoly(canvas, [scaled], 1, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
    if not canvas.any():
        raise ValueError("it covers no pixel of the frame")
    return Raster(canvas.astype(bool), x0, y0)


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
    """An RGB PNG painting each index in its palette color."""
    lookup = np.zeros((1, 256, 3), dtype=np.uint8)
    lookup[0, : len(palette)] = np.asarray(palette[:256], dtype=np.uint8)[:, ::-1]  # BGR
    bgr = cv2.LUT(cv2.merge([indices, indices, indices]), lookup)
    ok, encoded = cv2.imencode(".png", bgr)
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
        self.class_colors = _ColorTable(
            _inverse(
                [entry.color for entry in colormap], "labelmap.txt has two labels of one color"
            )
        )
        self.object_colors = _ColorTable(_inverse(list(VOC_PALETTE), ""))
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
        present = np.flatnonzero(np.bincount(objects.ravel(), minlength=256))
        for number in present:
            if number in (0, VOID):
                continue
            whole = objects == number
            rows, cols = np.flatnonzero(whole.any(axis=1)), np.flatnonzero(whole.any(axis=0))
            top, left = int(rows[0]), int(cols[0])
            box = (slice(top, int(rows[-1]) + 1), slice(left, int(cols[-1]) + 1))
            inside = whole[box]
            counts = np.bincount(classes[box][inside], minlength=256)
            counts[[0, VOID]] = 0
            if counts.any():
                raster = Raster(inside, left, top)
                shapes.extend(self._instance(raster, int(counts.argmax()), frame, ident))
        return shapes

    def _instance(
        self, raster: Raster, class_index: int, frame: FrameInfo, ident: str
    ) -> list[Shape]:
        if class_index >= len(self.colormap):
            raise FormatError(f"SegmentationClass/{ident}.png uses class {class_index}")
        name = self.colormap[class_index].name
        if name == BACKGROUND:
            return []
        label = self.labels.top(name)
        polygons = masks.bitmap_polygons(raster.bitmap, raster.left, raster.top)
        group = 0
        if len(polygons) > 1:
            group, self.next_group = self.next_group, self.next_group + 1
        return [
            Shape("polygon", label.id, frame.index, polygon, group=group, source="file")
            for polygon in polygons
        ]

    def _indices(
        self, raw: bytes, size: tuple[int, int] | None, colors: _ColorTable, where: str
    ) -> np.ndarray:
        image = decode_png(raw, size, where)
        if image.ndim == 2:
            return image.astype(np.uint8)
        return colors.indices(image, where)


class _ColorTable:
    """Maps the pixels of a BGR image to indices through a table of every 24-bit color
    (built on first use, 32 MiB): one pass however many colors the image holds."""

    UNKNOWN = 0xFFFF

    def __init__(self, colors: dict[Color, int]) -> None:
        self.colors = colors
        self.table: np.ndarray | None = None

    def indices(self, bgr: np.ndarray, where: str) -> np.ndarray:
        if self.table is None:
            self.table = np.full(1 << 24, self.UNKNOWN, dtype=np.uint16)
            for (red, green, blue), index in self.colors.items():
                self.table[(red << 16) | (green << 8) | blue] = index
        packed = cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA).view(np.uint32)[..., 0]
        np.bitwise_and(packed, 0xFFFFFF, out=packed)  # B | G << 8 | R << 16 on little-endian
        found = self.table.take(packed)
        unknown = found == self.UNKNOWN
        if unknown.any():
            value = int(packed[unknown][0])
            color = (value >> 16, (value >> 8) & 255, value & 255)
            raise FormatError(f"{where}.png: the color {color} is not in the labelmap")
        return found.astype(np.uint8)


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
