"""The catalog's review documents: CVAT's IssueRead and CommentRead, and each job's issue count.

Part of the catalog projection (its handlers are merged into CatalogProjection's).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from core.jobs import Job
from projections.catalog_docs import basic_user, iso
from projections.runner import Table

Cursor = psycopg.Cursor[Any]
Doc = dict[str, Any]

TABLES = (Table("catalog_issues", "job_id"), Table("catalog_comments", "job_id"))


def _job_row(cur: Cursor, stream: Any) -> tuple[int, int] | None:
    row = cur.execute("SELECT id, task_id FROM catalog_jobs WHERE uuid = %s", (stream,)).fetchone()
    return (row[0], row[1]) if row else None


def _issue_opened(cur: Cursor, event: Job.IssueOpened) -> None:
    job = _job_row(cur, event.originator_id)
    if job is None:
        return
    job_id, task_id = job
    stamp = iso(event.timestamp)
    issue = event.issue
    doc = {
        "id": issue.id,
        "frame": issue.frame,
        "position": issue.position,
        "job": job_id,
        "owner": basic_user(cur, issue.owner_id),
        "assignee": basic_user(cur, issue.assignee_id),
        "created_date": stamp,
        "updated_date": stamp,
        "resolved": issue.resolved,
        "comments": {"count": 1},
    }
    cur.execute(
        "INSERT INTO catalog_issues (id, job_id, task_id, doc) VALUES (%s, %s, %s, %s)",
        (issue.id, job_id, task_id, Jsonb(doc)),
    )
    _insert_comment(cur, event.comment_id, issue.id, job_id, event.actor, event.message, stamp)
    _count_issues(cur, job_id)


def _issue_changed(cur: Cursor, event: Job.IssueChanged) -> None:
    doc = _doc(cur, "catalog_issues", event.issue_id)
    if doc is None:
        return
    changes = event.changes
    if "position" in changes:
        doc["position"] = changes["position"]
    if "assignee_id" in changes:
        doc["assignee"] = basic_user(cur, changes["assignee_id"])  # type: ignore[arg-type]
    if "resolved" in changes:
        doc["resolved"] = changes["resolved"]
    doc["updated_date"] = iso(event.timestamp)
    cur.execute("UPDATE catalog_issues SET doc = %s WHERE id = %s", (Jsonb(doc), event.issue_id))


def _issue_removed(cur: Cursor, event: Job.IssueRemoved) -> None:
    row = cur.execute(
        "DELETE FROM catalog_issues WHERE id = %s RETURNING job_id", (event.issue_id,)
    ).fetchone()
    cur.execute("DELETE FROM catalog_comments WHERE issue_id = %s", (event.issue_id,))
    if row is not None:
        _count_issues(cur, row[0])


def _comment_added(cur: Cursor, event: Job.CommentAdded) -> None:
    job = _job_row(cur, event.originator_id)
    if job is None:
        return
    stamp = iso(event.timestamp)
    _insert_comment(
        cur, event.comment_id, event.issue_id, job[0], event.actor, event.message, stamp
    )
    _count_comments(cur, event.issue_id, stamp)


def _comment_edited(cur: Cursor, event: Job.CommentEdited) -> None:
    doc = _doc(cur, "catalog_comments", event.comment_id)
    if doc is None:
        return
    doc["message"] = event.message
    doc["updated_date"] = iso(event.timestamp)
    cur.execute(
        "UPDATE catalog_comments SET doc = %s WHERE id = %s", (Jsonb(doc), event.comment_id)
    )


def _comment_removed(cur: Cursor, event: Job.CommentRemoved) -> None:
    row = cur.execute(
        "DELETE FROM catalog_comments WHERE id = %s RETURNING issue_id", (event.comment_id,)
    ).fetchone()
    if row is not None:
        _count_comments(cur, row[0], iso(event.timestamp))


def forget_job(cur: Cursor, stream: Any) -> None:
    """Drops the review documents of a job being deleted."""
    job = _job_row(cur, stream)
    if job is not None:
        cur.execute("DELETE FROM catalog_comments WHERE job_id = %s", (job[0],))
        cur.execute("DELETE FROM catalog_issues WHERE job_id = %s", (job[0],))


def _insert_comment(
    cur: Cursor,
    comment_id: int,
    issue_id: int,
    job_id: int,
    owner_id: int | None,
    message: str,
    stamp: str,
) -> None:
    doc = {
        "id": comment_id,
        "issue": issue_id,
        "owner": basic_user(cur, owner_id),
        "message": message,
        "created_date": stamp,
        "updated_date": stamp,
    }
    cur.execute(
        "INSERT INTO catalog_comments (id, issue_id, job_id, doc) VALUES (%s, %s, %s, %s)",
        (comment_id, issue_id, job_id, Jsonb(doc)),
    )


def _count_issues(cur: Cursor, job_id: int) -> None:
    cur.execute(
        "UPDATE catalog_jobs SET doc = jsonb_set(doc, '{issues,count}',"
        " to_jsonb((SELECT count(*) FROM catalog_issues WHERE job_id = %s))) WHERE id = %s",
        (job_id, job_id),
    )


def _count_comments(cur: Cursor, issue_id: int, stamp: str) -> None:
    cur.execute(
        "UPDATE catalog_issues SET doc = jsonb_set(jsonb_set(doc, '{comments,count}',"
        " to_jsonb((SELECT count(*) FROM catalog_comments WHERE issue_id = %s))),"
        " '{updated_date}', to_jsonb(%s::text)) WHERE id = %s",
        (issue_id, stamp, issue_id),
    )


def _doc(cur: Cursor, table: str, ident: int) -> Doc | None:
    row = cur.execute(
        psycopg.sql.SQL("SELECT doc FROM {} WHERE id = %s").format(psycopg.sql.Identifier(table)),
        (ident,),
    ).fetchone()
    return row[0] if row else None


HANDLERS: dict[type, Callable[[Cursor, Any], None]] = {
    Job.IssueOpened: _issue_opened,
    Job.IssueChanged: _issue_changed,
    Job.IssueRemoved: _issue_removed,
    Job.CommentAdded: _comment_added,
    Job.CommentEdited: _comment_edited,
    Job.CommentRemoved: _comment_removed,
}
