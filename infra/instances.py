"""This server instance's presence, as a PostgreSQL advisory lock held while it runs.

Work an instance started (a background request) is interrupted exactly when its lock is free:
no heartbeats, and a crashed instance lets go at once, when its connection drops.
"""

from __future__ import annotations

import secrets

import psycopg

from infra import lock_keys

LOCK_SPACE = lock_keys.INSTANCE_SPACE


class InstanceLock:
    def __init__(self, database_url: str) -> None:
        self.key = secrets.randbits(31)
        self._conn = psycopg.connect(database_url, autocommit=True)
        self._conn.execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_SPACE, self.key))

    def close(self) -> None:
        self._conn.close()


def instance_alive(conn: psycopg.Connection, key: int) -> bool:
    """True while the instance holding `key` runs (we could not take its lock)."""
    row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_SPACE, key)).fetchone()
    if row and row[0]:
        conn.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_SPACE, key))
        return False
    return True
