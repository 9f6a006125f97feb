"""Idempotency-Key: a retried write returns the first answer and writes nothing twice.

Keys are scoped to the user and kept 24 hours. The same key with a different request is
answered 422. A request still running under the key makes its retry wait for the answer.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from psycopg_pool import ConnectionPool
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from web.responses import json_response

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_HASHED_BODY = 10 * 1024 * 1024
WAIT_FOR_FIRST = 60.0
KEEP = "24 hours"


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp, pool: ConnectionPool) -> None:
        self.app = app
        self.pool = pool

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = _header(scope, b"idempotency-key")
        credentials = scope.get("state", {}).get("credentials")
        if (
            scope["type"] != "http"
            or scope["method"] not in UNSAFE_METHODS
            or not key
            or credentials is None
        ):
            await self.app(scope, receive, send)
            return
        user_id = credentials.principal.id
        body, receive = await _buffer(scope, receive)
        fingerprint = _fingerprint(scope, body)
        claimed = await run_in_threadpool(self._claim, user_id, key, fingerprint)
        if not claimed:
            await self._replay(scope, receive, send, user_id, key, fingerprint)
            return
        await self._run_and_store(scope, receive, send, user_id, key)

    async def _run_and_store(
        self, scope: Scope, receive: Receive, send: Send, user_id: int, key: str
    ) -> None:
        captured: dict[str, Any] = {"status": 500, "body": bytearray(), "type": None}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                for name, value in message.get("headers", []):
                    if name.lower() == b"content-type":
                        captured["type"] = value.decode()
            elif message["type"] == "http.response.body":
                captured["body"] += message.get("body", b"")
            await send(message)

        try:
            await self.app(scope, receive, capture)
        except BaseException:
            await run_in_threadpool(self._release, user_id, key)
            raise
        if captured["status"] >= 500:
            await run_in_threadpool(self._release, user_id, key)
        else:
            await run_in_threadpool(
                self._store, user_id, key, captured["status"], bytes(captured["body"]),
                captured["type"],
            )  # fmt: skip

    async def _replay(
        self, scope: Scope, receive: Receive, send: Send, user_id: int, key: str, fingerprint: str
    ) -> None:
        deadline = asyncio.get_running_loop().time() + WAIT_FOR_FIRST
        while True:
            row = await run_in_threadpool(self._load, user_id, key)
            if row is None:  # the first attempt failed and let go of the key: run this one
                if await run_in_threadpool(self._claim, user_id, key, fingerprint):
                    await self._run_and_store(scope, receive, send, user_id, key)
                    return
                continue
            stored_fingerprint, status, body, content_type = row
            if stored_fingerprint != fingerprint:
                response = json_response(
                    {"detail": "This Idempotency-Key was already used for a different request."},
                    status=422,
                )
                break
            if status is not None:
                response = json_response({}, status=status)
                response.body = body
                response.headers["content-length"] = str(len(body))
                if content_type:
                    response.headers["content-type"] = content_type
                response.headers["idempotent-replayed"] = "true"
                break
            if asyncio.get_running_loop().time() > deadline:
                response = json_response(
                    {"detail": "The first request with this Idempotency-Key is still running."},
                    status=409,
                )
                break
            await asyncio.sleep(0.05)
        await response(scope, receive, send)

    def _claim(self, user_id: int, key: str, fingerprint: str) -> bool:
        with self.pool.connection() as conn:
            conn.execute(
                f"DELETE FROM idempotency_keys WHERE created < now() - interval '{KEEP}'"
                " AND user_id = %s AND key = %s",
                (user_id, key),
            )
            cur = conn.execute(
                "INSERT INTO idempotency_keys (user_id, key, fingerprint) VALUES (%s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                (user_id, key, fingerprint),
            )
            return cur.rowcount == 1

    def _load(self, user_id: int, key: str) -> tuple[str, int | None, bytes, str | None] | None:
        with self.pool.connection() as conn:
            return conn.execute(
                "SELECT fingerprint, status, body, content_type FROM idempotency_keys"
                " WHERE user_id = %s AND key = %s",
                (user_id, key),
            ).fetchone()

    def _store(
        self, user_id: int, key: str, status: int, body: bytes, content_type: str | None
    ) -> None:
        with self.pool.connection() as conn:
            conn.execute(
                "UPDATE idempotency_keys SET status = %s, body = %s, content_type = %s"
                " WHERE user_id = %s AND key = %s",
                (status, body, content_type, user_id, key),
            )

    def _release(self, user_id: int, key: str) -> None:
        with self.pool.connection() as conn:
            conn.execute(
                "DELETE FROM idempotency_keys WHERE user_id = %s AND key = %s", (user_id, key)
            )


def _header(scope: Scope, name: bytes) -> str | None:
    for header, value in scope.get("headers", []):
        if header.lower() == name:
            return value.decode("latin-1").strip() or None
    return None


async def _buffer(scope: Scope, receive: Receive) -> tuple[bytes, Receive]:
    """Reads the whole body (to fingerprint it) and returns a receive that replays it."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


def _fingerprint(scope: Scope, body: bytes) -> str:
    digest = hashlib.sha256()
    digest.update(scope["method"].encode())
    digest.update(scope["path"].encode())
    digest.update(scope.get("query_string", b""))
    digest.update(body if len(body) <= MAX_HASHED_BODY else str(len(body)).encode())
    return digest.hexdigest()
