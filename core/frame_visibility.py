"""What a task's deleted frames hide: the tags and shapes on them. They stay in the job (a
restored frame shows them again) but reads, exports and whole-job writes pass them by.
Tracks run across frames and stay whole; an export makes them outside on deleted frames."""

from __future__ import annotations

from collections.abc import Collection

import msgspec

from core.annotations import AnnotationState, LabeledData, ObjectIds, Track, TrackedShape
from core.interpolation import shape_at


def visible(data: LabeledData, deleted_frames: Collection[int]) -> LabeledData:
    if not deleted_frames:
        return data
    return LabeledData(
        version=data.version,
        tags=[t for t in data.tags if t.frame not in deleted_frames],
        shapes=[s for s in data.shapes if s.frame not in deleted_frames],
        tracks=data.tracks,
    )


def hidden_ids(state: AnnotationState, deleted_frames: Collection[int]) -> ObjectIds:
    if not deleted_frames:
        return ObjectIds()
    return ObjectIds(
        [i for i, t in state.tags.items() if t.frame in deleted_frames],
        [i for i, s in state.shapes.items() if s.frame in deleted_frames],
        [],
    )


def leave_out(ids: ObjectIds, hidden: ObjectIds) -> ObjectIds:
    """`ids` without the hidden ones."""
    if not hidden.count():
        return ids
    tags, shapes, tracks = set(hidden.tags), set(hidden.shapes), set(hidden.tracks)
    return ObjectIds(
        [i for i in ids.tags if i not in tags],
        [i for i in ids.shapes if i not in shapes],
        [i for i in ids.tracks if i not in tracks],
    )


def for_export(data: LabeledData, deleted_frames: Collection[int], stop_frame: int) -> LabeledData:
    """What an export writes: the visible objects, tracks outside on deleted frames."""
    shown = visible(data, deleted_frames)
    if not deleted_frames:
        return shown
    tracks = [with_gaps(track, deleted_frames, stop_frame) for track in shown.tracks]
    return LabeledData(version=shown.version, tags=shown.tags, shapes=shown.shapes, tracks=tracks)


def with_gaps(track: Track, deleted_frames: Collection[int], stop_frame: int) -> Track:
    """The track outside on each deleted frame where it shows, resuming (a keyframe) on the
    next frame, so formats that write it frame by frame pass the deleted frames by."""
    keys: dict[int, TrackedShape] = {shape.frame: shape for shape in track.shapes}
    for frame in sorted(deleted_frames):
        shown = shape_at(track.shapes, frame)
        if shown is None:
            continue
        keys[frame] = msgspec.structs.replace(shown.as_keyframe(), outside=True)
        after = frame + 1
        if after <= stop_frame and after not in deleted_frames and after not in keys:
            resumed = shape_at(track.shapes, after)
            if resumed is not None:
                keys[after] = resumed.as_keyframe()
    return msgspec.structs.replace(
        track,
        shapes=[keys[frame] for frame in sorted(keys)],
        elements=[with_gaps(e, deleted_frames, stop_frame) for e in track.elements],
    )
