"""The Starlette application: CVAT's REST API over the Palimpsest runtime."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from core.jobs import Job
from infra.background import RequestLog
from infra.job_reads import JobReader
from infra.runtime import Runtime
from projections.quality import QualityProjection
from projections.quality_follower import QualityFollower
from projections.relay import Relay
from projections.runner import ProjectionRunner
from realtime.fanout import LiveFanout
from realtime.rooms import Hub
from web import (
    access_tokens,
    accounts,
    annotations,
    background_requests,
    datasets,
    jobs,
    media,
    projects,
    quality,
    review,
    rooms,
    tasks,
)
from web.errors import EXCEPTION_HANDLERS
from web.idempotency import IdempotencyMiddleware
from web.middleware import AuthenticationMiddleware, RequestLogMiddleware
from web.sessions import Authenticator

STATIC_DIR = Path(__file__).parent / "static"


def create_app(runtime: Runtime) -> Starlette:
    """The app serving `runtime`; the caller opens and closes the runtime."""
    authenticator = Authenticator(runtime.pool)
    hub = Hub(
        load_events=lambda job_id, after: list(
            runtime.store.events.get(Job.stream_id(job_id), gt=after)
        )
    )
    request_log = RequestLog(
        runtime.pool, runtime.instance.key if runtime.instance is not None else None
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        request_log.fail_interrupted()
        hub.start()
        runtime.after_commit_hooks.append(
            lambda recordings: hub.committed(r.domain_event for r in recordings)
        )
        follower = app.state.quality
        runtime.after_commit_hooks.append(lambda _: follower.nudge())
        app.state.background.add(asyncio.create_task(follower.run()))
        relay = fanout = None
        if runtime.nats_url:
            fanout = LiveFanout(hub, runtime.nats_url)
            await fanout.start()
            relay = Relay(runtime.store, runtime.pool, runtime.nats_url)
            runtime.after_commit_hooks.append(lambda _: relay.nudge())
            app.state.background.add(asyncio.create_task(relay.run()))
        yield
        await follower.stop()
        if relay is not None:
            await relay.stop()
        if fanout is not None:
            await fanout.stop()
        await hub.stop()
        for job in list(app.state.background):
            job.cancel()
        await asyncio.gather(*app.state.background, return_exceptions=True)

    routes = [
        *accounts.ROUTES,
        *access_tokens.ROUTES,
        *projects.ROUTES,
        *tasks.ROUTES,
        *media.ROUTES,
        *jobs.ROUTES,
        *review.ROUTES,
        *quality.ROUTES,
        *annotations.ROUTES,
        *datasets.ROUTES,
        *rooms.ROUTES,
        *background_requests.ROUTES,
        Mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(RequestLogMiddleware),
            Middleware(AuthenticationMiddleware, authenticator=authenticator),
            Middleware(IdempotencyMiddleware, pool=runtime.pool),
        ],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.authenticator = authenticator
    app.state.requests = request_log
    app.state.jobs = JobReader(runtime.store, runtime.pool, runtime.writer.views)
    app.state.quality = QualityFollower(
        ProjectionRunner(
            runtime.store, runtime.pool, QualityProjection(runtime.store, app.state.jobs)
        ),
        str(runtime.pool.conninfo),
    )
    app.state.hub = hub
    app.state.background = set()
    return app
