"""Similarity measures of CVAT's quality control: box IoU, mask IoU on a raster, OKS, lines.

Follows `cvat/apps/quality_control/quality_reports.py` and datumaro's `ops`: a box IoU is -1
when the boxes do not intersect; polygons, masks, rotated boxes and ellipses are rasterised as
pycocotools does at image size (each over its own box, which gives the same pixels) and
compared pixel by pixel.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import cv2
import numpy as np
from pycocotools import _mask

from workers.formats.dataset import FormatError
from workers.formats.masks import cvat_mask_bitmap
from workers.quality.objects import Ann, Box

Point = tuple[float, float]


def bbox_iou(a: Box, b: Box) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    in_w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    in_h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    intersection = in_w * in_h
    if not intersection:
        return -1.0
    return intersection / (aw * ah + bw * bh - intersection)


def mean_bbox(boxes: Sequence[Box]) -> Box:
    n = len(boxes)
    return (
        sum(b[0] for b in boxes) / n,
        sum(b[1] for b in boxes) / n,
        sum(b[2] for b in boxes) / n,
        sum(b[3] for b in boxes) / n,
    )


def max_bbox(boxes: Sequence[Box]) -> Box:
    x0 = min(b[0] for b in boxes)
    y0 = min(b[1] for b in boxes)
    x1 = max(b[0] + b[2] for b in boxes)
    y1 = max(b[1] + b[3] for b in boxes)
    return (x0, y0, x1 - x0, y1 - y0)


def oks(
    a: np.ndarray,
    b: np.ndarray,
    *,
    sigma: float,
    scale: float,
    visible_a: np.ndarray | None = None,
    visible_b: np.ndarray | None = None,
) -> float:
    """Object keypoint similarity of two (n, 2) point arrays; 0 if their sizes differ."""
    if len(a) != len(b):
        return 0.0
    vis_a = np.ones(len(a), bool) if visible_a is None else visible_a
    vis_b = np.ones(len(b), bool) if visible_b is None else visible_b
    total = float(np.sum(vis_a | vis_b))
    if not total:
        return 1.0
    if not scale:
        return 0.0
    dists = np.linalg.norm(a - b, axis=1)
    weights = np.exp(-(dists**2) / (2 * scale * (2 * sigma) ** 2))
    return float(np.sum((vis_a & vis_b) * weights) / total)


def rotated_box_polygon(ann: Ann) -> list[float]:
    x1, y1, x2, y2 = ann.points[:4]
    corners = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], dtype=float)
    angle = ann.rotation / 180 * math.pi
    if angle:
        center = (corners[0] + corners[2]) / 2
        cos, sin = math.cos(angle), math.sin(angle)
        corners = (corners - center) @ np.array([[cos, sin], [-sin, cos]]) + center
    return [float(v) for v in corners.ravel()]


# --- lines ----------------------------------------------------------------------------------


def line_similarity(
    gt: Sequence[float], ds: Sequence[float], *, scale: float, thickness: float, oriented: bool
) -> float:
    """CVAT's _LineMatcher.distance: OKS-like closeness of lines resampled to common points."""
    gt_x, gt_y, gt_r2 = _bbox_circle(gt)
    ds_x, ds_y, ds_r2 = _bbox_circle(ds)
    if (ds_x - gt_x) ** 2 + (ds_y - gt_y) ** 2 > ds_r2 + gt_r2 + scale * (6 * thickness) ** 2:
        return 0.0
    a, b = approximate_points(_pairs(gt), _pairs(ds))
    candidates = [b] if oriented else [b, b[::-1]]
    return max(_compare_lines(a, c, scale, thickness) for c in candidates)


def _pairs(flat: Sequence[float]) -> list[tuple[float, float]]:
    return list(zip(flat[0::2], flat[1::2], strict=True))


def _bbox_circle(points: Sequence[float]) -> tuple[float, float, float]:
    xs, ys = points[0::2], points[1::2]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    return (x0 + x1) / 2, (y0 + y1) / 2, ((x1 - x0) ** 2 + (y1 - y0) ** 2) / 4


def _compare_lines(a: list[Point], b: list[Point], scale: float, thickness: float) -> float:
    spread = 2 * scale * (2 * thickness) ** 2
    total = sum(
        math.exp(-((ax - bx) ** 2 + (ay - by) ** 2) / spread)
        for (ax, ay), (bx, by) in zip(a, b, strict=True)
    )
    return total / len(a)


