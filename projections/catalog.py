"""The catalog read model: users, projects, tasks, jobs and labels as CVAT read documents.

Documents hold everything of CVAT's read JSON but the request-dependent urls, which the web
layer adds. Names of related things (owner, project and task names) are copied in, and kept
current here when they change.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec
import psycopg
from eventsourcing.persistence import Notification
from psycopg.types.json import Jsonb

from core.access_tokens import AccessTokenCreated, AccessTokenRevoked, AccessTokenUpdated
from core.account_links import EmailConfirmationSent, EmailConfirmed, PasswordReset
from core.accounts import User
from core.jobs import Job, job_status
from core.projects import Project
from core.storage import StorageSpec
from core.task_data import TaskData
from core.tasks import Task
from projections import (
    catalog_cloud_storages,
    catalog_organizations,
    catalog_review,
    catalog_webhooks,
)
from projections.catalog_docs import basic_user, iso
from projections.catalog_labels import write_labels
from projections.runner import Table

Cursor = psycopg.Cursor[Any]
Doc = dict[str, Any]


def storage_doc(storage: StorageSpec | dict[str, Any] | None) -> Doc | None:
    if storage is None:
        return None
    return msgspec.to_builtins(storage) if isinstance(storage, StorageSpec) else dict(storage)


class CatalogProjection:
    name = "catalog"
    tables = (
        Table("catalog_users", "id"),
        Table("catalog_projects", "id"),
        Table("catalog_tasks", "id"),
        Table("catalog_jobs", "id"),
        Table("catalog_labels", "id"),
        Table("catalog_access_tokens", "id"),
        Table("catalog_webhooks", "id"),
        *catalog_review.TABLES,
        *catalog_organizations.TABLES,
        *catalog_cloud_storages.TABLES,
    )

    def __init__(self) -> None:
        self._handlers: dict[type, Callable[[Cursor, Any], None]] = {
            User.Created: self._user_created,
            User.PasswordChanged: self._password_changed,
            PasswordReset: self._password_changed,
            EmailConfirmationSent: self._email_confirmation_sent,
            EmailConfirmed: self._email_confirmed,
            User.ProfileUpdated: self._profile_updated,
            AccessTokenCreated: self._access_token_created,
            AccessTokenUpdated: self._access_token_updated,
            AccessTokenRevoked: self._access_token_revoked,
            **catalog_webhooks.HANDLERS,
            Project.Created: self._project_created,
            Project.Updated: self._project_updated,
            Project.LabelsChanged: self._project_labels_changed,
            Project.TaskAdded: self._project_task_count,
            Project.TaskRemoved: self._project_task_count,
            Project.Deleted: self._project_deleted,
            Task.Created: self._task_created,
            Task.Updated: self._task_updated,
            Task.LabelsChanged: self._task_labels_changed,
            Task.DataAttached: self._task_data_attached,
            Task.FramesDeleted: self._task_frames_deleted,
            Task.GroundTruthJobChanged: self._task_validation_changed,
            Task.ValidationFramesDisabled: self._task_validation_changed,
            Task.HoneypotsChanged: self._task_validation_changed,
            Task.Deleted: self._task_deleted,
            Job.Created: self._job_created,
            Job.Updated: self._job_updated,
            Job.Deleted: self._job_deleted,
            **catalog_review.HANDLERS,
            **catalog_organizations.HANDLERS,
            **catalog_cloud_storages.HANDLERS,
        }

    def apply(self, cur: Cursor, event: Any, notification: Notification) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(cur, event)

    def reset(self, cur: Cursor) -> None:
        cur.execute("TRUNCATE " + ", ".join(table.name for table in self.tables))

    # Users

    def _user_created(self, cur: Cursor, event: User.Created) -> None:
        doc = {
            "id": event.user_id,
            "username": event.username,
            "first_name": event.first_name,
            "last_name": event.last_name,
            "email": event.email,
            "groups": ["admin"] if event.is_superuser else ["user"],
            "is_staff": event.is_superuser,
            "is_superuser": event.is_superuser,
            "is_active": True,
            "last_login": None,
            "date_joined": iso(event.timestamp),
            "has_analytics_access": event.is_superuser,
        }
        cur.execute(
            "INSERT INTO catalog_users"
            " (id, uuid, username, email, password_hash, is_superuser, doc)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (
                event.user_id,
                event.originator_id,
                event.username,
                event.email,
                event.password_hash,
                event.is_superuser,
                Jsonb(doc),
            ),
        )

    def _password_changed(self, cur: Cursor, event: User.PasswordChanged) -> None:
        cur.execute(
            "UPDATE catalog_users SET password_hash = %s WHERE uuid = %s",
            (event.password_hash, event.originator_id),
        )

    def _email_confirmation_sent(self, cur: Cursor, event: EmailConfirmationSent) -> None:
        cur.execute(
            "UPDATE catalog_users SET email_verified = false WHERE uuid = %s",
            (event.originator_id,),
        )

    def _email_confirmed(self, cur: Cursor, event: EmailConfirmed) -> None:
        cur.execute(
            "UPDATE catalog_users SET email_verified = true WHERE uuid = %s",
            (event.originator_id,),
        )

    def _profile_updated(self, cur: Cursor, event: User.ProfileUpdated) -> None:
        cur.execute(
            "UPDATE catalog_users SET doc = doc || %s WHERE uuid = %s",
            (Jsonb(event.changes), event.originator_id),
        )

    # Personal access tokens (their digests are not in the log: see web/access_tokens.py)

    def _access_token_created(self, cur: Cursor, event: AccessTokenCreated) -> None:
        cur.execute("SELECT id FROM catalog_users WHERE uuid = %s", (event.originator_id,))
        owner = cur.fetchone()
        if owner is None:
            return
        stamp = iso(event.timestamp)
        doc = {
            "id": event.token_id,
            "name": event.name,
            "created_date": stamp,
            "updated_date": stamp,
            "expiry_date": iso(event.expiry_date) if event.expiry_date else None,
            "read_only": event.read_only,
            "owner": basic_user(cur, owner[0]),
        }
        cur.execute(
            "INSERT INTO catalog_access_tokens (id, owner_id, read_only, expiry_date, doc)"
            " VALUES (%s, %s, %s, %s, %s)",
            (event.token_id, owner[0], event.read_only, event.expiry_date, Jsonb(doc)),
        )

    def _access_token_updated(self, cur: Cursor, event: AccessTokenUpdated) -> None:
        changes = {
            "name": event.name,
            "expiry_date": iso(event.expiry_date) if event.expiry_date else None,
            "read_only": event.read_only,
            "updated_date": iso(event.timestamp),
        }
        cur.execute(
            "UPDATE catalog_access_tokens SET read_only = %s, expiry_date = %s, doc = doc || %s"
            " WHERE id = %s",
            (event.read_only, event.expiry_date, Jsonb(changes), event.token_id),
        )

    def _access_token_revoked(self, cur: Cursor, event: AccessTokenRevoked) -> None:
        cur.execute(
            "UPDATE catalog_access_tokens SET revoked = true, doc = doc || %s WHERE id = %s",
            (Jsonb({"updated_date": iso(event.timestamp)}), event.token_id),
        )

    # Projects

    def _project_created(self, cur: Cursor, event: Project.Created) -> None:
        stamp = iso(event.timestamp)
        doc = {
            "id": event.project_id,
            "name": event.name,
            "owner": basic_user(cur, event.owner_id),
            "assignee": basic_user(cur, event.assignee_id),
            "guide_id": None,
            "bug_tracker": event.bug_tracker,
            "task_subsets": [],
            "created_date": stamp,
            "updated_date": stamp,
            "status": "annotation",
            "dimension": None,
            "organization": event.organization_id,
            "organization_id": event.organization_id,
            "target_storage": storage_doc(event.target_storage),
            "source_storage": storage_doc(event.source_storage),
            "assignee_updated_date": None,
            "tasks": {"count": 0},
        }
        cur.execute(
            "INSERT INTO catalog_projects (id, uuid, owner_id, doc) VALUES (%s, %s, %s, %s)",
            (event.project_id, event.originator_id, event.owner_id, Jsonb(doc)),
        )
        write_labels(cur, event.labels, project_id=event.project_id)

    def _project_updated(self, cur: Cursor, event: Project.Updated) -> None:
        row = _load(cur, "catalog_projects", event.originator_id)
        if row is None:
            return
        project_id, doc = row
        _apply_common_changes(cur, doc, event)
        cur.execute(
            "UPDATE catalog_projects SET doc = %s, owner_id = %s WHERE id = %s",
            (Jsonb(doc), (doc["owner"] or {}).get("id"), project_id),
        )
        if "name" in event.changes:
            cur.execute(
                "UPDATE catalog_tasks SET doc = jsonb_set(doc, '{project_name}',"
                " to_jsonb(%s::text)) WHERE project_id = %s",
                (event.changes["name"], project_id),
            )
            cur.execute(
                "UPDATE catalog_jobs SET doc = jsonb_set(doc, '{project_name}',"
                " to_jsonb(%s::text)) WHERE (doc->>'project_id')::int = %s",
                (event.changes["name"], project_id),
            )

    def _project_labels_changed(self, cur: Cursor, event: Project.LabelsChanged) -> None:
        row = _load(cur, "catalog_projects", event.originator_id)
        if row is None:
            return
        write_labels(cur, event.labels, project_id=row[0])
        _touch(cur, "catalog_projects", row[0], row[1], event.timestamp)

    def _project_task_count(self, cur: Cursor, event: Project.Event) -> None:
        row = _load(cur, "catalog_projects", event.originator_id)
        if row is None:
            return
        project_id, doc = row
        delta = 1 if isinstance(event, Project.TaskAdded) else -1
        doc["tasks"]["count"] = max(0, doc["tasks"]["count"] + delta)
        _touch(cur, "catalog_projects", project_id, doc, event.timestamp)

    def _project_deleted(self, cur: Cursor, event: Project.Deleted) -> None:
        row = _load(cur, "catalog_projects", event.originator_id)
        if row is None:
            return
        cur.execute("DELETE FROM catalog_labels WHERE project_id = %s", (row[0],))
        cur.execute("DELETE FROM catalog_projects WHERE id = %s", (row[0],))

    # Tasks

    def _task_created(self, cur: Cursor, event: Task.Created) -> None:
        stamp = iso(event.timestamp)
        doc = {
            "id": event.task_id,
            "name": event.name,
            "project_id": event.project_id,
            "project_name": _project_name(cur, event.project_id),
            "owner": basic_user(cur, event.owner_id),
            "assignee": basic_user(cur, event.assignee_id),
            "bug_tracker": event.bug_tracker,
            "created_date": stamp,
            "updated_date": stamp,
            "overlap": event.overlap,
            "segment_size": event.segment_size,
            "status": "annotation",
            "data_cloud_storage_id": None,
            "guide_id": None,
            "data": None,
            "dimension": "2d",
            "mode": "",
            "media_type": "image",
            "subset": event.subset,
            "organization": event.organization_id,
            "organization_id": event.organization_id,
            "target_storage": storage_doc(event.target_storage),
            "source_storage": storage_doc(event.source_storage),
            "assignee_updated_date": None,
            "validation_mode": None,
            "consensus_enabled": False,
            "jobs": {"count": 0, "completed": 0, "validation": 0},
        }
        cur.execute(
            "INSERT INTO catalog_tasks (id, uuid, project_id, owner_id, doc)"
            " VALUES (%s, %s, %s, %s, %s)",
            (event.task_id, event.originator_id, event.project_id, event.owner_id, Jsonb(doc)),
        )
        if event.project_id is None:
            write_labels(cur, event.labels, task_id=event.task_id)
        else:
            _refresh_project_subsets(cur, event.project_id)

    def _task_updated(self, cur: Cursor, event: Task.Updated) -> None:
        row = _load(cur, "catalog_tasks", event.originator_id)
        if row is None:
            return
        task_id, doc = row
        _apply_common_changes(cur, doc, event)
        if "subset" in event.changes:
            doc["subset"] = event.changes["subset"]
        cur.execute(
            "UPDATE catalog_tasks SET doc = %s, owner_id = %s WHERE id = %s",
            (Jsonb(doc), (doc["owner"] or {}).get("id"), task_id),
        )
        if "name" in event.changes:
            cur.execute(
                "UPDATE catalog_jobs SET doc = jsonb_set(doc, '{task_name}', to_jsonb(%s::text))"
                " WHERE task_id = %s",
                (event.changes["name"], task_id),
            )
        if "subset" in event.changes and doc["project_id"] is not None:
            _refresh_project_subsets(cur, doc["project_id"])

    def _task_labels_changed(self, cur: Cursor, event: Task.LabelsChanged) -> None:
        row = _load(cur, "catalog_tasks", event.originator_id)
        if row is None:
            return
        write_labels(cur, event.labels, task_id=row[0])
        _touch(cur, "catalog_tasks", row[0], row[1], event.timestamp)

    def _task_data_attached(self, cur: Cursor, event: Task.DataAttached) -> None:
        row = _load(cur, "catalog_tasks", event.originator_id)
        if row is None:
            return
        task_id, doc = row
        data = event.data
        doc.update(
            {
                "size": data.size,
                "image_quality": data.image_quality,
                "data_chunk_size": data.chunk_size,
                "data_original_chunk_type": data.original_chunk_type or data.chunk_type,
                "data_compressed_chunk_type": data.chunk_type,
                "data": data.data_id,
                "mode": data.mode,
                "media_type": data.media_type,
                "data_cloud_storage_id": data.cloud_storage_id,
                "segment_size": event.segment_size,
                "overlap": event.overlap,
                "validation_mode": data.validation.mode if data.validation else None,
                "updated_date": iso(event.timestamp),
            }
        )
        cur.execute(
            "UPDATE catalog_tasks SET doc = %s, data = %s WHERE id = %s",
            (Jsonb(doc), Jsonb(msgspec.to_builtins(data)), task_id),
        )
        cur.execute(
            "UPDATE catalog_jobs SET doc = doc || %s WHERE task_id = %s",
            (Jsonb(_job_data_fields(doc)), task_id),
        )

    def _task_frames_deleted(self, cur: Cursor, event: Task.FramesDeleted) -> None:
        row = _load(cur, "catalog_tasks", event.originator_id)
        if row is None:
            return
        cur.execute(
            "UPDATE catalog_tasks SET data = jsonb_set(data, '{deleted_frames}', %s) WHERE id = %s",
            (Jsonb(event.deleted_frames), row[0]),
        )
        _touch(cur, "catalog_tasks", row[0], row[1], event.timestamp)

    def _task_validation_changed(
        self,
        cur: Cursor,
        event: Task.GroundTruthJobChanged | Task.ValidationFramesDisabled | Task.HoneypotsChanged,
    ) -> None:
        """The task's data takes the change as the aggregate does (the same `apply`)."""
        cur.execute(
            "SELECT id, doc, data FROM catalog_tasks WHERE uuid = %s", (event.originator_id,)
        )
        row = cur.fetchone()
        if row is None or row[2] is None:
            return
        task_id, doc, stored = row
        holder = _DataHolder(msgspec.convert(stored, TaskData))
        event.apply(holder)  # type: ignore[arg-type]
        data = msgspec.to_builtins(holder.data)
        if isinstance(event, Task.HoneypotsChanged):
            data["updated"] = iso(event.timestamp)  # chunks holding honeypots changed
        elif "updated" in stored:
            data["updated"] = stored["updated"]
        validation = holder.data.validation
        doc["validation_mode"] = validation.mode if validation is not None else None
        doc["updated_date"] = iso(event.timestamp)
        cur.execute(
            "UPDATE catalog_tasks SET doc = %s, data = %s WHERE id = %s",
            (Jsonb(doc), Jsonb(data), task_id),
        )

    def _task_deleted(self, cur: Cursor, event: Task.Deleted) -> None:
        row = _load(cur, "catalog_tasks", event.originator_id)
        if row is None:
            return
        task_id, doc = row
        cur.execute("DELETE FROM catalog_labels WHERE task_id = %s", (task_id,))
        cur.execute("DELETE FROM catalog_jobs WHERE task_id = %s", (task_id,))
        cur.execute("DELETE FROM catalog_tasks WHERE id = %s", (task_id,))
        if doc["project_id"] is not None:
            _refresh_project_subsets(cur, doc["project_id"])

    # Jobs

    def _job_created(self, cur: Cursor, event: Job.Created) -> None:
        cur.execute("SELECT doc FROM catalog_tasks WHERE id = %s", (event.task_id,))
        task_row = cur.fetchone()
        task: Doc = task_row[0] if task_row else {}
        stamp = iso(event.timestamp)
        doc = {
            "id": event.job_id,
            "task_id": event.task_id,
            "task_name": task.get("name"),
            "project_id": task.get("project_id"),
            "project_name": task.get("project_name"),
            "assignee": None,
            "guide_id": None,
            "dimension": "2d",
            "bug_tracker": task.get("bug_tracker") or None,
            "status": "annotation",
            "stage": "annotation",
            "state": "new",
            "frame_count": len(event.frames)
            if event.frames is not None
            else event.stop_frame - event.start_frame + 1,
            "start_frame": event.start_frame,
            "stop_frame": event.stop_frame,
            "created_date": stamp,
            "updated_date": stamp,
            "type": event.job_type,
            "organization": task.get("organization_id"),
            "target_storage": task.get("target_storage"),
            "source_storage": task.get("source_storage"),
            "assignee_updated_date": None,
            "parent_job_id": None,
            "replicas_count": 0,
            "consensus_replicas": 0,
            "issues": {"count": 0},
            **_job_data_fields(task),
        }
        cur.execute(
            "INSERT INTO catalog_jobs (id, uuid, task_id, doc) VALUES (%s, %s, %s, %s)",
            (event.job_id, event.originator_id, event.task_id, Jsonb(doc)),
        )
        _refresh_task_jobs(cur, event.task_id)

    def _job_updated(self, cur: Cursor, event: Job.Updated) -> None:
        row = _load(cur, "catalog_jobs", event.originator_id)
        if row is None:
            return
        job_id, doc = row
        stamp = iso(event.timestamp)
        changes = event.changes
        if "assignee_id" in changes:
            doc["assignee"] = basic_user(cur, changes["assignee_id"])  # type: ignore[arg-type]
            doc["assignee_updated_date"] = stamp
        for field in ("stage", "state"):
            if field in changes:
                doc[field] = changes[field]
        doc["status"] = job_status(doc["stage"], doc["state"])
        doc["updated_date"] = stamp
        cur.execute("UPDATE catalog_jobs SET doc = %s WHERE id = %s", (Jsonb(doc), job_id))
        _refresh_task_jobs(cur, doc["task_id"])

    def _job_deleted(self, cur: Cursor, event: Job.Deleted) -> None:
        catalog_review.forget_job(cur, event.originator_id)
        cur.execute("DELETE FROM catalog_jobs WHERE uuid = %s", (event.originator_id,))


