"""Similarity measures of CVAT's quality control: box IoU, mask IoU on a raster, OKS, lines.

Follows `cvat/apps/quality_control/quality_reports.py` and datumaro's `ops`: a box IoU is -1
when the boxes do not intersect; polygons, masks, rotated boxes and ellipses are compared as
pycocotools RLEs rasterised at image size (here on the part of the image they cover, which
gives the same pixels).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from workers.formats.masks import cvat_mask_bitmap
from workers.quality.objects import Ann, Box

Rle = dict[str, Any]


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
    a, b = approximate_points(np.reshape(gt, (-1, 2)), np.reshape(ds, (-1, 2)))
    candidates = [b] if oriented else [b, b[::-1]]
    return max(_compare_lines(a, c, scale, thickness) for c in candidates)


def _bbox_circle(points: Sequence[float]) -> tuple[float, float, float]:
    xs, ys = points[0::2], points[1::2]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    return (x0 + x1) / 2, (y0 + y1) / 2, ((x1 - x0) ** 2 + (y1 - y0) ** 2) / 4


def _compare_lines(a: np.ndarray, b: np.ndarray, scale: float, thickness: float) -> float:
    dists = np.linalg.norm(a - b, axis=1)
    return float(np.sum(np.exp(-(dists**2) / (2 * scale * (2 * thickness) ** 2))) / len(a))


def approximate_points(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both lines with the same number of points placed at the same relative arc lengths
    (every original vertex of either line kept), as CVAT's `approximate_points`."""
    epsilon = 1e-7
    a_count, b_count = len(a) - 1, len(b) - 1
    a_lengths = np.linalg.norm(a[1:] - a[:-1], axis=1)
    b_lengths = np.linalg.norm(b[1:] - b[:-1], axis=1)
    a_ends = [*np.cumsum(a_lengths).tolist(), float(np.sum(a_lengths))]
    b_ends = [*np.cumsum(b_lengths).tolist(), float(np.sum(b_lengths))]
    a_length, b_length = a_ends[-1], b_ends[-1]
    size = len(a) + len(b) - 1
    a_new, b_new = np.zeros((size, 2)), np.zeros((size, 2))
    a_new[0], b_new[0] = a[0], b[0]
    a_idx = b_idx = 0
    next_idx = 0
    while a_idx < a_count or b_idx < b_count:
        next_idx = a_idx + b_idx + 1
        a_pos = a_ends[a_idx] / (a_length or 1)
        b_pos = b_ends[b_idx] / (b_length or 1)
        if a_idx < a_count and a_pos <= b_pos:
            if b_idx < b_count:
                q = (b_pos - a_pos) * (b_length / (b_lengths[b_idx] or 1))
                b_new[next_idx] = (
                    b[1 + b_idx] if abs(q) <= epsilon else b[b_idx] * q + b[1 + b_idx] * (1 - q)
                )
            elif b_idx == b_count:
                b_new[next_idx] = b[b_idx]
            a_idx += 1
            a_new[next_idx] = a[a_idx]
        else:
            if a_idx < a_count:
                q = (a_pos - b_pos) * (a_length / (a_lengths[a_idx] or 1))
                a_new[next_idx] = (
                    a[1 + a_idx] if abs(q) <= epsilon else a[a_idx] * q + a[1 + a_idx] * (1 - q)
                )
            elif a_idx == a_count:
                a_new[next_idx] = a[a_idx]
            b_idx += 1
            b_new[next_idx] = b[b_idx]
    if next_idx < size:
        a_new, b_new = a_new[:next_idx], b_new[:next_idx]
    return a_new, b_new


# --- rasters --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Canvas:
    """The part of the image (left, top, width, height) that every region of a frame lies in."""

    left: int
    top: int
    width: int
    height: int

    @classmethod
    def around(cls, anns: Sequence[Ann], image_width: int, image_height: int) -> Canvas:
        boxes = [region_bbox(ann) for ann in anns]
        if not boxes:
            return cls(0, 0, 1, 1)
        x0, y0, w, h = max_bbox(boxes)
        left = min(max(0, math.floor(x0) - 1), max(image_width - 1, 0))
        top = min(max(0, math.floor(y0) - 1), max(image_height - 1, 0))
        right = max(min(image_width, math.ceil(x0 + w) + 2), left + 1)
        bottom = max(min(image_height, math.ceil(y0 + h) + 2), top + 1)
        return cls(left, top, right - left, bottom - top)

    def polygon(self, points: Sequence[float]) -> Rle:
        if len(points) < 6:
            return self.empty()
        shifted = np.asarray(points, dtype=float).reshape(-1, 2) - (self.left, self.top)
        rles = mask_utils.frPyObjects([shifted.ravel().tolist()], self.height, self.width)
        return mask_utils.merge(rles)

    def bitmap(self, image: np.ndarray) -> Rle:
        return mask_utils.encode(np.asfortranarray(image.astype(np.uint8)))

    def empty(self) -> Rle:
        return self.bitmap(np.zeros((self.height, self.width), np.uint8))

    def mask(self, points: Sequence[float]) -> Rle:
        bitmap, left, top = cvat_mask_bitmap(points)
        return self.bitmap(self.place(bitmap, left, top))

    def place(self, bitmap: np.ndarray, left: int, top: int) -> np.ndarray:
        image = np.zeros((self.height, self.width), np.uint8)
        x0, y0 = left - self.left, top - self.top
        h, w = bitmap.shape
        cx0, cy0 = max(x0, 0), max(y0, 0)
        cx1, cy1 = min(x0 + w, self.width), min(y0 + h, self.height)
        if cx1 > cx0 and cy1 > cy0:
            image[cy0:cy1, cx0:cx1] = bitmap[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
        return image

    def ellipse(self, ann: Ann) -> Rle:
        cx, cy, rx_x, ry_y = ann.points[:4]
        image = np.zeros((self.height, self.width), np.uint8)
        center = (round(cx - self.left), round(cy - self.top))
        axes = (round(abs(rx_x - cx)), round(abs(cy - ry_y)))
        cv2.ellipse(image, center, axes, ann.rotation, 0, 360, 1, -1)
        return self.bitmap(image)

    def region(self, ann: Ann) -> Rle:
        """The pixels of a rectangle (rotated), polygon, mask or ellipse."""
        if ann.type == "rectangle":
            return self.polygon(rotated_box_polygon(ann))
        if ann.type == "polygon":
            return self.polygon(ann.points)
        if ann.type == "mask":
            return self.mask(ann.points)
        if ann.type == "ellipse":
            return self.ellipse(ann)
        raise ValueError(f"{ann.type} has no region")

    def decode(self, rle: Rle) -> np.ndarray:
        return mask_utils.decode(rle).astype(bool)


def region_bbox(ann: Ann) -> Box:
    if ann.type == "rectangle" and ann.rotation:
        corners = rotated_box_polygon(ann)
        xs, ys = corners[0::2], corners[1::2]
        return (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))
    box = ann.bbox()
    assert box is not None
    return box


def rle_iou(a: Sequence[Rle], b: Sequence[Rle]) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of two lists of RLEs (pycocotools, not crowd)."""
    if not a or not b:
        return np.zeros((len(a), len(b)))
    return np.asarray(mask_utils.iou(list(b), list(a), [0] * len(a)), dtype=float).T.reshape(
        len(a), len(b)
    )


def merge(rles: Sequence[Rle], intersect: bool = False) -> Rle:
    return mask_utils.merge(list(rles), intersect=intersect)


def area(rle: Rle) -> int:
    return int(mask_utils.area(rle))
