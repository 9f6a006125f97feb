"""The durable fan-out: follows the notification log and publishes every event to JetStream.

"Exactly once" means the stream holds one message per event, in log order, with no gaps:

- each message carries `Nats-Msg-Id` = its notification id, so JetStream drops a re-publish
  within the duplicate window;
- each also carries `Nats-Expected-Last-Sequence` = the stream sequence the relay believes is
  last, so JetStream refuses a message whose predecessor was lost (NATS restarting mid-batch,
  a second publisher) instead of storing it after a gap;
- after any failure the relay reads the stream's last message back and resumes after its id
  (`projection_tracking` row `relay:<stream>` is the fallback when that message has expired);
- one relay publishes at a time: it holds a PostgreSQL advisory lock while it runs.

Edits never wait on NATS: the relay only reads the log, beside the writer. Blocking database
work runs in worker threads, so the relay may share the web server's event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Any, NamedTuple
from uuid import UUID

import nats
import nats.errors
import nats.js.errors
import structlog
from eventsourcing.persistence import Notification
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import PubAck, RetentionPolicy, StreamConfig
from psycopg_pool import ConnectionPool

from core.jobs import Job
from core.projects import Project
from core.tasks import Task
from infra import lock_keys
from infra.store import Palimpsest
from projections.envelope import SUBJECT_PREFIX, Scope, build_envelope, decode, encode, subject_for
from projections.jetstream_publishing import (
    Backoff,
    NatsUnavailable,
    Pipeline,
    cancel_all,
    failure,
    retrieve_all,
)
from projections.leader_lock import LeaderLock, LeadershipLost

log = structlog.get_logger(__name__)

STREAM_NAME = "PALIMPSEST_EVENTS"
RELAY_LOCK_KEY = lock_keys.RELAY
MIN_DUPLICATE_WINDOW = 120.0
MSG_ID = "Nats-Msg-Id"
EXPECTED_LAST_SEQUENCE = "Nats-Expected-Last-Sequence"
DEFAULT_MAX_PAYLOAD = 1024 * 1024
SCOPED_AGGREGATES = frozenset({"Project", "Task", "Job"})
CREATED_EVENTS = (Project.Created, Task.Created, Job.Created)
CATALOG_SCOPE_QUERIES = {
    "Project": "SELECT (doc->>'organization_id')::int, id, NULL::int, NULL::int"
    " FROM catalog_projects WHERE uuid = %s",
    "Task": "SELECT (doc->>'organization_id')::int, project_id, id, NULL::int"
    " FROM catalog_tasks WHERE uuid = %s",
    "Job": "SELECT (doc->>'organization')::int, (doc->>'project_id')::int, task_id, id"
    " FROM catalog_jobs WHERE uuid = %s",
}
SAVE_TRACKING = (
    "INSERT INTO projection_tracking (name, position) VALUES (%s, %s)"
    " ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position"
)


class Outgoing(NamedTuple):
    notification_id: int
    subject: str
    data: bytes


def aggregate_name(event: object) -> str:
    """The name of the aggregate class owning the event class: Job for Job.Deleted."""
    return type(event).__qualname__.split(".", 1)[0]


class ScopeResolver:
    """Finds the organization/project/task/job ids of an event's aggregate (worker thread).

    Created events carry the ids; later events are looked up in the catalog, and for an
    entity whose row is gone (deleted, or the catalog still behind), in its Created event.
    Ids never change (tasks cannot move between projects), so answers are cached (LRU).
    """

    def __init__(self, app: Palimpsest, pool: ConnectionPool, capacity: int = 100_000) -> None:
        self._app = app
        self._pool = pool
        self._capacity = capacity
        self._known: OrderedDict[UUID, Scope] = OrderedDict()

    def scope(self, event: Any) -> Scope:
        aggregate = aggregate_name(event)
        if aggregate not in SCOPED_AGGREGATES:
            return Scope()
        if isinstance(event, CREATED_EVENTS):
            scope = self._from_created(event)
            self._remember(event.originator_id, scope)
            return scope
        return self._lookup(aggregate, event.originator_id)

    def _lookup(self, aggregate: str, stream: UUID) -> Scope:
        cached = self._known.get(stream)
        if cached is not None:
            self._known.move_to_end(stream)
            return cached
        scope = self._from_catalog(aggregate, stream) or self._from_store(stream)
        if scope is None:
            log.warning("relay found no ids for a stream", aggregate=aggregate, stream=str(stream))
            return Scope()
        self._remember(stream, scope)
        return scope

    def _remember(self, stream: UUID, scope: Scope) -> None:
        self._known[stream] = scope
        self._known.move_to_end(stream)
        while len(self._known) > self._capacity:
            self._known.popitem(last=False)

    def _from_created(self, event: Any) -> Scope:
        if isinstance(event, Project.Created):
            return Scope(event.organization_id, event.project_id)
        if isinstance(event, Task.Created):
            return Scope(event.organization_id, event.project_id, event.task_id)
        task = self._lookup("Task", Task.stream_id(event.task_id))
        return Scope(task.organization_id, task.project_id, event.task_id, event.job_id)

    def _from_catalog(self, aggregate: str, stream: UUID) -> Scope | None:
        with self._pool.connection() as conn:
            row = conn.execute(CATALOG_SCOPE_QUERIES[aggregate], (stream,)).fetchone()
        return Scope(*row) if row else None

    def _from_store(self, stream: UUID) -> Scope | None:
        stored = self._app.recorder.select_events(stream, lte=1, limit=1)
        if not stored:
            return None
        created = self._app.mapper.to_domain_event(stored[0])
        return self._from_created(created) if isinstance(created, CREATED_EVENTS) else None


class Relay:
    """Publishes the notification log to a JetStream stream, exactly once, in order.

    Run it with `await relay.run()` (until `await relay.stop()`), in one event loop.
    `position` is the last notification id JetStream has acknowledged.
    """

    def __init__(
        self,
        app: Palimpsest,
        pool: ConnectionPool,
        nats_url: str | list[str],
        *,
        stream: str = STREAM_NAME,
        subject_prefix: str = SUBJECT_PREFIX,
        retention: RetentionPolicy = RetentionPolicy.LIMITS,
        max_age: float | None = None,
        max_bytes: int | None = None,
        max_msgs: int | None = None,
        duplicate_window: float = MIN_DUPLICATE_WINDOW,
        batch_size: int = 256,
        poll_interval: float = 0.1,
        ack_timeout: float = 5.0,
        lock_key: int = RELAY_LOCK_KEY,
        lock_retry: float = 1.0,
        lock_check_interval: float = 2.0,
        reconnect_wait: float = 0.25,
        conninfo: str | None = None,
    ) -> None:
        if duplicate_window < MIN_DUPLICATE_WINDOW:
            raise ValueError(f"duplicate_window must be at least {MIN_DUPLICATE_WINDOW} s")
        if max_age is not None and max_age < duplicate_window:
            raise ValueError("max_age must not be shorter than duplicate_window")
        self._app = app
        self._pool = pool
        self._servers = nats_url
        self._stream = stream
        self._prefix = subject_prefix
        self._stream_limits: dict[str, Any] = {
            "subjects": [f"{subject_prefix}.>"],
            "retention": retention,
            "max_age": max_age or 0.0,
            "max_bytes": max_bytes if max_bytes is not None else -1,
            "max_msgs": max_msgs if max_msgs is not None else -1,
            "duplicate_window": duplicate_window,
        }
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._ack_timeout = ack_timeout
        self._lock = LeaderLock(conninfo or str(pool.conninfo), lock_key)
        self._lock_retry = lock_retry
        self._lock_check_interval = lock_check_interval
        self._reconnect_wait = reconnect_wait
        self._resolver = ScopeResolver(app, pool)
        self._tracking_name = f"relay:{stream}"
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._pipeline: Pipeline | None = None
        self._max_payload = DEFAULT_MAX_PAYLOAD
        self._position = 0
        self._last_seq: int | None = None  # None: read the stream back before publishing
        self._lock_checked = 0.0
        self._failing_since: float | None = None
        self._stop_requested = False
        self._closing = False
        self._nudge = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self.published = 0  # messages this instance stored (not counting duplicates)
        self.leading = False

    @property
    def position(self) -> int:
        """The last notification id acknowledged by JetStream."""
        return self._position

    async def run(self) -> None:
        """Leads when it gets the lock, waits otherwise; returns after `stop()`."""
        self._task = asyncio.current_task()
        self._loop = asyncio.get_running_loop()
        try:
            while not self._stop_requested:
                try:
                    await self._lead_when_free()
                except Exception:  # never seen; keep the relay alive all the same
                    log.exception("relay failed unexpectedly", stream=self._stream)
                    await self._sleep(self._lock_retry)
        finally:
            self.leading = False
            await self._close_nats()
            await self._lock.release()
            log.info("relay stopped", stream=self._stream, position=self._position)

    async def stop(self, grace: float = 2.0) -> None:
        """Asks run() to return; cancels it if it does not within `grace` seconds."""
        self._stop_requested = True
        self._nudge.set()
        task = self._task
        if task is None or task.done() or task is asyncio.current_task():
            return
        done, _ = await asyncio.wait({task}, timeout=grace)
        if not done:
            task.cancel()
            await asyncio.wait({task})

    def nudge(self) -> None:
        """Look at the log now rather than at the next poll (callable from any thread)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._nudge.set)

    # Leading

    async def _lead_when_free(self) -> None:
        if await self._lock.try_acquire():
            await self._lead()
        else:
            await self._sleep(self._lock_retry)

    async def _lead(self) -> None:
        log.info("relay leads", stream=self._stream, lock_key=self._lock.key)
        self.leading = True
        self._last_seq = None  # another relay may have published meanwhile
        self._lock_checked = time.monotonic()
        backoff = Backoff()
        try:
            while not self._stop_requested:
                await self._check_lock()
                try:
                    count = await self._step()
                except Exception as error:
                    self._failed(error)
                    await self._sleep(backoff.next())
                    continue
                self._recovered()
                backoff.reset()
                if count == 0:
                    await self._sleep(self._poll_interval)
        except LeadershipLost as error:
            log.warning("relay lost its lock", error=str(error))
        finally:
            self.leading = False
            await self._lock.release()

    async def _check_lock(self) -> None:
        now = time.monotonic()
        if now - self._lock_checked >= self._lock_check_interval:
            await self._lock.check()
            self._lock_checked = now

    async def _step(self) -> int:
        """Publishes the next batch of the log; returns how many events it read."""
        js, pipeline = await self._jetstream()
        if self._last_seq is None:
            await self._resync(js)
        batch = await asyncio.to_thread(self._read, self._position + 1)
        if not batch:
            return 0
        before = self._position
        await self._publish(pipeline, batch)
        if self._position > before:
            await asyncio.to_thread(self._save_tracking, self._position)
        return len(batch)

    def _failed(self, error: Exception) -> None:
        self._last_seq = None
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            log.warning(
                "relay paused", stream=self._stream, position=self._position, error=repr(error)
            )
        else:
            log.debug("relay still failing", error=repr(error))

    def _recovered(self) -> None:
        if self._failing_since is not None:
            outage = time.monotonic() - self._failing_since
            self._failing_since = None
            log.info("relay resumed", stream=self._stream, position=self._position, outage=outage)

    # Reading the log (worker thread)

    def _read(self, start: int) -> list[Outgoing]:
        notifications = self._app.recorder.select_notifications(start, self._batch_size)
        return [self._outgoing(notification) for notification in notifications]

    def _outgoing(self, notification: Notification) -> Outgoing:
        event = self._app.mapper.to_domain_event(notification)
        envelope = build_envelope(notification.id, event, self._resolver.scope(event))
        data = encode(envelope, self._max_payload - 1024)  # room for the headers
        return Outgoing(notification.id, subject_for(envelope, self._prefix), data)

    def _save_tracking(self, position: int) -> None:
        with self._pool.connection() as conn:
            conn.execute(SAVE_TRACKING, (self._tracking_name, position))

    def _tracked_position(self) -> int:
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT position FROM projection_tracking WHERE name = %s",
                (self._tracking_name,),
            ).fetchone()
        return int(row[0]) if row else 0

    # NATS

    async def _jetstream(self) -> tuple[JetStreamContext, Pipeline]:
        if self._nc is None or self._nc.is_closed:
            await self._connect()
        assert self._nc is not None and self._js is not None and self._pipeline is not None
        if not self._nc.is_connected:
            raise NatsUnavailable("NATS is reconnecting")
        return self._js, self._pipeline

    async def _connect(self) -> None:
        log.info("relay connecting to NATS", servers=self._servers)
        self._nc = await nats.connect(
            self._servers,
            name=f"palimpsest-relay-{self._stream}",
            allow_reconnect=True,
            max_reconnect_attempts=-1,  # also retries the first connect, until stop()
            reconnect_time_wait=self._reconnect_wait,  # type: ignore[arg-type]
            connect_timeout=2,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
            error_cb=self._on_error,
        )
        self._js = self._nc.jetstream(timeout=self._ack_timeout)
        self._pipeline = Pipeline(self._nc)
        self._max_payload = self._nc.max_payload or DEFAULT_MAX_PAYLOAD
        self._last_seq = None
        url = self._nc.connected_url
        log.info("relay connected to NATS", server=url.netloc if url else None)

    async def _on_disconnected(self) -> None:
        if self._closing:
            return
        log.warning("relay disconnected from NATS", stream=self._stream)

    async def _on_reconnected(self) -> None:
        self._last_seq = None
        self._nudge.set()
        log.info("relay reconnected to NATS", stream=self._stream)

    async def _on_error(self, error: Exception) -> None:
        log.debug("relay NATS client error", error=repr(error))

    async def _close_nats(self) -> None:
        nc, self._nc, self._js, self._pipeline = self._nc, None, None, None
        if nc is None or nc.is_closed:
            return
        self._closing = True
        try:
            await asyncio.wait_for(nc.close(), timeout=self._ack_timeout)
        except Exception as error:  # closing is best effort
            log.debug("relay NATS close failed", error=repr(error))
        finally:
            self._closing = False

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        try:
            info = await js.stream_info(self._stream)
        except nats.js.errors.NotFoundError:
            config = StreamConfig(name=self._stream, **self._stream_limits)
            await js.add_stream(config)
            log.info("relay created its stream", stream=self._stream, **self._stream_limits)
            return
        assert info.config is not None
        changed = {
            key: value
            for key, value in self._stream_limits.items()
            if getattr(info.config, key) != value
        }
        if changed:
            await js.update_stream(info.config.evolve(**changed))
            log.info("relay updated its stream", stream=self._stream, **changed)

    async def _resync(self, js: JetStreamContext) -> None:
        """Reads back where the stream ends: its last sequence and notification id."""
        await self._ensure_stream(js)
        info = await js.stream_info(self._stream)
        last_seq = info.state.last_seq
        self._position = await self._position_at(js, last_seq) if last_seq else 0
        self._last_seq = last_seq
        log.info("relay resumes", stream=self._stream, last_seq=last_seq, position=self._position)
        log_end = await asyncio.to_thread(self._app.recorder.max_notification_id) or 0
        if self._position > log_end:
            log.error(
                "relay stream is ahead of the log (another database?); waiting for the log",
                stream=self._stream,
                position=self._position,
                log_end=log_end,
            )

    async def _position_at(self, js: JetStreamContext, seq: int) -> int:
        try:
            msg = await js.get_msg(self._stream, seq=seq)
        except nats.js.errors.NotFoundError:
            position = await asyncio.to_thread(self._tracked_position)
            log.warning(
                "relay stream's last message is gone, using the tracked position",
                stream=self._stream,
                last_seq=seq,
                position=position,
            )
            return position
        if msg.headers and MSG_ID in msg.headers:
            return int(msg.headers[MSG_ID])
        assert msg.data is not None
        return decode(msg.data).notification_id

    async def _publish(self, pipeline: Pipeline, batch: list[Outgoing]) -> None:
        """Publishes a batch without waiting in between, then settles the acks in order."""
        assert self._last_seq is not None
        futures: list[asyncio.Future[PubAck]] = []
        try:
            for offset, item in enumerate(batch):
                headers = {
                    MSG_ID: str(item.notification_id),
                    EXPECTED_LAST_SEQUENCE: str(self._last_seq + offset),
                }
                futures.append(await pipeline.publish(item.subject, item.data, headers))
            _, pending = await asyncio.wait(futures, timeout=self._ack_timeout)
        except BaseException:
            cancel_all(futures)
            raise
        cancel_all(pending)
        try:
            self._settle(batch, futures)
        finally:
            retrieve_all(futures)

    def _settle(self, batch: list[Outgoing], futures: list[asyncio.Future[PubAck]]) -> None:
        """Advances over the acked prefix of the batch; on anything else, resyncs next step."""
        for item, future in zip(batch, futures, strict=True):
            error = failure(future)
            if error is not None:
                self._last_seq = None
                raise error
            ack = future.result()
            if ack.duplicate:  # stored before; the stream's end decides where to go on
                self._last_seq = None
                log.info("relay publish was a duplicate", notification_id=item.notification_id)
                return
            self._position = item.notification_id
            self._last_seq = ack.seq
            self.published += 1

    async def _sleep(self, seconds: float) -> None:
        """Sleeps, or less if stop() is called."""
        if self._stop_requested:
            return
        self._nudge.clear()
        try:
            await asyncio.wait_for(self._nudge.wait(), timeout=seconds)
        except TimeoutError:
            pass
