"""Commands on a job's annotations: replace (PUT), create/update/delete (PATCH), clear."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import msgspec

from core.annotation_rules import AnnotationRules
from core.annotations import LabeledData, ObjectIds, Shape, Track, ids_of
from core.errors import ErrorCollector, NotFound
from core.frame_visibility import hidden_ids, leave_out, visible
from core.jobs import Job
from core.labels import LabelSpec
from core.permissions import Action, Principal, authorize
from core.projects import Project
from core.tasks import Task, job_resource
from core.units import Unit

PatchAction = Literal["create", "update", "delete"]


def job_labels(unit: Unit, task: Task) -> list[LabelSpec]:
    if task.project_id is None:
        return task.labels
    return unit.get(Project, task.project_id).labels


def rules_for(unit: Unit, job: Job) -> AnnotationRules:
    task = unit.get(Task, job.task_id)
    return AnnotationRules.build(
        job_labels(unit, task),
        job.start_frame,
        job.stop_frame,
        deleted_frames_of(unit, job),
        tracks_allowed=not has_honeypots(task),
    )


def has_honeypots(task: Task) -> bool:
    return bool(task.data and task.data.validation and task.data.validation.mode == "gt_pool")


def deleted_frames_of(unit: Unit, job: Job) -> frozenset[int]:
    task = unit.get(Task, job.task_id)
    return frozenset(task.data.deleted_frames if task.data is not None else ())


def _hidden(unit: Unit, job: Job) -> ObjectIds:
    """The job's objects on deleted frames: whole-job writes leave them as they are."""
    return hidden_ids(job.annotations, deleted_frames_of(unit, job))


def annotatable_job(unit: Unit, principal: Principal, job_id: int) -> Job:
    job = unit.get(Job, job_id)
    authorize(principal, Action.ANNOTATE, job_resource(unit, job))
    return job


def replace_annotations(
    unit: Unit, principal: Principal, job_id: int, data: LabeledData
) -> LabeledData:
    """PUT: the job's annotations become `data`. Written as the difference, object by object."""
    job = annotatable_job(unit, principal, job_id)
    checked = rules_for(unit, job).check(data)
    current = job.annotations
    kept = _keep_known_ids(checked, current.tags, current.shapes, current.tracks)
    with_ids = assign_ids(unit, kept)
    created, updated = _split_new_and_changed(with_ids, job)
    removed = leave_out(_missing(current.ids(), ids_of(with_ids)), _hidden(unit, job))
    if removed.count():
        job.trigger_event(Job.AnnotationsDeleted, ids=removed)
    if _count(updated):
        job.trigger_event(Job.AnnotationsUpdated, data=updated)
    if _count(created):
        job.trigger_event(Job.AnnotationsCreated, data=created)
    return visible(job.annotations.as_data(job.version), deleted_frames_of(unit, job))


def patch_annotations(
    unit: Unit, principal: Principal, job_id: int, action: PatchAction, data: LabeledData
) -> LabeledData:
    job = annotatable_job(unit, principal, job_id)
    if action == "delete":
        ids = ids_of(data)
        present = leave_out(_present(ids, job), _hidden(unit, job))
        if present.count():
            job.trigger_event(Job.AnnotationsDeleted, ids=present)
        return data
    checked = rules_for(unit, job).check(data)
    if action == "create":
        _refuse_ids(checked)
        created = assign_ids(unit, checked)
        if _count(created):
            job.trigger_event(Job.AnnotationsCreated, data=created)
        return created
    _check_ids_exist(checked, job)
    with_ids = assign_ids(unit, checked)
    created, updated = _split_new_and_changed(with_ids, job)
    if _count(updated):
        job.trigger_event(Job.AnnotationsUpdated, data=updated)
    if _count(created):
        job.trigger_event(Job.AnnotationsCreated, data=created)
    return with_ids


def clear_annotations(unit: Unit, principal: Principal, job_id: int) -> None:
    job = annotatable_job(unit, principal, job_id)
    ids = leave_out(job.annotations.ids(), _hidden(unit, job))
    if ids.count():
        job.trigger_event(Job.AnnotationsDeleted, ids=ids)


# Ids


def assign_ids(unit: Unit, data: LabeledData) -> LabeledData:
    """Gives every object, keyframe and element without an id a new one."""
    needed = _count_missing_ids(data)
    fresh: Iterator[int] = iter(unit.next_ids("annotation", needed))
    return LabeledData(
        version=data.version,
        tags=[_with_id(tag, fresh) for tag in data.tags],
        shapes=[_shape_ids(shape, fresh) for shape in data.shapes],
        tracks=[_track_ids(track, fresh) for track in data.tracks],
    )


