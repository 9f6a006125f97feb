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
from core.projects import Project
from core.tasks import Task
from infra.store import Palimpsest
from projections.catalog import basic_user
from projections.envelope import Scope
from web.representations import job_json, project_json, task_json, with_user_url

Cursor = psycopg.Cursor[Any]
Doc = dict[str, Any]

# Domain event → (CVAT action, resource); events not here are sent to no webhook.
EVENT_KEYS: dict[type, tuple[str, str]] = {
    Project.Updated: ("update", "project"),
    Project.LabelsChanged: ("update", "project"),
    Project.Deleted: ("delete", "project"),
    Task.Created: ("create", "task"),
    Task.Updated: ("update", "task"),
    Task.LabelsChanged: ("update", "task"),
    Task.DataAttached: ("update", "task"),
    Task.FramesDeleted: ("update", "task"),
    Task.Deleted: ("delete", "task"),
    Job.Created: ("create", "job"),
    Job.Updated: ("update", "job"),
    Job.Deleted: ("delete", "job"),
}
RENDER: dict[str, Callable[[Doc, str], Doc]] = {
    "project": project_json,
    "task": task_json,
    "job": job_json,
}
# Changed fields holding a user id, shown in before_update as the user, as the read JSON does.
USER_FIELDS = {"owner_id": "owner", "assignee_id": "assignee"}


class Subject(NamedTuple):
    """What an event is about, for webhooks: its key and the resource it concerns."""

    key: str  # "update:task"
    resource: str  # "task"
    resource_id: int


def subject_of(event: Any, scope: Scope) -> Subject | None:
    mapped = EVENT_KEYS.get(type(event))
    if mapped is None:
        return None
    action, resource = mapped
    resource_id = getattr(scope, f"{resource}_id")
    if resource_id is None:
        return None
    return Subject(f"{action}:{resource}", resource, resource_id)


def build_payload(
    cur: Cursor, app: Palimpsest, event: Any, subject: Subject, base_url: str
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
        payload["before_update"] = _before_update(cur, app, event)
    payload["sender"] = with_user_url(basic_user(cur, event.actor), base_url)
    return payload


def encode(payload: Doc) -> str:
    """The body as CVAT sends and signs it: Python's json.dumps with default separators."""
    return json.dumps(payload)


def changed_fields(payload: Doc) -> str:
    return ",".join(payload.get("before_update", {}))


def _resource_doc(cur: Cursor, subject: Subject) -> Doc | None:
    table = sql.Identifier(f"catalog_{subject.resource}s")
    cur.execute(
        sql.SQL(
            "SELECT doc FROM {} WHERE id = %s"
            " UNION ALL SELECT doc FROM catalog_tombstones WHERE kind = %s AND id = %s LIMIT 1"
        ).format(table),
        (subject.resource_id, subject.resource, subject.resource_id),
    )
    row = cur.fetchone()
    return row[0] if row else None


def _before_update(cur: Cursor, app: Palimpsest, event: Any) -> Doc:
    changes: dict[str, Any] = getattr(event, "changes", {})
    if not changes or event.originator_version <= 1:
        return {}
    before = app.repository.get(event.originator_id, version=event.originator_version - 1)
    old: Doc = {}
    for field in changes:
        value = getattr(before, field, None)
        if field in USER_FIELDS:
            old[USER_FIELDS[field]] = basic_user(cur, value)
        else:
            old[field] = msgspec.to_builtins(value)
    return old
