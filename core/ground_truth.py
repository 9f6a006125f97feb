"""Ground truth jobs: one per task, on frames chosen at random or by hand (CVAT's JobWrite)."""

from __future__ import annotations

from typing import Literal

import msgspec
import numpy as np

from core.errors import ErrorCollector, NotFound, ValidationFailed
from core.jobs import Job
from core.permissions import Action, Principal, authorize
from core.task_data import ValidationLayout
from core.tasks import Task, task_resource
from core.units import Unit

FrameSelection = Literal["random_uniform", "random_per_job", "manual"]


class JobWrite(msgspec.Struct):
    type: str
    task_id: int
    frame_selection_method: FrameSelection = "random_uniform"
    frame_count: int | None = None
    frame_share: float | None = None
    frames_per_job_count: int | None = None
    frames_per_job_share: float | None = None
    random_seed: int | None = None
    seed: int | None = None  # the name before CVAT 2.17
    frames: list[int] | None = None


def create_ground_truth_job(unit: Unit, principal: Principal, body: JobWrite) -> Job:
    if body.type != "ground_truth":
        raise ValidationFailed.one("type", "only ground_truth jobs can be created this way")
    try:
        task = unit.get(Task, body.task_id)
    except NotFound:
        raise ValidationFailed.one(
            "task_id", f'Invalid pk "{body.task_id}" - object does not exist.'
        ) from None
    authorize(principal, Action.CHANGE, task_resource(unit, task))
    if task.data is None:
        raise ValidationFailed.one("task_id", "the task has no media yet")
    if task.gt_job_id is not None:
        raise ValidationFailed.one("task_id", "A task can have only 1 ground truth job")
    deleted = set(task.data.deleted_frames)
    valid = [frame for frame in range(task.data.size) if frame not in deleted]
    frames = sorted(select_frames(body, valid, _segments(unit, task)))
    return add_ground_truth_job(unit, task, ValidationLayout(mode="gt", frames=frames))


def add_ground_truth_job(unit: Unit, task: Task, layout: ValidationLayout) -> Job:
    """The task's ground truth job over the layout's validation frames."""
    frames = sorted(layout.frames)
    job_id = unit.next_id("job")
    job = Job._start(
        job_id,
        job_id=job_id,
        task_id=task.task_id,
        start_frame=frames[0],
        stop_frame=frames[-1],
        job_type="ground_truth",
        frames=frames,
    )
    unit.add(job)
    task.trigger_event(Task.GroundTruthJobChanged, job_id=job_id, validation=layout)
    return job


def delete_ground_truth_job(unit: Unit, principal: Principal, job_id: int) -> None:
    job = unit.get(Job, job_id)
    task = unit.get(Task, job.task_id)
    authorize(principal, Action.CHANGE, task_resource(unit, task))
    if job.job_type != "ground_truth":
        raise ValidationFailed.one("type", "Only ground truth jobs can be removed")
    if task.data is not None and task.data.validation is not None:
        if task.data.validation.mode == "gt_pool":
            raise ValidationFailed.one(
                "type", 'GT jobs cannot be removed when task validation mode is "gt_pool"'
            )
    job.delete()
    task.trigger_event(Task.GroundTruthJobChanged, job_id=None)


def _segments(unit: Unit, task: Task) -> list[list[int]]:
    jobs = [unit.get(Job, job_id) for job_id in task.job_ids]
    return [list(job.frames) for job in jobs]


def select_frames(body: JobWrite, valid: list[int], segments: list[list[int]]) -> list[int]:
    """The frames of a new ground truth job, as CVAT picks them."""
    errors = ErrorCollector()
    seed = body.random_seed if body.random_seed is not None else body.seed
    if seed is not None and not 0 <= seed < 2**63:
        raise ValidationFailed.one("random_seed", "Ensure this value is between 0 and 2^63 - 1.")
    rng = np.random.Generator(np.random.MT19937(seed))
    if body.frame_selection_method == "manual":
        frames = body.frames or []
        if not frames:
            errors.add("frames", "give the frames of the ground truth job")
        if len(set(frames)) != len(frames):
            errors.add("frames", "frames must not repeat")
        outside = sorted(set(frames) - set(valid))
        if outside:
            errors.add("frames", f"not frames of the task: {outside}")
        errors.raise_if_any()
        return frames
    if body.frame_selection_method == "random_uniform":
        count = _count(body.frame_count, body.frame_share, len(valid), "frame", errors)
        errors.raise_if_any()
        return _choose(rng, valid, count)
    count_per_job = body.frames_per_job_count
    share = body.frames_per_job_share
    if (count_per_job is None) == (share is None):
        errors.add("frames_per_job_count", "give one of frames_per_job_count, frames_per_job_share")
    elif count_per_job is not None and count_per_job < 1:
        errors.add("frames_per_job_count", "Ensure this value is greater than or equal to 1.")
    elif share is not None and not 0 < share <= 1:
        errors.add("frames_per_job_share", "Ensure this value is in (0, 1].")
    errors.raise_if_any()
    chosen: list[int] = []
    allowed = set(valid)
    for segment in segments:
        frames = [frame for frame in segment if frame in allowed and frame not in chosen]
        wanted = count_per_job if count_per_job is not None else max(1, int(share * len(segment)))  # type: ignore[operator]
        chosen += _choose(rng, frames, min(wanted, len(frames)))
    if not chosen:
        raise ValidationFailed.one("frames_per_job_count", "no frames to choose from")
    return chosen


def _count(
    count: int | None, share: float | None, available: int, name: str, errors: ErrorCollector
) -> int:
    if (count is None) == (share is None):
        errors.add(f"{name}_count", f"give one of {name}_count, {name}_share")
        return 0
    if share is not None:
        if not 0 < share <= 1:
            errors.add(f"{name}_share", "Ensure this value is in (0, 1].")
        count = max(1, int(share * available))
    assert count is not None
    if count < 1:
        errors.add(f"{name}_count", "Ensure this value is greater than or equal to 1.")
    elif count > available:
        errors.add(
            f"{name}_count",
            f"The number of frames requested ({count}) must be not be greater than the "
            f"number of the task frames ({available})",
        )
    return count


def _choose(rng: np.random.Generator, frames: list[int], count: int) -> list[int]:
    if count <= 0:
        return []
    return [int(f) for f in rng.choice(frames, size=count, replace=False, shuffle=False)]
