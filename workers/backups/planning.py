"""What restoring a backup's task will do, decided and checked before anything is written:
the task to create, the data request its media is made with, and its jobs.

Labels and annotations are checked against labels built from the backup with stand-in ids,
by the same rules a client's writes pass, so a bad archive is refused whole, up front.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from core.annotation_rules import AnnotationRules
from core.backup_restore import RestoredJob, RestoredTask
from core.errors import ValidationFailed
from core.labels import LabelInput, LabelSpec, build_labels
from core.projects import check_name
from core.task_data import DataRequest, check_data_request
from core.tasks import TaskWrite
from core.validation_layout import PoolPlacement
from workers.backups.layout import (
    ANNOTATIONS_FILE,
    PROJECT_FILE,
    TASK_FILE,
    BackupJob,
    stage_and_state,
)
from workers.backups.named_annotations import resolved
from workers.backups.pool import pool_placement
from workers.backups.reading import ProjectArchive, TaskArchive, media_names
from workers.formats.dataset import FormatError
from workers.media.manifest import MANIFEST_FILE

KEPT_ORDERS = ("lexicographical", "natural", "predefined")


@dataclass(frozen=True)
class TaskPlan:
    archive: TaskArchive
    task: TaskWrite  # its project (when restored into one) is set when that exists
    data_request: DataRequest
    placement: PoolPlacement | None  # a honeypot task's frames, as the backup places them


def plan_task(archive: TaskArchive, project_labels: Sequence[LabelInput] | None) -> TaskPlan:
    """The plan for one task; FormatError or ValidationFailed naming what is wrong."""
    meta, where = archive.meta, archive.folder + TASK_FILE
    _check_name(meta.name, where)
    files = archive.cloud_files or media_names(archive)  # a lightweight one's are in a bucket
    placement = pool_placement(meta, set(files), where)
    if placement is None and (meta.data.custom_segments or meta.data.job_file_mapping):
        raise FormatError(f"{where}: tasks with custom job file mappings are not supported")
    if meta.data.storage == "cloud_storage" and meta.data.cloud_storage_id is None:
        raise FormatError(f"{where}: media in a cloud storage needs its cloud_storage_id")
    if meta.data.storage not in ("local", "cloud_storage"):
        raise FormatError(f"{where}: storage {meta.data.storage!r} is not local or cloud_storage")
    annotation_jobs = [job for job in meta.jobs if job.type == "annotation"]
    if not annotation_jobs:
        raise FormatError(f"{where}: the task has no annotation jobs")
    if len(meta.jobs) - len(annotation_jobs) > 1:
        raise FormatError(f"{where}: a task has at most one ground truth job")
    segment_size, overlap = _segmenting(annotation_jobs, where)
    labels = list(project_labels) if project_labels is not None else meta.labels
    stand_ins = _stand_in_labels(labels)
    _restored(archive, stand_ins)  # checks every job's annotations
    task = TaskWrite(
        name=meta.name,
        labels=[] if project_labels is not None else meta.labels,
        bug_tracker=meta.bug_tracker,
        subset=meta.subset,
        segment_size=segment_size,
        overlap=overlap,
    )
    return TaskPlan(archive, task, data_request(archive), placement)


def plan_project(archive: ProjectArchive) -> list[TaskPlan]:
    """The plans of a project backup's tasks, its name and labels checked first."""
    _check_name(archive.meta.name, PROJECT_FILE)
    _stand_in_labels(archive.meta.labels)
    return [plan_task(task, archive.meta.labels) for task in archive.tasks]


def restored_task(plan: TaskPlan, labels: Sequence[LabelSpec]) -> RestoredTask:
    """The jobs to restore, their annotations numbered by the new task's ``labels``."""
    return _restored(plan.archive, labels)


def data_request(archive: TaskArchive) -> DataRequest:
    data = archive.meta.data
    # A random order cannot be drawn again: the archive's order (the manifest's) is kept.
    order = data.sorting_method if data.sorting_method in KEPT_ORDERS else "predefined"
    cloud = archive.cloud_files
    try:
        request = msgspec.convert(
            {
                "image_quality": data.image_quality,
                "chunk_size": data.chunk_size,
                "start_frame": data.start_frame,
                "stop_frame": data.stop_frame,
                "frame_filter": data.frame_filter,
                "sorting_method": order,
                "use_zip_chunks": data.chunk_type == "imageset",
                "use_cache": data.storage_method == "cache",
                "storage_method": data.storage_method,
                # a lightweight backup's media is taken from its cloud storage again
                "cloud_storage_id": data.cloud_storage_id if cloud else None,
                "server_files": [MANIFEST_FILE, *cloud] if cloud else [],
            },
            DataRequest,
        )
    except msgspec.ValidationError as error:
        raise FormatError(f"{archive.folder}{TASK_FILE}: data: {error}") from None
    check_data_request(request)
    return request


def _segmenting(jobs: list[BackupJob], where: str) -> tuple[int, int]:
    """Segment size and overlap as CVAT reads them off the first two jobs."""
    size = jobs[0].stop_frame - jobs[0].start_frame + 1
    overlap = 0 if len(jobs) == 1 else jobs[0].stop_frame - jobs[1].start_frame + 1
    if size < 1 or overlap < 0:
        raise FormatError(f"{where}: the jobs' frame ranges are not a task's segments")
    return size, overlap


def _check_name(name: str, where: str) -> None:
    try:
        check_name(name)
    except ValidationFailed as error:
        raise FormatError(f"{where}: name: {error}") from None


def _stand_in_labels(labels: Sequence[LabelInput]) -> list[LabelSpec]:
    counter = itertools.count(1)
    return build_labels(labels, lambda kind: next(counter))


def _restored(archive: TaskArchive, labels: Sequence[LabelSpec]) -> RestoredTask:
    jobs: list[RestoredJob] = []
    ground_truth: RestoredJob | None = None
    gt_frames: list[int] = []
    for number, (job, raw) in enumerate(zip(archive.meta.jobs, archive.annotations, strict=True)):
        where = f"{archive.folder}{ANNOTATIONS_FILE}[{number}]"
        restored = _job(job, raw, labels, where)
        if job.type == "ground_truth":
            ground_truth = restored
            gt_frames = job.frames or list(range(job.start_frame, job.stop_frame + 1))
        else:
            jobs.append(restored)
    return RestoredTask(jobs, ground_truth, gt_frames, archive.meta.data.deleted_frames)


def _job(job: BackupJob, raw: object, labels: Sequence[LabelSpec], where: str) -> RestoredJob:
    data = resolved(raw, labels, where)
    rules = AnnotationRules.build(labels, job.start_frame, job.stop_frame)
    try:
        checked = rules.check(data)
    except ValidationFailed as error:
        raise ValidationFailed(
            {f"{where}.{path}": reasons for path, reasons in error.errors.items()}
        ) from None
    stage, state = stage_and_state(job)
    return RestoredJob(job.start_frame, job.stop_frame, stage, state, checked)
