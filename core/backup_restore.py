"""Restoring a task's jobs from a backup, once its media is attached: the ground truth job
(a honeypot task's came with its media), each job's annotations, stage and state, then the
deleted frames. One command, so a backup is either restored whole or not at all; its
events start the jobs' history."""

from __future__ import annotations

import msgspec

from core.annotations import LabeledData
from core.errors import ValidationFailed
from core.ground_truth import JobWrite, create_ground_truth_job
from core.honeypots import disable_frames
from core.job_annotations import patch_annotations
from core.job_workflow import JobPatch, update_job
from core.jobs import Job, Stage, State
from core.permissions import Principal
from core.tasks import Task, set_deleted_frames
from core.units import Unit


class RestoredJob(msgspec.Struct):
    start_frame: int
    stop_frame: int
    stage: Stage
    state: State
    annotations: LabeledData


class RestoredTask(msgspec.Struct):
    jobs: list[RestoredJob]  # the annotation jobs, in order
    ground_truth: RestoredJob | None
    ground_truth_frames: list[int]
    deleted_frames: list[int]


def restore_jobs(unit: Unit, principal: Principal, task_id: int, restored: RestoredTask) -> None:
    task = unit.get(Task, task_id)
    made = _ranges(unit, task)
    wanted = [(job.start_frame, job.stop_frame) for job in restored.jobs]
    if made != wanted:
        raise ValidationFailed.one(
            "jobs",
            f"the backup's jobs cover frames {wanted}, but the restored media makes {made}",
        )
    pairs = list(zip(task.job_ids, restored.jobs, strict=True))
    if restored.ground_truth is not None and task.gt_job_id is not None:
        pairs.append((task.gt_job_id, restored.ground_truth))
    elif restored.ground_truth is not None:
        body = JobWrite(
            type="ground_truth",
            task_id=task_id,
            frame_selection_method="manual",
            frames=restored.ground_truth_frames,
        )
        gt_job = create_ground_truth_job(unit, principal, body)
        pairs.append((gt_job.job_id, restored.ground_truth))
    for job_id, job in pairs:
        if _count(job.annotations):
            patch_annotations(unit, principal, job_id, "create", job.annotations)
        if (job.stage, job.state) != ("annotation", "new"):
            update_job(unit, principal, job_id, JobPatch(stage=job.stage, state=job.state))
    _restore_deleted_frames(unit, principal, task, restored.deleted_frames)


def _restore_deleted_frames(
    unit: Unit, principal: Principal, task: Task, deleted: list[int]
) -> None:
    """In a honeypot task a deleted pool frame is one left out of validation (with the
    honeypots showing it), which only the layout may change; the other frames follow."""
    layout = task.data.validation if task.data is not None else None
    if layout is not None and layout.mode == "gt_pool":
        pool = set(layout.frames)
        disable_frames(task, sorted(f for f in deleted if f in pool))
        assert task.data is not None
        deleted = sorted(set(deleted) | set(task.data.deleted_frames))
    if deleted:
        set_deleted_frames(unit, principal, task.task_id, deleted)


def _ranges(unit: Unit, task: Task) -> list[tuple[int, int]]:
    jobs = [unit.get(Job, job_id) for job_id in task.job_ids]
    return [(job.start_frame, job.stop_frame) for job in jobs]


def _count(data: LabeledData) -> int:
    return len(data.tags) + len(data.shapes) + len(data.tracks)
