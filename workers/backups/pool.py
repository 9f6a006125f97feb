"""Honeypot ("gt_pool") tasks in backups, as CVAT writes them: task.json's
``data.validation_layout`` names the pool's files, ``custom_segments`` is set, and every job
lists its frames' ``files`` in frame order, a honeypot under the name of the pool file it
shows. Read back, those lists place every frame again: the same frames in the same jobs."""

from __future__ import annotations

from collections import Counter
from typing import Any

from core.validation_layout import PoolPlacement
from workers.backups.layout import BackupJob, BackupTask
from workers.formats.dataset import FormatError

GT_POOL = "gt_pool"


def is_pool_task(data: dict[str, Any]) -> bool:
    validation = data.get("validation")
    return validation is not None and validation["mode"] == GT_POOL


def pool_layout_json(data: dict[str, Any]) -> dict[str, Any]:
    """task.json's ``data.validation_layout`` of a pool task (CVAT's: manual, by file)."""
    validation = data["validation"]
    return {
        "mode": GT_POOL,
        "frame_selection_method": "manual",
        "frames_per_job_count": validation["frames_per_job_count"],
        "frames": [data["frames"][frame]["name"] for frame in validation["frames"]],
    }


def job_files(data: dict[str, Any], frames: list[int]) -> list[str]:
    """The files of a job's `frames` (a honeypot's is its pool frame's)."""
    return [data["frames"][frame]["name"] for frame in sorted(frames)]


def pool_placement(meta: BackupTask, media: set[str], where: str) -> PoolPlacement | None:
    """Where a backup's pool task puts each frame; None for a task without a pool.
    FormatError naming what does not fit: jobs without files, a pool unlike the ground
    truth job's, a file the archive does not carry or that two jobs both hold."""
    layout = meta.data.validation_layout
    if layout is None or layout.mode != GT_POOL:
        return None
    gt_jobs = [job for job in meta.jobs if job.type == "ground_truth"]
    if len(gt_jobs) != 1:
        raise FormatError(f"{where}: a honeypot task needs its one ground truth job")
    if not layout.frames or not layout.frames_per_job_count:
        raise FormatError(
            f"{where}: data.validation_layout needs the pool's frames and frames_per_job_count"
        )
    pool = _files(gt_jobs[0], where)  # the ground truth job's order, as CVAT takes it
    if sorted(pool) != sorted(layout.frames) or len(set(pool)) != len(pool):
        raise FormatError(f"{where}: the ground truth job's files are not the validation frames")
    jobs = [_files(job, where) for job in meta.jobs if job.type == "annotation"]
    unknown = sorted({name for name in [*pool, *(n for job in jobs for n in job)]} - media)
    if unknown:
        raise FormatError(f"{where}: jobs name files the archive does not hold: {unknown[:5]}")
    pooled = set(pool)
    twice = [name for name, n in Counter(n for job in jobs for n in job).items() if n > 1]
    if any(name not in pooled for name in twice):
        raise FormatError(f"{where}: a file that is not a validation frame is in two jobs")
    return PoolPlacement(jobs=jobs, pool=pool, frames_per_job_count=layout.frames_per_job_count)


def _files(job: BackupJob, where: str) -> list[str]:
    size = len(job.frames) if job.frames else job.stop_frame - job.start_frame + 1
    if job.files is None or len(job.files) != size:
        raise FormatError(
            f"{where}: job of frames {job.start_frame}-{job.stop_frame} needs its {size} files"
        )
    return job.files
