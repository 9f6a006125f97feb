"""One frame of a job compared with the ground truth: matches, conflicts, confusion matrix.

The steps and numbers are CVAT's (`quality_reports.py`, `_DistanceComparator`,
`_Comparator` and `DatasetComparator._generate_frame_annotation_conflicts`): each kind of
object is matched on its own similarity, then conflicts are derived from the matches.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from core.quality_settings import QualitySettings
from workers.quality.geometry import (
    Raster,
    Region,
    bbox_iou,
    iou_matrix,
    line_similarity,
    max_bbox,
    mean_bbox,
    oks,
    polygon_points,
    region_bbox,
    union,
)
from workers.quality.matching import match_segments
from workers.quality.objects import VISIBLE, Ann, Box, LabelCatalog

ERRORS = frozenset({"missing_annotation", "extra_annotation", "mismatching_label"})
COVERING_TYPES = frozenset({"rectangle", "polygon", "mask"})
SEGMENT_TYPES = frozenset({"polygon", "mask"})


@dataclass(frozen=True)
class FrameImage:
    width: int
    height: int


@dataclass
class FrameResult:
    """What one frame contributes to a job's report."""

    conflicts: list[dict[str, object]]
    confusion: np.ndarray  # rows: ds labels + unmatched, columns: gt labels + unmatched
    valid_count: int
    missing_count: int
    extra_count: int
    total_count: int
    ds_count: int
    gt_count: int
    shape: dict[str, float] = field(default_factory=dict)  # shape component counts, mean_iou
    label: dict[str, int] = field(default_factory=dict)


@dataclass
class _Matched:
    """Matches of every kind of object on a frame, by object identity."""

    matches: list[tuple[Ann, Ann]] = field(default_factory=list)
    mismatches: list[tuple[Ann, Ann]] = field(default_factory=list)
    gt_unmatched: list[Ann] = field(default_factory=list)
    ds_unmatched: list[Ann] = field(default_factory=list)
    similarity: dict[tuple[int, int], float] = field(default_factory=dict)  # of each pair
    closest: dict[int, float] = field(default_factory=dict)  # id -> best similarity found

    def add(
        self,
        gt: Sequence[Ann],
        ds: Sequence[Ann],
        sim: np.ndarray,
        threshold: float,
        same_label: Callable[[int, int], bool] | None = None,
    ) -> None:
        labels = same_label or (lambda i, j: gt[i].label == ds[j].label)
        found = match_segments(sim, threshold, labels)
        self.note_closest([[a] for a in gt], [[b] for b in ds], sim)
        for i, j in found.matches + found.mismatches:
            self.similarity[(id(gt[i]), id(ds[j]))] = float(sim[i, j])
        self.matches += [(gt[i], ds[j]) for i, j in found.matches]
        self.mismatches += [(gt[i], ds[j]) for i, j in found.mismatches]
        self.gt_unmatched += [gt[i] for i in found.a_unmatched]
        self.ds_unmatched += [ds[j] for j in found.b_unmatched]

    def note_closest(
        self, gt: Sequence[Sequence[Ann]], ds: Sequence[Sequence[Ann]], sim: np.ndarray
    ) -> None:
        """Remembers each object's best similarity to anything on the other side (the
        objects of `gt[i]` and `ds[j]` all share `sim[i, j]`)."""
        if not sim.size:
            return
        for side, best in ((gt, sim.max(axis=1)), (ds, sim.max(axis=0))):
            for group, value in zip(side, best.tolist(), strict=True):
                for ann in group:
                    self.closest[id(ann)] = value


