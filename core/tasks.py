"""Tasks: media plus labels, cut into jobs once their data is attached."""

from __future__ import annotations

import msgspec

from core.aggregate import Entity
from core.errors import ErrorCollector, NotFound, ValidationFailed
from core.jobs import Job
from core.labels import LabelInput, LabelSpec, build_labels
from core.permissions import (
    Action,
    Principal,
    Resource,
    authorize,
    check_may_create_in_organization,
)
from core.projects import Project, check_name, check_user_exists, project_resource
from core.quality_settings import QualitySettings
from core.segments import segment_ranges
from core.storage import StorageInput, StorageSpec, apply_changes, build_storage
from core.task_data import TaskData, ValidationLayout
from core.units import Unit

UNSET = msgspec.UNSET


class Task(Entity):
    KIND = "task"
    # Defaults for snapshots taken before these fields existed.
    gt_job_id: int | None = None
    quality_settings: QualitySettings = QualitySettings()

    class Created(Entity.Created):
        task_id: int
        name: str
        owner_id: int | None
        assignee_id: int | None
        project_id: int | None
        bug_tracker: str
        overlap: int | None
        segment_size: int
        subset: str
        labels: list[LabelSpec]
        source_storage: StorageSpec
        target_storage: StorageSpec
        organization_id: int | None

    def __init__(
        self,
        task_id: int,
        name: str,
        owner_id: int | None,
        assignee_id: int | None,
        project_id: int | None,
        bug_tracker: str,
        overlap: int | None,
        segment_size: int,
        subset: str,
        labels: list[LabelSpec],
        source_storage: StorageSpec,
        target_storage: StorageSpec,
        organization_id: int | None,
    ) -> None:
        self.task_id = task_id
        self.name = name
        self.owner_id = owner_id
        self.assignee_id = assignee_id
        self.project_id = project_id
        self.bug_tracker = bug_tracker
        self.overlap = overlap
        self.segment_size = segment_size
        self.subset = subset
        self.labels = labels
        self.source_storage = source_storage
        self.target_storage = target_storage
        self.organization_id = organization_id
        self.data: TaskData | None = None
        self.job_ids: list[int] = []

    class Updated(Entity.Event):
        changes: dict[str, object]

        def apply(self, task: Task) -> None:
            apply_changes(task, self.changes)

    class LabelsChanged(Entity.Event):
        labels: list[LabelSpec]

        def apply(self, task: Task) -> None:
            task.labels = self.labels

    class DataAttached(Entity.Event):
        data: TaskData
        job_ids: list[int]
        segment_size: int
        overlap: int

        def apply(self, task: Task) -> None:
            task.data = self.data
            task.job_ids = list(self.job_ids)
            task.segment_size = self.segment_size
            task.overlap = self.overlap

    class GroundTruthJobChanged(Entity.Event):
        job_id: int | None
        validation: ValidationLayout | None = None  # None in events before layouts existed

        def apply(self, task: Task) -> None:
            task.gt_job_id = self.job_id
            if task.data is not None and (self.validation is not None or self.job_id is None):
                task.data = msgspec.structs.replace(task.data, validation=self.validation)

    class ValidationFramesDisabled(Entity.Event):
        """The validation frames left out of quality checks are now `disabled_frames`."""

        disabled_frames: list[int]

        def apply(self, task: Task) -> None:
            assert task.data is not None and task.data.validation is not None
            layout = msgspec.structs.replace(
                task.data.validation, disabled_frames=self.disabled_frames
            )
            task.data = msgspec.structs.replace(task.data, validation=layout)

    class HoneypotsChanged(Entity.Event):
        """Honeypot frames show other pool frames: `real_frames` follows the layout's
        `honeypot_frames`."""

        real_frames: list[int]

        def apply(self, task: Task) -> None:
            assert task.data is not None
            task.data = with_honeypots(task.data, self.real_frames)

    class QualitySettingsChanged(Entity.Event):
        changes: dict[str, object]

        def apply(self, task: Task) -> None:
            task.quality_settings = msgspec.structs.replace(task.quality_settings, **self.changes)

    @property
    def all_job_ids(self) -> list[int]:
        """The annotation jobs and the ground truth job, if any."""
        return [*self.job_ids, *([self.gt_job_id] if self.gt_job_id is not None else [])]

    class FramesDeleted(Entity.Event):
        """The task's deleted frames are now `deleted_frames` (restoring is deleting fewer)."""

        deleted_frames: list[int]

        def apply(self, task: Task) -> None:
            assert task.data is not None
            task.data = msgspec.structs.replace(task.data, deleted_frames=self.deleted_frames)


