"""Mask encodings: CVAT's box RLE, COCO's image RLE, and rasterizing other shapes.

CVAT keeps a mask as ``[runs..., left, top, right, bottom]``: run lengths over the tight,
inclusive box, row by row, starting with a run of zeros. COCO keeps ``{"counts", "size"}``
over the whole image, column by column (Fortran order), also starting with zeros; ``counts``
is a list of integers (uncompressed, what CVAT writes) or pycocotools' compressed string.

COCO RLE read from an upload is decoded here in Python and checked to cover exactly the
image before any array is built: pycocotools' C decoder trusts the counts and would write
past its buffer for hostile ones. pycocotools is used on our own, checked geometry only.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from workers.formats.dataset import FormatError

MAX_COUNTS_CHARS = 64 << 20
AREAS_AT_ONCE = 255  # pycocotools' area() keeps the count in a uint8 (numpy 2 refuses more)


def runs(flat: np.ndarray) -> list[int]:
    """Run lengths of a 0/1 vector, starting with a (possibly empty) run of zeros."""
    values = flat.astype(bool).ravel()
    if values.size == 0:
        return []
    changes = np.flatnonzero(values[1:] != values[:-1]) + 1
    bounds = np.concatenate(([0], changes, [values.size]))
    lengths = [int(n) for n in np.diff(bounds)]
    return [0, *lengths] if values[0] else lengths


def expand_runs(counts: Sequence[int], size: int) -> np.ndarray:
    """The 0/1 vector of ``size`` values that ``counts`` (zeros first) describe."""
    if sum(counts) != size:
        raise FormatError(f"the mask's runs cover {sum(counts)} pixels, not {size}")
    parity = np.arange(len(counts), dtype=np.uint8) % 2
    return np.repeat(parity, np.asarray(counts, dtype=np.int64))


# --- CVAT box RLE ---------------------------------------------------------------------------


def cvat_mask_bitmap(
    points: Sequence[float], max_pixels: int | None = None
) -> tuple[np.ndarray, int, int]:
    """(box bitmap of shape (h, w), left, top) of a CVAT mask's points; FormatError when the
    box holds more than ``max_pixels``."""
    if len(points) < 5:
        raise FormatError("a mask needs its runs and a box")
    left, top, right, bottom = (int(v) for v in points[-4:])
    width, height = right - left + 1, bottom - top + 1
    if width <= 0 or height <= 0:
        raise FormatError("a mask's box has right >= left and bottom >= top")
    if max_pixels is not None and width * height > max_pixels:
        raise FormatError("the mask's box is larger than the frame")
    counts = [int(v) for v in points[:-4]]
    if any(c < 0 for c in counts):
        raise FormatError("a mask's runs are whole numbers >= 0")
    flat = expand_runs(counts, width * height)
    return flat.reshape(height, width), left, top


def bitmap_to_cvat(bitmap: np.ndarray, left: int = 0, top: int = 0) -> list[float] | None:
    """CVAT mask points for the set pixels of ``bitmap`` placed at (left, top); None if
    no pixel is set."""
    rows = np.flatnonzero(bitmap.any(axis=1))
    cols = np.flatnonzero(bitmap.any(axis=0))
    if rows.size == 0:
        return None
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
    box = bitmap[y0 : y1 + 1, x0 : x1 + 1]
    rle = runs(box.ravel(order="C"))
    return [float(v) for v in rle] + [
        float(left + x0),
        float(top + y0),
        float(left + x1),
        float(top + y1),
    ]


def paste(canvas: np.ndarray, bitmap: np.ndarray, left: int, top: int) -> None:
    """OR ``bitmap`` into ``canvas`` at (left, top), clipped to the canvas."""
    height, width = canvas.shape
    x0, y0 = max(left, 0), max(top, 0)
    x1 = min(left + bitmap.shape[1], width)
    y1 = min(top + bitmap.shape[0], height)
    if x0 >= x1 or y0 >= y1:
        return
    canvas[y0:y1, x0:x1] |= bitmap[y0 - top : y1 - top, x0 - left : x1 - left]


# --- COCO image RLE -------------------------------------------------------------------------


def coco_rle(
    bitmap: np.ndarray, first_column: int = 0, width: int | None = None
) -> dict[str, list[int]]:
    """The uncompressed COCO RLE of a full-image 0/1 bitmap (column-major), or of the image
    ``width`` wide whose only set pixels are those of ``bitmap``, a band of full-height
    columns starting at column ``first_column``.

    Only the columns from the first to the last one holding a set pixel are run-length
    encoded; the columns around them are one run of zeros each side."""
    height = int(bitmap.shape[0])
    width = int(bitmap.shape[1]) if width is None else width
    columns = np.flatnonzero(bitmap.any(axis=0))
    if columns.size == 0:
        return {"counts": [height * width] if height * width else [], "size": [height, width]}
    first, last = int(columns[0]), int(columns[-1])
    counts = runs(bitmap[:, first : last + 1].ravel(order="F"))
    first, last = first + first_column, last + first_column
    counts[0] += first * height
    after = (width - 1 - last) * height
    if after and len(counts) % 2:
        counts[-1] += after
    elif after:
        counts.append(after)
    return {"counts": counts, "size": [height, width]}


def coco_rle_bitmap(segmentation: dict[str, object], height: int, width: int) -> np.ndarray:
    """The (h, w) bitmap of a COCO RLE read from an upload, checked against the image."""
    counts = _checked_counts(segmentation, height, width)
    flat = expand_runs(counts, height * width)
    return flat.reshape(width, height).T


def coco_rle_to_cvat(
    segmentation: dict[str, object], height: int, width: int
) -> list[float] | None:
    """CVAT mask points of a COCO RLE read from an upload (as `bitmap_to_cvat` of its
    bitmap), checked against the image; only the columns holding set pixels are expanded."""
    counts = _checked_counts(segmentation, height, width)
    if sum(counts) != height * width:
        raise FormatError(f"the mask's runs cover {sum(counts)} pixels, not {height * width}")
    if len(counts) < 2 or not any(counts[1::2]):
        return None
    counts = list(counts)
    trailing = counts[-1] if len(counts) % 2 else 0
    first = counts[0] // height
    last = (height * width - trailing - 1) // height
    counts[0] -= first * height
    if len(counts) % 2:
        counts[-1] -= (width - 1 - last) * height
    columns = last - first + 1
    band = expand_runs(counts, columns * height).reshape(columns, height).T
    return bitmap_to_cvat(band, first, 0)


def _checked_counts(segmentation: dict[str, object], height: int, width: int) -> list[int]:
    size = segmentation.get("size")
    if (
        not isinstance(size, list)
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in size)
    ):
        raise FormatError("an RLE segmentation needs a size [height, width]")
    if size != [height, width]:
        raise FormatError(f"the RLE size {size} differs from the image's [{height}, {width}]")
    counts = segmentation.get("counts")
    if isinstance(counts, str):
        counts = decode_counts_string(counts)
    elif isinstance(counts, list):
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
            raise FormatError("RLE counts are whole numbers >= 0")
    else:
        raise FormatError("RLE counts are a list of numbers or a compressed string")
    return counts


def decode_counts_string(text: str) -> list[int]:
    """pycocotools' compressed counts (``rleFrString``), decoded with bounds checks."""
    if len(text) > MAX_COUNTS_CHARS:
        raise FormatError("the RLE counts string is too long")
    counts: list[int] = []
    position = 0
    while position < len(text):
        value, position = _read_varint(text, position)
        if len(counts) > 2:
            value += counts[-2]
        if value < 0:
            raise FormatError("the compressed RLE counts are malformed")
        counts.append(value)
    return counts


