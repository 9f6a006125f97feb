"""Runs a projection over the notification log in blocks, exactly once per event.

Each block of notifications is applied and its tracking position written in one
transaction; the tracking row is locked while it runs, so any number of processes may call
`catch_up` and each event is applied once, in log order.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol

import psycopg
from eventsourcing.persistence import Notification, Recording
from psycopg_pool import ConnectionPool

from infra.store import Palimpsest

BLOCK = 500


class Projection(Protocol):
    name: str

    def apply(self, cur: psycopg.Cursor[Any], event: Any, notification: Notification) -> None:
        """Writes what `event` changes; runs inside the block's transaction."""
        ...

    def reset(self, cur: psycopg.Cursor[Any]) -> None:
        """Drops everything the projection wrote (for a rebuild by replay)."""
        ...


class ProjectionRunner:
    def __init__(self, app: Palimpsest, pool: ConnectionPool, projection: Projection) -> None:
        self._app = app
        self._pool = pool
        self.projection = projection
        self._local = threading.Lock()

    def position(self) -> int:
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT position FROM projection_tracking WHERE name = %s",
                (self.projection.name,),
            ).fetchone()
        return int(row[0]) if row else 0

    def catch_up(self, until: int | None = None) -> int:
        """Applies the log up to `until` (or its end); returns the position reached."""
        with self._local:
            while True:
                position, done = self._apply_block(until)
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
                for recording in recordings:
                    self.projection.apply(cur, recording.domain_event, recording.notification)
                cur.execute(
                    "UPDATE projection_tracking SET position = %s WHERE name = %s",
                    (last, self.projection.name),
                )
                return last
        return self.catch_up(until=last)

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

    def _apply_block(self, until: int | None) -> tuple[int, bool]:
        with self._pool.connection() as conn, conn.transaction():
            cur = conn.cursor()
            position = self._lock_tracking(cur)
            if until is not None and position >= until:
                return position, True
            notifications = self._app.recorder.select_notifications(
                start=position + 1, limit=BLOCK, stop=until
            )
            for notification in notifications:
                event = self._app.mapper.to_domain_event(notification)
                self.projection.apply(cur, event, notification)
            if notifications:
                position = notifications[-1].id
                cur.execute(
                    "UPDATE projection_tracking SET position = %s WHERE name = %s",
                    (position, self.projection.name),
                )
            return position, len(notifications) < BLOCK

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