class TaskWrite(msgspec.Struct):
    name: str
    project_id: int | None = None
    owner_id: int | None = None
    assignee_id: int | None = None
    bug_tracker: str = ""
    overlap: int | None = None
    segment_size: int | None = None
    labels: list[LabelInput] = []
    subset: str = ""
    source_storage: StorageInput | None = None
    target_storage: StorageInput | None = None
    consensus_replicas: int = 0


class TaskPatch(msgspec.Struct):
    name: str | msgspec.UnsetType = UNSET
    project_id: int | None | msgspec.UnsetType = UNSET
    owner_id: int | None | msgspec.UnsetType = UNSET
    assignee_id: int | None | msgspec.UnsetType = UNSET
    bug_tracker: str | msgspec.UnsetType = UNSET
    labels: list[LabelInput] | msgspec.UnsetType = UNSET
    subset: str | msgspec.UnsetType = UNSET
    source_storage: StorageInput | None | msgspec.UnsetType = UNSET
    target_storage: StorageInput | None | msgspec.UnsetType = UNSET


def task_resource(unit: Unit, task: Task) -> Resource:
    """The task as the permission rules see it."""
    project = unit.find(Project, task.project_id) if task.project_id is not None else None
    return Resource(
        "task",
        task.owner_id,
        task.assignee_id,
        task.organization_id,
        parents=_people(project),
        ident=task.task_id,
    )


def job_resource(unit: Unit, job: Job) -> Resource:
    """The job as the permission rules see it."""
    task = unit.get(Task, job.task_id)
    project = unit.find(Project, task.project_id) if task.project_id is not None else None
    return Resource(
        "job",
        None,
        job.assignee_id,
        task.organization_id,
        parents=_people(task) | _people(project),
        ident=job.job_id,
    )


def _people(container: Project | Task | None) -> frozenset[int]:
    if container is None:
        return frozenset()
    return frozenset(i for i in (container.owner_id, container.assignee_id) if i is not None)


def create_task(unit: Unit, principal: Principal, body: TaskWrite) -> Task:
    check_may_create_in_organization(principal, "task")
    name = check_name(body.name)
    errors = ErrorCollector()
    if body.project_id is not None and body.labels:
        errors.add("labels", "Task must have only one of Label set or project_id")
    if body.project_id is None and not body.labels:
        errors.add("labels", "Label set or project_id must be present")
    if body.segment_size is not None and body.segment_size < 0:
        errors.add("segment_size", "Ensure this value is greater than or equal to 0.")
    if body.overlap is not None and body.overlap < 0:
        errors.add("overlap", "Ensure this value is greater than or equal to 0.")
    if body.consensus_replicas not in (0,) and body.consensus_replicas < 2:
        errors.add("consensus_replicas", "must be 0 or at least 2")
    errors.raise_if_any()
    check_user_exists(unit, body.owner_id, "owner_id")
    check_user_exists(unit, body.assignee_id, "assignee_id")
    project = _project_for_task(unit, body.project_id)
    labels = build_labels(body.labels, unit.next_id)
    task_id = unit.next_id("task")
    task = Task._start(
        task_id,
        task_id=task_id,
        name=name,
        owner_id=body.owner_id if body.owner_id is not None else principal.id,
        assignee_id=body.assignee_id,
        project_id=body.project_id,
        bug_tracker=body.bug_tracker,
        overlap=body.overlap,
        segment_size=body.segment_size or 0,
        subset=body.subset,
        labels=labels,
        source_storage=build_storage(unit, body.source_storage),
        target_storage=build_storage(unit, body.target_storage),
        organization_id=project.organization_id if project is not None else principal.org_id,
    )
    unit.add(task)
    if project is not None:
        project.trigger_event(Project.TaskAdded, task_id=task_id)
    return task