class FrameComparison:
    def __init__(
        self,
        gt: list[Ann],
        ds: list[Ann],
        *,
        settings: QualitySettings,
        labels: LabelCatalog,
        image: FrameImage,
    ) -> None:
        self.gt = gt
        self.ds = ds
        self.settings = settings
        self.labels = labels
        self.image = image
        self.scale = float(image.width * image.height)
        self.raster = Raster(image.width, image.height)
        self._regions: dict[int, Region] = {}
        self._group_boxes: dict[tuple[int, int], Box] = {}
        self._point_arrays: dict[int, np.ndarray] = {}
        self._unrotated: dict[int, Region] = {}  # a rotated box's unrotated pixels

    def instance_box(self, ann: Ann, side: list[Ann]) -> Box:
        """The box of the object's group (datumaro's instance): itself when ungrouped."""
        if not ann.group:
            box = ann.bbox()
            assert box is not None
            return box
        key = (id(side), ann.group)
        found = self._group_boxes.get(key)
        if found is None:
            bounds = [b for a in side if a.group == ann.group and (b := a.bbox()) is not None]
            found = self._group_boxes[key] = max_bbox(bounds)
        return found

    def region(self, ann: Ann) -> Region:
        found = self._regions.get(id(ann))
        if found is None:
            found = self._regions[id(ann)] = self.raster.region(ann)
        return found

    def rasterise(self, anns: Sequence[Ann]) -> None:
        """Rasterises the polygons and rotated boxes among `anns` in batches, ahead of
        `region`."""
        todo = [(a, points) for a in anns if id(a) not in self._regions
                and (points := polygon_points(a)) is not None]  # fmt: skip
        regions = self.raster.polygons([points for _, points in todo])
        for (ann, _), region in zip(todo, regions, strict=True):
            self._regions[id(ann)] = region

    # --- matching -------------------------------------------------------------------------

    def match(self) -> _Matched:
        matched = _Matched()
        self._match_tags(matched)
        self._match_boxes(matched)
        self._match_segmentations(matched)
        self._match_ellipses(matched)
        self._match_lines(matched)
        self._match_points(matched)
        self._match_skeletons(matched)
        return matched

    def _of(self, anns: list[Ann], shape_type: str) -> list[Ann]:
        return [a for a in anns if a.type == shape_type]

    def _match_tags(self, matched: _Matched) -> None:
        gt, ds = self._of(self.gt, "tag"), self._of(self.ds, "tag")
        sim = np.array([[0.5 + 0.5 * (a.label == b.label) for b in ds] for a in gt])
        matched.add(gt, ds, sim.reshape(len(gt), len(ds)), 0.5)

    def _match_boxes(self, matched: _Matched) -> None:
        gt, ds = self._of(self.gt, "rectangle"), self._of(self.ds, "rectangle")
        sim = _box_ious(gt, ds)
        rotated = _rotations(gt)[:, None] != _rotations(ds)[None, :]
        if rotated.any():
            gt_frames = _box_array([a.region_box(region_bbox) for a in gt])
            ds_frames = _box_array([b.region_box(region_bbox) for b in ds])
            near = list(
                zip(*np.nonzero(rotated & _intersecting(gt_frames, ds_frames)), strict=True)
            )
            sim[rotated] = 0.0  # rotated against not: pixels, and none if the boxes miss
            self.rasterise([gt[i] for i, _ in near] + [ds[j] for _, j in near])
            for i, j in near:
                sim[i, j] = self.region(gt[i]).iou(self.region(ds[j]))
        matched.add(gt, ds, sim, self.settings.iou_threshold)

    def _match_ellipses(self, matched: _Matched) -> None:
        gt, ds = self._of(self.gt, "ellipse"), self._of(self.ds, "ellipse")
        sim = iou_matrix([self.region(a) for a in gt], [self.region(b) for b in ds])
        matched.add(gt, ds, sim, self.settings.iou_threshold)

    def _match_segmentations(self, matched: _Matched) -> None:
        gt_instances = _instances([a for a in self.gt if a.type in SEGMENT_TYPES])
        ds_instances = _instances([a for a in self.ds if a.type in SEGMENT_TYPES])
        if not gt_instances and not ds_instances:
            return
        self.rasterise([a for group in gt_instances + ds_instances for a in group])
        gt_segments = self._instance_segments(gt_instances)
        ds_segments = self._instance_segments(ds_instances)
        sim = iou_matrix(gt_segments, ds_segments)
        found = match_segments(
            sim,
            self.settings.iou_threshold,
            lambda i, j: gt_instances[i][0].label == ds_instances[j][0].label,
        )
        matched.note_closest(gt_instances, ds_instances, sim)
        for pairs, target in (
            (found.matches, matched.matches),
            (found.mismatches, matched.mismatches),
        ):
            for i, j in pairs:
                for a, b in itertools.product(gt_instances[i], ds_instances[j]):
                    matched.similarity[(id(a), id(b))] = float(sim[i, j])
                    target.append((a, b))
        matched.gt_unmatched += [a for i in found.a_unmatched for a in gt_instances[i]]
        matched.ds_unmatched += [b for j in found.b_unmatched for b in ds_instances[j]]

    def _instance_segments(self, instances: list[list[Ann]]) -> list[Region]:
        """Each instance's pixels: with panoptic comparison only the part left visible by
        the objects painted over it (higher z-order, then later objects over earlier ones)."""
        if not self.settings.panoptic_comparison:
            return [union([self.region(a) for a in group]) for group in instances]
        order = [(a, k) for k, group in enumerate(instances) for a in group]
        painted = sorted(range(len(order)), key=lambda n: order[n][0].z_order)
        boxes = _box_array([order[n][0].bbox() for n in painted])  # type: ignore[misc]
        meets = _intersecting(boxes, boxes)
        visible: list[list[Region]] = [[] for _ in instances]
        for rank, n in enumerate(painted):
            ann, k = order[n]
            later = [
                self.region(order[painted[m]][0])
                for m in np.flatnonzero(meets[rank, rank + 1 :]) + rank + 1
                if order[painted[m]][1] != k
            ]
            visible[k].append(self.region(ann).without(later))
        return [union(parts) for parts in visible]

    def _match_lines(self, matched: _Matched) -> None:
        gt, ds = self._of(self.gt, "polyline"), self._of(self.ds, "polyline")
        sim = np.zeros((len(gt), len(ds)))
        for i, a in enumerate(gt):
            for j, b in enumerate(ds):
                sim[i, j] = self.line_sim(a, b, oriented=False)
        matched.add(gt, ds, sim, self.settings.iou_threshold)

    def line_sim(self, gt: Ann, ds: Ann, *, oriented: bool) -> float:
        return line_similarity(
            gt.points,
            ds.points,
            scale=self.scale,
            thickness=self.settings.line_thickness,
            oriented=oriented,
        )

    def _match_points(self, matched: _Matched) -> None:
        gt, ds = self._of(self.gt, "points"), self._of(self.ds, "points")
        if not gt and not ds:
            return
        gt_boxes = [self.instance_box(a, self.gt) for a in gt]
        ds_boxes = [self.instance_box(b, self.ds) for b in ds]
        sim = np.zeros((len(gt), len(ds)))
        for i, a in enumerate(gt):
            for j, b in enumerate(ds):
                sim[i, j] = self._points_sim(a, b, gt_boxes[i], ds_boxes[j])
        matched.add(gt, ds, sim, self.settings.iou_threshold)

    def _points_sim(self, a: Ann, b: Ann, a_box: Box, b_box: Box) -> float:
        a_points, b_points = self._point_array(a), self._point_array(b)
        sigma = self.settings.oks_sigma
        if a_box[2] * a_box[3] == 0 and b_box[2] * b_box[3] == 0:
            return oks(a_points, b_points, sigma=sigma, scale=self.scale)
        if bbox_iou(a_box, b_box) <= 0:
            return 0.0
        scale = self._point_scale(a_box, b_box)
        if not scale:
            return 0.0
        squared = np.sum((a_points[:, None, :] - b_points[None, :, :]) ** 2, axis=2)
        single = np.exp(-squared / (2 * scale * (2 * sigma) ** 2))  # OKS of each point pair
        found = match_segments(single, self.settings.iou_threshold, lambda i, j: True)
        pairs = found.matches + found.mismatches
        if not pairs:
            return 0.0
        total = len(pairs) + len(found.a_unmatched) + len(found.b_unmatched)
        return float(sum(single[i, j] for i, j in pairs) / total)

    def _point_array(self, ann: Ann) -> np.ndarray:
        found = self._point_arrays.get(id(ann))
        if found is None:
            found = self._point_arrays[id(ann)] = np.reshape(ann.points, (-1, 2))
        return found

    def _point_scale(self, a_box: Box, b_box: Box) -> float:
        if self.settings.point_size_base == "image_size":
            return self.scale
        box = mean_bbox([a_box, b_box])
        return box[2] * box[3]

    def _match_skeletons(self, matched: _Matched) -> None:
        gt = [a for a in self._of(self.gt, "skeleton") if _any_present(a)]
        ds = [a for a in self._of(self.ds, "skeleton") if _any_present(a)]
        if not gt and not ds:
            return
        gt_boxes = [self.instance_box(a, self.gt) for a in gt]
        ds_boxes = [self.instance_box(b, self.ds) for b in ds]
        sim = np.zeros((len(gt), len(ds)))
        for i, a in enumerate(gt):
            for j, b in enumerate(ds):
                sim[i, j] = self._skeleton_sim(a, b, gt_boxes[i], ds_boxes[j])
        matched.add(gt, ds, sim, self.settings.iou_threshold)

    def _skeleton_sim(self, a: Ann, b: Ann, a_box: Box, b_box: Box) -> float:
        if bbox_iou(a_box, b_box) <= 0:
            return 0.0
        a_points, a_visible = self._nodes(a)
        b_points, b_visible = self._nodes(b)
        return oks(
            a_points,
            b_points,
            sigma=self.settings.oks_sigma,
            scale=self._point_scale(a_box, b_box),
            visible_a=a_visible,
            visible_b=b_visible,
        )

    def _nodes(self, skeleton: Ann) -> tuple[np.ndarray, np.ndarray]:
        by_label = {e.label: e for e in skeleton.elements}
        order = self.labels.nodes.get(skeleton.label, [])
        nodes = [by_label.get(label) for label in order]
        points = np.array([[n.x, n.y] if n else [0.0, 0.0] for n in nodes]).reshape(-1, 2)
        visible = np.array([n is not None and n.visibility == VISIBLE for n in nodes], bool)
        return points, visible

    # --- conflicts and counts --------------------------------------------------------------

    def result(self, gt_job: int, ds_job: int, frame: int) -> FrameResult:
        m = self.match()
        conflicts: list[dict[str, object]] = []

        def conflict(kind: str, *anns: tuple[Ann, int]) -> None:
            conflicts.append(
                {
                    "frame_id": frame,
                    "type": kind,
                    "annotation_ids": [ann.annotation_id(job) for ann, job in anns],
                    "severity": "error" if kind in ERRORS else "warning",
                }
            )

        pairs = m.matches + m.mismatches
        for gt, ds in pairs:
            sim = m.similarity.get((id(gt), id(ds)))
            if not gt.is_tag and sim and sim < self.settings.low_overlap_threshold:
                conflict("low_overlap", (ds, ds_job), (gt, gt_job))
        for gt in m.gt_unmatched:
            conflict("missing_annotation", (gt, gt_job))
        for ds in m.ds_unmatched:
            conflict("extra_annotation", (ds, ds_job))
        for gt, ds in m.mismatches:
            conflict("mismatching_label", (ds, ds_job), (gt, gt_job))
        if self.settings.compare_line_orientation:
            for gt, ds in pairs:
                if gt.type == ds.type == "polyline":
                    either = m.similarity[(id(gt), id(ds))]
                    if either - self.line_sim(gt, ds, oriented=True) > (
                        self.settings.line_orientation_threshold
                    ):
                        conflict("mismatching_direction", (ds, ds_job), (gt, gt_job))
        if self.settings.check_covered_annotations:
            for ds in self._covered(self.ds):
                conflict("covered_annotation", (ds, ds_job))
        if self.settings.compare_attributes:
            for gt, ds in m.matches:
                if gt.attributes != ds.attributes:
                    conflict("mismatching_attributes", (ds, ds_job), (gt, gt_job))
        if self.settings.compare_groups:
            for gt, ds in _group_conflicts(self.gt, self.ds, pairs, self.settings):
                conflict("mismatching_groups", (ds, ds_job), (gt, gt_job))
        return self._counted(m, conflicts)

    def _covered(self, anns: list[Ann]) -> list[Ann]:
        """Objects hidden under the ones above them (z-order) but for less than the
        visibility threshold of their area."""
        ordered = sorted((a for a in anns if a.type in COVERING_TYPES), key=lambda a: a.z_order)
        boxes = _box_array([a.bbox() for a in ordered])  # type: ignore[misc]
        meets = _intersecting(boxes, boxes)
        covered: list[Ann] = []
        for index, ann in enumerate(ordered):
            over = [ordered[k] for k in np.flatnonzero(meets[index, index + 1 :]) + index + 1]
            if not over:
                continue
            bottom = self._covering_region(ann)
            above = [r for r in map(self._covering_region, over) if r.meets(bottom)]
            if not above or not bottom.area:
                continue
            hidden = bottom.area - bottom.without(above).area
            if hidden and 1 - hidden / bottom.area < self.settings.object_visibility_threshold:
                covered.append(ordered[index])
        return covered

    def _covering_region(self, ann: Ann) -> Region:
        if ann.type == "rectangle" and ann.rotation:
            found = self._unrotated.get(id(ann))
            if found is None:
                found = self._unrotated[id(ann)] = self.raster.rectangle(*ann.points[:4])
            return found
        return self.region(ann)

    def _counted(self, m: _Matched, conflicts: list[dict[str, object]]) -> FrameResult:
        index = {label_id: k for k, (label_id, _) in enumerate(self.labels.top_level)}
        unmatched = len(index)
        confusion = np.zeros((unmatched + 1, unmatched + 1), dtype=np.int64)
        for gt, ds in m.matches + m.mismatches:
            confusion[index.get(ds.label, unmatched), index.get(gt.label, unmatched)] += 1
        for ds in m.ds_unmatched:
            confusion[index.get(ds.label, unmatched), unmatched] += 1
        for gt in m.gt_unmatched:
            confusion[unmatched, index.get(gt.label, unmatched)] += 1
        valid = int(np.trace(confusion[:unmatched, :unmatched]))
        ds_count = int(confusion[:unmatched, :].sum())
        gt_count = int(confusion[:, :unmatched].sum())
        total = int(confusion.sum())
        if self.settings.empty_is_annotated:
            if not self.gt and not self.ds:
                valid, total = valid + 1, total + 1
            ds_count += not self.ds
            gt_count += not self.gt
        similarities = [m.similarity[(id(gt), id(ds))] for gt, ds in m.matches + m.mismatches]
        for ann in m.gt_unmatched + m.ds_unmatched:
            similarities.append(m.closest.get(id(ann), 0.0))
        similarities = [max(0.0, s) for s in similarities]
        pairs = len(m.matches) + len(m.mismatches)
        missing, extra = len(m.gt_unmatched), len(m.ds_unmatched)
        return FrameResult(
            conflicts=conflicts,
            confusion=confusion,
            valid_count=valid,
            missing_count=int(confusion[unmatched, :].sum()),
            extra_count=int(confusion[:, unmatched].sum()),
            total_count=total,
            ds_count=ds_count,
            gt_count=gt_count,
            shape={
                "valid_count": pairs,
                "missing_count": missing,
                "extra_count": extra,
                "total_count": pairs + missing + extra,
                "ds_count": pairs + extra,
                "gt_count": pairs + missing,
                "mean_iou": float(np.mean(similarities)) if similarities else 0.0,
            },
            label={
                "valid_count": len(m.matches),
                "invalid_count": len(m.mismatches),
                "total_count": pairs,
            },
        )


