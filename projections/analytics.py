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

from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from eventsourcing.persistence import Notification

from core.accounts import User
from core.annotations import LabeledData, ObjectIds
from core.client_events import ClientEventBatch
from core.jobs import Job
from core.object_counts import object_frames
from core.tasks import Task
from projections.analytics_batch import KINDS, RECORD_COLUMNS, Batch, day_of
from projections.runner import Table

Cursor = psycopg.Cursor[Any]
DEFAULT_IDLE_CUTOFF = 300.0
SYSTEM_USER = 0
IN_PROGRESS = "in progress"

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


class AnalyticsProjection:
    name = "analytics"
    tables = TABLES

    def __init__(self, idle_cutoff: float = DEFAULT_IDLE_CUTOFF) -> None:
        self.idle_cutoff = idle_cutoff
        self._handlers: dict[type, Callable[[Batch, Any, int], None]] = {
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

    def topics(self) -> frozenset[type]:
        """The event classes this projection reads (the runner skips the others)."""
        return frozenset(self._handlers)

    def apply(self, cur: Cursor, event: Any, notification: Notification) -> None:
        self.apply_all(cur, [(event, notification)])

    def apply_all(self, cur: Cursor, pairs: Sequence[tuple[Any, Notification]]) -> None:
        """Applies a block: edits are counted in memory against what the block's jobs hold
        (read in a few queries) and written once at the end."""
        batch = Batch(cur, self.idle_cutoff)
        batch.preload([event for event, _ in pairs if isinstance(event, EDIT_EVENTS)])
        for event, notification in pairs:
            handler = self._handlers.get(type(event))
            if handler is not None:
                handler(batch, event, notification.id)
        batch.flush()

    def reset(self, cur: Cursor) -> None:
        cur.execute("TRUNCATE " + ", ".join(table.name for table in TABLES))

    # Users, tasks, jobs (rare: written as they come)

    def _user_created(self, batch: Batch, event: User.Created, position: int) -> None:
        batch.cur.execute(
            "INSERT INTO analytics_users (user_id, username, email) VALUES (%s, %s, %s)"
            " ON CONFLICT (user_id) DO NOTHING",
            (event.user_id, event.username, event.email),
        )

    def _task_created(self, batch: Batch, event: Task.Created, position: int) -> None:
        batch.cur.execute(
            "INSERT INTO analytics_tasks (task_id, project_id) VALUES (%s, %s)"
            " ON CONFLICT (task_id) DO NOTHING",
            (event.task_id, event.project_id),
        )

    def _job_created(self, batch: Batch, event: Job.Created, position: int) -> None:
        batch.cur.execute(
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
        batch.cur.execute(
            "INSERT INTO analytics_review_jobs (job_id, stage) VALUES (%s, 'annotation')"
            " ON CONFLICT (job_id) DO NOTHING",
            (event.job_id,),
        )
        job = batch.job(event.originator_id)
        if job is not None:
            batch.record_server(position, event, job, [("create:job", {})])

    def _job_updated(self, batch: Batch, event: Job.Updated, position: int) -> None:
        job = batch.job(event.originator_id)
        if job is None:
            return
        if "state" in event.changes:
            batch.cur.execute(
                "UPDATE analytics_jobs SET in_progress_seconds = in_progress_seconds"
                " + CASE WHEN state = %s THEN greatest(0, extract(epoch FROM %s - state_since))"
                " ELSE 0 END, state = %s, state_since = %s WHERE job_id = %s",
                (IN_PROGRESS, event.timestamp, event.changes["state"], event.timestamp, job.id),
            )
        self._review(batch.cur, job.id, event, position)
        batch.activity(job.id, event.actor, event.timestamp)
        records = [
            ("update:job", {"obj_name": field, "obj_val": None if value is None else str(value)})
            for field, value in event.changes.items()
        ]
        batch.record_server(position, event, job, records)

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

    def _job_deleted(self, batch: Batch, event: Job.Deleted, position: int) -> None:
        job = batch.job(event.originator_id)
        if job is None:
            return
        batch.cur.execute("UPDATE analytics_jobs SET deleted = true WHERE job_id = %s", (job.id,))
        batch.clear_objects(job.id)
        batch.record_server(position, event, job, [("delete:job", {})])

    # Annotations

    def _annotations_created(self, batch: Batch, event: Job.Event, position: int) -> None:
        self._edit(batch, event, position, written=event.data, action="create")  # type: ignore[attr-defined]

    def _annotations_updated(self, batch: Batch, event: Job.Event, position: int) -> None:
        self._edit(batch, event, position, written=event.data, action="update")  # type: ignore[attr-defined]

    def _annotations_deleted(
        self, batch: Batch, event: Job.AnnotationsDeleted, position: int
    ) -> None:
        self._edit(batch, event, position, removed=event.ids)

    def _edit_reversed(self, batch: Batch, event: Job.EditUndone, position: int) -> None:
        self._edit(batch, event, position, written=event.restore, removed=event.remove)

    def _edit(
        self,
        batch: Batch,
        event: Job.Event,
        position: int,
        *,
        written: LabeledData | None = None,
        removed: ObjectIds | None = None,
        action: str | None = None,
    ) -> None:
        """Counts and applies what an event removed, then what it wrote. `action` says whether
        written objects are new or changed; without it (undo, redo) the live objects decide."""
        job = batch.job(event.originator_id)
        if job is None:
            return
        user = event.actor if event.actor is not None else SYSTEM_USER
        tally = {"create": dict.fromkeys(KINDS, 0), "update": dict.fromkeys(KINDS, 0)}
        tally["delete"] = dict.fromkeys(KINDS, 0)
        if removed is not None:
            for kind in KINDS:
                for object_id in getattr(removed, kind):
                    tally["delete"][kind] += batch.remove_object(job.id, object_id)
        if written is not None:
            for kind in KINDS:
                for obj in getattr(written, kind):
                    counted = action
                    if counted is None:
                        counted = "update" if batch.is_live(job.id, obj.id) else "create"
                    batch.put_object(job.id, obj.id, user, object_frames(obj, job.stop_frame))
                    tally[counted][kind] += 1
        totals = {name: sum(counts.values()) for name, counts in tally.items()}
        if any(totals.values()):
            batch.add_daily(
                job.id,
                user,
                day_of(event.timestamp),
                (totals["create"], totals["update"], totals["delete"], 0.0),
            )
        batch.activity(job.id, event.actor, event.timestamp)
        records = [
            (f"{name}:{kind}", {"count": count})
            for name, counts in tally.items()
            for kind, count in counts.items()
            if count
        ]
        batch.record_server(position, event, job, records)

    # Client events

    def _client_events(
        self, batch: Batch, event: ClientEventBatch.ClientEventsPosted, position: int
    ) -> None:
        defaults = {"source": "client", "duration": 0, "timestamp": event.timestamp}
        batch.records.extend(
            (position, seq, *({**defaults, **posted}.get(column) for column in RECORD_COLUMNS))
            for seq, posted in enumerate(event.events)
        )
        job_ids = sorted({posted["job_id"] for posted in event.events if posted.get("job_id")})
        for job_id in job_ids:
            if batch.job_exists(job_id):
                batch.activity(job_id, event.actor, event.timestamp)


EDIT_EVENTS = (
    Job.AnnotationsCreated,
    Job.AnnotationsUpdated,
    Job.AnnotationsDeleted,
    Job.EditUndone,
    Job.EditRedone,
)


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
