"""A task's data attached with CVAT's `validation_params`: a ground truth job made with it
("gt"), or a validation pool whose frames are mixed into every annotation job as honeypots
("gt_pool", manual 2.20.1)."""

from __future__ import annotations

import msgspec

from core.errors import ValidationFailed
from core.ground_truth import JobWrite, add_ground_truth_job, select_frames
from core.permissions import Principal
from core.segments import segment_ranges
from core.task_data import TaskData, ValidationLayout, ValidationParams
from core.tasks import Task, attach_data
from core.units import Unit
from core.validation_layout import (
    PoolLayout,
    PoolPlacement,
    frames_named,
    lay_out_pool,
    placed_pool,
)


def attach_validated_data(
    unit: Unit,
    principal: Principal,
    task_id: int,
    data: TaskData,
    params: ValidationParams | None,
    placement: PoolPlacement | None = None,
) -> Task:
    """`placement`: a pool laid out already (a backup's), instead of one drawn by `params`."""
    if placement is not None:
        _check_pool_task(unit.get(Task, task_id), data)
        layout = placed_pool([frame.name for frame in data.frames], placement)
        return _attach_pool_layout(unit, principal, task_id, data, layout)
    if params is None:
        return attach_data(unit, principal, task_id, data)
    if params.mode == "gt_pool":
        return _attach_with_pool(unit, principal, task_id, data, params)
    task = attach_data(unit, principal, task_id, data)
    assert task.data is not None
    frames = select_frames(_job_write(task, params), list(range(task.data.size)), _ranges(task))
    add_ground_truth_job(unit, task, ValidationLayout(mode="gt", frames=sorted(frames)))
    return task


def _job_write(task: Task, params: ValidationParams) -> JobWrite:
    assert task.data is not None
    frames = None
    if params.frames is not None:
        frames = frames_named(params.frames, [frame.name for frame in task.data.frames])
    per_job = params.frames_per_job_count
    if params.frame_selection_method == "random_per_job" and (
        per_job is not None and task.segment_size <= per_job
    ):
        raise ValidationFailed.one(
            "validation_params.frames_per_job_count",
            "Validation frame count per job cannot be greater than segment size",
        )
    return JobWrite(
        type="ground_truth",
        task_id=task.task_id,
        frame_selection_method=params.frame_selection_method,
        frame_count=params.frame_count,
        frame_share=params.frame_share,
        frames_per_job_count=params.frames_per_job_count,
        frames_per_job_share=params.frames_per_job_share,
        random_seed=params.random_seed,
        frames=frames,
    )


def _ranges(task: Task) -> list[list[int]]:
    assert task.data is not None
    ranges = segment_ranges(task.data.size, task.segment_size, task.overlap)
    return [list(range(start, stop + 1)) for start, stop in ranges]


def _attach_with_pool(
    unit: Unit, principal: Principal, task_id: int, data: TaskData, params: ValidationParams
) -> Task:
    task = unit.get(Task, task_id)
    _check_pool_task(task, data)
    seed = data.random_seed if data.random_seed is not None else task.task_id
    layout = lay_out_pool([frame.name for frame in data.frames], params, task.segment_size, seed)
    return _attach_pool_layout(unit, principal, task_id, data, layout)


def _check_pool_task(task: Task, data: TaskData) -> None:
    if data.video is not None or data.mode != "annotation":
        raise ValidationFailed.one(
            "validation_params.mode",
            "validation mode 'gt_pool' can only be used with 'annotation' mode tasks",
        )
    if task.overlap:
        raise ValidationFailed.one(
            "validation_params.mode", 'validation mode "gt_pool" cannot be used with "overlap"'
        )


def _attach_pool_layout(
    unit: Unit, principal: Principal, task_id: int, data: TaskData, layout: PoolLayout
) -> Task:
    media = data.media_frames or list(range(data.size))
    validation = ValidationLayout(
        mode="gt_pool",
        frames=layout.pool,
        frames_per_job_count=layout.frames_per_job_count,
        honeypot_frames=layout.honeypot_frames,
        honeypot_real_frames=layout.honeypot_real_frames,
    )
    pooled = msgspec.structs.replace(
        data,
        frames=[data.frames[image] for image in layout.images],
        media_frames=[media[image] for image in layout.images],
        size=len(layout.images),
        start_frame=0,
        stop_frame=len(layout.images) - 1,
        frame_filter="",
        validation=validation,
    )
    task = attach_data(unit, principal, task_id, pooled, job_sizes=layout.job_sizes)
    add_ground_truth_job(unit, task, validation)
    return task
