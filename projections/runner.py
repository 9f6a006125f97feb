"""Runs a projection over the notification log in blocks, exactly once per event.

Each block of notifications is applied and its tracking position written in one
transaction; the tracking row is locked while it runs, so any number of processes may call
`catch_up` and each event is applied once, in log order. A read model that must be current
when a write is acknowledged is also applied inside the write's own transaction
(`apply_in_transaction`, called by the writer).

`tables` names what a projection writes, with the column grouping its rows by job (or
entity), which `palimpsest verify` compares by.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NamedTuple, Protocol

import psycopg
from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic
from psycopg import sql
from psycopg_pool import ConnectionPool

from infra.event_decoding import FastMapper
from infra.store import Palimpsest

BLOCK = 500
Progress = Callable[[int], None]


class Block(NamedTuple):
    """The log from `start` to `end` (inclusive; `scanned` rows), with the events of it the
    projection reads."""

    start: int
    end: int
    scanned: int
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
# block at once (fewer round trips); the runner uses it when it is there. And `topics()`, the
# event classes it reads: the others are neither fetched whole nor decoded.


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
        self._select = _selection(app, projection)
        topics = getattr(projection, "topics", None)
        self._topics = None if topics is None else frozenset(get_topic(t) for t in topics())

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

    def apply_in_transaction(
        self, cur: psycopg.Cursor[Any], committing: Sequence[tuple[Any, Notification]]
    ) -> bool:
        """Applies events being recorded in `cur`'s transaction, with whatever the log holds
        between the projection's position and them. Returns False, writing nothing, when that
        gap is too long to fill inside someone's save (a rebuild under way): `catch_up` then
        follows after the commit."""
        position = self._lock_tracking(cur)
        first = committing[0][1].id
        between = self._rows(cur, position, first, BLOCK + 1) if first > position + 1 else []
        if len(between) > BLOCK:
            return False
        missed = self._decoded(between)
        fresh = [(event, n) for event, n in committing if n.id > position and self._reads(n)]
        self._apply(cur, missed + fresh)
        cur.execute(
            "UPDATE projection_tracking SET position = %s WHERE name = %s",
            (committing[-1][1].id, self.projection.name),
        )
        return True

    def _rows(
        self, cur: psycopg.Cursor[Any], after: int, before: int | None, limit: int
    ) -> list[tuple[Any, ...]]:
        """Up to `limit` rows of the log with ids after `after` (and before `before`), in
        order: (id, originator, version, topic, state), the state None where the projection
        does not read the topic."""
        cur.execute(
            self._select,
            {"after": after, "before": before, "limit": limit, "topics": list(self._topics or ())},
        )
        return cur.fetchall()

    def _reads(self, notification: Notification) -> bool:
        return self._topics is None or notification.topic in self._topics

    def _decoded(self, rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, Notification]]:
        decode = self._mapper.to_domain_event
        pairs = []
        for notification_id, originator_id, version, topic, state in rows:
            if state is None:
                continue
            notification = Notification(
                id=notification_id,
                originator_id=originator_id,
                originator_version=version,
                topic=topic,
                state=bytes(state),
            )
            pairs.append((decode(notification), notification))
        return pairs

    def rebuild(self) -> int:
        with self._local, self._pool.connection() as conn, conn.transaction():
            cur = conn.cursor()
            self._lock_tracking(cur)
            self.projection.reset(cur)
            cur.execute(
                "UPDATE projection_tracking SET position = 0 WHERE name = %s",
                (self.projection.name,),
            )
        return self.catch_up()

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
            full = block.scanned == self._block
            if full:
                ahead = reader.submit(self._read, block.end + 1, until)
            else:
                ahead = None
            self._apply(cur, block.events)
            if block.scanned:
                position = block.end
                cur.execute(
                    "UPDATE projection_tracking SET position = %s WHERE name = %s",
                    (position, self.projection.name),
                )
            return position, not full, ahead

    def _read(self, start: int, until: int | None) -> Block:
        """The block from `start` on, read straight from the events table and decoded."""
        before = None if until is None else until + 1
        with self._pool.connection() as conn:
            rows = self._rows(conn.cursor(), start - 1, before, self._block)
        end = rows[-1][0] if rows else start - 1
        return Block(start, end, len(rows), self._decoded(rows))

    def _apply(self, cur: psycopg.Cursor[Any], pairs: Sequence[tuple[Any, Notification]]) -> None:
        apply_all = getattr(self.projection, "apply_all", None)
        if apply_all is not None:
            apply_all(cur, pairs)
            return
        for event, notification in pairs:
            self.projection.apply(cur, event, notification)

    def _lock_tracking(self, cur: psycopg.Cursor[Any]) -> int:
        lock = "SELECT position FROM projection_tracking WHERE name = %s FOR UPDATE"
        row = cur.execute(lock, (self.projection.name,)).fetchone()
        if row is None:
            cur.execute(
                "INSERT INTO projection_tracking (name, position) VALUES (%s, 0) "
                "ON CONFLICT (name) DO NOTHING",
                (self.projection.name,),
            )
            row = cur.execute(lock, (self.projection.name,)).fetchone()
        assert row is not None
        return int(row[0])


def _selection(app: Palimpsest, projection: Projection) -> sql.Composed:
    """The query of `_rows` for this projection's topics (all, when it names none)."""
    table = sql.Identifier(app.recorder.events_table_name)  # type: ignore[attr-defined]
    state = sql.SQL("state")
    if getattr(projection, "topics", None) is not None:
        state = sql.SQL("CASE WHEN topic = ANY(%(topics)s) THEN state END")
    return sql.SQL(
        "SELECT notification_id, originator_id, originator_version, topic, {} FROM {}"
        " WHERE notification_id > %(after)s"
        " AND (%(before)s::bigint IS NULL OR notification_id < %(before)s)"
        " ORDER BY notification_id LIMIT %(limit)s"
    ).format(state, table)