def _read_varint(text: str, position: int) -> tuple[int, int]:
    value, shift, more = 0, 0, True
    while more:
        if position >= len(text) or shift > 60:
            raise FormatError("the compressed RLE counts are malformed")
        code = ord(text[position]) - 48
        if not 0 <= code < 64:
            raise FormatError("the compressed RLE counts are malformed")
        value |= (code & 0x1F) << shift
        more = bool(code & 0x20)
        position += 1
        shift += 5
        if not more and code & 0x10:
            value |= -1 << shift
    return value, position


# --- rasterizing ----------------------------------------------------------------------------


def polygons_bitmap(polygons: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """The union of polygons (flat x,y lists of at least 3 points), as COCO rasterizes it."""
    usable = [[float(v) for v in poly] for poly in polygons if len(poly) >= 6]
    if not usable:
        return np.zeros((height, width), dtype=np.uint8)
    rles = mask_utils.frPyObjects(usable, height, width)
    with warnings.catch_warnings():  # pycocotools' __array__ predates numpy 2's copy keyword
        warnings.simplefilter("ignore", DeprecationWarning)
        return np.asarray(mask_utils.decode(mask_utils.merge(rles)), dtype=np.uint8)


def polygons_area(polygons: Sequence[Sequence[float]], height: int, width: int) -> float:
    usable = [[float(v) for v in poly] for poly in polygons if len(poly) >= 6]
    if not usable:
        return 0.0
    rles = mask_utils.frPyObjects(usable, height, width)
    return float(mask_utils.area(mask_utils.merge(rles)))


def polygon_areas(polygons: Sequence[Sequence[float]], height: int, width: int) -> list[float]:
    """The area of each polygon (at least 3 points, floats), as `polygons_area` of it alone."""
    areas: list[float] = []
    for start in range(0, len(polygons), AREAS_AT_ONCE):
        chunk = list(polygons[start : start + AREAS_AT_ONCE])
        areas += (
            float(area) for area in mask_utils.area(mask_utils.frPyObjects(chunk, height, width))
        )
    return areas


def ellipse_bitmap(points: Sequence[float], rotation: float, height: int, width: int) -> np.ndarray:
    """A filled ellipse given as CVAT points ``[cx, cy, cx + rx, cy - ry]`` and its clockwise
    rotation in degrees, rasterized as a fine polygon the way COCO rasterizes polygons."""
    return polygons_bitmap([ellipse_polygon(points, rotation)], height, width)


def ellipse_polygon(points: Sequence[float], rotation: float, steps: int = 72) -> list[float]:
    cx, cy, right, top = (float(v) for v in points[:4])
    rx, ry = abs(right - cx), abs(cy - top)
    theta = np.deg2rad(rotation)
    t = np.linspace(0, 2 * np.pi, steps, endpoint=False)
    xs = cx + rx * np.cos(t) * np.cos(theta) - ry * np.sin(t) * np.sin(theta)
    ys = cy + rx * np.cos(t) * np.sin(theta) + ry * np.sin(t) * np.cos(theta)
    return [float(v) for pair in zip(xs, ys, strict=True) for v in pair]


def bitmap_polygons(bitmap: np.ndarray, left: int = 0, top: int = 0) -> list[list[float]]:
    """Outer contours of a bitmap placed at (left, top) as flat polygons (for a mask COCO
    must show as polygons)."""
    contours, _ = cv2.findContours(
        bitmap.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE, offset=(left, top)
    )
    polygons = []
    for contour in contours:
        flat = [float(v) for v in contour.reshape(-1)]
        if len(flat) >= 6:
            polygons.append(flat)
    return polygons
