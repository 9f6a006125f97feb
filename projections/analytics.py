"""The analytics read model: performance figures computed from the log, and CVAT's event rows.

Per job, user and UTC day it counts objects created, updated and deleted, and active time:
each event a user causes in a job (an edit, a state change, a client event naming the job)
adds the time since their previous one there, capped at the idle cut-off; a user's first
event in a job adds nothing. Per job it keeps the time spent in state "in progress" and the
live objects with how many frames each counts for (tracks: every visible frame).

It is applied by a ProjectionRunner in the background (see projections/follower.py), never
inline in the write path, and rebuilds from position 0 with `reset`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from typing import Any

import psycopg
from eventsourcing.persistence import Notification

from core.accounts import User
from core.annotations import LabeledData, ObjectIds, Shape, Tag, Track
from core.client_events import ClientEventBatch
from core.jobs import Job
from core.object_counts import object_frames
from core.tasks import Task
from projections.runner import Table

Cursor = psycopg.Cursor[Any]
DEFAULT_IDLE_CUTOFF = 300.0
SYSTEM_USER = 0
IN_PROGRESS = "in progress"
KINDS = ("tags", "shapes", "tracks")
TABLES = (
    Table("analytics_users", "user_id"),
    Table("analytics_tasks", "task_id"),
    Table("analytics_jobs", "job_id"),
    Table("analytics_objects", "job_id"),
    Table("analytics_daily", "job_id"),
    Table("analytics_last_activity", "job_id"),
    Table("analytics_event_records", "position"),
    Table("analytics_review_jobs", "job_id"),
    Table("analytics_review_verdicts", "job_id"),
)
# The creator stays the first writer's: an update changes only the frame count.
UPSERT_OBJECT = (
    "INSERT INTO analytics_objects (job_id, object_id, creator, frames) VALUES (%s, %s, %s, %s)"
    " ON CONFLICT (job_id, object_id) DO UPDATE SET frames = EXCLUDED.frames"
)
RECORD_COLUMNS = (
    "scope", "obj_name", "obj_id", "obj_val", "source", "timestamp", "count", "duration",
    "project_id", "task_id", "job_id", "user_id", "user_name", "user_email", "org_id",
    "org_slug", "payload",
)  # fmt: skip


class AnalyticsProjection:
    name = "analytics"
    tables = TABLES

    def __init__(self, idle_cutoff: float = DEFAULT_IDLE_CUTOFF) -> None:
        self.idle_cutoff = idle_cutoff
        self._handlers: dict[type, Callable[[Cursor, Any, int], None]] = {
            User.Created: self._user_created,
            Task.Created: self._task_created,
            Job.Created: self._job_created,
            Job.Updated: self._job_updated,
            Job.Deleted: self._job_deleted,
            Job.AnnotationsCreated: self._annotations_created,
            Job.AnnotationsUpdated: self._annotations_updated,
            Job.AnnotationsDeleted: self._annotations_deleted,
            Job.EditUndone: self._edit_reversed,
            Job.EditRedone: self._edit_reversed,
            ClientEventBatch.ClientEventsPosted: self._client_events,
        }

    def apply(self, cur: Cursor, event: Any, notification: Notification) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(cur, event, notification.id)

    def reset(self, cur: Cursor) -> None:
        cur.execute("TRUNCATE " + ", ".join(table.name for table in TABLES))

    # Users, tasks, jobs

    def _user_created(self, cur: Cursor, event: User.Created, position: int) -> None:
        cur.execute(
            "INSERT INTO analytics_users (user_id, username, email) VALUES (%s, %s, %s)"
            " ON CONFLICT (user_id) DO NOTHING",
            (event.user_id, event.username, event.email),
        )

    def _task_created(self, cur: Cursor, event: Task.Created, position: int) -> None:
        cur.execute(
            "INSERT INTO analytics_tasks (task_id, project_id) VALUES (%s, %s)"
            " ON CONFLICT (task_id) DO NOTHING",
            (event.task_id, event.project_id),
        )

    def _job_created(self, cur: Cursor, event: Job.Created, position: int) -> None:
        cur.execute(
            "INSERT INTO analytics_jobs (job_id, stream, task_id, project_id, stop_frame, state,"
            " state_since) SELECT %s, %s, %s, (SELECT project_id FROM analytics_tasks"
            " WHERE task_id = %s), %s, 'new', %s ON CONFLICT (job_id) DO NOTHING",
            (
                event.job_id,
                event.originator_id,
                event.task_id,
                event.task_id,
                event.stop_frame,
                event.timestamp,
            ),
        )
        cur.execute(
            "INSERT INTO analytics_review_jobs (job_id, stage) VALUES (%s, 'annotation')"
            " ON CONFLICT (job_id) DO NOTHING",
            (event.job_id,),
        )
        self._record_server(cur, position, event, event.job_id, [("create:job", {})])

    def _job_updated(self, cur: Cursor, event: Job.Updated, position: int) -> None:
        job_id = self._job_id(cur, event)
        if job_id is None:
            return
        if "state" in event.changes:
            cur.execute(
                "UPDATE analytics_jobs SET in_progress_seconds = in_progress_seconds"
                " + CASE WHEN state = %s THEN greatest(0, extract(epoch FROM %s - state_since))"
                " ELSE 0 END, state = %s, state_since = %s WHERE job_id = %s",
                (IN_PROGRESS, event.timestamp, event.changes["state"], event.timestamp, job_id),
            )
        self._review(cur, job_id, event, position)
        self._activity(cur, job_id, event.actor, event.timestamp)
        records = [
            ("update:job", {"obj_name": field, "obj_val": None if value is None else str(value)})
            for field, value in event.changes.items()
        ]
        self._record_server(cur, position, event, job_id, records)

    def _review(self, cur: Cursor, job_id: int, event: Job.Updated, position: int) -> None:
        """Follows the job through review: its annotator, when they completed it, and each
        verdict (moved to acceptance, or rejected while in validation)."""
        cur.execute(
            "SELECT stage, assignee_id, annotator_id, completed_at FROM analytics_review_jobs"
            " WHERE job_id = %s",
            (job_id,),
        )
        row = cur.fetchone()
        if row is None:
            return
        stage, assignee, annotator, completed_at = row
        changes = event.changes
        new_stage = changes.get("stage", stage)
        new_assignee = changes.get("assignee_id", assignee)
        accepted = new_stage == "acceptance" and stage != "acceptance"
        rejected = changes.get("state") == "rejected" and stage == "validation"
        if accepted or rejected:
            waited = None if completed_at is None else (event.timestamp - completed_at)
            cur.execute(
                "INSERT INTO analytics_review_verdicts (job_id, position, annotator_id,"
                " reviewer_id, accepted, at, waited_seconds) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                (job_id, position, annotator, event.actor, accepted, event.timestamp,
                 None if waited is None else max(0.0, waited.total_seconds())),
            )  # fmt: skip
            completed_at = None
        if new_stage == "annotation" and changes.get("state") == "completed":
            completed_at = event.timestamp
        if new_stage == "annotation" and new_assignee is not None:
            annotator = new_assignee
        cur.execute(
            "UPDATE analytics_review_jobs SET stage = %s, assignee_id = %s, annotator_id = %s,"
            " completed_at = %s WHERE job_id = %s",
            (new_stage, new_assignee, annotator, completed_at, job_id),
        )

    def _job_deleted(self, cur: Cursor, event: Job.Deleted, position: int) -> None:
        job_id = self._job_id(cur, event)
        if job_id is None:
            return
        cur.execute("UPDATE analytics_jobs SET deleted = true WHERE job_id = %s", (job_id,))
        cur.execute("DELETE FROM analytics_objects WHERE job_id = %s", (job_id,))
        self._record_server(cur, position, event, job_id, [("delete:job", {})])

    # Annotations

    def _annotations_created(self, cur: Cursor, event: Job.Event, position: int) -> None:
        self._edit(cur, event, position, written=event.data, action="create")  # type: ignore[attr-defined]

    def _annotations_updated(self, cur: Cursor, event: Job.Event, position: int) -> None:
        self._edit(cur, event, position, written=event.data, action="update")  # type: ignore[attr-defined]

    def _annotations_deleted(
        self, cur: Cursor, event: Job.AnnotationsDeleted, position: int
    ) -> None:
        self._edit(cur, event, position, removed=event.ids)

    def _edit_reversed(self, cur: Cursor, event: Job.EditUndone, position: int) -> None:
        self._edit(cur, event, position, written=event.restore, removed=event.remove)

    def _edit(
        self,
        cur: Cursor,
        event: Job.Event,
        position: int,
        *,
        written: LabeledData | None = None,
        removed: ObjectIds | None = None,
        action: str | None = None,
    ) -> None:
        """Counts and applies what an event removed, then what it wrote. `action` says whether
        written objects are new or changed; without it (undo, redo) the live objects decide."""
        job = self._job(cur, event)
        if job is None:
            return
        job_id, stop_frame = job
        user = event.actor if event.actor is not None else SYSTEM_USER
        tally = {"create": dict.fromkeys(KINDS, 0), "update": dict.fromkeys(KINDS, 0)}
        tally["delete"] = dict.fromkeys(KINDS, 0)
        if removed is not None:
            for kind in KINDS:
                ids = getattr(removed, kind)
                if ids:
                    cur.execute(
                        "DELETE FROM analytics_objects WHERE job_id = %s AND object_id = ANY(%s)",
                        (job_id, ids),
                    )
                    tally["delete"][kind] += cur.rowcount
        if written is not None:
            for kind in KINDS:
                objects = getattr(written, kind)
                if action is not None:
                    self._write_objects(cur, job_id, user, objects, stop_frame)
                    tally[action][kind] += len(objects)
                    continue
                for obj in objects:
                    is_new = self._write_object(cur, job_id, user, obj, stop_frame)
                    tally["create" if is_new else "update"][kind] += 1
        day = _day(event.timestamp)
        totals = {name: sum(counts.values()) for name, counts in tally.items()}
        if any(totals.values()):
            cur.execute(
                "INSERT INTO analytics_daily (job_id, user_id, day, created, updated, deleted)"
                " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (job_id, user_id, day) DO UPDATE"
                " SET created = analytics_daily.created + EXCLUDED.created,"
                " updated = analytics_daily.updated + EXCLUDED.updated,"
                " deleted = analytics_daily.deleted + EXCLUDED.deleted",
                (job_id, user, day, totals["create"], totals["update"], totals["delete"]),
            )
        self._activity(cur, job_id, event.actor, event.timestamp)
        records = [
            (f"{name}:{kind}", {"count": count})
            for name, counts in tally.items()
            for kind, count in counts.items()
            if count
        ]
        self._record_server(cur, position, event, job_id, records)

    def _write_object(
        self, cur: Cursor, job_id: int, user: int, obj: Tag | Shape | Track, stop_frame: int
    ) -> bool:
        """Stores the object's frame count; True if the job did not hold it before."""
        cur.execute(
            f"{UPSERT_OBJECT} RETURNING (xmax = 0)",
            (job_id, obj.id, user, object_frames(obj, stop_frame)),
        )
        row = cur.fetchone()
        return bool(row and row[0])

    def _write_objects(
        self,
        cur: Cursor,
        job_id: int,
        user: int,
        objects: list[Tag] | list[Shape] | list[Track],
        stop_frame: int,
    ) -> None:
        if objects:
            cur.executemany(
                UPSERT_OBJECT,
                [(job_id, obj.id, user, object_frames(obj, stop_frame)) for obj in objects],
            )

    # Client events

    def _client_events(
        self, cur: Cursor, event: ClientEventBatch.ClientEventsPosted, position: int
    ) -> None:
        defaults = {"source": "client", "duration": 0, "timestamp": event.timestamp}
        rows = [
            (position, seq, *({**defaults, **posted}.get(column) for column in RECORD_COLUMNS))
            for seq, posted in enumerate(event.events)
        ]
        _insert_records(cur, rows)
        job_ids = sorted({posted["job_id"] for posted in event.events if posted.get("job_id")})
        for job_id in job_ids:
            cur.execute("SELECT 1 FROM analytics_jobs WHERE job_id = %s", (job_id,))
            if cur.fetchone() is not None:
                self._activity(cur, job_id, event.actor, event.timestamp)

    # Helpers

    def _activity(self, cur: Cursor, job_id: int, actor: int | None, at: datetime) -> None:
        """Credits the user's time since their previous event in the job, up to the cut-off."""
        if actor is None:
            return
        cur.execute(
            "SELECT at FROM analytics_last_activity WHERE job_id = %s AND user_id = %s",
            (job_id, actor),
        )
        row = cur.fetchone()
        if row is None:
            cur.execute(
                "INSERT INTO analytics_last_activity (job_id, user_id, at) VALUES (%s, %s, %s)",
                (job_id, actor, at),
            )
            return
        previous: datetime = row[0]
        credit = min(max(0.0, (at - previous).total_seconds()), self.idle_cutoff)
        cur.execute(
            "UPDATE analytics_last_activity SET at = greatest(at, %s)"
            " WHERE job_id = %s AND user_id = %s",
            (at, job_id, actor),
        )
        if credit > 0:
            cur.execute(
                "INSERT INTO analytics_daily (job_id, user_id, day, active_seconds)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (job_id, user_id, day) DO UPDATE"
                " SET active_seconds = analytics_daily.active_seconds + EXCLUDED.active_seconds",
                (job_id, actor, _day(at), credit),
            )

    def _job_id(self, cur: Cursor, event: Job.Event) -> int | None:
        job = self._job(cur, event)
        return job[0] if job else None

    def _job(self, cur: Cursor, event: Job.Event) -> tuple[int, int] | None:
        """The job's id and stop frame, found by its stream id."""
        cur.execute(
            "SELECT job_id, stop_frame FROM analytics_jobs WHERE stream = %s",
            (event.originator_id,),
        )
        row = cur.fetchone()
        return (row[0], row[1]) if row else None

    def _record_server(
        self,
        cur: Cursor,
        position: int,
        event: Job.Event,
        job_id: int,
        records: Iterable[tuple[str, dict[str, Any]]],
    ) -> None:
        cur.execute(
            "SELECT j.task_id, j.project_id, u.user_id, u.username, u.email FROM analytics_jobs j"
            " LEFT JOIN analytics_users u ON u.user_id = %s WHERE j.job_id = %s",
            (event.actor, job_id),
        )
        row = cur.fetchone()
        if row is None:
            return
        task_id, project_id, user_id, username, email = row
        rows = []
        for seq, (scope, extra) in enumerate(records):
            values: dict[str, Any] = {
                "scope": scope,
                "obj_name": None,
                "obj_id": job_id if scope.endswith(":job") else None,
                "obj_val": None,
                "source": "server",
                "timestamp": event.timestamp,
                "count": None,
                "duration": 0,
                "project_id": project_id,
                "task_id": task_id,
                "job_id": job_id,
                "user_id": user_id,
                "user_name": username,
                "user_email": email,
                "org_id": None,
                "org_slug": None,
                "payload": None,
                **extra,
            }
            rows.append((position, seq, *(values[column] for column in RECORD_COLUMNS)))
        _insert_records(cur, rows)


