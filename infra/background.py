"""Background requests (CVAT's /api/requests): their status, progress and result."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import structlog
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool
from starlette.concurrency import run_in_threadpool

from core.errors import DomainError
from infra.instances import instance_alive

log = structlog.get_logger(__name__)

Status = Literal["queued", "started", "failed", "finished"]
KEEP_FINISHED = timedelta(days=1)


@dataclass(frozen=True)
class Operation:
    type: str  # "create:task", "export:dataset", ...
    target: str  # "task", "project", "job"
    task_id: int | None = None
    project_id: int | None = None
    job_id: int | None = None
    format: str | None = None
    subresource: str | None = None
    lightweight: bool | None = None  # backups
    # names the request when it has no target yet (an import making a new task), as CVAT's
    # uuid does, so that two such imports are two requests
    target_key: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "target": self.target,
            "project_id": self.project_id,
            "task_id": self.task_id,
            "job_id": self.job_id,
            "org_id": None,
            "format": self.format,
            "function_id": None,
            "lightweight": self.lightweight,
        }


def request_id(operation: Operation, user_id: int) -> str:
    """CVAT-like ids: action=export&target=task&target_id=1&user_id=1&subresource=...&format=..."""
    action, _, _ = operation.type.partition(":")
    target_id = {"task": operation.task_id, "job": operation.job_id}.get(
        operation.target, operation.project_id
    )
    if target_id is None:
        target_id = operation.target_key
    ident = f"action={action}&target={operation.target}&target_id={target_id}&user_id={user_id}"
    if operation.subresource:
        ident += f"&subresource={operation.subresource}"
    if operation.format:
        ident += "&format=" + operation.format.replace(".", "~").replace(" ", "_")
    return ident


class RequestLog:
    def __init__(self, pool: ConnectionPool, instance: int | None = None) -> None:
        self._pool = pool
        self._instance = instance  # the key of the server instance that runs what it opens

    def open(self, operation: Operation, owner_id: int) -> str:
        ident = request_id(operation, owner_id)
        with self._pool.connection() as conn:
            conn.execute(
                "INSERT INTO background_requests (id, owner_id, operation, status, instance)"
                " VALUES (%s, %s, %s, 'queued', %s)"
                " ON CONFLICT (id) DO UPDATE SET operation = EXCLUDED.operation,"
                " status = 'queued', message = '', progress = NULL, created = now(),"
                " started = NULL, finished = NULL, result_id = NULL, result_url = NULL,"
                " instance = EXCLUDED.instance",
                (ident, owner_id, Jsonb(operation.as_json()), self._instance),
            )
        return ident

    def is_running(self, operation: Operation, owner_id: int) -> bool:
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT status FROM background_requests WHERE id = %s",
                (request_id(operation, owner_id),),
            ).fetchone()
        return row is not None and row[0] in ("queued", "started")

    def progress(self, ident: str, fraction: float, message: str) -> None:
        with self._pool.connection() as conn:
            conn.execute(
                "UPDATE background_requests SET status = 'started', progress = %s, message = %s,"
                " started = coalesce(started, now()) WHERE id = %s",
                (fraction, message, ident),
            )

    def claim(self, ident: str) -> None:
        """A worker of this instance runs the request now (a restart of the server that
        opened it no longer fails it; one of the worker's does)."""
        with self._pool.connection() as conn:
            conn.execute(
                "UPDATE background_requests SET status = 'started', instance = %s,"
                " started = coalesce(started, now()) WHERE id = %s",
                (self._instance, ident),
            )

    def finish(
        self,
        ident: str,
        result_id: int | None = None,
        result_url: str | None = None,
        message: str = "",
    ) -> None:
        with self._pool.connection() as conn:
            conn.execute(
                "UPDATE background_requests SET status = 'finished', progress = 1, message = %s,"
                " started = coalesce(started, now()), finished = now(), result_id = %s,"
                " result_url = %s WHERE id = %s",
                (message, result_id, result_url, ident),
            )

    def fail(self, ident: str, message: str) -> None:
        with self._pool.connection() as conn:
            conn.execute(
                "UPDATE background_requests SET status = 'failed', message = %s,"
                " started = coalesce(started, now()), finished = now() WHERE id = %s",
                (message, ident),
            )

    def fail_interrupted(self) -> int:
        """Marks requests whose server instance is gone as failed; returns how many."""
        with self._pool.connection() as conn:
            running = conn.execute(
                "SELECT DISTINCT instance FROM background_requests"
                " WHERE status IN ('queued', 'started')"
            ).fetchall()
            gone = [key for (key,) in running if key is None or not instance_alive(conn, key)]
            if not gone:
                return 0
            cur = conn.execute(
                "UPDATE background_requests SET status = 'failed', finished = now(),"
                " message = 'Interrupted by a server restart; please send it again.'"
                " WHERE status IN ('queued', 'started')"
                " AND (instance IS NULL OR instance = ANY(%s))",
                ([key for key in gone if key is not None],),
            )
            return cur.rowcount

    def get(self, ident: str) -> dict[str, Any] | None:
        rows = self._select("WHERE r.id = %s", (ident,))
        return rows[0] if rows else None

    def for_owner(self, owner_id: int | None) -> list[dict[str, Any]]:
        if owner_id is None:
            return self._select("ORDER BY r.created DESC", ())
        return self._select("WHERE r.owner_id = %s ORDER BY r.created DESC", (owner_id,))

    def _select(self, tail: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        with self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT r.id, r.status, r.message, r.progress, r.operation, r.created, r.started,"
                " r.finished, r.result_id, r.result_url, r.owner_id, u.username"
                " FROM background_requests r LEFT JOIN catalog_users u ON u.id = r.owner_id "
                + tail,
                params,
            ).fetchall()
        return [_as_json(row) for row in rows]


def _as_json(row: tuple[Any, ...]) -> dict[str, Any]:
    (ident, status, message, progress, operation, created, started, finished) = row[:8]
    result_id, result_url, owner_id, username = row[8:]
    return {
        "id": ident,
        "status": status,
        "message": message,
        "operation": operation,
        "progress": progress,
        "created_date": _iso(created),
        "started_date": _iso(started),
        "finished_date": _iso(finished),
        "expiry_date": _iso(finished + KEEP_FINISHED) if finished else None,
        "owner": {"id": owner_id, "username": username or ""},
        "result_url": result_url,
        "result_id": result_id,
    }


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class Outcome:
    result_id: int | None = None
    result_url: str | None = None
    message: str = ""


USER_ERRORS: tuple[type[BaseException], ...] = (DomainError, ValueError)


async def run_request(
    requests: RequestLog, rq_id: str, work: Callable[[Progress], Awaitable[Outcome]]
) -> None:
    """Runs `work` under request `rq_id`: its progress, then finished with the outcome or
    failed with the reason (a user error's own words; anything else is a logged bug)."""

    def progress(fraction: float, message: str) -> None:
        requests.progress(rq_id, fraction, message)

    try:
        await run_in_threadpool(progress, 0.0, "Started")
        outcome = await work(progress)
        await run_in_threadpool(
            requests.finish, rq_id, outcome.result_id, outcome.result_url, outcome.message
        )
    except USER_ERRORS as error:
        await run_in_threadpool(requests.fail, rq_id, str(error))
    except Exception as error:
        log.exception("background request failed", rq_id=rq_id)
        await run_in_threadpool(requests.fail, rq_id, f"Internal error: {error}")
