"""Tracks for formats that store objects frame by frame.

`flatten` turns a task's shapes and tracks into one list of per-frame shapes, each track
interpolated (outside frames left out) and marked with its track number and whether the
frame is a keyframe. `rebuild_track` goes back: per-frame observations of one track become
its keyframes, with the outside keyframes a gap implies when the format drops outside frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import msgspec

from core.annotations import AttributeValue, LabeledData, Shape, Track, TrackedShape
from core.interpolation import FrameShape, interpolate_skeleton, interpolate_track
from core.labels import LabelSpec
from workers.formats.mapping import split_attributes


class FlatShape(msgspec.Struct, frozen=True):
    """A shape on one frame; ``track_id`` is set for a frame of a track."""

    shape: Shape
    track_id: int | None = None
    keyframe: bool = True


def flatten(data: LabeledData, stop_frame: int) -> tuple[list[FlatShape], list[str]]:
    """Every shape and every visible frame of every track up to ``stop_frame``."""
    flat = [FlatShape(shape) for shape in data.shapes]
    warnings: list[str] = []
    for track_id, track in enumerate(data.tracks):
        try:
            flat.extend(track_frames(track, track_id, stop_frame))
        except ValueError as error:
            warnings.append(f"track {track.id} was left out: {error}")
    return flat, warnings


def track_frames(track: Track, track_id: int, stop_frame: int) -> list[FlatShape]:
    """A track's visible frames as shapes carrying the track's label, group and attributes."""
    if track.shapes and track.shapes[0].type == "skeleton":
        return _skeleton_frames(track, track_id, stop_frame)
    frames = interpolate_track(track.shapes, stop_frame=stop_frame)
    return [
        FlatShape(_as_shape(frame, track, track.label_id), track_id, frame.keyframe)
        for frame in frames
    ]


def _skeleton_frames(track: Track, track_id: int, stop_frame: int) -> list[FlatShape]:
    result = []
    element_tracks = {element.label_id: element for element in track.elements}
    for frame in interpolate_skeleton(track, stop_frame=stop_frame):
        elements = [
            _as_shape(node, element_tracks[label_id], label_id)
            for label_id, node in frame.elements.items()
        ]
        shape = _as_shape(frame.shape, track, track.label_id, elements)
        result.append(FlatShape(shape, track_id, frame.shape.keyframe))
    return result


def _as_shape(
    frame: FrameShape, track: Track, label_id: int, elements: list[Shape] | None = None
) -> Shape:
    return Shape(
        type=frame.type,
        label_id=label_id,
        frame=frame.frame,
        points=list(frame.points),
        occluded=frame.occluded,
        outside=frame.outside,
        z_order=frame.z_order,
        rotation=frame.rotation,
        group=track.group,
        source=track.source,
        attributes=[*frame.attributes, *track.attributes],
        elements=elements or [],
    )


def closed_at(track: Track, stop_frame: int) -> Track:
    """The track ending after ``stop_frame`` (a job's last frame): an outside keyframe follows
    a last visible keyframe, so the piece of a track a job holds does not run on into the
    next job's frames when the pieces of all jobs are exported together."""
    last = max(track.shapes, key=lambda s: s.frame, default=None)
    elements = [closed_at(element, stop_frame) for element in track.elements]
    shapes = list(track.shapes)
    if last is not None and not last.outside and last.frame <= stop_frame:
        shapes.append(_outside_copy(last, stop_frame + 1))
    return Track(
        label_id=track.label_id,
        frame=track.frame,
        shapes=shapes,
        group=track.group,
        source=track.source,
        attributes=list(track.attributes),
        elements=elements,
        id=track.id,
    )


@dataclass
class Observation:
    """One frame of a track as a format stored it (attributes mutable and immutable)."""

    shape: TrackedShape
    keyframe: bool = True


@dataclass
class TrackParts:
    """What an importer gathered for one track before it is rebuilt."""

    label: LabelSpec
    group: int = 0
    observations: list[Observation] = field(default_factory=list)
    elements: dict[int, list[Observation]] = field(default_factory=dict)


def rebuild_track(
    parts: TrackParts,
    *,
    stop_frame: int,
    infer_outside: bool,
    source: str = "file",
    sublabels: dict[int, LabelSpec] | None = None,
) -> Track | None:
    """The track whose keyframes the observations hold; None without observations.

    With ``infer_outside`` (formats that leave outside frames out) a gap after a visible
    frame, and the end before ``stop_frame``, become outside keyframes.
    """
    keys = _keyframes(parts.observations, stop_frame, infer_outside)
    if not keys:
        return None
    immutable, _ = split_attributes(parts.label, keys[0].attributes)
    shapes = [
        _with_attributes(key, split_attributes(parts.label, key.attributes)[1]) for key in keys
    ]
    elements = []
    for label_id, observations in (parts.elements or {}).items():
        node = (sublabels or {}).get(label_id)
        if node is None:
            continue
        element = rebuild_track(
            TrackParts(node, 0, observations),
            stop_frame=stop_frame,
            infer_outside=infer_outside,
            source=source,
        )
        if element is not None:
            elements.append(element)
    return Track(
        label_id=parts.label.id,
        frame=shapes[0].frame,
        shapes=shapes,
        group=parts.group,
        source=source,
        attributes=immutable,
        elements=elements,
    )


def _keyframes(
    observations: Sequence[Observation], stop_frame: int, infer_outside: bool
) -> list[TrackedShape]:
    ordered = _unique_by_frame(observations)
    if not ordered:
        return []
    if infer_outside:
        ordered = _with_gaps_closed(ordered, stop_frame)
    keys = [ordered[0].shape]
    keys.extend(item.shape for item in ordered[1:] if item.keyframe)
    return keys


def _unique_by_frame(observations: Sequence[Observation]) -> list[Observation]:
    seen: set[int] = set()
    result = []
    for item in sorted(observations, key=lambda o: o.shape.frame):
        if item.shape.frame not in seen:
            seen.add(item.shape.frame)
            result.append(item)
    return result


def _with_gaps_closed(ordered: list[Observation], stop_frame: int) -> list[Observation]:
    result: list[Observation] = []
    for index, item in enumerate(ordered):
        result.append(item)
        following = ordered[index + 1] if index + 1 < len(ordered) else None
        next_frame = item.shape.frame + 1
        if item.shape.outside:
            continue
        if following is not None and following.shape.frame > next_frame:
            result.append(Observation(_outside_copy(item.shape, next_frame), True))
        elif following is None and next_frame <= stop_frame:
            result.append(Observation(_outside_copy(item.shape, next_frame), True))
    return result


def _outside_copy(shape: TrackedShape, frame: int) -> TrackedShape:
    return TrackedShape(
        type=shape.type,
        frame=frame,
        points=list(shape.points),
        occluded=shape.occluded,
        outside=True,
        z_order=shape.z_order,
        rotation=shape.rotation,
        attributes=list(shape.attributes),
    )


def _with_attributes(shape: TrackedShape, attributes: list[AttributeValue]) -> TrackedShape:
    return TrackedShape(
        type=shape.type,
        frame=shape.frame,
        points=list(shape.points),
        occluded=shape.occluded,
        outside=shape.outside,
        z_order=shape.z_order,
        rotation=shape.rotation,
        attributes=attributes,
    )