def _insert_records(cur: Cursor, rows: list[tuple[Any, ...]]) -> None:
    """Rows of (position, seq, *RECORD_COLUMNS)."""
    if rows:
        placeholders = ", ".join(["%s"] * (len(RECORD_COLUMNS) + 2))
        cur.executemany(
            f"INSERT INTO analytics_event_records (position, seq, {', '.join(RECORD_COLUMNS)})"
            f" VALUES ({placeholders}) ON CONFLICT DO NOTHING",
            rows,
        )


def _day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def checksum(cur: Cursor, job_id: int) -> str:
    """A digest of everything the projection holds about one job, to compare two builds."""
    cur.execute(
        "SELECT md5(concat_ws('|',"
        " (SELECT string_agg(concat_ws(',', task_id, project_id, stop_frame, state, state_since,"
        "  in_progress_seconds, deleted), ';') FROM analytics_jobs WHERE job_id = %(job)s),"
        " (SELECT string_agg(concat_ws(',', object_id, creator, frames), ';' ORDER BY object_id)"
        "  FROM analytics_objects WHERE job_id = %(job)s),"
        " (SELECT string_agg(concat_ws(',', user_id, day, created, updated, deleted,"
        "  active_seconds), ';' ORDER BY user_id, day) FROM analytics_daily"
        "  WHERE job_id = %(job)s),"
        " (SELECT concat_ws(',', stage, assignee_id, annotator_id, completed_at)"
        "  FROM analytics_review_jobs WHERE job_id = %(job)s),"
        " (SELECT string_agg(concat_ws(',', position, annotator_id, reviewer_id, accepted, at,"
        "  waited_seconds), ';' ORDER BY position) FROM analytics_review_verdicts"
        "  WHERE job_id = %(job)s)"
        "))",
        {"job": job_id},
    )
    row = cur.fetchone()
    assert row is not None
    return str(row[0])