def approximate_points(a: list[Point], b: list[Point]) -> tuple[list[Point], list[Point]]:
    """Both lines with the same number of points placed at the same relative arc lengths
    (every original vertex of either line kept), as CVAT's `approximate_points`."""
    epsilon = 1e-7
    a_count, b_count = len(a) - 1, len(b) - 1
    a_lengths = [math.dist(a[i], a[i + 1]) for i in range(a_count)]
    b_lengths = [math.dist(b[i], b[i + 1]) for i in range(b_count)]
    a_ends = [*itertools.accumulate(a_lengths)] or [0.0]
    b_ends = [*itertools.accumulate(b_lengths)] or [0.0]
    a_ends.append(a_ends[-1])
    b_ends.append(b_ends[-1])
    a_length, b_length = a_ends[-1], b_ends[-1]
    a_new, b_new = [a[0]], [b[0]]
    a_idx = b_idx = 0
    while a_idx < a_count or b_idx < b_count:
        a_pos = a_ends[a_idx] / (a_length or 1)
        b_pos = b_ends[b_idx] / (b_length or 1)
        if a_idx < a_count and a_pos <= b_pos:
            if b_idx < b_count:
                q = (b_pos - a_pos) * (b_length / (b_lengths[b_idx] or 1))
                b_new.append(b[1 + b_idx] if abs(q) <= epsilon else _mix(b[b_idx], b[1 + b_idx], q))
            else:
                b_new.append(b[b_idx])
            a_idx += 1
            a_new.append(a[a_idx])
        else:
            if a_idx < a_count:
                q = (a_pos - b_pos) * (a_length / (a_lengths[a_idx] or 1))
                a_new.append(a[1 + a_idx] if abs(q) <= epsilon else _mix(a[a_idx], a[1 + a_idx], q))
            else:
                a_new.append(a[a_idx])
            b_idx += 1
            b_new.append(b[b_idx])
    if a_count + b_count:  # as CVAT's truncation does, the last point placed is left out
        a_new, b_new = a_new[:-1], b_new[:-1]
    return a_new, b_new


def _mix(start: Point, end: Point, q: float) -> Point:
    return (start[0] * q + end[0] * (1 - q), start[1] * q + end[1] * (1 - q))


# --- rasters --------------------------------------------------------------------------------


class Region:
    """The pixels of a shape as pycocotools rasterises it at image size, kept as a boolean
    array over the shape's own box (left, top): pairs are compared where their boxes meet."""

    __slots__ = ("left", "top", "right", "bottom", "pixels", "_area")

    def __init__(self, left: int, top: int, pixels: np.ndarray) -> None:
        self.left = left
        self.top = top
        self.pixels = pixels  # bool, (height, width)
        self.right = left + pixels.shape[1]
        self.bottom = top + pixels.shape[0]
        self._area: int | None = None

    @property
    def area(self) -> int:
        if self._area is None:
            self._area = int(np.count_nonzero(self.pixels))
        return self._area

    def meets(self, other: Region) -> bool:
        return (
            self.left < other.right
            and other.left < self.right
            and self.top < other.bottom
            and other.top < self.bottom
        )

    def overlap(self, other: Region) -> int:
        """Pixels set in both."""
        if not self.meets(other):
            return 0
        mine, theirs = self.within(other), other.within(self)
        return int(np.count_nonzero(mine & theirs))

    def within(self, other: Region) -> np.ndarray:
        """This region's pixels on the part of the image both boxes share."""
        x0, y0 = max(self.left, other.left), max(self.top, other.top)
        x1, y1 = min(self.right, other.right), min(self.bottom, other.bottom)
        return self.pixels[y0 - self.top : y1 - self.top, x0 - self.left : x1 - self.left]

    def iou(self, other: Region) -> float:
        both = self.overlap(other)
        if not both:
            return 0.0
        return both / (self.area + other.area - both)

    def without(self, above: Sequence[Region]) -> Region:
        """The pixels none of `above` covers."""
        hiding = [region for region in above if region.meets(self)]
        if not hiding:
            return self
        pixels = self.pixels.copy()
        for region in hiding:
            x0, y0 = max(self.left, region.left), max(self.top, region.top)
            x1, y1 = min(self.right, region.right), min(self.bottom, region.bottom)
            part = pixels[y0 - self.top : y1 - self.top, x0 - self.left : x1 - self.left]
            part &= ~region.within(self)
        return Region(self.left, self.top, pixels)


def union(regions: Sequence[Region]) -> Region:
    if len(regions) == 1:
        return regions[0]
    left, top = min(r.left for r in regions), min(r.top for r in regions)
    right, bottom = max(r.right for r in regions), max(r.bottom for r in regions)
    pixels = np.zeros((bottom - top, right - left), bool)
    for r in regions:
        pixels[r.top - top : r.bottom - top, r.left - left : r.right - left] |= r.pixels
    return Region(left, top, pixels)


