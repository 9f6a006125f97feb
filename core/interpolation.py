"""Track interpolation: a track's shape on every frame, the way CVAT computes it.

A track stores only keyframes (every element of ``Track.shapes`` is one; the REST API has no
keyframe flag). The frames in between are derived, following CVAT's server
(``cvat/apps/dataset_manager/annotation.py``, ``TrackManager.get_interpolated_shapes``) and its
client (``cvat-core/src/annotations-objects/*-track.ts``, ``interpolatePosition``):

- rectangle, ellipse, cuboid, skeleton: every coordinate linearly; rotation linearly along the
  shorter arc, wrapped into [0, 360).
- points: linearly only when both keyframes hold exactly one point; otherwise the previous
  keyframe repeats unchanged (CVAT does not interpolate multi-point shapes).
- polygon, polyline: CVAT's resampling. Both curves are parametrised by relative arc length,
  vertices are matched to the nearest parameter in both directions, matched pairs are moved
  linearly and runs of vertices closer than half the mean segment length are merged. A polygon
  is closed (its first vertex appended) for the computation, and the closing vertex dropped.
  Rotation is not interpolated (the previous keyframe's value is kept).
- mask: no interpolation, the previous keyframe repeats.

Every derived frame copies ``occluded``, ``outside``, ``z_order`` and the mutable attributes of
the previous keyframe; a keyframe also inherits the attributes its predecessor had and it does
not set itself. A keyframe with ``outside`` ends the visible track; nothing is interpolated
from it (unless outside frames are asked for) until a later keyframe restarts the track, and
after the last keyframe the track is propagated unchanged to the stop frame.

Two deliberate choices where CVAT's two implementations differ: a rotation difference of
exactly 180 degrees turns by +180 as cvat-core does (the server's ``find_angle_diff`` returns
+1 there, a bug), and a mask interval repeats the previous keyframe (the server raises
``NotImplementedError`` for masks between two keyframes; cvat-core has no mask tracks).

Pure Python: no numpy, no shapely.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from core.annotations import AttributeValue, Track, TrackedShape

Point = tuple[float, float]

LINEAR_TYPES = frozenset({"rectangle", "ellipse", "cuboid", "skeleton"})
POLY_TYPES = frozenset({"polygon", "polyline"})


@dataclass(frozen=True)
class FrameShape:
    """A track's shape on one frame; ``keyframe`` tells a stored shape from a derived one."""

    frame: int
    type: str
    points: list[float]
    rotation: float
    occluded: bool
    outside: bool
    z_order: int
    attributes: list[AttributeValue]
    keyframe: bool

    def as_keyframe(self) -> TrackedShape:
        """This shape stored as a (new) keyframe of its track."""
        return TrackedShape(
            type=self.type,
            frame=self.frame,
            points=list(self.points),
            occluded=self.occluded,
            outside=self.outside,
            z_order=self.z_order,
            rotation=self.rotation,
            attributes=list(self.attributes),
        )


@dataclass(frozen=True)
class SkeletonFrame:
    """A skeleton track on one frame: the parent shape and its elements by sublabel id."""

    shape: FrameShape
    elements: dict[int, FrameShape] = field(default_factory=dict)


# --- public API -----------------------------------------------------------------------------


def interpolate_track(
    shapes: Sequence[TrackedShape], *, stop_frame: int, include_outside: bool = False
) -> list[FrameShape]:
    """Return one FrameShape per frame from the first keyframe to ``stop_frame`` (inclusive).

    Outside frames (outside keyframes and the frames derived from them) are left out unless
    ``include_outside``; keyframes after ``stop_frame`` still shape the frames before it.
    """
    keys = _keyframes(shapes)
    result: list[FrameShape] = []
    for index, key in enumerate(keys):
        if key.frame > stop_frame:
            break
        following = keys[index + 1] if index + 1 < len(keys) else None
        result.extend(_segment(key, following, stop_frame, include_outside))
    return result