def _project_for_task(unit: Unit, project_id: int | None) -> Project | None:
    if project_id is None:
        return None
    try:
        return unit.get(Project, project_id)
    except NotFound:
        raise ValidationFailed.one(
            "project_id", f'Invalid pk "{project_id}" - object does not exist.'
        ) from None


def update_task(unit: Unit, principal: Principal, task_id: int, body: TaskPatch) -> Task:
    task = unit.get(Task, task_id)
    authorize(principal, Action.CHANGE, task_resource(unit, task))
    changes: dict[str, object] = {}
    if body.name is not UNSET:
        changes["name"] = check_name(body.name)
    if body.project_id is not UNSET and body.project_id != task.project_id:
        raise ValidationFailed.one(
            "project_id", "moving a task between projects is not supported yet"
        )
    for field in ("owner_id", "assignee_id"):
        value = getattr(body, field)
        if value is not UNSET:
            check_user_exists(unit, value, field)
            changes[field] = value
    for field in ("bug_tracker", "subset"):
        value = getattr(body, field)
        if value is not UNSET:
            changes[field] = value
    for field in ("source_storage", "target_storage"):
        value = getattr(body, field)
        if value is not UNSET:
            changes[field] = msgspec.to_builtins(build_storage(unit, value))
    labels = None
    if body.labels is not UNSET and body.labels:
        if task.project_id is not None:
            raise ValidationFailed.one(
                "labels", "the labels of a task in a project are changed on the project"
            )
        labels = build_labels(body.labels, unit.next_id, existing=task.labels)
    if changes:
        task.trigger_event(Task.Updated, changes=changes)
    if labels is not None:
        task.trigger_event(Task.LabelsChanged, labels=labels)
    return task


def with_honeypots(data: TaskData, real_frames: list[int]) -> TaskData:
    """The data with each honeypot frame showing the pool frame given for it: its image and
    its frame entry (name and size) are the pool frame's, as in CVAT."""
    assert data.validation is not None and data.media_frames is not None
    media = list(data.media_frames)
    frames = list(data.frames)
    for frame, real in zip(data.validation.honeypot_frames, real_frames, strict=True):
        media[frame] = media[real]
        frames[frame] = frames[real]
    layout = msgspec.structs.replace(data.validation, honeypot_real_frames=list(real_frames))
    return msgspec.structs.replace(data, frames=frames, media_frames=media, validation=layout)


def attach_data(
    unit: Unit,
    principal: Principal,
    task_id: int,
    data: TaskData,
    job_sizes: list[int] | None = None,
) -> Task:
    """Records the task's media and cuts it into jobs, as CVAT's segmenting does, or into
    jobs of `job_sizes` frames (CVAT's job file mapping: segment size and overlap 0)."""
    task = unit.get(Task, task_id)
    authorize(principal, Action.CHANGE, task_resource(unit, task))
    if task.data is not None:
        raise ValidationFailed.one("data", "Adding more data is not supported")
    if data.size < 1:
        raise ValidationFailed.one("client_files", "no frames remain after filtering")
    is_video = data.mode == "interpolation"
    if job_sizes is None:
        ranges = segment_ranges(data.size, task.segment_size, task.overlap, is_video=is_video)
    else:
        starts = [sum(job_sizes[:i]) for i in range(len(job_sizes))]
        ranges = [(start, start + size - 1) for start, size in zip(starts, job_sizes, strict=True)]
    job_ids = []
    for start, stop in ranges:
        job_id = unit.next_id("job")
        unit.add(
            Job._start(
                job_id,
                job_id=job_id,
                task_id=task_id,
                start_frame=start,
                stop_frame=stop,
                job_type="annotation",
            )
        )
        job_ids.append(job_id)
    segment_size = task.segment_size if 0 < task.segment_size <= data.size else data.size
    if job_sizes is not None:
        segment_size = 0
    overlap = _effective_overlap(ranges)
    task.trigger_event(
        Task.DataAttached, data=data, job_ids=job_ids, segment_size=segment_size, overlap=overlap
    )
    return task