def compare_frame(
    gt: list[Ann],
    ds: list[Ann],
    *,
    frame: int,
    gt_job: int,
    ds_job: int,
    settings: QualitySettings,
    labels: LabelCatalog,
    image: FrameImage,
) -> FrameResult:
    comparison = FrameComparison(gt, ds, settings=settings, labels=labels, image=image)
    return comparison.result(gt_job, ds_job, frame)


def find_instances(anns: Sequence[Ann]) -> list[list[Ann]]:
    """datumaro's find_instances: ungrouped objects alone, grouped ones together."""
    groups: list[list[Ann]] = []
    for group_id, members in itertools.groupby(
        sorted(anns, key=lambda a: a.group), lambda a: a.group
    ):
        if not group_id:
            groups.extend([a] for a in members)
        else:
            groups.append(list(members))
    return groups


def _instances(anns: Sequence[Ann]) -> list[list[Ann]]:
    """Polygons and masks of one object: same group (or alone) and same label."""
    instances: list[list[Ann]] = []
    for group in find_instances(anns):
        ordered = sorted(group, key=lambda a: a.label)
        instances.extend(list(g) for _, g in itertools.groupby(ordered, key=lambda a: a.label))
    return instances


def _any_present(skeleton: Ann) -> bool:
    return any(e.visibility != 0 for e in skeleton.elements)


