"""The cross-job annotations read model: the current top-level objects of every job, in SQL.

One row of `annotation_index` per tag, shape and track that a job holds now: its job, task
and project, kind, type, label, first and last frame, the job version that last wrote it
(`revision`), who and when, and the object as CVAT's JSON (`data`). Cross-job questions
("every box of label 7 in project 3") are then one query.

A background runner keeps it (`projections/follower.py`), in blocks: `apply_all` keeps the
last state of each object within a block and writes the block at once (one DELETE of the
objects touched, one COPY, in text form made here, of those that remain), so a replay costs
a few statements per block rather than one per event.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from itertools import chain
from typing import Any, NamedTuple
from uuid import UUID

import msgspec
import psycopg
import structlog
from eventsourcing.persistence import Notification

from core.annotations import LabeledData, ObjectIds, Shape, Tag, Track
from core.jobs import Job
from core.tasks import Task
from projections.runner import Table

Cursor = psycopg.Cursor[Any]
log = structlog.get_logger(__name__)

COLUMNS = (
    "job_id, object_id, task_id, project_id, kind, type, label_id, frame, last_frame,"
    " revision, updated_by, updated_at, data"
)
OBJECT_EVENTS = (Job.AnnotationsCreated, Job.AnnotationsUpdated)
STEP_EVENTS = (Job.EditUndone, Job.EditRedone)


class JobScope(NamedTuple):
    job_id: int
    task_id: int
    project_id: int | None


class Written(NamedTuple):
    """An object as an event left it, waiting for the block's COPY."""

    scope: JobScope
    kind: str
    obj: Tag | Shape | Track
    version: int
    actor: int | None
    timestamp: datetime