def iou_matrix(a: Sequence[Region], b: Sequence[Region]) -> np.ndarray:
    """IoU of every pair; only pairs whose boxes meet are compared pixel by pixel."""
    result = np.zeros((len(a), len(b)))
    if not a or not b:
        return result
    a_box = np.array([(r.left, r.top, r.right, r.bottom) for r in a]).reshape(-1, 1, 4)
    b_box = np.array([(r.left, r.top, r.right, r.bottom) for r in b]).reshape(1, -1, 4)
    meets = (
        (a_box[..., 0] < b_box[..., 2])
        & (b_box[..., 0] < a_box[..., 2])
        & (a_box[..., 1] < b_box[..., 3])
        & (b_box[..., 1] < a_box[..., 3])
    )
    for i, j in zip(*np.nonzero(meets), strict=True):
        result[i, j] = a[i].iou(b[j])
    return result


class Raster:
    """Rasterises shapes of one image the way CVAT does (pycocotools at image size)."""

    def __init__(self, width: int, height: int) -> None:
        self.width = width
        self.height = height

    def _window(self, xs: Sequence[float], ys: Sequence[float]) -> tuple[int, int, int, int]:
        left = min(max(0, math.floor(min(xs)) - 1), self.width)
        top = min(max(0, math.floor(min(ys)) - 1), self.height)
        right = max(min(self.width, math.ceil(max(xs)) + 2), left)
        bottom = max(min(self.height, math.ceil(max(ys)) + 2), top)
        return left, top, right, bottom

    def empty(self) -> Region:
        return Region(0, 0, np.zeros((0, 0), bool))

    def polygon(self, points: Sequence[float]) -> Region:
        if len(points) < 6:
            return self.empty()
        left, top, right, bottom = self._window(points[0::2], points[1::2])
        if bottom == self.height:
            top = 0  # pycocotools carries a run cut at the image's bottom to the next column's top
        if right <= left or bottom <= top:
            return self.empty()
        rles = _mask.frPyObjects([_on_grid(points, left, top)], bottom - top, right - left)
        return Region(left, top, _mask.decode(rles)[:, :, 0].view(bool))

    def polygons(self, shapes: Sequence[Sequence[float]]) -> list[Region]:
        """`polygon` of each, with one pycocotools call for each batch of those lying inside
        the image: a polygon nothing clips has the same pixels on any canvas holding it, so
        they share one canvas (pycocotools' cost is mostly per call, not per pixel)."""
        regions: list[Region | None] = [None] * len(shapes)
        inside: list[tuple[int, tuple[int, int, int, int]]] = []
        for index, points in enumerate(shapes):
            window = self._inner_window(points)
            if window is None:
                regions[index] = self.polygon(points)
            else:
                inside.append((index, window))
        for batch in _batches(inside):
            height = max(bottom - top for _, (_, top, _, bottom) in batch)
            width = max(right - left for _, (left, _, right, _) in batch)
            grids = [_on_grid(shapes[index], left, top) for index, (left, top, _, _) in batch]
            masks = _mask.decode(_mask.frPyObjects(grids, height, width)).view(bool)
            for k, (index, (left, top, right, bottom)) in enumerate(batch):
                regions[index] = Region(left, top, masks[: bottom - top, : right - left, k])
        return regions  # type: ignore[return-value]

    def _inner_window(self, points: Sequence[float]) -> tuple[int, int, int, int] | None:
        """The polygon's window when no image edge cuts it, else None."""
        if len(points) < 6:
            return None
        xs, ys = points[0::2], points[1::2]
        left, top = math.floor(min(xs)) - 1, math.floor(min(ys)) - 1
        right, bottom = math.ceil(max(xs)) + 2, math.ceil(max(ys)) + 2
        if left < 0 or top < 0 or right >= self.width or bottom >= self.height:
            return None
        return left, top, right, bottom

    def rectangle(self, x1: float, y1: float, x2: float, y2: float) -> Region:
        """An axis-aligned box, with the pixels pycocotools' polygon rasteriser gives it
        (it rounds corners to a fifth of a pixel and takes the pixels whose centres fall
        inside; checked against pycocotools on 40,000 random boxes)."""
        if x2 < x1 or y2 < y1:
            return self.polygon([x1, y1, x2, y1, x2, y2, x1, y2])
        left, right = _covered_pixels(x1, x2, self.width)
        top, bottom = _covered_pixels(y1, y2, self.height)
        if right <= left or bottom <= top:
            return self.empty()
        return Region(left, top, np.ones((bottom - top, right - left), bool))

    def mask(self, points: Sequence[float]) -> Region:
        try:
            bitmap, left, top = cvat_mask_bitmap(points)
        except FormatError:  # stored masks are checked on write; compare a broken one as empty
            return self.empty()
        x0, y0 = max(left, 0), max(top, 0)
        x1 = min(left + bitmap.shape[1], self.width)
        y1 = min(top + bitmap.shape[0], self.height)
        if x1 <= x0 or y1 <= y0:
            return self.empty()
        return Region(x0, y0, bitmap[y0 - top : y1 - top, x0 - left : x1 - left].astype(bool))

    def ellipse(self, ann: Ann) -> Region:
        cx, cy, rx_x, ry_y = ann.points[:4]
        rx, ry = abs(rx_x - cx), abs(cy - ry_y)
        reach = max(rx, ry)
        left, top, right, bottom = self._window([cx - reach, cx + reach], [cy - reach, cy + reach])
        if right <= left or bottom <= top:
            return self.empty()
        image = np.zeros((bottom - top, right - left), np.uint8)
        center = (round(cx - left), round(cy - top))
        cv2.ellipse(image, center, (round(rx), round(ry)), ann.rotation, 0, 360, 1, -1)
        return Region(left, top, image.astype(bool))

    def region(self, ann: Ann) -> Region:
        """The pixels of a rectangle (rotated), polygon, mask or ellipse."""
        outline = polygon_points(ann)
        if outline is not None:
            return self.polygon(outline)
        if ann.type == "rectangle":
            return self.rectangle(*ann.points[:4])
        if ann.type == "mask":
            return self.mask(ann.points)
        if ann.type == "ellipse":
            return self.ellipse(ann)
        raise ValueError(f"{ann.type} has no region")


