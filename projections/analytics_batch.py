"""What the analytics projection changes in one block of events, kept in memory and written
at the end in a few statements (arrays and COPY) instead of several round trips an event.

It reads what the block needs first (the jobs, their users' last activity and daily rows,
whether the objects it deletes or restores are live) in one query each, then answers every
later question from memory, so the figures are exactly those of applying the events one by
one: daily rows and last activities are kept as absolute values, summed in log order.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any, NamedTuple
from uuid import UUID

import psycopg

Cursor = psycopg.Cursor[Any]
RECORD_COLUMNS = (
    "scope", "obj_name", "obj_id", "obj_val", "source", "timestamp", "count", "duration",
    "project_id", "task_id", "job_id", "user_id", "user_name", "user_email", "org_id",
    "org_slug", "payload",
)  # fmt: skip
JOB_COLUMNS = "job_id, stream, stop_frame, task_id, project_id"
DailyKey = tuple[int, int, date]  # job, user, day
ObjectKey = tuple[int, int]  # job, object
GONE = None  # an object deleted in this block
KINDS = ("tags", "shapes", "tracks")


class JobRow(NamedTuple):
    id: int
    stream: UUID
    stop_frame: int
    task_id: int
    project_id: int | None


def day_of(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


class Batch:
    def __init__(self, cur: Cursor, idle_cutoff: float) -> None:
        self.cur = cur
        self._idle_cutoff = idle_cutoff
        self._jobs: dict[UUID, JobRow] = {}
        self._job_ids: dict[int, JobRow] = {}
        self._users: dict[int | None, tuple[Any, Any, Any]] = {None: (None, None, None)}
        # Per job whose rows were read: last activity by user, daily rows by (user, day).
        self._read_jobs: set[int] = set()
        self._last: dict[tuple[int, int], datetime] = {}
        self._daily: dict[DailyKey, list[Any]] = {}
        self._dirty_last: set[tuple[int, int]] = set()
        self._dirty_daily: set[DailyKey] = set()
        # Objects: whether each asked-about one is live in the table; what this block did.
        self._live: dict[ObjectKey, bool] = {}
        self._objects: dict[ObjectKey, tuple[int, int] | None] = {}  # (creator, frames)
        self._deleted: set[ObjectKey] = set()
        self._cleared_jobs: set[int] = set()
        self.records: list[tuple[Any, ...]] = []

    # Reading ahead

    def preload(self, edits: Iterable[Any]) -> None:
        """Reads at once what the block's edit events will ask about."""
        edits = list(edits)
        if not edits:
            return
        self._load_jobs("stream = ANY(%s)", list({e.originator_id for e in edits}))
        self._load_users({e.actor for e in edits})
        jobs = {e.originator_id: self._jobs.get(e.originator_id) for e in edits}
        self._read_rows_of([job.id for job in jobs.values() if job is not None])
        keys: set[ObjectKey] = set()
        for event in edits:
            job = jobs[event.originator_id]
            if job is not None:
                keys.update((job.id, object_id) for object_id in _asked_about(event))
        self._read_live(keys)

    def _load_jobs(self, where: str, value: Any) -> None:
        self.cur.execute(f"SELECT {JOB_COLUMNS} FROM analytics_jobs WHERE {where}", (value,))
        for row in self.cur.fetchall():
            job = JobRow(*row)
            self._jobs[job.stream] = job
            self._job_ids[job.id] = job

    def _load_users(self, user_ids: set[int | None]) -> None:
        wanted = [u for u in user_ids if u not in self._users]
        if not wanted:
            return
        self.cur.execute(
            "SELECT user_id, username, email FROM analytics_users WHERE user_id = ANY(%s)",
            (wanted,),
        )
        for row in self.cur.fetchall():  # one not found may be made later in the block
            self._users[row[0]] = row

    def _read_rows_of(self, job_ids: list[int]) -> None:
        wanted = [j for j in job_ids if j not in self._read_jobs]
        if not wanted:
            return
        self._read_jobs.update(wanted)
        self.cur.execute(
            "SELECT job_id, user_id, at FROM analytics_last_activity WHERE job_id = ANY(%s)",
            (wanted,),
        )
        for job_id, user_id, at in self.cur.fetchall():
            self._last[(job_id, user_id)] = at
        self.cur.execute(
            "SELECT job_id, user_id, day, created, updated, deleted, active_seconds"
            " FROM analytics_daily WHERE job_id = ANY(%s)",
            (wanted,),
        )
        for job_id, user_id, day, *figures in self.cur.fetchall():
            self._daily[(job_id, user_id, day)] = figures

    def _read_live(self, keys: set[ObjectKey]) -> None:
        keys = {key for key in keys if key not in self._live}
        if not keys:
            return
        jobs, objects = zip(*keys, strict=True)
        self.cur.execute(
            "SELECT job_id, object_id FROM analytics_objects WHERE (job_id, object_id) IN"
            " (SELECT * FROM unnest(%s::int[], %s::int[]))",
            (list(jobs), list(objects)),
        )
        found = set(self.cur.fetchall())
        for key in keys:
            self._live[key] = key in found

    # Questions

    def job(self, stream: UUID) -> JobRow | None:
        if stream not in self._jobs:
            self._load_jobs("stream = %s", stream)
        return self._jobs.get(stream)

    def job_exists(self, job_id: int) -> bool:
        if job_id not in self._job_ids:
            self._load_jobs("job_id = %s", job_id)
        return job_id in self._job_ids

    def is_live(self, job_id: int, object_id: int) -> bool:
        return self._exists((job_id, object_id))

    def _exists(self, key: ObjectKey) -> bool:
        if key in self._objects:
            return self._objects[key] is not GONE
        if key[0] in self._cleared_jobs:
            return False
        if key not in self._live:
            self._read_live({key})
        return self._live[key]

    # Changes

    def remove_object(self, job_id: int, object_id: int) -> int:
        """Deletes a live object; returns 1 if there was one, else 0."""
        key = (job_id, object_id)
        if not self._exists(key):
            return 0
        self._objects[key] = GONE
        self._deleted.add(key)
        return 1

    def put_object(self, job_id: int, object_id: int, user: int, frames: int) -> None:
        """Stores an object's frame count. The creator stays the first writer's: an update
        changes only the frame count."""
        key = (job_id, object_id)
        current = self._objects.get(key)
        self._objects[key] = (current[0] if current else user, frames)

    def clear_objects(self, job_id: int) -> None:
        self._cleared_jobs.add(job_id)
        for key in [key for key in self._objects if key[0] == job_id]:
            del self._objects[key]

    def add_daily(
        self, job_id: int, user: int, day: date, figures: tuple[int, int, int, float]
    ) -> None:
        """Adds created, updated, deleted and active seconds to a daily row."""
        self._read_rows_of([job_id])
        key = (job_id, user, day)
        row = self._daily.setdefault(key, [0, 0, 0, 0.0])
        for i, value in enumerate(figures):
            row[i] += value
        self._dirty_daily.add(key)

    def activity(self, job_id: int, actor: int | None, at: datetime) -> None:
        """Credits the user's time since their previous event in the job, up to the cut-off."""
        if actor is None:
            return
        self._read_rows_of([job_id])
        key = (job_id, actor)
        previous = self._last.get(key)
        self._dirty_last.add(key)
        if previous is None:
            self._last[key] = at
            return
        self._last[key] = max(previous, at)
        credit = min(max(0.0, (at - previous).total_seconds()), self._idle_cutoff)
        if credit > 0:
            self.add_daily(job_id, actor, day_of(at), (0, 0, 0, credit))

    def record_server(
        self,
        position: int,
        event: Any,
        job: JobRow,
        records: Iterable[tuple[str, dict[str, Any]]],
    ) -> None:
        """CVAT's server event rows for an event of a job."""
        self._load_users({event.actor})
        user_id, username, email = self._users.get(event.actor, (None, None, None))
        for seq, (scope, extra) in enumerate(records):
            values: dict[str, Any] = {
                "scope": scope,
                "obj_name": None,
                "obj_id": job.id if scope.endswith(":job") else None,
                "obj_val": None,
                "source": "server",
                "timestamp": event.timestamp,
                "count": None,
                "duration": 0,
                "project_id": job.project_id,
                "task_id": job.task_id,
                "job_id": job.id,
                "user_id": user_id,
                "user_name": username,
                "user_email": email,
                "org_id": None,
                "org_slug": None,
                "payload": None,
                **extra,
            }
            self.records.append((position, seq, *(values[c] for c in RECORD_COLUMNS)))

    # Writing

    def flush(self) -> None:
        self._flush_objects()
        if self._dirty_daily:
            keys = sorted(self._dirty_daily)
            rows = [self._daily[key] for key in keys]
            self.cur.execute(
                "INSERT INTO analytics_daily"
                " (job_id, user_id, day, created, updated, deleted, active_seconds)"
                " SELECT * FROM unnest(%s::int[], %s::int[], %s::date[], %s::int[], %s::int[],"
                " %s::int[], %s::float8[]) ON CONFLICT (job_id, user_id, day) DO UPDATE SET"
                " created = EXCLUDED.created, updated = EXCLUDED.updated,"
                " deleted = EXCLUDED.deleted, active_seconds = EXCLUDED.active_seconds",
                (*_columns(keys, 3), *_columns(rows, 4)),
            )
        if self._dirty_last:
            keys = sorted(self._dirty_last)
            self.cur.execute(
                "INSERT INTO analytics_last_activity (job_id, user_id, at)"
                " SELECT * FROM unnest(%s::int[], %s::int[], %s::timestamptz[])"
                " ON CONFLICT (job_id, user_id) DO UPDATE SET at = EXCLUDED.at",
                (*_columns(keys, 2), [self._last[key] for key in keys]),
            )
        if self.records:
            columns = ", ".join(("position", "seq", *RECORD_COLUMNS))
            with self.cur.copy(f"COPY analytics_event_records ({columns}) FROM STDIN") as copy:
                for row in self.records:
                    copy.write_row(row)

    def _flush_objects(self) -> None:
        if self._cleared_jobs:
            self.cur.execute(
                "DELETE FROM analytics_objects WHERE job_id = ANY(%s)", (list(self._cleared_jobs),)
            )
        if self._deleted:
            self.cur.execute(
                "DELETE FROM analytics_objects WHERE (job_id, object_id) IN"
                " (SELECT * FROM unnest(%s::int[], %s::int[]))",
                _columns(sorted(self._deleted), 2),
            )
        live = sorted((key, value) for key, value in self._objects.items() if value is not GONE)
        if live:
            self.cur.execute(
                "INSERT INTO analytics_objects (job_id, object_id, creator, frames)"
                " SELECT * FROM unnest(%s::int[], %s::int[], %s::int[], %s::int[])"
                " ON CONFLICT (job_id, object_id) DO UPDATE SET frames = EXCLUDED.frames",
                (*_columns([key for key, _ in live], 2), *_columns([v for _, v in live], 2)),
            )


def _asked_about(event: Any) -> Iterable[int]:
    """The ids of the objects whose liveness an edit event decides on: those it deletes and
    those an undo or redo writes back."""
    for ids in (getattr(event, "ids", None), getattr(event, "remove", None)):
        if ids is not None:
            for kind in KINDS:
                yield from getattr(ids, kind)
    restore = getattr(event, "restore", None)
    if restore is not None:
        for kind in KINDS:
            yield from (obj.id for obj in getattr(restore, kind))


def _columns(rows: list[Any], width: int) -> list[list[Any]]:
    """Rows as `width` column lists (for unnest)."""
    return [[row[i] for row in rows] for i in range(width)]
