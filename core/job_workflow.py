"""A job's workflow: its stage, state and assignee (CVAT's PATCH /api/jobs/{id})."""

from __future__ import annotations

import msgspec

from core.jobs import Job, Stage, State
from core.permissions import Action, Principal, authorize
from core.projects import check_user_exists
from core.tasks import job_resource
from core.units import Unit

UNSET = msgspec.UNSET


class JobPatch(msgspec.Struct):
    assignee: int | None | msgspec.UnsetType = UNSET
    stage: Stage | msgspec.UnsetType = UNSET
    state: State | msgspec.UnsetType = UNSET


def update_job(unit: Unit, principal: Principal, job_id: int, body: JobPatch) -> Job:
    job = unit.get(Job, job_id)
    resource = job_resource(unit, job)
    only_state = body.assignee is UNSET and body.stage is UNSET
    # its assignee (while they may see it) alone may set its state
    own_state = only_state and principal.id == job.assignee_id
    authorize(principal, Action.VIEW if own_state else Action.CHANGE, resource)
    changes: dict[str, object] = {}
    if body.assignee is not UNSET and body.assignee != job.assignee_id:
        check_user_exists(unit, body.assignee, "assignee")
        changes["assignee_id"] = body.assignee
    if body.stage is not UNSET and body.stage != job.stage:
        changes["stage"] = body.stage
        if body.state is UNSET:
            changes["state"] = "new"
    if body.state is not UNSET and body.state != job.state:
        changes["state"] = body.state
    if _sent_back(job, body, changes):
        changes.update(stage="annotation", state="rejected")
        if job.annotator_id is not None:
            changes["assignee_id"] = job.annotator_id
    if changes:
        job.trigger_event(Job.Updated, changes=changes)
    return job


def _sent_back(job: Job, body: JobPatch, changes: dict[str, object]) -> bool:
    """A reviewer rejecting a job with open issues sends it back to its annotator (also
    when the job was already marked rejected before the issues were opened)."""
    stage = changes.get("stage", job.stage)
    return body.state == "rejected" and stage == "validation" and job.review.open_issues() > 0
