"""The history read model: every event of every job's stream, who made it, what it touched.

It answers GET /api/jobs/{id}/history and finds the version a job had at a given time.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import msgspec
import psycopg
from eventsourcing.persistence import Notification
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from core.annotations import ObjectIds, ids_of
from core.jobs import Job
from projections.runner import Table

Cursor = psycopg.Cursor[Any]


class HistoryProjection:
    name = "history"
    tables = (Table("job_history", "stream"),)

    def apply(self, cur: Cursor, event: Any, notification: Notification) -> None:
        self.apply_all(cur, [(event, notification)])

    def apply_all(self, cur: Cursor, pairs: Sequence[tuple[Any, Notification]]) -> None:
        rows = [_row(event) for event, _ in pairs if isinstance(event, Job.Event)]
        if rows:
            cur.executemany(
                "INSERT INTO job_history (stream, version, event_type, actor, command_id,"
                " recorded_at, objects, details) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                rows,
            )

    def reset(self, cur: Cursor) -> None:
        cur.execute("TRUNCATE job_history")


def _row(event: Job.Event) -> tuple[Any, ...]:
    objects, details = touched(event)
    return (
        event.originator_id,
        event.originator_version,
        type(event).__name__,
        event.actor,
        event.command_id,
        event.timestamp,
        Jsonb(msgspec.to_builtins(objects)),
        Jsonb(details) if details is not None else None,
    )


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


def versions_of_commands(
    pool: ConnectionPool, keys: list[tuple[uuid.UUID, str, int | None]]
) -> dict[tuple[uuid.UUID, str, int | None], int]:
    """For each (stream, command id, actor) already in the history, the stream's version
    after that command's last event."""
    with pool.connection() as conn:
        rows = conn.execute(
            "SELECT h.stream, h.command_id, h.actor, max(h.version) FROM job_history h"
            " JOIN unnest(%s::uuid[], %s::text[]) AS k(stream, command_id)"
            " ON h.stream = k.stream AND h.command_id = k.command_id"
            " GROUP BY h.stream, h.command_id, h.actor",
            ([k[0] for k in keys], [k[1] for k in keys]),
        ).fetchall()
    found = {(stream, command, actor): int(version) for stream, command, actor, version in rows}
    return {key: found[key] for key in keys if key in found}
