"""Webhook delivery: one more consumer of the event log, never in an edit's way.

The dispatcher runs in one server instance at a time (it holds a PostgreSQL advisory lock, as
the relay does) and does two things in turn:

- plans: follows the notification log from its `projection_tracking` row ("webhooks"); for
  each event some active webhook of the event's project or organization has chosen (an
  organization's webhooks hear everything it holds and its own membership, invitation and
  update events), it writes the payload
  into `webhook_outbox`, in the same transaction that moves the tracking row on, so every
  event is planned exactly once, whatever crashes;
- sends: POSTs due outbox rows concurrently (each with its own timeout, so a slow or dead
  receiver holds up only its own deliveries), records every attempt in `webhook_deliveries`,
  and retries failures (no answer, 5xx, 408, 429) with exponential backoff up to
  `max_attempts`. A send cut short by a crash is sent again: delivery is at least once.

It follows the log rather than JetStream so that it needs only PostgreSQL (and so runs
wherever the server does, NATS or not), and so that planning and the tracking position
commit together. Blocking database work runs in worker threads, the HTTP calls on the loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import httpx
import psycopg
import structlog
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from infra import lock_keys
from infra.store import Palimpsest
from projections.catalog import iso
from projections.leader_lock import LeaderLock, LeadershipLost
from projections.relay import ScopeResolver
from projections.webhook_payloads import (
    aggregate_before,
    build_payload,
    changed_fields,
    encode,
    organization_of,
    subjects_of,
)

log = structlog.get_logger(__name__)

WEBHOOK_LOCK_KEY = lock_keys.WEBHOOKS
TRACKING_NAME = "webhooks"
SIGNATURE_HEADER = "X-Signature-256"
RESPONSE_LIMIT = 64 * 1024  # bytes of a receiver's answer kept in the history; the rest is cut
BLOCK = 500
RETRYABLE = frozenset({408, 429})
NO_ANSWER = 502  # what an attempt records when the receiver cannot be reached, as CVAT does
TIMED_OUT = 504


def signature(secret: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of the body>`, CVAT's X-Signature-256 value."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def succeeded(status: int) -> bool:
    return status < 500 and status not in RETRYABLE


# Active webhooks by what they belong to: ("project", id) or ("organization", id).
Owner = tuple[str, int]


class Subscriber(NamedTuple):
    """An active webhook as the planner sees it."""

    webhook_id: int
    events: frozenset[str]
    since: int  # the log position of its Created event: it is sent only later events


@dataclass(frozen=True)
class Outgoing:
    """An outbox row due to be sent, with where and how."""

    outbox_id: int
    webhook_id: int
    event: str
    payload: str
    redelivery: bool
    attempt: int  # this attempt's number, from 1
    target_url: str
    enable_ssl: bool
    secret: str


@dataclass(frozen=True)
class Answer:
    status_code: int
    response: str
    duration_ms: int


class WebhookDispatcher:
    """Plans and sends webhook deliveries; run with `await run()` until `await stop()`."""

    def __init__(
        self,
        app: Palimpsest,
        pool: ConnectionPool,
        base_url: str,
        *,
        timeout: float = 10.0,
        max_attempts: int = 5,
        backoff: float = 1.0,
        concurrency: int = 32,
        poll_interval: float = 0.5,
        lock_key: int = WEBHOOK_LOCK_KEY,
        lock_retry: float = 1.0,
        lock_check_interval: float = 2.0,
    ) -> None:
        self._app = app
        self._pool = pool
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self.max_attempts = max_attempts
        self._backoff = backoff
        self._concurrency = concurrency
        self._poll_interval = poll_interval
        self._lock = LeaderLock(str(pool.conninfo), lock_key)
        self._lock_retry = lock_retry
        self._lock_check_interval = lock_check_interval
        self._resolver = ScopeResolver(app, pool)
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._clients: dict[bool, httpx.AsyncClient] = {}
        self._nudge = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self.leading = False

    # Running

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            while not self._stopping:
                try:
                    if await self._lock.try_acquire():
                        await self._lead()
                    else:
                        await self._sleep(self._lock_retry)
                except Exception:  # never seen; keep delivering all the same
                    log.exception("webhook dispatcher failed unexpectedly")
                    await self._sleep(self._lock_retry)
        finally:
            self.leading = False
            await self._lock.release()

    async def stop(self) -> None:
        self._stopping = True
        self._nudge.set()
        for task in list(self._in_flight.values()):
            task.cancel()
        await asyncio.gather(*self._in_flight.values(), return_exceptions=True)
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    def nudge(self) -> None:
        """Look at the log and the outbox now (callable from any thread)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._nudge.set)

    async def _lead(self) -> None:
        log.info("webhook dispatcher leads")
        self.leading = True
        checked = time.monotonic()
        try:
            while not self._stopping:
                if time.monotonic() - checked >= self._lock_check_interval:
                    await self._lock.check()
                    checked = time.monotonic()
                try:
                    planned = await asyncio.to_thread(self._plan_block)
                    started = await self._send_due()
                except (psycopg.Error, OSError) as error:
                    log.warning("webhook dispatcher paused", error=repr(error))
                    await self._sleep(self._lock_retry)
                    continue
                if not planned and not started:
                    await self._sleep(self._poll_interval)
        except LeadershipLost as error:
            log.warning("webhook dispatcher lost its lock", error=str(error))
        finally:
            self.leading = False
            await self._lock.release()

    async def _sleep(self, seconds: float) -> None:
        if self._stopping:
            return
        self._nudge.clear()
        try:
            await asyncio.wait_for(self._nudge.wait(), timeout=seconds)
        except TimeoutError:
            pass

    # On request: ping and redelivery

    async def send_now(
        self, webhook_id: int, event: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """Sends one payload at once, without retries (a ping); returns its delivery."""
        outgoing = await asyncio.to_thread(self._enqueue_sent, webhook_id, event, encode(payload))
        answer = await self.post(outgoing)
        return await asyncio.to_thread(self.record, outgoing, answer)

    def redeliver(self, webhook_id: int, delivery_id: int) -> bool:
        """Queues a delivery's payload again (worker thread); False if there is no such one."""
        with self._pool.connection() as conn:
            row = conn.execute(
                "INSERT INTO webhook_outbox (webhook_id, event, payload, redelivery)"
                " SELECT o.webhook_id, o.event, o.payload, true FROM webhook_deliveries d"
                " JOIN webhook_outbox o ON o.id = d.outbox_id"
                " WHERE d.id = %s AND d.webhook_id = %s RETURNING id",
                (delivery_id, webhook_id),
            ).fetchone()
        self.nudge()
        return row is not None

    def _enqueue_sent(self, webhook_id: int, event: str, payload: str) -> Outgoing:
        with self._pool.connection() as conn:
            target = conn.execute(
                "SELECT target_url, enable_ssl, secret FROM webhook_targets WHERE id = %s",
                (webhook_id,),
            ).fetchone()
            assert target is not None
            row = conn.execute(
                "INSERT INTO webhook_outbox (webhook_id, event, payload, done)"
                " VALUES (%s, %s, %s, true) RETURNING id",
                (webhook_id, event, payload),
            ).fetchone()
        assert row is not None
        return Outgoing(row[0], webhook_id, event, payload, False, 1, *target)

    # Planning (worker thread)

    def _plan_block(self) -> int:
        """Plans the next block of the log; returns how many events it read."""
        with self._pool.connection() as conn, conn.transaction():
            cur = conn.cursor()
            position = self._lock_tracking(cur)
            # Never ahead of the catalog: payloads and webhooks are read from it.
            cur.execute("SELECT position FROM projection_tracking WHERE name = 'catalog'")
            row = cur.fetchone()
            catalog_position = int(row[0]) if row else 0
            if position >= catalog_position:
                return 0
            hooks = self._active_webhooks(cur)
            if not hooks:  # nothing to plan for
                self._save_tracking(cur, catalog_position)
                return 0
            notifications = self._app.recorder.select_notifications(
                position + 1, BLOCK, stop=catalog_position
            )
            for notification in notifications:
                event = self._app.mapper.to_domain_event(notification)
                self._plan_event(cur, notification.id, event, hooks)
            if notifications:
                self._save_tracking(cur, notifications[-1].id)
            return len(notifications)

    def _plan_event(
        self,
        cur: psycopg.Cursor[Any],
        position: int,
        event: Any,
        hooks: dict[Owner, list[Subscriber]],
    ) -> None:
        scope = self._resolver.scope(event)
        org_id = organization_of(cur, event)
        if org_id is not None:
            scope = scope._replace(organization_id=org_id)
        listening = [
            *hooks.get(("project", scope.project_id or 0), []),
            *hooks.get(("organization", scope.organization_id or 0), []),
        ]
        if not listening:
            return
        before = aggregate_before(self._app, event)
        for subject in subjects_of(event, scope, before):
            chosen = [
                hook.webhook_id
                for hook in listening
                if subject.key in hook.events and position > hook.since
            ]
            if not chosen:
                continue
            payload = build_payload(cur, event, subject, self._base_url, before)
            if payload is None:
                continue
            for webhook_id in chosen:
                cur.execute(
                    "INSERT INTO webhook_outbox (webhook_id, event, payload) VALUES (%s, %s, %s)",
                    (webhook_id, subject.key, encode({**payload, "webhook_id": webhook_id})),
                )

    def _active_webhooks(self, cur: psycopg.Cursor[Any]) -> dict[Owner, list[Subscriber]]:
        """Active webhooks by the project or organization they belong to."""
        events_table = sql.Identifier(self._app.recorder.events_table_name)  # type: ignore[attr-defined]
        cur.execute(
            sql.SQL(
                "SELECT w.doc->>'type', COALESCE(w.project_id, w.organization_id), w.id,"
                " w.events, e.notification_id FROM catalog_webhooks w"
                " JOIN {} e ON e.originator_id = w.uuid AND e.originator_version = 1"
                " WHERE w.is_active"
            ).format(events_table)
        )
        hooks: dict[Owner, list[Subscriber]] = {}
        for kind, owner_id, webhook_id, events, since in cur.fetchall():
            if owner_id is None:
                continue
            hooks.setdefault((kind, owner_id), []).append(
                Subscriber(webhook_id, frozenset(events), since)
            )
        return hooks

    def _lock_tracking(self, cur: psycopg.Cursor[Any]) -> int:
        cur.execute(
            "INSERT INTO projection_tracking (name, position) VALUES (%s, 0)"
            " ON CONFLICT (name) DO NOTHING",
            (TRACKING_NAME,),
        )
        cur.execute(
            "SELECT position FROM projection_tracking WHERE name = %s FOR UPDATE",
            (TRACKING_NAME,),
        )
        row = cur.fetchone()
        assert row is not None
        return int(row[0])

    @staticmethod
    def _save_tracking(cur: psycopg.Cursor[Any], position: int) -> None:
        cur.execute(
            "UPDATE projection_tracking SET position = %s WHERE name = %s",
            (position, TRACKING_NAME),
        )

    # Sending

    async def _send_due(self) -> int:
        room = self._concurrency - len(self._in_flight)
        if room <= 0:
            return 0
        due = await asyncio.to_thread(self._due, room, list(self._in_flight))
        for outgoing in due:
            task = asyncio.create_task(self._deliver(outgoing))
            self._in_flight[outgoing.outbox_id] = task
            task.add_done_callback(lambda _, key=outgoing.outbox_id: self._finished(key))
        return len(due)

    def _finished(self, outbox_id: int) -> None:
        self._in_flight.pop(outbox_id, None)
        self._nudge.set()  # a retry may be due, and there is room for more

    async def _deliver(self, outgoing: Outgoing) -> None:
        try:
            answer = await self.post(outgoing)
            await asyncio.to_thread(self.record, outgoing, answer)
        except asyncio.CancelledError:
            raise
        except Exception:  # never seen; the row stays due and is tried again
            log.exception("webhook delivery failed", outbox_id=outgoing.outbox_id)

    def _due(self, limit: int, busy: list[int]) -> list[Outgoing]:
        with self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT o.id, o.webhook_id, o.event, o.payload, o.redelivery, o.attempts,"
                " w.target_url, w.enable_ssl, w.secret, w.is_active"
                " FROM webhook_outbox o LEFT JOIN webhook_targets w ON w.id = o.webhook_id"
                " WHERE NOT o.done AND o.next_attempt <= now() AND o.id <> ALL(%s)"
                " ORDER BY o.next_attempt, o.id LIMIT %s",
                (busy, limit),
            ).fetchall()
            gone = [row[0] for row in rows if not row[9]]
            if gone:  # deleted or deactivated since: as CVAT, sent to nobody
                conn.execute("UPDATE webhook_outbox SET done = true WHERE id = ANY(%s)", (gone,))
        return [
            Outgoing(row[0], row[1], row[2], row[3], row[4], row[5] + 1, row[6], row[7], row[8])
            for row in rows
            if row[9]
        ]

    async def post(self, outgoing: Outgoing) -> Answer:
        """One attempt: the signed POST and what came back (502/504 for no answer)."""
        body = outgoing.payload.encode()
        headers = {"Content-Type": "application/json"}
        if outgoing.secret:
            headers[SIGNATURE_HEADER] = signature(outgoing.secret, body)
        started = time.monotonic()
        client = self._client(outgoing.enable_ssl)
        try:
            async with client.stream(
                "POST", outgoing.target_url, content=body, headers=headers
            ) as response:
                text = await _read_limited(response)
                status = response.status_code
        except httpx.TimeoutException:
            status, text = TIMED_OUT, ""
        except httpx.HTTPError:
            status, text = NO_ANSWER, ""
        duration = int((time.monotonic() - started) * 1000)
        return Answer(status, text, duration)

    def _client(self, verify: bool) -> httpx.AsyncClient:
        client = self._clients.get(verify)
        if client is None:
            client = httpx.AsyncClient(
                timeout=self._timeout, verify=verify, follow_redirects=False, trust_env=False
            )
            self._clients[verify] = client
        return client

    def record(self, outgoing: Outgoing, answer: Answer) -> dict[str, Any]:
        """Writes the attempt into the history and settles the outbox row; returns the
        delivery's document."""
        now = iso(datetime.now(UTC))
        payload = json.loads(outgoing.payload)
        doc = {
            "event": outgoing.event,
            "status_code": answer.status_code,
            "redelivery": outgoing.redelivery,
            "attempt": outgoing.attempt,
            "request_duration": answer.duration_ms,
            "created_date": now,
            "updated_date": now,
            "changed_fields": changed_fields(payload),
            "request": payload,
            "response": answer.response,
        }
        finished = succeeded(answer.status_code) or outgoing.attempt >= self.max_attempts
        delay = self._backoff * 2 ** (outgoing.attempt - 1)
        with self._pool.connection() as conn, conn.transaction():
            row = conn.execute(
                "INSERT INTO webhook_deliveries (webhook_id, outbox_id, doc)"
                " VALUES (%s, %s, %s) RETURNING id",
                (outgoing.webhook_id, outgoing.outbox_id, Jsonb(doc)),
            ).fetchone()
            conn.execute(
                "UPDATE webhook_outbox SET attempts = %s, done = done OR %s,"
                " next_attempt = now() + make_interval(secs => %s) WHERE id = %s",
                (outgoing.attempt, finished, delay, outgoing.outbox_id),
            )
        assert row is not None
        return {"id": row[0], "webhook_id": outgoing.webhook_id, **doc}


async def _read_limited(response: httpx.Response) -> str:
    """The first RESPONSE_LIMIT bytes of the answer, as text; the rest is not read."""
    data = bytearray()
    async for chunk in response.aiter_bytes():
        data.extend(chunk)
        if len(data) >= RESPONSE_LIMIT:
            break
    return data[:RESPONSE_LIMIT].decode("utf-8", errors="replace")
