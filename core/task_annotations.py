"""Task-level annotation commands: the body is checked as a whole, then split to jobs by frame."""

from __future__ import annotations

import msgspec

from core.annotation_rules import AnnotationRules
from core.annotations import LabeledData, Track
from core.errors import ValidationFailed
from core.interpolation import shape_at
from core.job_annotations import (
    PatchAction,
    clear_annotations,
    has_honeypots,
    job_labels,
    patch_annotations,
    replace_annotations,
)
from core.jobs import Job
from core.permissions import Action, Principal, authorize
from core.tasks import Task, task_resource
from core.units import Unit


def task_jobs(unit: Unit, principal: Principal, task_id: int) -> tuple[Task, list[Job]]:
    task = unit.get(Task, task_id)
    authorize(principal, Action.ANNOTATE, task_resource(unit, task))
    jobs = [unit.get(Job, job_id) for job_id in task.job_ids]
    return task, [job for job in jobs if job.job_type == "annotation"]


def check_for_task(unit: Unit, task: Task, data: LabeledData) -> LabeledData:
    if task.data is None:
        raise ValidationFailed.one("data", "the task has no media yet")
    rules = AnnotationRules.build(
        job_labels(unit, task),
        0,
        task.data.size - 1,
        task.data.deleted_frames,
        tracks_allowed=not has_honeypots(task),
    )
    return rules.check(data)


def split_by_job(data: LabeledData, jobs: list[Job]) -> dict[int, LabeledData]:
    """Each tag and shape goes to the first job holding its frame; tracks are cut at jobs."""
    parts = {job.job_id: LabeledData() for job in jobs}
    for tag in data.tags:
        parts[_job_for(tag.frame, jobs).job_id].tags.append(tag)
    for shape in data.shapes:
        parts[_job_for(shape.frame, jobs).job_id].shapes.append(shape)
    for track in data.tracks:
        for job in jobs:
            piece = cut_track(track, job.start_frame, job.stop_frame)
            if piece is not None:
                parts[job.job_id].tracks.append(piece)
    return parts


def _job_for(frame: int, jobs: list[Job]) -> Job:
    for job in jobs:
        if job.start_frame <= frame <= job.stop_frame:
            return job
    raise ValidationFailed.one("frame", f"no job holds frame {frame}")


def cut_track(track: Track, start: int, stop: int) -> Track | None:
    """The part of a track inside [start, stop], starting with its interpolated shape there."""
    inside = [s for s in track.shapes if start <= s.frame <= stop]
    if not any(s.frame == start for s in inside):
        at_start = shape_at(track.shapes, start)
        if at_start is not None and not at_start.outside:
            inside.insert(0, at_start.as_keyframe())
    if not inside or all(s.outside for s in inside):
        return None
    elements = [cut_track(e, start, stop) for e in track.elements]
    first = min(s.frame for s in inside)
    piece = msgspec.structs.replace(
        track,
        frame=first,
        shapes=inside,
        elements=[e for e in elements if e is not None],
    )
    return piece if inside == track.shapes else msgspec.structs.replace(piece, id=None)


def replace_task_annotations(
    unit: Unit, principal: Principal, task_id: int, data: LabeledData
) -> LabeledData:
    task, jobs = task_jobs(unit, principal, task_id)
    parts = split_by_job(check_for_task(unit, task, data), jobs)
    merged = LabeledData()
    for job in jobs:
        _extend(merged, replace_annotations(unit, principal, job.job_id, parts[job.job_id]))
    return merged


def patch_task_annotations(
    unit: Unit, principal: Principal, task_id: int, action: PatchAction, data: LabeledData
) -> LabeledData:
    task, jobs = task_jobs(unit, principal, task_id)
    if action == "delete":
        for job in jobs:
            patch_annotations(unit, principal, job.job_id, "delete", data)
        return data
    checked = check_for_task(unit, task, data)
    if action == "update":
        return _update_where_held(unit, principal, jobs, checked)
    merged = LabeledData()
    for job_id, part in split_by_job(checked, jobs).items():
        if part.tags or part.shapes or part.tracks:
            _extend(merged, patch_annotations(unit, principal, job_id, "create", part))
    return merged


def _update_where_held(
    unit: Unit, principal: Principal, jobs: list[Job], data: LabeledData
) -> LabeledData:
    """Known objects are updated in the job that holds them; new ones go by frame."""
    held = {
        ident: job
        for job in jobs
        for ident in (*job.annotations.tags, *job.annotations.shapes, *job.annotations.tracks)
    }
    known = LabeledData(
        tags=[t for t in data.tags if t.id in held],
        shapes=[s for s in data.shapes if s.id in held],
        tracks=[t for t in data.tracks if t.id in held],
    )
    fresh = LabeledData(
        tags=[t for t in data.tags if t.id not in held],
        shapes=[s for s in data.shapes if s.id not in held],
        tracks=[t for t in data.tracks if t.id not in held],
    )
    parts: dict[int, LabeledData] = {job.job_id: LabeledData() for job in jobs}
    for kind in ("tags", "shapes", "tracks"):
        for obj in getattr(known, kind):
            getattr(parts[held[obj.id].job_id], kind).append(obj)
    for job_id, part in split_by_job(_without_ids(fresh), jobs).items():
        for kind in ("tags", "shapes", "tracks"):
            getattr(parts[job_id], kind).extend(getattr(part, kind))
    merged = LabeledData()
    for job_id, part in parts.items():
        if part.tags or part.shapes or part.tracks:
            _extend(merged, patch_annotations(unit, principal, job_id, "update", part))
    return merged


def _without_ids(data: LabeledData) -> LabeledData:
    return LabeledData(
        tags=[msgspec.structs.replace(t, id=None) for t in data.tags],
        shapes=[msgspec.structs.replace(s, id=None) for s in data.shapes],
        tracks=[msgspec.structs.replace(t, id=None) for t in data.tracks],
    )


def clear_task_annotations(unit: Unit, principal: Principal, task_id: int) -> None:
    _, jobs = task_jobs(unit, principal, task_id)
    for job in jobs:
        clear_annotations(unit, principal, job.job_id)


def _extend(target: LabeledData, part: LabeledData) -> None:
    target.tags.extend(part.tags)
    target.shapes.extend(part.shapes)
    target.tracks.extend(part.tracks)
