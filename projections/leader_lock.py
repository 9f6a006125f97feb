"""A singleton across server instances: a PostgreSQL advisory lock held on its own connection."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import structlog

log = structlog.get_logger(__name__)


class LeadershipLost(Exception):
    """The advisory lock's connection broke: another relay may publish now."""


class LeaderLock:
    """A session-level advisory lock on a dedicated connection (released when it closes)."""

    def __init__(self, conninfo: str, key: int) -> None:
        self._conninfo = conninfo
        self._key = key
        self._conn: psycopg.AsyncConnection[Any] | None = None

    @property
    def key(self) -> int:
        return self._key

    async def try_acquire(self) -> bool:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
            cur = await self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,))
            row = await cur.fetchone()
        except psycopg.Error as error:
            log.warning("relay cannot reach PostgreSQL for its lock", error=str(error))
            await self.release()
            return False
        return bool(row and row[0])

    async def check(self) -> None:
        """Raises LeadershipLost if the lock's session is gone."""
        if self._conn is None or self._conn.closed:
            raise LeadershipLost("the lock's connection is closed")
        try:
            await asyncio.wait_for(self._conn.execute("SELECT 1"), timeout=5.0)
        except (psycopg.Error, TimeoutError) as error:
            raise LeadershipLost(str(error)) from error

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            try:
                await conn.close()
            except psycopg.Error:
                pass