class _DataHolder:
    """Stands in for the task in a task event's `apply`, which only touches `data` (and the
    ground truth job's id)."""

    def __init__(self, data: TaskData) -> None:
        self.data = data
        self.gt_job_id: int | None = None


def _load(cur: Cursor, table: str, uuid: Any) -> tuple[int, Doc] | None:
    cur.execute(
        psycopg.sql.SQL("SELECT id, doc FROM {} WHERE uuid = %s").format(
            psycopg.sql.Identifier(table)
        ),
        (uuid,),
    )
    row = cur.fetchone()
    return (row[0], row[1]) if row else None


def _touch(cur: Cursor, table: str, ident: int, doc: Doc, moment: datetime) -> None:
    doc["updated_date"] = iso(moment)
    cur.execute(
        psycopg.sql.SQL("UPDATE {} SET doc = %s WHERE id = %s").format(
            psycopg.sql.Identifier(table)
        ),
        (Jsonb(doc), ident),
    )


def _apply_common_changes(cur: Cursor, doc: Doc, event: Project.Updated | Task.Updated) -> None:
    stamp = iso(event.timestamp)
    for field, value in event.changes.items():
        if field == "owner_id":
            doc["owner"] = basic_user(cur, value)  # type: ignore[arg-type]
        elif field == "assignee_id":
            doc["assignee"] = basic_user(cur, value)  # type: ignore[arg-type]
            doc["assignee_updated_date"] = stamp
        elif field in ("name", "bug_tracker"):
            doc[field] = value
        elif field.endswith("_storage"):
            doc[field] = storage_doc(value)  # type: ignore[arg-type]
    doc["updated_date"] = stamp