def shape_at(shapes: Sequence[TrackedShape], frame: int) -> FrameShape | None:
    """Return the track's shape on ``frame``, or None if it is outside or not started yet."""
    keys = _keyframes(shapes)
    index = bisect_right([key.frame for key in keys], frame) - 1
    if index < 0:
        return None
    left = keys[index]
    if left.frame == frame:
        shape = left
    elif left.outside:
        return None
    else:
        right = keys[index + 1] if index + 1 < len(keys) else None
        shape = _between(left, right, frame)
    return None if shape.outside else shape


def interpolate_skeleton(
    track: Track, *, stop_frame: int, include_outside: bool = False
) -> list[SkeletonFrame]:
    """Interpolate a skeleton track and its element tracks, as CVAT's ``to_shapes`` does.

    Each element track is interpolated on its own, outside frames included (the parent
    controls visibility), on the frames where the parent has a shape. Unless
    ``include_outside``, a frame whose elements are all outside is dropped.
    """
    parents = interpolate_track(
        track.shapes, stop_frame=stop_frame, include_outside=include_outside
    )
    element_frames = [
        (element.label_id, _by_frame(element.shapes, stop_frame))
        for element in track.elements
        if element.shapes
    ]
    result: list[SkeletonFrame] = []
    for parent in parents:
        elements = {
            label_id: frames[parent.frame]
            for label_id, frames in element_frames
            if parent.frame in frames
        }
        if not include_outside and elements and all(e.outside for e in elements.values()):
            continue
        result.append(SkeletonFrame(parent, elements))
    return result


# --- keyframes and frame walking ------------------------------------------------------------


def _keyframes(shapes: Sequence[TrackedShape]) -> list[FrameShape]:
    """Sort keyframes by frame and carry mutable attributes forward from each predecessor."""
    if not shapes:
        raise ValueError("a track needs at least one shape")
    ordered = sorted(shapes, key=lambda shape: shape.frame)
    keys: list[FrameShape] = []
    previous: TrackedShape | None = None
    for shape in ordered:
        if previous is not None and previous.frame == shape.frame:
            if _same_keyframe(previous, shape):
                continue
            raise ValueError(f"two different keyframes on frame {shape.frame}")
        inherited = keys[-1].attributes if keys else []
        keys.append(_as_keyframe(shape, _carry_attributes(inherited, shape.attributes)))
        previous = shape
    return keys


def _same_keyframe(first: TrackedShape, second: TrackedShape) -> bool:
    """Exact duplicates (ids aside) are skipped, as recent CVAT servers do."""
    fields = ("type", "points", "occluded", "outside", "z_order", "rotation", "attributes")
    return all(getattr(first, name) == getattr(second, name) for name in fields)


def _carry_attributes(
    inherited: list[AttributeValue], own: list[AttributeValue]
) -> list[AttributeValue]:
    """A keyframe's own attributes, then the predecessor's ones it does not set itself."""
    own_ids = {attr.spec_id for attr in own}
    return [*own, *(attr for attr in inherited if attr.spec_id not in own_ids)]


def _as_keyframe(shape: TrackedShape, attributes: list[AttributeValue]) -> FrameShape:
    return FrameShape(
        frame=shape.frame,
        type=shape.type,
        points=[float(value) for value in shape.points],
        rotation=float(shape.rotation),
        occluded=shape.occluded,
        outside=shape.outside,
        z_order=shape.z_order,
        attributes=attributes,
        keyframe=True,
    )


def _segment(
    key: FrameShape, following: FrameShape | None, stop_frame: int, include_outside: bool
) -> list[FrameShape]:
    """The keyframe and the derived frames up to the next keyframe (or the stop frame)."""
    frames = [key] if include_outside or not key.outside else []
    if key.outside and not include_outside:
        return frames
    last = stop_frame if following is None else min(following.frame - 1, stop_frame)
    frames.extend(_between(key, following, frame) for frame in range(key.frame + 1, last + 1))
    return frames


def _by_frame(shapes: Sequence[TrackedShape], stop_frame: int) -> dict[int, FrameShape]:
    frames = interpolate_track(shapes, stop_frame=stop_frame, include_outside=True)
    return {shape.frame: shape for shape in frames}


