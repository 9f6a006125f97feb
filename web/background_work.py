"""Running work in the background under a /api/requests entry: queued, progress, result.

Work with a queue kind goes to the JetStream work queue when the server has one (a worker
takes it); otherwise, or when publishing fails, it runs here beside the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from core.permissions import Principal
from infra.background import USER_ERRORS, Operation, Outcome, Progress, RequestLog, run_request
from infra.work_queue import WorkQueue
from web.errors import BadRequest

log = structlog.get_logger(__name__)

__all__ = ["USER_ERRORS", "Outcome", "Progress", "Work", "start"]

Work = Callable[[str, Progress], Awaitable[Outcome]]
Queued = tuple[str, Callable[[str], bytes]]  # the queue's job kind, the job's message by rq_id


async def start(
    request: Request,
    caller: Principal,
    operation: Operation,
    work: Work,
    queued: Queued | None = None,
) -> str:
    """Opens the request entry and has a worker run it (`queued`), or runs
    `work(rq_id, progress)` beside the event loop."""
    requests: RequestLog = request.app.state.requests
    if await run_in_threadpool(requests.is_running, operation, caller.id):
        raise BadRequest(f"the same {operation.type} request is running already")
    rq_id = await run_in_threadpool(requests.open, operation, caller.id)
    queue: WorkQueue | None = request.app.state.work_queue
    if queued is not None and queue is not None:
        kind, message = queued
        try:
            await queue.submit(kind, message(rq_id))
            return rq_id
        except Exception:
            log.warning("work queue unavailable, running here", rq_id=rq_id, exc_info=True)
    job = asyncio.create_task(run_request(requests, rq_id, lambda p: work(rq_id, p)))
    request.app.state.background.add(job)
    job.add_done_callback(request.app.state.background.discard)
    return rq_id