def _with_id(obj: msgspec.Struct, fresh: Iterator[int]) -> msgspec.Struct:
    if obj.id is not None:  # type: ignore[attr-defined]
        return obj
    return msgspec.structs.replace(obj, id=next(fresh))


def _shape_ids(shape: Shape, fresh: Iterator[int]) -> Shape:
    if not shape.elements:
        return _with_id(shape, fresh)  # type: ignore[return-value]
    elements = [_with_id(e, fresh) for e in shape.elements]
    return msgspec.structs.replace(_with_id(shape, fresh), elements=elements)


def _track_ids(track: Track, fresh: Iterator[int]) -> Track:
    shapes = [_with_id(s, fresh) for s in track.shapes]
    elements = [_track_ids(e, fresh) for e in track.elements]
    return msgspec.structs.replace(_with_id(track, fresh), shapes=shapes, elements=elements)


def _count_missing_ids(data: LabeledData) -> int:
    def track_missing(track: Track) -> int:
        own = track.id is None
        return (
            own
            + sum(s.id is None for s in track.shapes)
            + sum(track_missing(e) for e in track.elements)
        )

    return (
        sum(t.id is None for t in data.tags)
        + sum((s.id is None) + sum(e.id is None for e in s.elements) for s in data.shapes)
        + sum(track_missing(t) for t in data.tracks)
    )


def _keep_known_ids(data: LabeledData, tags: dict, shapes: dict, tracks: dict) -> LabeledData:
    """For PUT: an id the job already holds (same kind) is kept, any other id is replaced."""

    def keep(obj: msgspec.Struct, known: dict) -> msgspec.Struct:
        ident = obj.id  # type: ignore[attr-defined]
        return obj if ident is None or ident in known else _strip_ids(obj)

    return LabeledData(
        version=data.version,
        tags=[keep(t, tags) for t in data.tags],
        shapes=[keep(s, shapes) for s in data.shapes],
        tracks=[keep(t, tracks) for t in data.tracks],
    )


def _strip_ids(obj: msgspec.Struct) -> msgspec.Struct:
    changes: dict[str, object] = {"id": None}
    if isinstance(obj, Shape):
        changes["elements"] = [msgspec.structs.replace(e, id=None) for e in obj.elements]
    if isinstance(obj, Track):
        changes["shapes"] = [msgspec.structs.replace(s, id=None) for s in obj.shapes]
        changes["elements"] = [_strip_ids(e) for e in obj.elements]
    return msgspec.structs.replace(obj, **changes)


def _refuse_ids(data: LabeledData) -> None:
    errors = ErrorCollector()
    for kind in ("tags", "shapes", "tracks"):
        for index, obj in enumerate(getattr(data, kind)):
            if obj.id is not None:
                errors.add(f"{kind}[{index}].id", "a new object must not have an id")
    errors.raise_if_any()


def _check_ids_exist(data: LabeledData, job: Job) -> None:
    state = job.annotations
    for kind, known in (("tags", state.tags), ("shapes", state.shapes), ("tracks", state.tracks)):
        for obj in getattr(data, kind):
            if obj.id is not None and obj.id not in known:
                raise NotFound(kind[:-1], obj.id)


def _split_new_and_changed(data: LabeledData, job: Job) -> tuple[LabeledData, LabeledData]:
    """Objects the job does not hold yet, and held objects whose content differs."""
    state = job.annotations
    created = LabeledData()
    updated = LabeledData()
    for kind, known in (("tags", state.tags), ("shapes", state.shapes), ("tracks", state.tracks)):
        for obj in getattr(data, kind):
            if obj.id not in known:
                getattr(created, kind).append(obj)
            elif known[obj.id] != obj:
                getattr(updated, kind).append(obj)
    return created, updated


def _missing(current: ObjectIds, kept: ObjectIds) -> ObjectIds:
    tags, shapes, tracks = set(kept.tags), set(kept.shapes), set(kept.tracks)
    return ObjectIds(
        [i for i in current.tags if i not in tags],
        [i for i in current.shapes if i not in shapes],
        [i for i in current.tracks if i not in tracks],
    )


def _present(ids: ObjectIds, job: Job) -> ObjectIds:
    state = job.annotations
    return ObjectIds(
        [i for i in ids.tags if i in state.tags],
        [i for i in ids.shapes if i in state.shapes],
        [i for i in ids.tracks if i in state.tracks],
    )


def _count(data: LabeledData) -> int:
    return len(data.tags) + len(data.shapes) + len(data.tracks)