def _project_name(cur: Cursor, project_id: int | None) -> str | None:
    if project_id is None:
        return None
    cur.execute("SELECT doc->>'name' FROM catalog_projects WHERE id = %s", (project_id,))
    row = cur.fetchone()
    return row[0] if row else None


def _job_data_fields(task: Doc) -> Doc:
    return {
        "mode": task.get("mode") or "annotation",
        "media_type": task.get("media_type", "image"),
        "data_chunk_size": task.get("data_chunk_size"),
        "data_compressed_chunk_type": task.get("data_compressed_chunk_type", "imageset"),
        "data_original_chunk_type": task.get("data_original_chunk_type", "imageset"),
    }


def _refresh_task_jobs(cur: Cursor, task_id: int) -> None:
    cur.execute("SELECT doc->>'status' FROM catalog_jobs WHERE task_id = %s", (task_id,))
    statuses = [row[0] for row in cur.fetchall()]
    cur.execute("SELECT doc FROM catalog_tasks WHERE id = %s", (task_id,))
    row = cur.fetchone()
    if row is None:
        return
    doc = row[0]
    doc["jobs"] = {
        "count": len(statuses),
        "completed": statuses.count("completed"),
        "validation": statuses.count("validation"),
    }
    doc["status"] = _task_status(statuses)
    cur.execute("UPDATE catalog_tasks SET doc = %s WHERE id = %s", (Jsonb(doc), task_id))


def _task_status(job_statuses: list[str]) -> str:
    if not job_statuses or "annotation" in job_statuses:
        return "annotation"
    if "validation" in job_statuses:
        return "validation"
    return "completed"


def _refresh_project_subsets(cur: Cursor, project_id: int) -> None:
    cur.execute(
        "SELECT DISTINCT doc->>'subset' FROM catalog_tasks"
        " WHERE project_id = %s AND doc->>'subset' <> '' ORDER BY 1",
        (project_id,),
    )
    subsets = [row[0] for row in cur.fetchall()]
    cur.execute(
        "UPDATE catalog_projects SET doc = jsonb_set(doc, '{task_subsets}', %s) WHERE id = %s",
        (Jsonb(subsets), project_id),
    )