def _group_conflicts(
    gt: Sequence[Ann], ds: Sequence[Ann], pairs: list[tuple[Ann, Ann]], settings: QualitySettings
) -> list[tuple[Ann, Ann]]:
    if not any(a.group for a in gt) and not any(b.group for b in ds):
        return []  # every object alone on both sides: each pair is its own matched group
    gt_groups, ds_groups = find_instances(gt), find_instances(ds)
    gt_of = {id(a): k for k, group in enumerate(gt_groups) for a in group}
    ds_of = {id(a): k for k, group in enumerate(ds_groups) for a in group}
    shared = np.zeros((len(gt_groups), len(ds_groups)))
    for a, b in pairs:
        shared[gt_of[id(a)], ds_of[id(b)]] += 1
    sizes_gt = np.array([len(g) for g in gt_groups], float).reshape(-1, 1)
    sizes_ds = np.array([len(g) for g in ds_groups], float).reshape(1, -1)
    unions = sizes_gt + sizes_ds - shared
    sim = shared / np.where(unions == 0, 1, unions)
    found = match_segments(sim, settings.group_match_threshold, lambda i, j: sim[i, j] == 1)
    ds_to_gt: dict[int, int | None] = {j: i for i, j in found.matches + found.mismatches}
    ds_to_gt.update({j: None for j in found.b_unmatched})
    conflicts = []
    for a, b in pairs:
        gt_group, ds_group = gt_of[id(a)], ds_of[id(b)]
        alone_in_gt = len(gt_groups[gt_group]) == 1 and len(ds_groups[ds_group]) != 1
        if alone_in_gt or ds_to_gt.get(ds_group) != gt_group:
            conflicts.append((a, b))
    return conflicts


