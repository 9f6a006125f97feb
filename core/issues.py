"""Commands on review issues and their comments (CVAT's /api/issues and /api/comments)."""

from __future__ import annotations

import math

import msgspec

from core.errors import NotFound, ValidationFailed
from core.jobs import Job
from core.permissions import Action, Principal, Resource, authorize
from core.projects import check_user_exists
from core.review import CommentRef, Issue, ReviewState
from core.tasks import job_resource
from core.units import Unit

MAX_MESSAGE = 4096
UNSET = msgspec.UNSET


class IssueInput(msgspec.Struct, forbid_unknown_fields=True):
    frame: int
    position: list[float]
    job: int
    message: str
    assignee: int | None = None
    resolved: bool = False


class IssuePatch(msgspec.Struct, forbid_unknown_fields=True):
    position: list[float] | msgspec.UnsetType = UNSET
    assignee: int | None | msgspec.UnsetType = UNSET
    resolved: bool | msgspec.UnsetType = UNSET


class CommentInput(msgspec.Struct, forbid_unknown_fields=True):
    issue: int
    message: str


class CommentPatch(msgspec.Struct, forbid_unknown_fields=True):
    message: str


def open_issue(unit: Unit, principal: Principal, body: IssueInput) -> tuple[Issue, int]:
    """Opens an issue with its first comment; returns the issue and the comment's id."""
    job = unit.get(Job, body.job)
    authorize(principal, Action.VIEW, job_resource(unit, job))
    if body.frame not in job.frames:
        raise ValidationFailed.one(
            "frame", f"frame {body.frame} is outside job {job.job_id} ({job.start_frame}-"
            f"{job.stop_frame})"
        )  # fmt: skip
    message = _message(body.message)
    check_user_exists(unit, body.assignee, "assignee")
    issue = Issue(
        id=unit.next_id("issue"),
        frame=body.frame,
        position=_position(body.position),
        owner_id=principal.id,
        assignee_id=body.assignee,
        resolved=body.resolved,
    )
    comment_id = unit.next_id("comment")
    job.trigger_event(Job.IssueOpened, issue=issue, comment_id=comment_id, message=message)
    return issue, comment_id


def change_issue(
    unit: Unit, principal: Principal, job_id: int, issue_id: int, body: IssuePatch
) -> Issue:
    job = unit.get(Job, job_id)
    authorize(principal, Action.VIEW, job_resource(unit, job))
    issue = _issue(job.review, issue_id)
    changes: dict[str, object] = {}
    if body.position is not UNSET and body.position != issue.position:
        changes["position"] = _position(body.position)
    if body.assignee is not UNSET and body.assignee != issue.assignee_id:
        check_user_exists(unit, body.assignee, "assignee")
        changes["assignee_id"] = body.assignee
    if body.resolved is not UNSET and body.resolved != issue.resolved:
        changes["resolved"] = body.resolved
    if changes:
        job.trigger_event(Job.IssueChanged, issue_id=issue_id, changes=changes)
    return job.review.issues[issue_id]


def remove_issue(unit: Unit, principal: Principal, job_id: int, issue_id: int) -> None:
    job = unit.get(Job, job_id)
    authorize(principal, Action.VIEW, job_resource(unit, job))
    issue = _issue(job.review, issue_id)
    authorize(principal, Action.DELETE, Resource("issue", issue.owner_id))
    job.trigger_event(Job.IssueRemoved, issue_id=issue_id)


def add_comment(unit: Unit, principal: Principal, job_id: int, body: CommentInput) -> int:
    job = unit.get(Job, job_id)
    authorize(principal, Action.VIEW, job_resource(unit, job))
    _issue(job.review, body.issue)
    message = _message(body.message)
    comment_id = unit.next_id("comment")
    job.trigger_event(Job.CommentAdded, comment_id=comment_id, issue_id=body.issue, message=message)
    return comment_id


def edit_comment(
    unit: Unit, principal: Principal, job_id: int, comment_id: int, body: CommentPatch
) -> None:
    job = unit.get(Job, job_id)
    authorize(principal, Action.VIEW, job_resource(unit, job))
    ref = _comment(job.review, comment_id)
    authorize(principal, Action.CHANGE, Resource("comment", ref.owner_id))
    job.trigger_event(Job.CommentEdited, comment_id=comment_id, message=_message(body.message))


def remove_comment(unit: Unit, principal: Principal, job_id: int, comment_id: int) -> None:
    job = unit.get(Job, job_id)
    authorize(principal, Action.VIEW, job_resource(unit, job))
    ref = _comment(job.review, comment_id)
    authorize(principal, Action.DELETE, Resource("comment", ref.owner_id))
    job.trigger_event(Job.CommentRemoved, comment_id=comment_id)


def _issue(review: ReviewState, issue_id: int) -> Issue:
    issue = review.issues.get(issue_id)
    if issue is None:
        raise NotFound("issue", issue_id)
    return issue


def _comment(review: ReviewState, comment_id: int) -> CommentRef:
    ref = review.comments.get(comment_id)
    if ref is None:
        raise NotFound("comment", comment_id)
    return ref


def _message(message: str) -> str:
    if not message.strip():
        raise ValidationFailed.one("message", "This field may not be blank.")
    if len(message) > MAX_MESSAGE:
        raise ValidationFailed.one(
            "message", f"Ensure this field has no more than {MAX_MESSAGE} characters."
        )
    return message


def _position(position: list[float]) -> list[float]:
    if len(position) < 2 or len(position) % 2:
        raise ValidationFailed.one("position", "give x, y pairs: at least one point")
    if not all(math.isfinite(value) for value in position):
        raise ValidationFailed.one("position", "coordinates must be finite numbers")
    return [float(value) for value in position]
