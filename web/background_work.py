"""Running work in the background under a /api/requests entry: queued, progress, result."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from core.errors import DomainError
from core.permissions import Principal
from infra.background import Operation, RequestLog
from web.errors import BadRequest

log = structlog.get_logger(__name__)

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class Outcome:
    result_id: int | None = None
    result_url: str | None = None
    message: str = ""


Work = Callable[[str, Progress], Awaitable[Outcome]]
USER_ERRORS: tuple[type[BaseException], ...] = (DomainError, ValueError)


async def start(request: Request, caller: Principal, operation: Operation, work: Work) -> str:
    """Opens the request entry and runs `work(rq_id, progress)` beside the event loop."""
    requests: RequestLog = request.app.state.requests
    if await run_in_threadpool(requests.is_running, operation, caller.id):
        raise BadRequest(f"the same {operation.type} request is running already")
    rq_id = await run_in_threadpool(requests.open, operation, caller.id)
    job = asyncio.create_task(_run(requests, rq_id, work))
    request.app.state.background.add(job)
    job.add_done_callback(request.app.state.background.discard)
    return rq_id


async def _run(requests: RequestLog, rq_id: str, work: Work) -> None:
    def progress(fraction: float, message: str) -> None:
        requests.progress(rq_id, fraction, message)

    try:
        await run_in_threadpool(progress, 0.0, "Started")
        outcome = await work(rq_id, progress)
        await run_in_threadpool(
            requests.finish, rq_id, outcome.result_id, outcome.result_url, outcome.message
        )
    except USER_ERRORS as error:
        await run_in_threadpool(requests.fail, rq_id, str(error))
    except Exception as error:
        log.exception("background request failed", rq_id=rq_id)
        await run_in_threadpool(requests.fail, rq_id, f"Internal error: {error}")