def _box_ious(gt: Sequence[Ann], ds: Sequence[Ann]) -> np.ndarray:
    """datumaro's bbox_iou for every pair at once (-1 where boxes do not intersect)."""
    if not gt or not ds:
        return np.zeros((len(gt), len(ds)))
    a = np.array([a.points[:4] for a in gt], float)[:, None, :]
    b = np.array([b.points[:4] for b in ds], float)[None, :, :]
    in_w = np.maximum(0.0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]))
    in_h = np.maximum(0.0, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]))
    inter = in_w * in_h
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    unions = area_a + area_b - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / unions
    return np.where(inter > 0, iou, -1.0)


def _rotations(boxes: Sequence[Ann]) -> np.ndarray:
    return np.array([box.rotation for box in boxes], float)


def _box_array(boxes: Sequence[Box]) -> np.ndarray:
    return np.array(boxes, float).reshape(-1, 4)


def _intersecting(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Which (x, y, w, h) boxes of `a` may share a pixel with which of `b` (a pixel of
    margin: rasterised shapes may touch a pixel their exact boxes only border)."""
    left = np.maximum(a[:, None, 0], b[None, :, 0]) - 1
    right = np.minimum(a[:, None, 0] + a[:, None, 2], b[None, :, 0] + b[None, :, 2]) + 1
    top = np.maximum(a[:, None, 1], b[None, :, 1]) - 1
    bottom = np.minimum(a[:, None, 1] + a[:, None, 3], b[None, :, 1] + b[None, :, 3]) + 1
    return (right > left) & (bottom > top)
