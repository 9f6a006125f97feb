"""Task annotation export and import in a honeypot task (manual 2.20.1, "Annotation
management"): an export takes the validation frames' annotations from the ground truth job
and skips the honeypots; an import writes the validation frames' annotations into the ground
truth job and copies them onto every honeypot showing them. Exporting and importing back
therefore changes the honeypots' annotations, as the manual warns."""

from __future__ import annotations

from typing import TypeVar

import msgspec

from core.annotations import LabeledData, Shape, Tag
from core.job_annotations import patch_annotations, replace_annotations
from core.permissions import Principal
from core.task_annotations import patch_task_annotations, replace_task_annotations
from core.task_data import ValidationLayout
from core.tasks import Task
from core.units import Unit

T = TypeVar("T", Tag, Shape)


def pool_export(
    annotations: LabeledData, ground_truth: LabeledData, layout: ValidationLayout
) -> LabeledData:
    """The task's annotations as an export writes them: none on honeypot frames, the pool
    frames' from the ground truth job."""
    skipped = set(layout.honeypot_frames)
    return LabeledData(
        version=annotations.version,
        tags=[t for t in annotations.tags if t.frame not in skipped] + ground_truth.tags,
        shapes=[s for s in annotations.shapes if s.frame not in skipped] + ground_truth.shapes,
        tracks=annotations.tracks,
    )


def split_pool_import(
    data: LabeledData, layout: ValidationLayout
) -> tuple[LabeledData, LabeledData]:
    """(for the annotation jobs, for the ground truth job): objects on pool frames go to the
    ground truth job, and a copy of each to every honeypot showing its frame."""
    pool = set(layout.frames)
    showing: dict[int, list[int]] = {}
    for frame, real in layout.real_frames.items():
        showing.setdefault(real, []).append(frame)
    jobs = LabeledData(
        tags=[t for t in data.tags if t.frame not in pool] + _copied(data.tags, showing),
        shapes=[s for s in data.shapes if s.frame not in pool] + _copied(data.shapes, showing),
        tracks=data.tracks,
    )
    ground_truth = LabeledData(
        tags=[t for t in data.tags if t.frame in pool],
        shapes=[s for s in data.shapes if s.frame in pool],
    )
    return jobs, ground_truth


def _copied(objects: list[T], showing: dict[int, list[int]]) -> list[T]:
    """New objects, one on every honeypot frame showing an object's frame."""
    return [
        msgspec.structs.replace(obj, id=None, frame=frame)
        for obj in objects
        for frame in showing.get(obj.frame, ())
    ]


def import_into_task(
    unit: Unit, principal: Principal, task_id: int, data: LabeledData, mode: str
) -> None:
    """A task annotation import (`mode` replace or append), honeypot tasks included."""
    task = unit.get(Task, task_id)
    layout = task.data.validation if task.data is not None else None
    if layout is None or layout.mode != "gt_pool" or task.gt_job_id is None:
        if mode == "replace":
            replace_task_annotations(unit, principal, task_id, data)
        else:
            patch_task_annotations(unit, principal, task_id, "create", data)
        return
    jobs, ground_truth = split_pool_import(data, layout)
    if mode == "replace":
        replace_task_annotations(unit, principal, task_id, jobs)
        replace_annotations(unit, principal, task.gt_job_id, ground_truth)
    else:
        patch_task_annotations(unit, principal, task_id, "create", jobs)
        patch_annotations(unit, principal, task.gt_job_id, "create", ground_truth)
