"""Tests for core.interpolation: CVAT's track interpolation, golden values worked by hand."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from core import interpolation
from core.annotations import AttributeValue, Track, TrackedShape
from core.interpolation import (
    FrameShape,
    angle_diff,
    interpolate_skeleton,
    interpolate_track,
    resample_polyshape,
    shape_at,
)


def key(frame: int, points: list[float], type: str = "rectangle", **extra: object) -> TrackedShape:
    return TrackedShape(type=type, frame=frame, points=points, **extra)  # type: ignore[arg-type]


def by_frame(frames: list[FrameShape]) -> dict[int, FrameShape]:
    return {shape.frame: shape for shape in frames}


def attrs(**values: str) -> list[AttributeValue]:
    return [AttributeValue(spec_id=int(name[1:]), value=value) for name, value in values.items()]


# --- boxes and rotation ---------------------------------------------------------------------


def test_box_between_two_keyframes() -> None:
    shapes = [key(0, [0, 0, 10, 10]), key(10, [10, 10, 30, 30])]
    frames = interpolate_track(shapes, stop_frame=10)
    assert [f.frame for f in frames] == list(range(11))
    # offset 5/10 = 0.5: 0 + (10-0)*0.5 = 5, 10 + (30-10)*0.5 = 20
    assert frames[5].points == [5.0, 5.0, 20.0, 20.0]
    assert frames[5].keyframe is False
    # offset 0.3: 0 + 10*0.3 = 3, 10 + 20*0.3 = 16
    assert frames[3].points == pytest.approx([3, 3, 16, 16])
    assert frames[0].keyframe and frames[10].keyframe
    assert frames[10].points == [10.0, 10.0, 30.0, 30.0]


def test_unsorted_input_is_sorted_by_frame() -> None:
    shapes = [key(10, [10, 10, 30, 30]), key(0, [0, 0, 10, 10])]
    assert interpolate_track(shapes, stop_frame=10)[5].points == [5.0, 5.0, 20.0, 20.0]


def test_rotation_is_interpolated_linearly() -> None:
    shapes = [key(0, [0, 0, 10, 10], rotation=10.0), key(10, [0, 0, 10, 10], rotation=50.0)]
    # diff = ((50-10+180) % 360) - 180 = 40; (10 + 40*0.5 + 360) % 360 = 30
    assert interpolate_track(shapes, stop_frame=10)[5].rotation == 30.0


def test_rotation_takes_the_short_way_across_360() -> None:
    shapes = [key(0, [0, 0, 10, 10], rotation=350.0), key(4, [0, 0, 10, 10], rotation=10.0)]
    rotations = [f.rotation for f in interpolate_track(shapes, stop_frame=4)]
    # diff = ((10-350+180) % 360) - 180 = (-160 % 360) - 180 = 200 - 180 = +20 (not -340)
    # frame 1: (350 + 20*0.25 + 360) % 360 = 715 % 360 = 355
    # frame 2: (350 + 20*0.50 + 360) % 360 = 720 % 360 = 0
    # frame 3: (350 + 20*0.75 + 360) % 360 = 725 % 360 = 5
    assert rotations == [350.0, 355.0, 0.0, 5.0, 10.0]


def test_rotation_short_way_backwards() -> None:
    shapes = [key(0, [0, 0, 1, 1], rotation=10.0), key(2, [0, 0, 1, 1], rotation=350.0)]
    # diff = ((350-10+180) % 360) - 180 = 160 - 180 = -20; (10 - 20*0.5 + 360) % 360 = 0
    assert shape_at(shapes, 1).rotation == 0.0  # type: ignore[union-attr]


def test_half_turn_goes_forward_like_cvat_core() -> None:
    # cvat-core findAngleDiff: ((180+180) % 360) - 180 = -180 -> |-180| >= 180 -> +180.
    # (CVAT's server returns +1 here, a bug; we follow the client.)
    assert angle_diff(180.0, 0.0) == 180.0
    assert angle_diff(0.0, 180.0) == 180.0
    shapes = [key(0, [0, 0, 1, 1], rotation=0.0), key(2, [0, 0, 1, 1], rotation=180.0)]
    assert shape_at(shapes, 1).rotation == 90.0  # type: ignore[union-attr]


def test_ellipse_and_cuboid_are_linear() -> None:
    ellipse = [key(0, [5, 5, 10, 0], "ellipse"), key(2, [7, 9, 14, 2], "ellipse")]
    # offset 0.5: 5+1, 5+2, 10+2, 0+1
    assert shape_at(ellipse, 1).points == [6.0, 7.0, 12.0, 1.0]  # type: ignore[union-attr]
    cuboid = [key(0, [0.0] * 16, "cuboid"), key(4, [8.0] * 16, "cuboid")]
    # offset 0.25: 0 + 8*0.25 = 2
    assert shape_at(cuboid, 1).points == [2.0] * 16  # type: ignore[union-attr]


# --- points ---------------------------------------------------------------------------------


def test_single_point_is_linear() -> None:
    shapes = [key(0, [0, 0], "points"), key(10, [10, 20], "points")]
    # offset 0.3: 0 + 10*0.3 = 3, 0 + 20*0.3 = 6
    assert shape_at(shapes, 3).points == pytest.approx([3, 6])  # type: ignore[union-attr]


def test_multi_point_shapes_repeat_the_previous_keyframe() -> None:
    # CVAT (server points_interpolation, cvat-core PointsTrack.interpolatePosition)
    # interpolates "points" only when both keyframes hold exactly one point.
    equal = [key(0, [0, 0, 10, 10], "points"), key(10, [10, 10, 20, 20], "points")]
    assert shape_at(equal, 5).points == [0.0, 0.0, 10.0, 10.0]  # type: ignore[union-attr]
    differing = [key(0, [0, 0], "points"), key(10, [10, 10, 20, 20], "points")]
    assert shape_at(differing, 5).points == [0.0, 0.0]  # type: ignore[union-attr]


# --- polygons and polylines -----------------------------------------------------------------

SQUARE = [0.0, 0.0, 10.0, 0.0, 10.0, 10.0, 0.0, 10.0]


def test_translating_square_golden_values() -> None:
    moved = [10.0, 0.0, 20.0, 0.0, 20.0, 10.0, 10.0, 10.0]  # the square shifted by +10 in x
    shapes = [key(0, SQUARE, "polygon"), key(10, moved, "polygon")]
    frames = by_frame(interpolate_track(shapes, stop_frame=10))
    # Closed curves (0,0)(10,0)(10,10)(0,10)(0,0) and the shifted one have arc offsets
    # [0, .25, .5, .75, 1] both: vertex i pairs with vertex i, nothing merges.
    # Frame 5, offset 0.5: x + 10*0.5, y unchanged.
    assert frames[5].points == [5.0, 0.0, 15.0, 0.0, 15.0, 10.0, 5.0, 10.0]
    assert frames[0].points == SQUARE and frames[0].keyframe
    assert frames[10].points == moved and frames[10].keyframe


def test_polygon_with_an_extra_vertex() -> None:
    extra = [0.0, 0.0, 5.0, 0.0, 10.0, 0.0, 10.0, 10.0, 0.0, 10.0]  # square + midpoint (5,0)
    shapes = [key(0, SQUARE, "polygon"), key(10, extra, "polygon")]
    frames = by_frame(interpolate_track(shapes, stop_frame=10))
    # Left offsets [0, .25, .5, .75, 1]; right (length 40) [0, .125, .25, .5, .75, 1].
    # Left->right: 0->0, 1->2, 2->3, 3->4, 4->5. Right 1 (.125) is unmatched; nearest left
    # is a tie |.125-0| = |.125-.25|, the first wins: left 0 pairs with right [0, 1].
    # Left 0's run is thinned against right[0..1]: length 5, N = 2, threshold 5/4 = 1.25;
    # its moved points are (0,0) and (5t, 0).
    # Frame 5 (t=.5): 2.5 >= 1.25, both stay -> 5 vertices, (2.5, 0) the new one.
    assert frames[5].points == pytest.approx([0, 0, 2.5, 0, 10, 0, 10, 10, 0, 10])
    # Frame 1 (t=.1): 0.5 < 1.25, averaged to ((0+0.5)/2, 0) = (0.25, 0) -> 4 vertices.
    assert frames[1].points == pytest.approx([0.25, 0, 10, 0, 10, 10, 0, 10])
    assert frames[0].points == SQUARE and frames[10].points == extra


def test_polygon_with_fewer_vertices_keeps_its_properties() -> None:
    triangle = [0.0, 0.0, 20.0, 0.0, 10.0, 20.0]
    hexagon = [0.0, 0.0, 10.0, -2.0, 20.0, 0.0, 22.0, 10.0, 10.0, 22.0, -2.0, 10.0]
    shapes = [key(0, hexagon, "polygon"), key(6, triangle, "polygon")]
    frames = interpolate_track(shapes, stop_frame=6)
    assert frames[0].points == hexagon and frames[-1].points == triangle
    xs = hexagon[0::2] + triangle[0::2]
    ys = hexagon[1::2] + triangle[1::2]
    for frame in frames[1:-1]:
        assert len(frame.points) % 2 == 0 and len(frame.points) >= 6
        # At most one moved vertex per pair: the 7 closed left vertices plus the unmatched
        # right ones (at most 4 - 1), minus the closing vertex: 6 + 3.
        assert len(frame.points) // 2 <= 6 + 3
        assert all(min(xs) <= x <= max(xs) for x in frame.points[0::2])
        assert all(min(ys) <= y <= max(ys) for y in frame.points[1::2])


def test_polyline_is_not_closed() -> None:
    line = [0.0, 0.0, 10.0, 0.0, 20.0, 0.0]
    later = [0.0, 10.0, 10.0, 10.0, 20.0, 10.0]
    shapes = [key(0, line, "polyline"), key(2, later, "polyline")]
    # Offsets [0, .5, 1] both sides, identity matching; y: 0 + 10*0.5 = 5. Three vertices
    # (a polygon would have dropped the last one as the closing vertex).
    assert shape_at(shapes, 1).points == [0.0, 5.0, 10.0, 5.0, 20.0, 5.0]  # type: ignore[union-attr]


def test_polyshape_keeps_left_rotation() -> None:
    shapes = [
        key(0, SQUARE, "polygon", rotation=10.0),
        key(2, SQUARE, "polygon", rotation=50.0),
    ]
    assert shape_at(shapes, 1).rotation == 10.0  # type: ignore[union-attr]


def test_degenerate_polyline_does_not_divide_by_zero() -> None:
    points = resample_polyshape([1, 1, 1, 1], [0, 0, 4, 0], 0.5, closed=False)
    assert len(points) % 2 == 0 and points


# --- outside and track end ------------------------------------------------------------------


def test_outside_keyframe_ends_the_track_and_a_later_keyframe_restarts_it() -> None:
    shapes = [
        key(0, [0, 0, 10, 10]),
        key(4, [4, 4, 14, 14], outside=True),
        key(8, [8, 8, 18, 18]),
    ]
    frames = interpolate_track(shapes, stop_frame=10)
    # 0..3 interpolated towards the outside keyframe, 4..7 hidden, 8..10 propagated.
    assert [f.frame for f in frames] == [0, 1, 2, 3, 8, 9, 10]
    assert frames[1].points == [1.0, 1.0, 11.0, 11.0]  # 0 + 4*0.25, 10 + 4*0.25
    assert frames[-1].points == [8.0, 8.0, 18.0, 18.0] and not frames[-1].keyframe
    assert shape_at(shapes, 4) is None and shape_at(shapes, 6) is None
    assert shape_at(shapes, 8) == frames[4]


def test_outside_frames_on_request() -> None:
    shapes = [
        key(0, [0, 0, 10, 10]),
        key(4, [4, 4, 14, 14], outside=True),
        key(8, [8, 8, 18, 18]),
    ]
    frames = by_frame(interpolate_track(shapes, stop_frame=10, include_outside=True))
    assert sorted(frames) == list(range(11))
    assert frames[4].outside and frames[4].keyframe
    # Frames 5..7 are interpolated from the outside keyframe and stay outside:
    # offset (6-4)/4 = 0.5 -> 4 + 4*0.5 = 6.
    assert frames[6].outside and frames[6].points == [6.0, 6.0, 16.0, 16.0]
    assert not frames[8].outside


def test_final_outside_keyframe_ends_the_track() -> None:
    shapes = [key(0, [0, 0, 10, 10]), key(3, [0, 0, 10, 10], outside=True)]
    assert [f.frame for f in interpolate_track(shapes, stop_frame=9)] == [0, 1, 2]
    with_outside = interpolate_track(shapes, stop_frame=9, include_outside=True)
    assert [f.frame for f in with_outside] == list(range(10))
    assert all(f.outside for f in with_outside[3:])


def test_last_keyframe_propagates_to_stop_frame() -> None:
    frames = interpolate_track([key(2, [1, 2, 3, 4])], stop_frame=5)
    assert [f.frame for f in frames] == [2, 3, 4, 5]
    assert all(f.points == [1.0, 2.0, 3.0, 4.0] for f in frames)
    assert [f.keyframe for f in frames] == [True, False, False, False]


def test_stop_frame_before_the_next_keyframe() -> None:
    shapes = [key(0, [0, 0, 10, 10]), key(10, [10, 10, 30, 30]), key(20, [0, 0, 1, 1])]
    frames = interpolate_track(shapes, stop_frame=5)
    assert [f.frame for f in frames] == list(range(6))
    assert frames[5].points == [5.0, 5.0, 20.0, 20.0]


# --- masks, attributes, shape_at, errors ----------------------------------------------------


def test_mask_repeats_the_previous_keyframe() -> None:
    first = [0.0, 4.0, 4.0, 0.0, 0.0, 1.0, 1.0]  # rle..., left, top, right, bottom
    second = [2.0, 2.0, 10.0, 10.0, 11.0, 11.0]
    shapes = [key(0, first, "mask"), key(4, second, "mask")]
    frames = interpolate_track(shapes, stop_frame=5)
    assert [f.points for f in frames[:4]] == [first] * 4
    assert frames[4].points == second and frames[5].points == second


def test_attributes_follow_the_previous_keyframe() -> None:
    shapes = [
        key(0, [0, 0, 1, 1], attributes=attrs(a1="red", a2="small")),
        key(4, [0, 0, 1, 1], attributes=attrs(a1="blue")),
        key(6, [0, 0, 1, 1], occluded=True),
    ]
    frames = by_frame(interpolate_track(shapes, stop_frame=8))
    assert frames[3].attributes == attrs(a1="red", a2="small")
    # Keyframe 4 sets a1 and inherits a2; keyframe 6 sets nothing and inherits both.
    assert frames[4].attributes == attrs(a1="blue", a2="small")
    assert frames[5].attributes == attrs(a1="blue", a2="small")
    assert frames[8].attributes == attrs(a1="blue", a2="small")
    assert not frames[5].occluded and frames[7].occluded


def test_shape_at() -> None:
    shapes = [key(3, [0, 0, 10, 10]), key(13, [10, 10, 30, 30])]
    assert shape_at(shapes, 2) is None
    assert shape_at(shapes, 8).points == [5.0, 5.0, 20.0, 20.0]  # type: ignore[union-attr]
    frames = interpolate_track(shapes, stop_frame=20)
    assert [shape_at(shapes, f.frame) for f in frames] == frames


def test_shape_at_matches_the_walk_for_polygons() -> None:
    shapes = [
        key(0, SQUARE, "polygon"),
        key(7, [0.0, 0.0, 5.0, 1.0, 12.0, 0.0, 11.0, 11.0, 0.0, 12.0], "polygon"),
        key(9, SQUARE, "polygon", outside=True),
    ]
    for frame in interpolate_track(shapes, stop_frame=12):
        assert shape_at(shapes, frame.frame) == frame


def test_errors() -> None:
    with pytest.raises(ValueError):
        interpolate_track([], stop_frame=3)
    with pytest.raises(ValueError):
        shape_at([], 0)
    with pytest.raises(ValueError):
        interpolate_track([key(0, [0, 0, 1, 1]), key(0, [0, 0, 2, 2])], stop_frame=3)
    with pytest.raises(ValueError):
        interpolate_track([key(0, [0, 0, 1, 1]), key(2, SQUARE, "polygon")], stop_frame=3)


def test_identical_duplicate_keyframes_are_ignored() -> None:
    frames = interpolate_track([key(0, [0, 0, 1, 1], id=1), key(0, [0, 0, 1, 1])], stop_frame=1)
    assert [f.frame for f in frames] == [0, 1]


# --- skeletons ------------------------------------------------------------------------------


def test_skeleton_elements_are_interpolated_per_element() -> None:
    track = Track(
        label_id=1,
        frame=0,
        shapes=[key(0, [], "skeleton"), key(4, [], "skeleton")],
        elements=[
            Track(label_id=2, frame=0, shapes=[key(0, [0, 0], "points"), key(4, [4, 8], "points")]),
            Track(
                label_id=3,
                frame=0,
                shapes=[key(0, [1, 1], "points"), key(2, [1, 1], "points", outside=True)],
            ),
        ],
    )
    frames = interpolate_skeleton(track, stop_frame=4)
    assert [f.shape.frame for f in frames] == [0, 1, 2, 3, 4]
    # Element 2 at frame 1: offset 0.25 -> (0 + 4*0.25, 0 + 8*0.25) = (1, 2).
    assert frames[1].elements[2].points == [1.0, 2.0]
    # Element 3 is kept with outside=True once hidden: the parent controls visibility.
    assert frames[3].elements[3].outside and not frames[1].elements[3].outside


def test_skeleton_frame_with_all_elements_outside_is_dropped() -> None:
    track = Track(
        label_id=1,
        frame=0,
        shapes=[key(0, [], "skeleton")],
        elements=[
            Track(
                label_id=2,
                frame=0,
                shapes=[key(0, [0, 0], "points"), key(2, [0, 0], "points", outside=True)],
            )
        ],
    )
    assert [f.shape.frame for f in interpolate_skeleton(track, stop_frame=3)] == [0, 1]
    everything = interpolate_skeleton(track, stop_frame=3, include_outside=True)
    assert [f.shape.frame for f in everything] == [0, 1, 2, 3]


# --- purity ---------------------------------------------------------------------------------


def test_core_interpolation_is_pure_python() -> None:
    tree = ast.parse(Path(interpolation.__file__).read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "math", "bisect", "collections", "dataclasses", "core"}
