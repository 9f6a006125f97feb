"""Label edits that reach into annotations: a deleted label takes its annotations with it."""

from __future__ import annotations

from core.annotations import ObjectIds
from core.jobs import Job
from core.labels import LabelInput, all_labels
from core.permissions import Principal
from core.projects import Project, ProjectPatch, update_project
from core.tasks import Task, TaskPatch, update_task
from core.units import Unit


def change_project(
    unit: Unit, principal: Principal, project_id: int, body: ProjectPatch
) -> Project:
    before = _label_ids(unit.get(Project, project_id).labels)
    project = update_project(unit, principal, project_id, body)
    removed = before - _label_ids(project.labels)
    for task_id in project.task_ids if removed else ():
        task = unit.find(Task, task_id)
        if task is not None and not task.deleted:
            drop_annotations_with_labels(unit, task, removed)
    return project


def change_task(unit: Unit, principal: Principal, task_id: int, body: TaskPatch) -> Task:
    before = _label_ids(unit.get(Task, task_id).labels)
    task = update_task(unit, principal, task_id, body)
    removed = before - _label_ids(task.labels)
    if removed:
        drop_annotations_with_labels(unit, task, removed)
    return task


def change_label(
    unit: Unit, principal: Principal, owner: tuple[str, int], change: LabelInput
) -> None:
    """PATCH or DELETE /api/labels/{id}: an edit of one label of its project or task."""
    kind, owner_id = owner
    if kind == "project":
        change_project(unit, principal, owner_id, ProjectPatch(labels=[change]))
    else:
        change_task(unit, principal, owner_id, TaskPatch(labels=[change]))


def drop_annotations_with_labels(unit: Unit, task: Task, label_ids: set[int]) -> None:
    for job_id in task.all_job_ids:
        job = unit.find(Job, job_id)
        if job is None or job.deleted:
            continue
        state = job.annotations
        doomed = ObjectIds(
            [i for i, t in state.tags.items() if t.label_id in label_ids],
            [i for i, s in state.shapes.items() if s.label_id in label_ids],
            [i for i, t in state.tracks.items() if t.label_id in label_ids],
        )
        if doomed.count():
            job.trigger_event(Job.AnnotationsDeleted, ids=doomed)


def _label_ids(labels: list) -> set[int]:
    return {label.id for label in all_labels(labels)}
