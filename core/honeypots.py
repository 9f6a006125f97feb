"""Managing a task's validation frames after it is made (manual 2.20.1 "Quality management"):
excluding and restoring validation frames, and changing which pool frame each honeypot of an
annotation job shows (CVAT's PATCH .../validation_layout)."""

from __future__ import annotations

from typing import Literal

import msgspec

from core.errors import ErrorCollector, ValidationFailed
from core.frame_visibility import hidden_ids
from core.jobs import Job
from core.permissions import Action, Principal, authorize
from core.task_data import ValidationLayout
from core.tasks import Task, set_job_deleted_frames, task_resource
from core.units import Unit
from core.validation_layout import HoneypotSelector, rng_of

UNSET = msgspec.UNSET
HoneypotSelection = Literal["random_uniform", "manual"]


class TaskLayoutPatch(msgspec.Struct, forbid_unknown_fields=True):
    disabled_frames: list[int] | msgspec.UnsetType = UNSET
    frame_selection_method: HoneypotSelection | msgspec.UnsetType = UNSET
    honeypot_real_frames: list[int] | msgspec.UnsetType = UNSET


class JobLayoutPatch(msgspec.Struct, forbid_unknown_fields=True):
    frame_selection_method: HoneypotSelection
    honeypot_real_frames: list[int] | msgspec.UnsetType = UNSET


def change_task_layout(
    unit: Unit, principal: Principal, task_id: int, body: TaskLayoutPatch, seed: int
) -> Task:
    """`seed` draws the honeypots for "random_uniform" (chosen by the caller, kept in the
    event's outcome)."""
    task = unit.get(Task, task_id)
    authorize(principal, Action.CHANGE, task_resource(unit, task))
    layout = _layout(task)
    _check_selection(body.frame_selection_method, body.honeypot_real_frames)
    if body.disabled_frames is not UNSET:
        disable_frames(task, body.disabled_frames)
        layout = _layout(task)
    if body.frame_selection_method is UNSET:
        return task
    _require_pool(layout)
    if body.frame_selection_method == "manual":
        wanted = list(body.honeypot_real_frames)  # type: ignore[arg-type]
        if len(wanted) != len(layout.honeypot_frames):
            raise ValidationFailed.one(
                "honeypot_real_frames",
                "Invalid size of 'honeypot_real_frames' array, "
                f"expected {len(layout.honeypot_frames)}",
            )
        _check_real_frames(layout, wanted)
    else:
        selector = HoneypotSelector(dict.fromkeys(layout.active_frames, 0), rng_of(seed))
        wanted = []
        for job in _annotation_jobs(unit, task):
            count = len(_honeypots_in(layout, job))
            _check_enough_active(layout, count)
            wanted += selector.pick(count)
    _set_honeypots(unit, task, wanted)
    return task


def change_job_layout(
    unit: Unit, principal: Principal, job_id: int, body: JobLayoutPatch, seed: int
) -> Task:
    job = unit.get(Job, job_id)
    task = unit.get(Task, job.task_id)
    authorize(principal, Action.CHANGE, task_resource(unit, task))
    layout = _layout(task)
    _check_selection(body.frame_selection_method, body.honeypot_real_frames)
    _require_pool(layout)
    if job.job_type == "ground_truth":
        raise ValidationFailed.one("id", "Honeypots cannot exist in ground_truth jobs")
    mine = _honeypots_in(layout, job)
    if body.frame_selection_method == "manual":
        picked = list(body.honeypot_real_frames)  # type: ignore[arg-type]
        _check_real_frames(layout, picked)
        if len(picked) != len(mine):
            raise ValidationFailed.one(
                "honeypot_real_frames",
                "Could not update honeypot frames: the number of honeypots must remain the "
                f"same. Requested {len(picked)}, current {len(mine)}",
            )
    else:
        _check_enough_active(layout, len(mine))
        uses = dict.fromkeys(layout.active_frames, 0)
        for real in layout.honeypot_real_frames:
            if real in uses:
                uses[real] += 1
        picked = HoneypotSelector(uses, rng_of(seed)).pick(len(mine))
    chosen = dict(zip(mine, picked, strict=True))
    wanted = [
        chosen.get(frame, real)
        for frame, real in zip(layout.honeypot_frames, layout.honeypot_real_frames, strict=True)
    ]
    _set_honeypots(unit, task, wanted)
    return task


def disable_frames(task: Task, disabled: list[int]) -> None:
    """The validation frames left out of quality checks become `disabled`. In a pool task
    they and the honeypots showing them are deleted frames too (CVAT: the pool owns them)."""
    layout = _layout(task)
    errors = ErrorCollector()
    unknown = sorted(set(disabled) - set(layout.frames))
    if unknown:
        errors.add(
            "disabled_frames",
            f"Unknown frames requested for exclusion from the validation set: {unknown[:10]}",
        )
    if len(set(disabled)) != len(disabled):
        errors.add("disabled_frames", "the frame numbers must be unique")
    errors.raise_if_any()
    if sorted(disabled) != sorted(layout.disabled_frames):
        task.trigger_event(Task.ValidationFramesDisabled, disabled_frames=sorted(disabled))
    if layout.mode == "gt_pool":
        _delete_pool_frames(task, layout, set(disabled))


