"""The workers that take jobs from the JetStream work queue: alone (`palimpsest worker`) or
inline in a server (`serve`, unless PALIMPSEST_INLINE_WORKER=false)."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import structlog

from infra.background import RequestLog
from infra.ingest_jobs import ingest_handler
from infra.runtime import Runtime
from infra.work_queue import QueueConfig, WorkQueue

log = structlog.get_logger(__name__)


async def run_workers(
    rt: Runtime, queue: WorkQueue, requests: RequestLog, stop: asyncio.Event
) -> None:
    """Takes jobs of every kind until `stop` is set (ingest is the one kind so far)."""
    await queue.work("ingest", ingest_handler(rt, requests, queue.config.attempts), stop)


async def start_work_queue(
    rt: Runtime, requests: RequestLog, app: Any
) -> tuple[WorkQueue | None, asyncio.Event]:
    """The server's work queue (None without NATS, or if JetStream refuses: the server then
    runs the work itself) and its inline worker, stopped by setting the returned event."""
    stop = asyncio.Event()
    if not rt.nats_url:
        return None, stop
    try:
        queue = await WorkQueue(rt.nats_url, QueueConfig.of(rt.settings)).start()
    except Exception:
        log.warning("no JetStream work queue; background work runs in this process", exc_info=True)
        return None, stop
    if rt.settings.inline_worker:
        app.state.background.add(asyncio.create_task(run_workers(rt, queue, requests, stop)))
    return queue, stop


async def work_alone(rt: Runtime) -> None:
    """`palimpsest worker`: takes jobs until SIGINT or SIGTERM; the job running then is not
    acked, so it is delivered again."""
    assert rt.nats_url is not None
    queue = await WorkQueue(rt.nats_url, QueueConfig.of(rt.settings)).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    requests = RequestLog(rt.pool, rt.instance.key if rt.instance is not None else None)
    print(f"Palimpsest worker taking jobs from {queue.config.prefix}.*", flush=True)
    working = asyncio.create_task(run_workers(rt, queue, requests, stop))
    await stop.wait()
    working.cancel()
    await asyncio.gather(working, return_exceptions=True)
    await queue.close()