# --- one derived frame ----------------------------------------------------------------------


def _between(left: FrameShape, right: FrameShape | None, frame: int) -> FrameShape:
    """The derived shape on ``frame``, strictly between keyframes ``left`` and ``right``."""
    if right is None:
        return _derived(left, frame, left.points, left.rotation)
    if right.type != left.type:
        raise ValueError(f"cannot interpolate {left.type} to {right.type} (frame {frame})")
    offset = (frame - left.frame) / (right.frame - left.frame)
    interpolate = _INTERPOLATORS.get(left.type)
    if interpolate is None:
        raise ValueError(f"unknown shape type {left.type!r}")
    points, rotation = interpolate(left, right, offset)
    return _derived(left, frame, points, rotation)


def _derived(source: FrameShape, frame: int, points: list[float], rotation: float) -> FrameShape:
    return FrameShape(
        frame=frame,
        type=source.type,
        points=list(points),
        rotation=rotation,
        occluded=source.occluded,
        outside=source.outside,
        z_order=source.z_order,
        attributes=list(source.attributes),
        keyframe=False,
    )


Interpolator = Callable[[FrameShape, FrameShape, float], tuple[list[float], float]]


def _linear(left: FrameShape, right: FrameShape, offset: float) -> tuple[list[float], float]:
    if len(left.points) != len(right.points):
        raise ValueError(
            f"{left.type} keyframes {left.frame} and {right.frame} differ in point count"
        )
    points = [a + (b - a) * offset for a, b in zip(left.points, right.points, strict=True)]
    return points, interpolate_rotation(left.rotation, right.rotation, offset)


def _points(left: FrameShape, right: FrameShape, offset: float) -> tuple[list[float], float]:
    if len(left.points) == 2 and len(right.points) == 2:
        return _linear(left, right, offset)
    return left.points, left.rotation


def _poly(left: FrameShape, right: FrameShape, offset: float) -> tuple[list[float], float]:
    closed = left.type == "polygon"
    points = resample_polyshape(left.points, right.points, offset, closed=closed)
    return points, left.rotation


def _repeat(left: FrameShape, right: FrameShape, offset: float) -> tuple[list[float], float]:
    return left.points, left.rotation


_INTERPOLATORS: dict[str, Interpolator] = {
    **dict.fromkeys(LINEAR_TYPES, _linear),
    "points": _points,
    **dict.fromkeys(POLY_TYPES, _poly),
    "mask": _repeat,
}


# --- rotation -------------------------------------------------------------------------------


def angle_diff(right: float, left: float) -> float:
    """The signed turn from ``left`` to ``right`` along the shorter arc, in (-180, 180]."""
    diff = ((right - left + 180) % 360) - 180
    return 180.0 if diff == -180 else diff


def interpolate_rotation(left: float, right: float, offset: float) -> float:
    """CVAT's ``(left + angle_diff * offset + 360) % 360``."""
    return (left + angle_diff(right, left) * offset + 360) % 360


# --- polygon / polyline resampling ----------------------------------------------------------


def resample_polyshape(
    left: Sequence[float], right: Sequence[float], offset: float, *, closed: bool
) -> list[float]:
    """CVAT's ``interpolate_position`` for polyshapes, at ``offset`` in [0, 1]."""
    left_points, right_points = _pairs(left), _pairs(right)
    if closed:
        left_points.append(left_points[0])
        right_points.append(right_points[0])
    matching = _match(_arc_offsets(left_points), _arc_offsets(right_points))
    moved = [
        _lerp(left_points[i], right_points[j], offset)
        for i, targets in enumerate(matching)
        for j in targets
    ]
    reduced = _reduce(moved, matching, left_points, right_points)
    if closed:
        reduced = reduced[:-1]
    return [coord for point in reduced for coord in point]


def _pairs(flat: Sequence[float]) -> list[Point]:
    return [(float(flat[i]), float(flat[i + 1])) for i in range(0, len(flat) - 1, 2)]


