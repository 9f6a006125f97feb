"""The Starlette application: CVAT's REST API over the Palimpsest runtime."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from core.jobs import Job
from core.permissions import bypass_policy_for_measurement
from infra import lock_keys
from infra.background import RequestLog
from infra.job_reads import JobReader
from infra.runtime import Runtime
from infra.workers import start_work_queue
from projections import registry
from projections.follower import ProjectionFollower
from projections.quality import QualityProjection
from projections.relay import Relay
from projections.runner import ProjectionRunner
from projections.webhook_dispatch import WebhookDispatcher
from realtime.fanout import LiveFanout
from realtime.rooms import Hub
from web import (
    access_tokens,
    account_links,
    accounts,
    analytics,
    annotation_search,
    annotations,
    background_requests,
    backup_imports,
    backups,
    cloud_storages,
    datasets,
    jobs,
    media,
    oidc,
    organizations,
    pages,
    project_datasets,
    projects,
    quality,
    review,
    rooms,
    share,
    tasks,
    validation_layouts,
    webhooks,
)
from web import events as client_events
from web.errors import EXCEPTION_HANDLERS
from web.idempotency import IdempotencyMiddleware
from web.login_throttle import LoginThrottle
from web.middleware import AuthenticationMiddleware, RequestLogMiddleware
from web.sessions import Authenticator
from workers.media.cache import MediaCache
from workers.media.library import MediaLibrary

log = structlog.get_logger(__name__)
STATIC_DIR = Path(__file__).parent / "static"
ANALYTICS_LOCK_KEY = lock_keys.ANALYTICS


def create_app(runtime: Runtime) -> Starlette:
    """The app serving `runtime`; the caller opens and closes the runtime."""
    settings = runtime.settings
    if settings.bypass_policy:
        bypass_policy_for_measurement()
        log.warning("PALIMPSEST_TEST_BYPASS_POLICY is on: EVERY PERMISSION CHECK IS OFF")
    authenticator = Authenticator(
        runtime.pool,
        LoginThrottle(
            runtime.pool,
            settings.login_failures_per_account,
            settings.login_failures_per_address,
            settings.login_lock_seconds,
        ),
        require_verified_email=settings.email_confirmation == "mandatory",
    )
    hub = Hub(
        load_events=lambda job_id, after: list(
            runtime.store.events.get(Job.stream_id(job_id), gt=after)
        )
    )
    dispatcher = WebhookDispatcher(
        runtime.store,
        runtime.pool,
        settings.public_base,
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
        followers = [
            ProjectionFollower(
                ProjectionRunner(
                    runtime.store, runtime.pool, registry.make(name, runtime.settings)
                ),
                runtime.database_url,
                lock_key,
            )
            for name, lock_key in registry.FOLLOWED.items()
        ]
        followers.append(
            ProjectionFollower(runtime.analytics, runtime.database_url, ANALYTICS_LOCK_KEY)
        )
        followers.append(app.state.quality)
        for follower in followers:
            runtime.after_commit_hooks.append(lambda _, nudge=follower.nudge: nudge())
            app.state.background.add(asyncio.create_task(follower.run()))
        runtime.after_commit_hooks.append(lambda _: dispatcher.nudge())
        app.state.background.add(asyncio.create_task(dispatcher.run()))
        app.state.work_queue, stop_workers = await start_work_queue(runtime, request_log, app)
        relay = fanout = None
        if runtime.nats_url:
            fanout = LiveFanout(hub, runtime.nats_url)
            await fanout.start()
            relay = Relay(runtime.store, runtime.pool, runtime.nats_url)
            runtime.after_commit_hooks.append(lambda _: relay.nudge())
            app.state.background.add(asyncio.create_task(relay.run()))
        yield
        for follower in followers:
            follower.stop()
        if relay is not None:
            await relay.stop()
        if fanout is not None:
            await fanout.stop()
        stop_workers.set()
        await dispatcher.stop()
        await hub.stop()
        for job in list(app.state.background):
            job.cancel()
        await asyncio.gather(*app.state.background, return_exceptions=True)
        if app.state.work_queue is not None:
            await app.state.work_queue.close()
        app.state.media.close()

    routes = [
        *accounts.ROUTES,
        *access_tokens.ROUTES,
        *oidc.ROUTES,
        *account_links.ROUTES,
        *projects.ROUTES,
        *tasks.ROUTES,
        *media.ROUTES,
        *jobs.ROUTES,
        *review.ROUTES,
        *organizations.ROUTES,
        *quality.ROUTES,
        *validation_layouts.ROUTES,
        *annotations.ROUTES,
        *annotation_search.ROUTES,
        *datasets.ROUTES,
        *backups.ROUTES,
        *backup_imports.ROUTES,
        *project_datasets.ROUTES,
        *rooms.ROUTES,
        *background_requests.ROUTES,
        *analytics.ROUTES,
        *client_events.ROUTES,
        *webhooks.ROUTES,
        *share.ROUTES,
        *cloud_storages.ROUTES,
        *pages.ROUTES,
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
    app.state.oidc = oidc.OidcProviders(settings.oidc_providers)
    app.state.requests = request_log
    app.state.jobs = JobReader(runtime.store, runtime.pool, runtime.writer.views)
    app.state.quality = ProjectionFollower(
        ProjectionRunner(
            runtime.store, runtime.pool, QualityProjection(runtime.store, app.state.jobs)
        ),
        runtime.database_url,
        lock_keys.QUALITY,
    )
    app.state.hub = hub
    app.state.webhooks = dispatcher
    app.state.background = set()
    app.state.work_queue = None
    app.state.media = MediaLibrary(
        MediaCache(runtime.settings.data_dir / "cache", runtime.settings.media_cache_bytes)
    )
    return app