def _on_grid(points: Sequence[float], left: int, top: int) -> list[float]:
    """The polygon moved to a window at (left, top), rounded as pycocotools rounds it on the
    image: it takes (int)(5 v + .5) of each coordinate (C's truncation), so round on image
    coordinates, then move by whole pixels (plain floats: numpy's per-call cost dominates
    on polygons this short)."""
    origin = (5 * left, 5 * top)
    grid = [int(5 * v + 0.5) - origin[k & 1] for k, v in enumerate(points)]
    return [g / 5 if g >= 0 else (g - 1) / 5 for g in grid]  # rounds back to `grid`


def _batches(
    windows: list[tuple[int, tuple[int, int, int, int]]],
) -> list[list[tuple[int, tuple[int, int, int, int]]]]:
    """Groups of windows of similar size, so one canvas for a group wastes little."""

    def area(item: tuple[int, tuple[int, int, int, int]]) -> int:
        left, top, right, bottom = item[1]
        return (right - left) * (bottom - top)

    batches: list[list[tuple[int, tuple[int, int, int, int]]]] = []
    batch: list[tuple[int, tuple[int, int, int, int]]] = []
    height = width = used = 0
    for item in sorted(windows, key=area, reverse=True):
        left, top, right, bottom = item[1]
        grown_h, grown_w = max(height, bottom - top), max(width, right - left)
        if batch and grown_h * grown_w * (len(batch) + 1) > 2 * (used + area(item)) + 4096:
            batches.append(batch)
            batch, grown_h, grown_w, used = [], bottom - top, right - left, 0
        batch.append(item)
        height, width, used = grown_h, grown_w, used + area(item)
    if batch:
        batches.append(batch)
    return batches


def _covered_pixels(start: float, end: float, size: int) -> tuple[int, int]:
    """The pixel range [first, stop) whose centres lie in [start, end) at pycocotools'
    fifth-of-a-pixel precision (coordinates rounded as its C code does)."""
    low, high = int(5 * start + 0.5), int(5 * end + 0.5)
    first = max(0, -((2 - low) // 5))  # smallest i with 5 i + 2 >= low
    stop = min(size, -((2 - high) // 5))  # smallest i with 5 i + 2 >= high
    return first, stop


def polygon_points(ann: Ann) -> list[float] | None:
    """The outline a rotated rectangle or a polygon is rasterised from; None for others."""
    if ann.type == "polygon":
        return ann.points
    if ann.type == "rectangle" and ann.rotation:
        return ann.outline(rotated_box_polygon)
    return None


def region_bbox(ann: Ann) -> Box:
    if ann.type == "rectangle" and ann.rotation:
        corners = ann.outline(rotated_box_polygon)
        xs, ys = corners[0::2], corners[1::2]
        return (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))
    box = ann.bbox()
    assert box is not None
    return box
