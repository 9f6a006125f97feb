"""The history read model: every event of every job's stream, who made it, what it touched.

It answers GET /api/jobs/{id}/history and finds the version a job had at a given time.
"""

from __future__ import annotations

from typing import Any

import msgspec
import psycopg
from eventsourcing.persistence import Notification
from psycopg.types.json import Jsonb

from core.annotations import ObjectIds, ids_of
from core.jobs import Job
from projections.runner import Table

Cursor = psycopg.Cursor[Any]


class HistoryProjection:
    name = "history"
    tables = (Table("job_history", "stream"),)

    def apply(self, cur: Cursor, event: Any, notification: Notification) -> None:
        if not isinstance(event, Job.Event):
            return
        objects, details = touched(event)
        cur.execute(
            "INSERT INTO job_history (stream, version, event_type, actor, command_id,"
            " recorded_at, objects, details) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (
                event.originator_id,
                event.originator_version,
                type(event).__name__,
                event.actor,
                event.command_id,
                event.timestamp,
                Jsonb(msgspec.to_builtins(objects)),
                Jsonb(details) if details is not None else None,
            ),
        )

    def reset(self, cur: Cursor) -> None:
        cur.execute("TRUNCATE job_history")


def touched(event: Job.Event) -> tuple[ObjectIds, dict[str, Any] | None]:
    if isinstance(event, Job.AnnotationsCreated | Job.AnnotationsUpdated):
        return ids_of(event.data), None
    if isinstance(event, Job.AnnotationsDeleted):
        return event.ids, None
    if isinstance(event, Job.Updated):
        return ObjectIds(), dict(event.changes)
    if isinstance(event, Job.Created):
        return ObjectIds(), {
            "task_id": event.task_id,
            "start_frame": event.start_frame,
            "stop_frame": event.stop_frame,
        }
    return ObjectIds(), None
