"""Connections to PostgreSQL for everything beside the event store, and the schema setup."""

from __future__ import annotations

from importlib import resources

import psycopg
from psycopg_pool import ConnectionPool

from infra import lock_keys

SEQUENCES = frozenset(
    {
        "user",
        "project",
        "task",
        "job",
        "label",
        "attribute",
        "storage",
        "data",
        "annotation",
        "issue",
        "comment",
        "organization",
        "membership",
    }
)


def open_pool(database_url: str, *, max_size: int = 8) -> ConnectionPool:
    pool = ConnectionPool(
        database_url, min_size=1, max_size=max_size, kwargs={"autocommit": True}, open=False
    )
    pool.open(wait=True, timeout=30)
    return pool


def create_schema(pool: ConnectionPool) -> None:
    script = resources.files("infra").joinpath("schema.sql").read_text()
    with pool.connection() as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (lock_keys.SCHEMA,))
        try:
            conn.execute(script)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (lock_keys.SCHEMA,))


class IdSequences:
    """Hands out integer ids from the palimpsest_<kind>_id sequences."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def next(self, kind: str) -> int:
        if kind not in SEQUENCES:
            raise ValueError(f"no id sequence for {kind!r}")
        with self._pool.connection() as conn:
            row = conn.execute(f"SELECT nextval('palimpsest_{kind}_id')").fetchone()
        assert row is not None
        return int(row[0])

    def take(self, kind: str, count: int) -> list[int]:
        """`count` new ids in one round trip."""
        if kind not in SEQUENCES:
            raise ValueError(f"no id sequence for {kind!r}")
        if count <= 0:
            return []
        # The ids come back as runs of consecutive values (first, last), usually one.
        with self._pool.connection() as conn:
            runs = conn.execute(
                "SELECT min(id), max(id) FROM ("
                "  SELECT id, id - row_number() OVER (ORDER BY id) AS run"
                f"  FROM (SELECT nextval('palimpsest_{kind}_id') AS id"
                "        FROM generate_series(1, %s)) AS taken"
                ") AS numbered GROUP BY run ORDER BY 1",
                (count,),
            ).fetchall()
        return [ident for first, last in runs for ident in range(int(first), int(last) + 1)]


def ensure_database(server_url: str, name: str, *, template: str | None = None) -> None:
    """Creates database `name` on the server if it does not exist yet."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return
        statement = psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name))
        if template:
            statement += psycopg.sql.SQL(" TEMPLATE {}").format(psycopg.sql.Identifier(template))
        conn.execute(statement)