def _distance(a: Point, b: Point) -> float:
    return math.sqrt((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2)


def _curve_length(points: Sequence[Point]) -> float:
    return sum((_distance(points[i - 1], points[i]) for i in range(1, len(points))), 0.0)


def _arc_offsets(points: Sequence[Point]) -> list[float]:
    """Each vertex's accumulated length over the total; all zeros for a degenerate curve."""
    total = _curve_length(points)
    offsets, accumulated = [0.0], 0.0
    for i in range(1, len(points)):
        accumulated += _distance(points[i - 1], points[i])
        offsets.append(accumulated / total if total else 0.0)
    return offsets


def _nearest(value: float, curve: Sequence[float]) -> int:
    """Index of the first entry of ``curve`` closest to ``value``."""
    best, best_distance = 0, abs(value - curve[0])
    for index in range(1, len(curve)):
        distance = abs(value - curve[index])
        if distance < best_distance:
            best, best_distance = index, distance
    return best


def _match(left: Sequence[float], right: Sequence[float]) -> list[list[int]]:
    """For every left vertex, the sorted right vertices it is paired with.

    Each left vertex takes its nearest right vertex; every right vertex left unpaired then
    joins its nearest left vertex (``match_left_right`` + ``match_right_left``).
    """
    matching = [[_nearest(value, right)] for value in left]
    matched = {targets[0] for targets in matching}
    for index, value in enumerate(right):
        if index not in matched:
            matching[_nearest(value, left)].append(index)
    return [sorted(targets) for targets in matching]


def _lerp(a: Point, b: Point, offset: float) -> Point:
    return (a[0] + (b[0] - a[0]) * offset, a[1] + (b[1] - a[1]) * offset)


def _average(points: Sequence[Point]) -> Point:
    count = len(points)
    return (sum(p[0] for p in points) / count, sum(p[1] for p in points) / count)


def _minimize(
    moved: Sequence[Point], base_length: float, count: int, start: int, stop: int
) -> list[Point]:
    """Keep the moved points of ``start..stop`` at least ``base_length / 2count`` apart."""
    threshold = base_length / (2 * count)
    kept, latest = [moved[start]], start
    for index in range(start + 1, stop):
        if _distance(moved[latest], moved[index]) >= threshold:
            kept.append(moved[index])
            latest = index
    kept.append(moved[stop])
    if len(kept) == 2 and _distance(moved[start], moved[stop]) < threshold:
        return [_average(kept)]
    return kept


def _reduce(
    moved: Sequence[Point],
    matching: Sequence[Sequence[int]],
    left: Sequence[Point],
    right: Sequence[Point],
) -> list[Point]:
    """CVAT's ``reduce_interpolation``: merge runs of moved points that crowd together.

    A run of left vertices all paired with the same single right vertex is thinned against
    the left curve's length; a left vertex paired with several right vertices is thinned
    against the right curve's length over those vertices.
    """
    firsts: list[int] = []
    accumulated = 0
    for targets in matching:
        firsts.append(accumulated)
        accumulated += len(targets)

    reduced: list[Point] = []

    def left_run(start: int, stop: int) -> None:
        if firsts[start] == firsts[stop]:
            reduced.append(moved[firsts[start]])
            return
        base = _curve_length(left[start : stop + 1])
        reduced.extend(_minimize(moved, base, stop - start + 1, firsts[start], firsts[stop]))

    def right_run(index: int) -> None:
        first, last = matching[index][0], matching[index][-1]
        base = _curve_length(right[first : last + 1])
        stop = firsts[index] + len(matching[index]) - 1
        reduced.extend(_minimize(moved, base, last - first + 1, firsts[index], stop))

    opened: int | None = None
    for index, targets in enumerate(matching):
        if len(targets) == 1:
            if opened is None:
                opened = index
            elif targets[0] != matching[opened][0]:
                left_run(opened, index - 1)
                opened = index
        else:
            if opened is not None:
                left_run(opened, index - 1)
                opened = None
            right_run(index)
    if opened is not None:
        left_run(opened, len(matching) - 1)
    return reduced
