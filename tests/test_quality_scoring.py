"""The pure scorer against cases worked out by hand (CVAT's matching and metrics)."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from core.labels import AttributeSpec, LabelSpec
from core.quality_settings import QualitySettings
from workers.quality.comparison import FrameImage, FrameResult, compare_frame
from workers.quality.geometry import Raster
from workers.quality.objects import ABSENT, VISIBLE, Ann, Element, LabelCatalog
from workers.quality.summary import Totals, confusion_json

CAR, PERSON, BODY, HEAD, FOOT = 1, 2, 3, 4, 5
LABELS = LabelCatalog.of(
    [
        LabelSpec(
            CAR,
            "car",
            "#ff0000",
            "any",
            attributes=[AttributeSpec(11, "color", True, "select", ["red", "blue"], "red")],
        ),
        LabelSpec(PERSON, "person", "#00ff00", "any"),
        LabelSpec(
            BODY,
            "body",
            "#0000ff",
            "skeleton",
            sublabels=[
                LabelSpec(HEAD, "head", "#000001", "points", has_parent=True),
                LabelSpec(FOOT, "foot", "#000002", "points", has_parent=True),
            ],
        ),
    ]
)
IMAGE = FrameImage(100, 100)
GT_JOB, DS_JOB = 9, 1


def box(ident: int, label: int, x1: float, y1: float, x2: float, y2: float, **kw: object) -> Ann:
    return shape(ident, "rectangle", label, [x1, y1, x2, y2], **kw)


def shape(ident: int, kind: str, label: int, points: list[float], **kw: object) -> Ann:
    attributes = LABELS.attribute_values(label, [], bool(kw.pop("occluded", False)))
    attributes.update(kw.pop("attrs", {}))  # type: ignore[arg-type]
    return Ann(ident, "shape", kind, label, points, attributes=attributes, **kw)  # type: ignore[arg-type]


def tag(ident: int, label: int) -> Ann:
    return Ann(ident, "tag", "tag", label, attributes=LABELS.attribute_values(label, [], None))


def compare(gt: list[Ann], ds: list[Ann], **settings: object) -> FrameResult:
    return compare_frame(
        gt,
        ds,
        frame=0,
        gt_job=GT_JOB,
        ds_job=DS_JOB,
        settings=msgspec.structs.replace(QualitySettings(), **settings),
        labels=LABELS,
        image=IMAGE,
    )


def kinds(result: FrameResult) -> list[tuple[str, list[int]]]:
    return [
        (str(c["type"]), [a["obj_id"] for a in c["annotation_ids"]])  # type: ignore[attr-defined]
        for c in result.conflicts
    ]


def test_equal_boxes_match_and_score_one() -> None:
    result = compare([box(100, CAR, 0, 0, 10, 10)], [box(1, CAR, 0, 0, 10, 10)])
    assert kinds(result) == []
    assert (result.valid_count, result.total_count, result.ds_count, result.gt_count) == (
        1,
        1,
        1,
        1,
    )
    assert result.shape["mean_iou"] == 1.0


def test_half_overlapping_box_is_a_low_overlap_warning() -> None:
    result = compare([box(100, CAR, 0, 0, 10, 10)], [box(1, CAR, 0, 0, 10, 5)])
    assert kinds(result) == [("low_overlap", [1, 100])]
    assert result.conflicts[0]["severity"] == "warning"
    assert result.valid_count == 1
    assert result.shape["mean_iou"] == 0.5


def test_box_below_the_iou_threshold_is_missing_and_extra() -> None:
    # IoU of 10x10 and 10x3 sharing a corner: 30 / 100 = 0.3 < 0.4
    result = compare([box(100, CAR, 0, 0, 10, 10)], [box(1, CAR, 0, 0, 10, 3)])
    assert kinds(result) == [("missing_annotation", [100]), ("extra_annotation", [1])]
    assert (result.valid_count, result.total_count, result.missing_count, result.extra_count) == (
        0,
        2,
        1,
        1,
    )
    assert result.shape["mean_iou"] == pytest.approx(0.3)  # each unmatched: its closest IoU


def test_other_label_is_a_mismatching_label_error_in_the_confusion_matrix() -> None:
    result = compare([box(100, CAR, 0, 0, 10, 10)], [box(1, PERSON, 0, 0, 10, 10)])
    assert kinds(result) == [("mismatching_label", [1, 100])]
    assert result.confusion.tolist() == [[0, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert (result.valid_count, result.ds_count, result.gt_count) == (0, 1, 1)
    assert result.label == {"valid_count": 0, "invalid_count": 1, "total_count": 1}


def test_rotated_boxes_are_compared_on_their_pixels() -> None:
    square = box(100, CAR, 10, 10, 30, 30)
    turned = box(1, CAR, 10, 10, 30, 30, rotation=90)  # a square turned a quarter: the same
    assert kinds(compare([square], [turned])) == []
    tilted = box(2, CAR, 10, 10, 30, 30, rotation=45)
    result = compare([square], [tilted])
    # a square and the same square at 45 degrees: overlap 1 / (2 - 1) with a = s^2(2 - ...)
    inter = 400 * (2 * math.sqrt(2) - 2)  # octagon: the square minus four corner triangles
    expected = inter / (800 - inter)
    assert result.shape["mean_iou"] == pytest.approx(expected, abs=0.03)


def test_polygons_compare_by_mask_iou() -> None:
    gt = shape(100, "polygon", CAR, [0, 0, 10, 0, 10, 10, 0, 10])
    ds = shape(1, "polygon", CAR, [0, 0, 10, 0, 10, 5, 0, 5])
    result = compare([gt], [ds])
    assert kinds(result) == [("low_overlap", [1, 100])]
    assert result.shape["mean_iou"] == 0.5


def test_a_mask_matches_the_polygon_covering_the_same_pixels() -> None:
    gt = shape(100, "polygon", CAR, [0, 0, 10, 0, 10, 10, 0, 10])
    mask = shape(1, "mask", CAR, [0, 100, 0, 0, 9, 9])  # runs over the 10x10 box: all set
    result = compare([gt], [mask])
    assert kinds(result) == []
    assert result.shape["mean_iou"] == 1.0


def test_panoptic_comparison_uses_only_the_visible_part() -> None:
    gt = [shape(100, "polygon", CAR, [0, 0, 10, 0, 10, 10, 0, 10])]
    under = shape(1, "polygon", CAR, [0, 0, 10, 0, 10, 10, 0, 10], z_order=0)
    above = shape(2, "polygon", PERSON, [0, 0, 10, 0, 10, 3, 0, 3], z_order=1)
    result = compare(gt, [under, above], check_covered_annotations=False)
    # the car keeps the lower 70 pixels of 100: IoU 0.7 matches; the person (0.3) is extra
    assert kinds(result) == [("low_overlap", [1, 100]), ("extra_annotation", [2])]
    flat = compare(gt, [under, above], check_covered_annotations=False, panoptic_comparison=False)
    assert kinds(flat) == [("extra_annotation", [2])]


def test_a_fully_covered_object_is_a_covered_annotation_warning() -> None:
    hidden = box(1, CAR, 0, 0, 10, 10, z_order=0)
    cover = box(2, CAR, 0, 0, 10, 10, z_order=1)
    result = compare([box(100, CAR, 0, 0, 10, 10)], [hidden, cover])
    assert ("covered_annotation", [1]) in kinds(result)
    assert result.conflicts[-1]["severity"] == "warning"


def test_polylines_compare_by_closeness_and_direction() -> None:
    line = [0, 0, 100, 0]
    same = compare([shape(100, "polyline", CAR, line)], [shape(1, "polyline", CAR, line)])
    assert kinds(same) == [] and same.shape["mean_iou"] == 1.0
    backwards = compare(
        [shape(100, "polyline", CAR, line)], [shape(1, "polyline", CAR, [100, 0, 0, 0])]
    )
    assert kinds(backwards) == [("mismatching_direction", [1, 100])]
    unoriented = compare(
        [shape(100, "polyline", CAR, line)],
        [shape(1, "polyline", CAR, [100, 0, 0, 0])],
        compare_line_orientation=False,
    )
    assert kinds(unoriented) == []


def test_a_shifted_polyline_scores_the_gaussian_of_its_distance() -> None:
    # image 100x100: S = 10^4, (2 * 0.01)^2 = 4e-4, so 2 S (2t)^2 = 8; shift 2 px: exp(-4/8)
    result = compare(
        [shape(100, "polyline", CAR, [0, 0, 100, 0])], [shape(1, "polyline", CAR, [0, 2, 100, 2])]
    )
    assert result.shape["mean_iou"] == pytest.approx(math.exp(-0.5))
    assert kinds(result) == [("low_overlap", [1, 100])]


def test_single_points_compare_by_oks_in_image_space() -> None:
    result = compare([shape(100, "points", CAR, [10, 10])], [shape(1, "points", CAR, [13, 14])])
    # d^2 = 25, scale = 100 * 100, (2 * 0.09)^2 = 0.0324: exp(-25 / 648)
    assert result.shape["mean_iou"] == pytest.approx(math.exp(-25 / 648))
    assert kinds(result) == []


def test_point_groups_compare_in_their_mean_box() -> None:
    gt = shape(100, "points", CAR, [0, 0, 10, 10])
    ds = shape(1, "points", CAR, [0, 0, 10, 10, 50, 50])
    result = compare([gt], [ds])
    # boxes 10x10 and 50x50 overlap; mean box 30x30: the two shared points match exactly,
    # the third is unmatched: (1 + 1) / 3
    assert result.shape["mean_iou"] == pytest.approx(2 / 3)


def test_skeletons_compare_by_oks_of_visible_nodes() -> None:
    def body(ident: int, foot_visibility: int) -> Ann:
        return Ann(
            ident,
            "shape",
            "skeleton",
            BODY,
            elements=[Element(HEAD, 10, 10, VISIBLE), Element(FOOT, 20, 20, foot_visibility)],
            attributes={"occluded": False},
        )

    assert compare([body(100, VISIBLE)], [body(1, VISIBLE)]).shape["mean_iou"] == 1.0
    result = compare([body(100, VISIBLE)], [body(1, ABSENT)])
    # the foot is visible on one side only: 1 of 2 nodes agrees
    assert result.shape["mean_iou"] == 0.5
    assert kinds(result) == [("low_overlap", [1, 100])]


def test_tags_pair_up_by_label() -> None:
    assert kinds(compare([tag(100, CAR)], [tag(1, CAR)])) == []
    assert kinds(compare([tag(100, CAR)], [tag(1, PERSON)])) == [("mismatching_label", [1, 100])]
    assert kinds(compare([tag(100, CAR)], [])) == [("missing_annotation", [100])]


def test_attribute_differences_are_warnings_on_matches() -> None:
    result = compare([box(100, CAR, 0, 0, 10, 10)], [box(1, CAR, 0, 0, 10, 10, attrs={11: "blue"})])
    assert kinds(result) == [("mismatching_attributes", [1, 100])]
    occluded = compare([box(100, CAR, 0, 0, 10, 10)], [box(1, CAR, 0, 0, 10, 10, occluded=True)])
    assert kinds(occluded) == [("mismatching_attributes", [1, 100])]
    off = compare(
        [box(100, CAR, 0, 0, 10, 10)],
        [box(1, CAR, 0, 0, 10, 10, attrs={11: "blue"})],
        compare_attributes=False,
    )
    assert kinds(off) == []


def test_grouping_what_the_ground_truth_leaves_apart_is_a_group_warning() -> None:
    gt = [box(100, CAR, 0, 0, 10, 10), box(101, CAR, 50, 50, 60, 60)]
    ds = [box(1, CAR, 0, 0, 10, 10, group=1), box(2, CAR, 50, 50, 60, 60, group=1)]
    result = compare(gt, ds)
    assert kinds(result) == [("mismatching_groups", [1, 100]), ("mismatching_groups", [2, 101])]
    grouped_alike = compare(
        [box(100, CAR, 0, 0, 10, 10, group=7), box(101, CAR, 50, 50, 60, 60, group=7)], ds
    )
    assert kinds(grouped_alike) == []


def test_metrics_of_a_mixed_frame() -> None:
    gt = [box(100, CAR, 0, 0, 10, 10), box(101, CAR, 20, 20, 30, 30), tag(102, PERSON)]
    ds = [box(1, CAR, 0, 0, 10, 10), box(2, PERSON, 20, 20, 30, 30), box(3, CAR, 60, 60, 70, 70)]
    result = compare(gt, ds)
    # one match, one wrong label, one extra box, one missing tag
    assert (result.valid_count, result.total_count, result.ds_count, result.gt_count) == (
        1,
        4,
        3,
        3,
    )
    totals = Totals(["car", "person", "body"])
    totals.add_frame(0, result)
    annotations = totals.comparison_summary(total_frames=4)["annotations"]
    assert annotations["accuracy"] == 1 / 4  # type: ignore[index]
    assert annotations["precision"] == 1 / 3  # type: ignore[index]
    assert annotations["recall"] == 1 / 3  # type: ignore[index]
    matrix = confusion_json(result.confusion, ["car", "person", "body"])
    # rows ds, cols gt: car/car 1, person/car 1, car/unmatched 1, unmatched/person 1
    assert matrix["rows"] == [[1, 0, 0, 1], [1, 0, 0, 0], [0, 0, 0, 0], [0, 1, 0, 0]]
    assert matrix["jaccard_index"][0] == 1 / (2 + 2 - 1)  # type: ignore[index]
    assert matrix["precision"][0] == 1 / 2 and matrix["recall"][0] == 1 / 2  # type: ignore[index]


def test_empty_frames_count_as_agreement_when_asked() -> None:
    plain = compare([], [])
    assert (plain.valid_count, plain.total_count) == (0, 0)
    counted = compare([], [], empty_is_annotated=True)
    assert (counted.valid_count, counted.total_count, counted.ds_count, counted.gt_count) == (
        1,
        1,
        1,
        1,
    )


def test_box_pixels_are_pycocotools_pixels() -> None:
    """Axis-aligned boxes skip the rasteriser: the same pixels as pycocotools at image size."""
    rng = np.random.default_rng(11)
    raster = Raster(70, 50)
    for index in range(2000):
        x1, y1 = rng.uniform(-10, 75), rng.uniform(-10, 55)
        w, h = rng.uniform(0, 40, 2)
        if index % 2:
            x1, y1, w, h = (round(float(v), 1) for v in (x1, y1, w, h))
        polygon = [x1, y1, x1 + w, y1, x1 + w, y1 + h, x1, y1 + h]
        expected = mask_utils.decode(mask_utils.frPyObjects([polygon], 50, 70))[:, :, 0]
        region = raster.rectangle(x1, y1, x1 + w, y1 + h)
        got = np.zeros((50, 70), bool)
        got[region.top : region.bottom, region.left : region.right] = region.pixels
        assert np.array_equal(got, expected.astype(bool)), (x1, y1, w, h)


def test_polygons_rasterised_together_have_their_own_pixels() -> None:
    """The batched rasteriser gives each polygon the pixels pycocotools gives it at image
    size, whether it lies inside the image or an edge cuts it."""
    rng = np.random.default_rng(5)
    raster = Raster(90, 60)
    outlines = []
    for index in range(300):
        x, y = rng.uniform(-10, 95), rng.uniform(-10, 65)
        count = int(rng.integers(3, 9))
        points = np.column_stack([x + rng.uniform(0, 25 + index % 3 * 15, count),
                                  y + rng.uniform(0, 20, count)]).ravel()  # fmt: skip
        outlines.append([round(float(v), 1 + index % 2) for v in points])
    for outline, region in zip(outlines, raster.polygons(outlines), strict=True):
        expected = mask_utils.decode(mask_utils.frPyObjects([outline], 60, 90))[:, :, 0]
        got = np.zeros((60, 90), bool)
        got[region.top : region.bottom, region.left : region.right] = region.pixels
        assert np.array_equal(got, expected.astype(bool)), outline
