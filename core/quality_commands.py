"""Quality commands: a task's settings (events on its stream) and the immediate feedback a
finished job gets (events on the job's)."""

from __future__ import annotations

import msgspec

from core.job_workflow import JobPatch, update_job
from core.jobs import Job
from core.permissions import Action, Principal, authorize
from core.quality_settings import QualitySettings, QualitySettingsPatch
from core.tasks import Task, task_resource
from core.units import Unit


def change_quality_settings(
    unit: Unit, principal: Principal, task_id: int, patch: QualitySettingsPatch
) -> QualitySettings:
    task = unit.get(Task, task_id)
    authorize(principal, Action.CHANGE, task_resource(unit, task))
    changes = {
        name: value
        for name, value in patch.changes().items()
        if getattr(task.quality_settings, name) != value
    }
    if changes:
        task.trigger_event(Task.QualitySettingsChanged, changes=changes)
    return task.quality_settings


class Verdict(msgspec.Struct):
    """How a finished job scored against the ground truth (from its quality report)."""

    target_metric: str
    target_metric_threshold: float
    score: float
    frames_to_fix: list[int]
    max_validations: int

    @property
    def passed(self) -> bool:
        return self.score >= self.target_metric_threshold


class Feedback(msgspec.Struct):
    target_metric: str
    target_metric_threshold: float
    score: float
    passed: bool
    frames_to_fix: list[int]
    attempt: int
    attempts_left: int


def finish_with_feedback(
    unit: Unit, principal: Principal, job_id: int, body: JobPatch, verdict: Verdict
) -> Feedback | None:
    """Applies the job change; while its assignee has validation attempts left, also records
    the feedback (CVAT's immediate job feedback, counted per assignee)."""
    job = update_job(unit, principal, job_id, body)
    assignee = job.assignee_id
    used = sum(1 for who in job.validation_attempts if who == assignee)
    if used >= verdict.max_validations:
        return None
    job.trigger_event(
        Job.ValidationGiven,
        assignee_id=assignee,
        target_metric=verdict.target_metric,
        score=verdict.score,
        passed=verdict.passed,
        frames_to_fix=verdict.frames_to_fix,
    )
    return Feedback(
        target_metric=verdict.target_metric,
        target_metric_threshold=verdict.target_metric_threshold,
        score=verdict.score,
        passed=verdict.passed,
        frames_to_fix=verdict.frames_to_fix,
        attempt=used + 1,
        attempts_left=verdict.max_validations - used - 1,
    )
