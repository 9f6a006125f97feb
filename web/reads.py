"""Reading catalog rows off the event loop."""

from __future__ import annotations

from typing import Any

from psycopg import sql
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from core.errors import NotFound
from projections.visibility import TABLES, visible_where
from web.context import principal, runtime


async def fetch_all(request: Request, query: Any, params: tuple[Any, ...] = ()) -> list[Any]:
    pool = runtime(request).pool

    def run() -> list[Any]:
        with pool.connection() as conn:
            return conn.execute(query, params).fetchall()

    return await run_in_threadpool(run)


async def fetch_doc(request: Request, table: str, ident: int, kind: str) -> dict[str, Any]:
    """The catalog document of `kind` `ident`, or NotFound (also when the caller may not see
    that project, task or job)."""
    query = sql.SQL("SELECT doc FROM {} WHERE id = %s").format(sql.Identifier(table))
    caller = principal(request)
    if kind in TABLES and TABLES[kind] == table and caller is not None:
        query = sql.SQL("{} AND {}").format(query, visible_where(kind, caller))
    rows = await fetch_all(request, query, (ident,))
    if not rows:
        raise NotFound(kind, ident)
    return rows[0][0]
