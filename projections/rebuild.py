"""Rebuilding a read model from position 0 beside the live one: replay and verify.

A rebuild runs the projection from the start of the log into copies of its tables in a
scratch schema (`rebuild_<name>`, put first on the search path of the connections it
uses), so the live read model keeps serving meanwhile. Then, with the live projection's
tracking row locked (its updates, and for an inline projection the writes waiting on them,
pause for this part only), the rebuilt copy catches up to the live position and

- `replay` replaces the live rows with the rebuilt ones in that one transaction (DELETE and
  INSERT, so readers see the old rows until it commits) and sets the live position;
- `verify` compares both, table by table and key by key (the job, or the row's id), by
  checksums of their rows, and lists the rows that differ.

One rebuild of a projection runs at a time (an advisory lock per projection name).
"""

from __future__ import annotations

import contextlib
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from infra.store import Palimpsest
from projections.runner import Progress, Projection, ProjectionRunner, Table

REBUILD_BLOCK = 5000
REBUILD_LOCK_BASE = 7411000  # + a hash of the projection's name
SHOWN_KEYS = 5
SHOWN_ROWS = 3
ROW_TEXT = 400
TRACKING = "projection_tracking"


class RebuildBusy(Exception):
    """Another replay or verify of the same projection is running."""


@dataclass(frozen=True)
class Replayed:
    position: int  # where the live read model is now
    build_seconds: float  # the rebuild aside, while the live one kept serving
    swap_seconds: float  # catching up and swapping in, the live one paused


@dataclass
class TableDifference:
    table: Table
    key: str
    only_live: list[str] = field(default_factory=list)
    only_rebuilt: list[str] = field(default_factory=list)

    def describe(self) -> str:
        lines = [
            f"{self.table.name} {self.table.key} {self.key}: {len(self.only_live)} row(s) only"
            f" in the live read model, {len(self.only_rebuilt)} only in the rebuilt one"
        ]
        lines += [f"    live:    {row[:ROW_TEXT]}" for row in self.only_live[:SHOWN_ROWS]]
        lines += [f"    rebuilt: {row[:ROW_TEXT]}" for row in self.only_rebuilt[:SHOWN_ROWS]]
        return "\n".join(lines)


@dataclass
class Comparison:
    projection: str
    position: int
    rows: int = 0
    differences: list[TableDifference] = field(default_factory=list)
    differing_keys: int = 0


class ScratchBuild:
    """A projection rebuilt from the log into a scratch schema; the schema is dropped after."""

    def __init__(
        self, app: Palimpsest, live: ConnectionPool, projection: Projection, block: int
    ) -> None:
        self.projection = projection
        self.schema = f"rebuild_{projection.name}"
        self._live = live
        self._app = app
        self._block = block
        self.pool: ConnectionPool | None = None
        self.runner: ProjectionRunner | None = None

    def __enter__(self) -> ScratchBuild:
        with self._live.connection() as conn:
            live_schema = conn.execute("SELECT current_schema()").fetchone()[0]  # type: ignore[index]
            scratch = sql.Identifier(self.schema)
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(scratch))
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(scratch))
            for table in (TRACKING, *(t.name for t in self.projection.tables)):
                conn.execute(
                    sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(
                        sql.Identifier(self.schema, table), sql.Identifier(live_schema, table)
                    )
                )
        search_path = f"{self.schema},{live_schema}"
        self.pool = ConnectionPool(
            str(self._live.conninfo),
            min_size=1,
            max_size=2,
            kwargs={"autocommit": True, "options": f"-c search_path={search_path}"},
            open=False,
        )
        self.pool.open(wait=True, timeout=30)
        self.runner = ProjectionRunner(self._app, self.pool, self.projection, block=self._block)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.close()
        with self._live.connection() as conn:
            conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema))
            )

    def build(self, until: int | None = None, progress: Progress | None = None) -> int:
        assert self.runner is not None
        return self.runner.catch_up(until, progress)