def set_deleted_frames(unit: Unit, principal: Principal, task_id: int, frames: list[int]) -> Task:
    """The task's deleted frames become `frames` (restoring a frame is leaving it out)."""
    task = unit.get(Task, task_id)
    authorize(principal, Action.CHANGE, task_resource(unit, task))
    size = task.data.size if task.data is not None else 0
    _check_pool_frames_kept(task, frames)
    _record_deleted_frames(task, frames, 0, size - 1)
    return task


def _check_pool_frames_kept(task: Task, frames: list[int]) -> None:
    """In a pool task the pool's frames are excluded and restored through the ground truth
    job, never through the task's own deleted frames."""
    if task.data is None or task.data.validation is None:
        return
    if task.data.validation.mode != "gt_pool":
        return
    changed = set(frames) ^ set(task.data.deleted_frames)
    if changed & set(task.data.validation.frames):
        raise ValidationFailed.one(
            "deleted_frames",
            'When task validation mode is "gt_pool", GT frames can only be deleted and '
            "restored via the GT job's api/jobs/{id}/data/meta endpoint",
        )


def set_job_deleted_frames(
    unit: Unit, principal: Principal, job_id: int, frames: list[int]
) -> Task:
    """The task's deleted frames within the job's range become `frames`; those outside stay."""
    job = unit.get(Job, job_id)
    authorize(principal, Action.ANNOTATE, job_resource(unit, job))
    task = unit.get(Task, job.task_id)
    _record_deleted_frames(task, frames, job.start_frame, job.stop_frame)
    return task


def _record_deleted_frames(task: Task, frames: list[int], first: int, last: int) -> None:
    if task.data is None:
        raise ValidationFailed.one("deleted_frames", "the task has no data yet")
    errors = ErrorCollector()
    if len(set(frames)) != len(frames):
        errors.add("deleted_frames", "the frame numbers must be unique")
    outside = sorted(f for f in frames if not first <= f <= last)
    if outside:
        errors.add("deleted_frames", f"frames {outside[:10]} are outside {first}..{last}")
    errors.raise_if_any()
    kept = [f for f in task.data.deleted_frames if not first <= f <= last]
    deleted = sorted(kept + frames)
    if deleted != task.data.deleted_frames:
        task.trigger_event(Task.FramesDeleted, deleted_frames=deleted)


def _effective_overlap(ranges: list[tuple[int, int]]) -> int:
    if len(ranges) < 2:
        return 0
    return max(0, ranges[0][1] - ranges[1][0] + 1)


def delete_task(unit: Unit, principal: Principal, task_id: int) -> None:
    task = unit.get(Task, task_id)
    authorize(principal, Action.DELETE, task_resource(unit, task))
    _delete_task_tree(unit, task)
    if task.project_id is not None:
        project = unit.find(Project, task.project_id)
        if project is not None and not project.deleted:
            project.trigger_event(Project.TaskRemoved, task_id=task_id)


def delete_project(unit: Unit, principal: Principal, project_id: int) -> None:
    project = unit.get(Project, project_id)
    authorize(principal, Action.DELETE, project_resource(project))
    for task_id in project.task_ids:
        task = unit.find(Task, task_id)
        if task is not None and not task.deleted:
            _delete_task_tree(unit, task)
    project.delete()


def delete_everything_of(unit: Unit, project_ids: list[int], task_ids: list[int]) -> None:
    """Deletes projects and tasks with their jobs, for an organization being deleted (its
    owner decides, whoever owns each of them)."""
    for project_id in project_ids:
        project = unit.find(Project, project_id)
        if project is not None and not project.deleted:
            for task_id in project.task_ids:
                task_ids = [*task_ids, task_id]
            project.delete()
    for task_id in task_ids:
        task = unit.find(Task, task_id)
        if task is not None and not task.deleted:
            _delete_task_tree(unit, task)


def _delete_task_tree(unit: Unit, task: Task) -> None:
    for job_id in task.all_job_ids:
        job = unit.find(Job, job_id)
        if job is not None and not job.deleted:
            job.delete()
    task.delete()