def _delete_pool_frames(task: Task, layout: ValidationLayout, disabled: set[int]) -> None:
    assert task.data is not None
    owned = set(layout.frames) | set(layout.honeypot_frames)
    showing = {f for f, real in layout.real_frames.items() if real in disabled}
    others = [f for f in task.data.deleted_frames if f not in owned]
    deleted = sorted([*others, *disabled, *showing])
    if deleted != task.data.deleted_frames:
        task.trigger_event(Task.FramesDeleted, deleted_frames=deleted)


def set_job_frames_deleted(
    unit: Unit, principal: Principal, job_id: int, frames: list[int]
) -> Task:
    """A job's deleted frames (CVAT's PATCH /api/jobs/{id}/data/meta): for a ground truth job
    with a validation layout these are the validation frames left out (disabled)."""
    job = unit.get(Job, job_id)
    task = unit.get(Task, job.task_id)
    if job.job_type != "ground_truth" or task.data is None or task.data.validation is None:
        return set_job_deleted_frames(unit, principal, job_id, frames)
    authorize(principal, Action.CHANGE, task_resource(unit, task))
    outside = sorted(set(frames) - set(job.frames))
    if outside:
        raise ValidationFailed.one(
            "deleted_frames", f"Frames {outside[:10]} do not belong to the job"
        )
    disable_frames(task, frames)
    return task


def _set_honeypots(unit: Unit, task: Task, wanted: list[int]) -> None:
    """Honeypots take the pool frames `wanted`; those that change lose their annotations
    (they show another image now) and are no longer deleted."""
    layout = _layout(task)
    assert task.data is not None
    changed = {
        frame
        for frame, old, new in zip(
            layout.honeypot_frames, layout.honeypot_real_frames, wanted, strict=True
        )
        if old != new
    }
    if not changed:
        return
    for job in _annotation_jobs(unit, task):
        ids = hidden_ids(job.annotations, changed & set(job.frames))
        if ids.count():
            job.trigger_event(Job.AnnotationsDeleted, ids=ids)
    task.trigger_event(Task.HoneypotsChanged, real_frames=wanted)
    restored = [f for f in task.data.deleted_frames if f not in changed]
    if restored != task.data.deleted_frames:
        task.trigger_event(Task.FramesDeleted, deleted_frames=restored)


def _annotation_jobs(unit: Unit, task: Task) -> list[Job]:
    jobs = [unit.get(Job, job_id) for job_id in task.job_ids]
    return sorted((j for j in jobs if j.job_type == "annotation"), key=lambda j: j.start_frame)


def _honeypots_in(layout: ValidationLayout, job: Job) -> list[int]:
    return [f for f in layout.honeypot_frames if job.start_frame <= f <= job.stop_frame]


def _layout(task: Task) -> ValidationLayout:
    if task.data is None or task.data.validation is None:
        raise ValidationFailed.one("mode", "Validation is not configured in the task")
    return task.data.validation


def _require_pool(layout: ValidationLayout) -> None:
    if layout.mode != "gt_pool":
        raise ValidationFailed.one(
            "frame_selection_method",
            "Honeypots can only be modified if the task validation mode is 'gt_pool'",
        )


def _check_selection(method: object, real_frames: object) -> None:
    if method == "manual" and real_frames is UNSET:
        raise ValidationFailed.one("honeypot_real_frames", "This field is required.")
    if real_frames is not UNSET and method != "manual":
        raise ValidationFailed.one(
            "honeypot_real_frames",
            '"honeypot_real_frames" can only be used when "frame_selection_method" is "manual"',
        )


def _check_real_frames(layout: ValidationLayout, wanted: list[int]) -> None:
    outside = sorted(set(wanted) - set(layout.frames))
    if outside:
        raise ValidationFailed.one(
            "honeypot_real_frames",
            f"Could not update honeypot frames: frames {outside[:10]} are not from the "
            "validation pool",
        )
    inactive = sorted(set(wanted) & set(layout.disabled_frames))
    if inactive:
        raise ValidationFailed.one(
            "honeypot_real_frames",
            f"Could not update honeypot frames: frames {inactive[:10]} are disabled. Restore "
            "them in the validation pool first",
        )


def _check_enough_active(layout: ValidationLayout, count: int) -> None:
    active = len(layout.active_frames)
    if active < count:
        raise ValidationFailed.one(
            "frame_selection_method",
            f"Can't select validation frames: the remaining number of validation frames "
            f"({active}) is less than the number of honeypots in a job ({count}). "
            "Try to restore some validation frames",
        )