class AnnotationIndexProjection:
    name = "annotation_index"
    tables = (
        Table("annotation_index", "job_id"),
        Table("annotation_index_jobs", "job_id"),
        Table("annotation_index_tasks", "task_id"),
    )

    def __init__(self) -> None:
        self._scopes: dict[UUID, JobScope] = {}
        self._rows: dict[tuple[int, int], Written | None] = {}  # None: deleted
        self._deleted_jobs: set[int] = set()
        self._encode = msgspec.json.Encoder().encode

    def topics(self) -> frozenset[type]:
        """The event classes this projection reads (the runner skips the others)."""
        return frozenset(
            (*OBJECT_EVENTS, Job.AnnotationsDeleted, *STEP_EVENTS, Job.Created, Job.Deleted)
        ) | {Task.Created}

    def apply(self, cur: Cursor, event: Any, notification: Notification) -> None:
        self.apply_all(cur, [(event, notification)])

    def apply_all(self, cur: Cursor, pairs: Sequence[tuple[Any, Notification]]) -> None:
        self._rows.clear()
        self._deleted_jobs.clear()
        for event, _ in pairs:
            self._take(cur, event)
        self._write_block(cur)

    def _take(self, cur: Cursor, event: Any) -> None:
        if isinstance(event, OBJECT_EVENTS):
            self._write(cur, event, event.data)
        elif isinstance(event, Job.AnnotationsDeleted):
            self._remove(cur, event, event.ids)
        elif isinstance(event, STEP_EVENTS):
            self._remove(cur, event, event.remove)
            self._write(cur, event, event.restore)
        elif isinstance(event, Job.Created):
            self._job_created(cur, event)
        elif isinstance(event, Job.Deleted):
            self._job_deleted(cur, event)
        elif isinstance(event, Task.Created):
            cur.execute(
                "INSERT INTO annotation_index_tasks (task_id, project_id) VALUES (%s, %s)"
                " ON CONFLICT DO NOTHING",
                (event.task_id, event.project_id),
            )

    def _write_block(self, cur: Cursor) -> None:
        rows, self._rows = self._rows, {}
        deleted_jobs, self._deleted_jobs = self._deleted_jobs, set()
        if deleted_jobs:
            cur.execute(
                "DELETE FROM annotation_index WHERE job_id = ANY(%s)", (sorted(deleted_jobs),)
            )
        if rows:
            cur.execute(
                "DELETE FROM annotation_index WHERE (job_id, object_id) IN"
                " (SELECT * FROM unnest(%s::integer[], %s::bigint[]))",
                (_array(key[0] for key in rows), _array(key[1] for key in rows)),
            )
        lines = [self._copy_line(written) for written in rows.values() if written is not None]
        if lines:
            with cur.copy(f"COPY annotation_index ({COLUMNS}) FROM STDIN") as copy:
                copy.write("".join(lines))

    def reset(self, cur: Cursor) -> None:
        self._scopes.clear()
        self._rows.clear()
        self._deleted_jobs.clear()
        cur.execute("TRUNCATE annotation_index, annotation_index_jobs, annotation_index_tasks")

    # Jobs and tasks

    def _job_created(self, cur: Cursor, event: Job.Created) -> None:
        cur.execute(
            "SELECT project_id FROM annotation_index_tasks WHERE task_id = %s", (event.task_id,)
        )
        found = cur.fetchone()
        scope = JobScope(event.job_id, event.task_id, found[0] if found else None)
        cur.execute(
            "INSERT INTO annotation_index_jobs (stream, job_id, task_id, project_id)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (event.originator_id, *scope),
        )
        self._scopes[event.originator_id] = scope

    def _job_deleted(self, cur: Cursor, event: Job.Deleted) -> None:
        scope = self._scope(cur, event.originator_id)
        if scope is None:
            return
        self._rows = {key: row for key, row in self._rows.items() if key[0] != scope.job_id}
        self._deleted_jobs.add(scope.job_id)
        cur.execute("DELETE FROM annotation_index_jobs WHERE stream = %s", (event.originator_id,))
        self._scopes.pop(event.originator_id, None)

    def _scope(self, cur: Cursor, stream: UUID) -> JobScope | None:
        scope = self._scopes.get(stream)
        if scope is None:
            cur.execute(
                "SELECT job_id, task_id, project_id FROM annotation_index_jobs WHERE stream = %s",
                (stream,),
            )
            found = cur.fetchone()
            if found is None:
                log.warning("annotation index has no job for a stream", stream=str(stream))
                return None
            scope = self._scopes[stream] = JobScope(*found)
        return scope

    # Objects

    def _write(self, cur: Cursor, event: Job.Event, data: LabeledData) -> None:
        scope = self._scope(cur, event.originator_id)
        if scope is None:
            return
        version, actor, timestamp = event.originator_version, event.actor, event.timestamp
        for kind, objects in (("tag", data.tags), ("shape", data.shapes), ("track", data.tracks)):
            for obj in objects:
                assert obj.id is not None
                self._rows[scope.job_id, obj.id] = Written(
                    scope, kind, obj, version, actor, timestamp
                )

    def _remove(self, cur: Cursor, event: Job.Event, ids: ObjectIds) -> None:
        if not ids.count():
            return
        scope = self._scope(cur, event.originator_id)
        if scope is None:
            return
        for ident in chain(ids.tags, ids.shapes, ids.tracks):
            self._rows[scope.job_id, ident] = None

    def _copy_line(self, written: Written) -> str:
        """The object's row in COPY's text format (tab-separated, \\N for NULL)."""
        obj, scope = written.obj, written.scope
        shape_type = r"\N"
        last_frame = obj.frame
        if isinstance(obj, Shape):
            shape_type = obj.type
        elif isinstance(obj, Track) and obj.shapes:
            shape_type = obj.shapes[0].type
            last_frame = max(shape.frame for shape in obj.shapes)
        # msgspec escapes control characters in JSON strings; only backslashes need doubling
        data = self._encode(obj).decode().replace("\\", "\\\\")
        project = _text(scope.project_id)
        actor = _text(written.actor)
        return (
            f"{scope.job_id}\t{obj.id}\t{scope.task_id}\t{project}\t{written.kind}\t"
            f"{shape_type}\t{obj.label_id}\t{obj.frame}\t{last_frame}\t{written.version}\t"
            f"{actor}\t{written.timestamp.isoformat()}\t{data}\n"
        )


def _text(value: int | None) -> str:
    return r"\N" if value is None else str(value)


def _array(numbers: Iterable[int]) -> str:
    """A PostgreSQL array literal: much cheaper to send than a list adapted item by item."""
    return "{" + ",".join(map(str, numbers)) + "}"
