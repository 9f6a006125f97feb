"""Publishing to JetStream in a pipeline, with refusals surfaced, and retry pacing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import PubAck


class NatsUnavailable(Exception):
    """The NATS connection is down (the client is reconnecting)."""


class PublishRefused(Exception):
    """JetStream answered a publish with an error (e.g. 10071 wrong last sequence)."""


class Pipeline:
    """Publishes to JetStream without waiting in between; one future per ack, in send order.

    nats-py's `publish_async` never settles the future of a refused publish (its reply
    handler raises instead), so a refusal would look like a timeout; this resolves it.
    """

    def __init__(self, nc: NatsClient) -> None:
        self._nc = nc
        self._prefix = f"{nc.new_inbox()}."
        self._futures: dict[str, asyncio.Future[PubAck]] = {}
        self._counter = 0
        self._sub: Subscription | None = None

    async def publish(
        self, subject: str, data: bytes, headers: dict[str, str]
    ) -> asyncio.Future[PubAck]:
        if self._sub is None:
            self._sub = await self._nc.subscribe(f"{self._prefix}*", cb=self._on_reply)
        self._counter += 1
        token = str(self._counter)
        future: asyncio.Future[PubAck] = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda _: self._futures.pop(token, None))
        self._futures[token] = future
        await self._nc.publish(subject, data, reply=self._prefix + token, headers=headers)
        return future

    async def _on_reply(self, msg: Msg) -> None:
        future = self._futures.get(msg.subject[len(self._prefix) :])
        if future is None or future.done():
            return
        if msg.headers and msg.headers.get("Status") == "503":
            future.set_exception(NatsUnavailable("no JetStream stream answered"))
            return
        try:
            reply = json.loads(msg.data)
        except ValueError as error:
            future.set_exception(PublishRefused(f"unreadable ack: {error}"))
            return
        if "error" in reply:
            future.set_exception(PublishRefused(str(reply["error"])))
        else:
            future.set_result(PubAck.from_response(reply))


class Backoff:
    def __init__(self, first: float = 0.1, most: float = 5.0) -> None:
        self._first = first
        self._most = most
        self._next = first

    def next(self) -> float:
        delay, self._next = self._next, min(self._next * 2, self._most)
        return delay

    def reset(self) -> None:
        self._next = self._first


def cancel_all(futures: Any) -> None:
    for future in futures:
        if not future.done():
            future.cancel()


def retrieve_all(futures: list[asyncio.Future[PubAck]]) -> None:
    """Marks every failed ack as seen (asyncio logs failures nobody looked at)."""
    for future in futures:
        if future.done() and not future.cancelled():
            future.exception()


def failure(future: asyncio.Future[Any]) -> Exception | None:
    if future.cancelled():
        return TimeoutError("no ack from JetStream in time")
    error = future.exception()
    if error is None:
        return None
    return error if isinstance(error, Exception) else RuntimeError(repr(error))
