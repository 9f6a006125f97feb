"""Runs a projection over the notification log in blocks, exactly once per event.

Each block of notifications is applied and its tracking position written in one
transaction; the tracking row is locked while it runs, so any number of processes may call
`catch_up` and each event is applied once, in log order.

`tables` names what a projection writes, with the column grouping its rows by job (or
entity), which `palimpsest verify` compares by.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NamedTuple, Protocol

import psycopg
from eventsourcing.persistence import Notification, Recording
from psycopg_pool import ConnectionPool

from infra.event_decoding import FastMapper
from infra.store import Palimpsest

BLOCK = 500
Progress = Callable[[int], None]


class Block(NamedTuple):
    """Notifications from `start` on, with their events."""

    start: int
    events: list[tuple[Any, Notification]]


class Table(NamedTuple):
    """A table a projection writes, and the column its rows are compared by (job, id)."""

    name: str
    key: str


class Projection(Protocol):
    name: str
    tables: Sequence[Table]

    def apply(self, cur: psycopg.Cursor[Any], event: Any, notification: Notification) -> None:
        """Writes what `event` changes; runs inside the block's transaction."""
        ...

    def reset(self, cur: psycopg.Cursor[Any]) -> None:
        """Drops everything the projection wrote (for a rebuild by replay)."""
        ...


# A projection may also offer `apply_all(cur, [(event, notification), ...])`, writing a whole
# block at once (fewer round trips); the runner uses it when it is there.


class ProjectionRunner:
    def __init__(
        self, app: Palimpsest, pool: ConnectionPool, projection: Projection, block: int = BLOCK
    ) -> None:
        self._app = app
        self._pool = pool
        self.projection = projection
        self._block = block
        self._mapper = FastMapper(app)
        self._local = threading.Lock()

    def position(self) -> int:
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT position FROM projection_tracking WHERE name = %s",
                (self.projection.name,),
            ).fetchone()
        return int(row[0]) if row else 0

    def catch_up(self, until: int | None = None, progress: Progress | None = None) -> int:
        """Applies the log up to `until` (or its end); returns the position reached.
        `progress` is called with the position after each block.

        After a full block, the next one is read and decoded in a second thread while this
        one is written, so PostgreSQL's share of the work overlaps Python's."""
        with self._local, ThreadPoolExecutor(1, thread_name_prefix="read-ahead") as reader:
            ahead: Future[Block] | None = None
            while True:
                position, done, ahead = self._apply_block(until, reader, ahead)
                if progress is not None:
                    progress(position)
                if done:
                    return position

    def apply_committed(self, recordings: Sequence[Recording]) -> int:
        """Applies events just committed by this process without reading them back, when
        nothing else was committed between the projection's position and them; otherwise
        reads the log as `catch_up` does."""
        first = recordings[0].notification.id
        last = recordings[-1].notification.id
        with self._local, self._pool.connection() as conn, conn.transaction():
            cur = conn.cursor()
            position = self._lock_tracking(cur)
            if position >= last:
                return position
            between = (
                self._app.recorder.select_notifications(start=position + 1, limit=1, stop=first - 1)
                if position + 1 <= first - 1
                else []
            )
            if position < first and not between:
                self._apply(cur, [(r.domain_event, r.notification) for r in recordings])
                cur.execute(
                    "UPDATE projection_tracking SET position = %s WHERE name = %s",
                    (last, self.projection.name),
                )
                return last
        return self.catch_up(until=last)

    def _apply_block(
        self, until: int | None, reader: ThreadPoolExecutor, ahead: Future[Block] | None
    ) -> tuple[int, bool, Future[Block] | None]:
        """Applies the block after the tracked position (the one read ahead if it starts
        there); returns the position, whether the log is done, the next block's reading."""
        with self._pool.connection() as conn, conn.transaction():
            cur = conn.cursor()
            position = self._lock_tracking(cur)
            if until is not None and position >= until:
                return position, True, None
            block = ahead.result() if ahead is not None else None
            if block is None or block.start != position + 1:
                block = self._read(position + 1, until)
            full = len(block.events) == self._block
            if full:
                following = block.events[-1][1].id + 1
                ahead = reader.submit(self._read, following, until)
            else:
                ahead = None
            self._apply(cur, block.events)
            if block.events:
                position = block.events[-1][1].id
                cur.execute(
                    "UPDATE projection_tracking SET position = %s WHERE name = %s",
                    (position, self.projection.name),
                )
            return position, not full, ahead

    def _read(self, start: int, until: int | None) -> Block:
        notifications = self._app.recorder.select_notifications(
            start=start, limit=self._block, stop=until
        )
        decode = self._mapper.to_domain_event
        return Block(
            start, [(decode(notification), notification) for notification in notifications]
        )

    def _apply(self, cur: psycopg.Cursor[Any], pairs: Sequence[tuple[Any, Notification]]) -> None:
        apply_all = getattr(self.projection, "apply_all", None)
        if apply_all is not None:
            apply_all(cur, pairs)
            return
        for event, notification in pairs:
            self.projection.apply(cur, event, notification)

    def _lock_tracking(self, cur: psycopg.Cursor[Any]) -> int:
        cur.execute(
            "INSERT INTO projection_tracking (name, position) VALUES (%s, 0) "
            "ON CONFLICT (name) DO NOTHING",
            (self.projection.name,),
        )
        cur.execute(
            "SELECT position FROM projection_tracking WHERE name = %s FOR UPDATE",
            (self.projection.name,),
        )
        row = cur.fetchone()
        assert row is not None
        return int(row[0])
