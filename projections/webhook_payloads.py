"""What a webhook is sent for an event of the log: CVAT's event key and JSON payload.

A payload is `{"event": "update:task", "task": <the task's read JSON>, "before_update":
{field: old value}, "sender": <the acting user>, "webhook_id": N}`, as CVAT sends it. The
resource is the catalog's document when the dispatcher reaches the event (for a deleted one,
its last document); `before_update` comes from the aggregate just before the event.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, NamedTuple

import msgspec
import psycopg
from psycopg import sql

from core.jobs import Job
from core.organizations import Organization
from core.projects import Project
from core.tasks import Task
from infra.store import Palimpsest
from projections.catalog import basic_user
from projections.envelope import Scope
from web.organizations import invitation_json, membership_json, organization_json
from web.representations import (
    comment_json,
    issue_json,
    job_json,
    project_json,
    task_json,
    with_user_url,
)

Cursor = psycopg.Cursor[Any]
Doc = dict[str, Any]
Before = Callable[[], Any]  # the event's aggregate just before the event (read when needed)

# Domain event → (CVAT action, resource) pairs; events not here are sent to no webhook.
EVENT_KEYS: dict[type, tuple[tuple[str, str], ...]] = {
    Project.Created: (("create", "project"),),
    Project.Updated: (("update", "project"),),
    Project.LabelsChanged: (("update", "project"),),
    Project.Deleted: (("delete", "project"),),
    Task.Created: (("create", "task"),),
    Task.Updated: (("update", "task"),),
    Task.LabelsChanged: (("update", "task"),),
    Task.DataAttached: (("update", "task"),),
    Task.FramesDeleted: (("update", "task"),),
    Task.Deleted: (("delete", "task"),),
    Job.Created: (("create", "job"),),
    Job.Updated: (("update", "job"),),
    Job.Deleted: (("delete", "job"),),
    # An issue is opened with its first comment, both made (CVAT sends both).
    Job.IssueOpened: (("create", "issue"), ("create", "comment")),
    Job.IssueChanged: (("update", "issue"),),
    Job.IssueRemoved: (("delete", "issue"),),
    Job.CommentAdded: (("create", "comment"),),
    Job.CommentEdited: (("update", "comment"),),
    Job.CommentRemoved: (("delete", "comment"),),
    Organization.Updated: (("update", "organization"),),
    Organization.MemberJoined: (("create", "membership"),),
    Organization.RoleChanged: (("update", "membership"),),
    Organization.MemberLeft: (("delete", "membership"),),
    Organization.Invited: (("create", "invitation"),),
    Organization.InvitationDropped: (("delete", "invitation"),),
}
ORGANIZATION_EVENTS = tuple(t for t in EVENT_KEYS if t.__qualname__.startswith("Organization."))
RENDER: dict[str, Callable[[Doc, str], Doc]] = {
    "project": project_json,
    "task": task_json,
    "job": job_json,
    "issue": issue_json,
    "comment": comment_json,
    "organization": organization_json,
    "membership": membership_json,
    "invitation": invitation_json,
}
# Changed fields holding a user id, shown in before_update as the user, as the read JSON does.
USER_FIELDS = {"owner_id": "owner", "assignee_id": "assignee"}


class Subject(NamedTuple):
    """What an event is about, for webhooks: its key and the resource it concerns."""

    key: str  # "update:task"
    resource: str  # "task"
    resource_id: int | str  # an invitation's is its key


def subjects_of(event: Any, scope: Scope, before: Before) -> list[Subject]:
    """The webhook events `event` makes; `scope` holds its organization for an organization's
    own events."""
    found = []
    for action, resource in EVENT_KEYS.get(type(event), ()):
        resource_id = _resource_id(event, resource, scope, before)
        if resource_id is not None:
            found.append(Subject(f"{action}:{resource}", resource, resource_id))
    return found


def _resource_id(event: Any, resource: str, scope: Scope, before: Before) -> int | str | None:
    if resource == "issue":
        return event.issue.id if isinstance(event, Job.IssueOpened) else event.issue_id
    if resource == "comment":
        return event.comment_id
    if resource == "membership":
        if isinstance(event, Organization.MemberJoined):
            return event.membership_id
        return before().membership_ids.get(event.user_id)
    if resource == "invitation":
        return event.invitation.key if isinstance(event, Organization.Invited) else event.key
    if resource == "organization":
        return scope.organization_id
    return getattr(scope, f"{resource}_id")


def organization_of(cur: Cursor, event: Any) -> int | None:
    """The id of the organization whose own event this is (None for any other event)."""
    if not isinstance(event, ORGANIZATION_EVENTS):
        return None
    cur.execute("SELECT id FROM catalog_organizations WHERE uuid = %s", (event.originator_id,))
    row = cur.fetchone()
    return row[0] if row else None


def build_payload(
    cur: Cursor, event: Any, subject: Subject, base_url: str, before: Before
) -> Doc | None:
    """The payload without `webhook_id`; None if the resource is unknown to the catalog."""
    document = _resource_doc(cur, subject)
    if document is None:
        return None
    payload: Doc = {
        "event": subject.key,
        subject.resource: RENDER[subject.resource](document, base_url),
    }
    if subject.key.startswith("update:"):
        payload["before_update"] = _before_update(cur, event, before)
    payload["sender"] = with_user_url(basic_user(cur, event.actor), base_url)
    return payload


def aggregate_before(app: Palimpsest, event: Any) -> Before:
    """Reads the event's aggregate as it was just before the event, once, when first asked."""
    found: list[Any] = []

    def read() -> Any:
        if not found:
            found.append(
                app.repository.get(event.originator_id, version=event.originator_version - 1)
            )
        return found[0]

    return read


def encode(payload: Doc) -> str:
    """The body as CVAT sends and signs it: Python's json.dumps with default separators."""
    return json.dumps(payload)


def changed_fields(payload: Doc) -> str:
    return ",".join(payload.get("before_update", {}))


def _resource_doc(cur: Cursor, subject: Subject) -> Doc | None:
    if subject.resource == "invitation":
        cur.execute(
            "SELECT doc FROM catalog_invitations WHERE key = %(id)s"
            " UNION ALL SELECT doc FROM catalog_invitation_tombstones WHERE key = %(id)s LIMIT 1",
            {"id": subject.resource_id},
        )
    else:
        table = sql.Identifier(f"catalog_{subject.resource}s")
        cur.execute(
            sql.SQL(
                "SELECT doc FROM {} WHERE id = %(id)s UNION ALL SELECT doc FROM"
                " catalog_tombstones WHERE kind = %(kind)s AND id = %(id)s LIMIT 1"
            ).format(table),
            {"id": subject.resource_id, "kind": subject.resource},
        )
    row = cur.fetchone()
    return row[0] if row else None


def _before_update(cur: Cursor, event: Any, before: Before) -> Doc:
    """The changed fields' values before the event (of the issue, the membership, or the
    aggregate itself)."""
    if event.originator_version <= 1:
        return {}
    if isinstance(event, Organization.RoleChanged):
        return {"role": before().roles.get(event.user_id)}
    changes: dict[str, Any] = getattr(event, "changes", {})
    if not changes:
        return {}
    target = before()
    if isinstance(event, Job.IssueChanged):
        target = target.review.issues.get(event.issue_id)
    old: Doc = {}
    for field in changes:
        value = getattr(target, field, None)
        if field in USER_FIELDS:
            old[USER_FIELDS[field]] = basic_user(cur, value)
        else:
            old[field] = msgspec.to_builtins(value)
    return old