class Rebuilder:
    """Replays or verifies one projection against the live read model of `pool`."""

    def __init__(
        self,
        app: Palimpsest,
        pool: ConnectionPool,
        projection: Projection,
        block: int = REBUILD_BLOCK,
    ) -> None:
        self._app = app
        self._pool = pool
        self.projection = projection
        self._block = block

    def replay(self, progress: Progress | None = None) -> Replayed:
        """Rebuilds the projection and puts the result in place of the live rows."""
        with (
            self._exclusive(),
            ScratchBuild(self._app, self._pool, self.projection, self._block) as scratch,
        ):
            started = time.perf_counter()
            scratch.build(progress=progress)
            built = time.perf_counter()
            with self._pool.connection() as conn:
                with conn.transaction():
                    cur = conn.cursor()
                    self._lock_live(cur, share=False)
                    locked = time.perf_counter()
                    position = scratch.build(progress=progress)
                    for table in self.projection.tables:
                        live, rebuilt = _identifiers(scratch.schema, table.name)
                        cur.execute(sql.SQL("DELETE FROM {}").format(live))
                        columns = sql.SQL(", ").join(
                            sql.Identifier(c) for c in _written_columns(cur, table.name)
                        )
                        cur.execute(
                            sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(
                                live, columns, columns, rebuilt
                            )
                        )
                    cur.execute(
                        "UPDATE projection_tracking SET position = %s WHERE name = %s",
                        (position, self.projection.name),
                    )
                done = time.perf_counter()
        return Replayed(position, built - started, done - locked)

    def verify(self, live_runner: ProjectionRunner, progress: Progress | None = None) -> Comparison:
        """Rebuilds the projection beside the live one (brought up to the log's end first)
        and compares them at the same position."""
        with (
            self._exclusive(),
            ScratchBuild(self._app, self._pool, self.projection, self._block) as scratch,
        ):
            scratch.build(progress=progress)
            live_runner.catch_up()
            with self._pool.connection() as conn, conn.transaction():
                cur = conn.cursor()
                position = self._lock_live(cur, share=True)
                reached = scratch.build(until=position, progress=progress)
                if reached != position:
                    raise RuntimeError(
                        f"the rebuilt {self.projection.name} reached {reached},"
                        f" the live one is at {position}"
                    )
                comparison = Comparison(self.projection.name, position)
                for table in self.projection.tables:
                    self._compare(cur, scratch.schema, table, comparison)
        return comparison

    def _compare(
        self, cur: psycopg.Cursor[Any], schema: str, table: Table, into: Comparison
    ) -> None:
        live, rebuilt = _identifiers(schema, table.name)
        live_sums = _checksums(cur, live, table.key)
        rebuilt_sums = _checksums(cur, rebuilt, table.key)
        into.rows += sum(count for count, _ in live_sums.values())
        differing = sorted(
            key
            for key in live_sums.keys() | rebuilt_sums.keys()
            if live_sums.get(key) != rebuilt_sums.get(key)
        )
        into.differing_keys += len(differing)
        for key in differing[:SHOWN_KEYS]:
            into.differences.append(
                TableDifference(
                    table,
                    key,
                    _rows_only_in(cur, live, rebuilt, table.key, key),
                    _rows_only_in(cur, rebuilt, live, table.key, key),
                )
            )

    def _lock_live(self, cur: psycopg.Cursor[Any], *, share: bool) -> int:
        cur.execute(
            "INSERT INTO projection_tracking (name, position) VALUES (%s, 0)"
            " ON CONFLICT (name) DO NOTHING",
            (self.projection.name,),
        )
        mode = "SHARE" if share else "UPDATE"
        cur.execute(
            f"SELECT position FROM projection_tracking WHERE name = %s FOR {mode}",
            (self.projection.name,),
        )
        row = cur.fetchone()
        assert row is not None
        return int(row[0])

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        key = REBUILD_LOCK_BASE + zlib.crc32(self.projection.name.encode()) % 100_000
        with psycopg.connect(str(self._pool.conninfo), autocommit=True) as conn:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            if not (row and row[0]):
                raise RebuildBusy(f"another replay or verify of {self.projection.name} is running")
            yield  # the lock goes with the connection


def _identifiers(schema: str, table: str) -> tuple[sql.Identifier, sql.Identifier]:
    """The live table (found on the search path) and its rebuilt copy."""
    return sql.Identifier(table), sql.Identifier(schema, table)


def _written_columns(cur: psycopg.Cursor[Any], table: str) -> list[str]:
    """The live table's columns but those PostgreSQL generates (it computes them itself)."""
    cur.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0"
        " AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
        (table,),
    )
    return [str(row[0]) for row in cur.fetchall()]


def _checksums(
    cur: psycopg.Cursor[Any], table: sql.Identifier, key: str
) -> dict[str, tuple[int, str]]:
    """key -> (rows, checksum of the rows' text whatever their order)."""
    cur.execute(
        sql.SQL(
            "SELECT {key}::text, count(*), md5(string_agg(md5(t::text), '' ORDER BY md5(t::text)))"
            " FROM {table} t GROUP BY 1"
        ).format(key=sql.Identifier(key), table=table)
    )
    return {str(key_text): (int(count), str(digest)) for key_text, count, digest in cur.fetchall()}


def _rows_only_in(
    cur: psycopg.Cursor[Any], table: sql.Identifier, other: sql.Identifier, key: str, value: str
) -> list[str]:
    cur.execute(
        sql.SQL(
            "SELECT t::text FROM {table} t WHERE {key}::text = %s"
            " EXCEPT ALL SELECT o::text FROM {other} o WHERE {key}::text = %s ORDER BY 1"
        ).format(table=table, other=other, key=sql.Identifier(key)),
        (value, value),
    )
    return [str(row[0]) for row in cur.fetchall()]
