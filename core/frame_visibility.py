"""What a task's deleted frames hide: the tags and shapes on them. They stay in the job (a
restored frame shows them again) but reads, exports and whole-job writes pass them by.
Tracks run across frames and stay whole."""

from __future__ import annotations

from collections.abc import Collection

from core.annotations import AnnotationState, LabeledData, ObjectIds


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
