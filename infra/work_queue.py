"""A JetStream work queue: jobs published to `<prefix>.<kind>` in a work-queue stream, each
taken by one worker of the kind's shared durable consumer.

A worker acks a job when it is done (succeeded, or failed for good) and, while it works,
tells JetStream every third of the ack wait that it still does. A worker that dies stops
telling; after the ack wait the job is delivered again, to any worker. A handler that could
not record any outcome (the database away) has the job delivered again after the ack wait.
The delivery after the last allowed attempt is not run: the handler is told, and marks the
request failed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import nats
import structlog
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError

from infra.settings import Settings

log = structlog.get_logger(__name__)

Handler = Callable[[bytes, int], Awaitable[None]]  # a job's message and its attempt number


@dataclass(frozen=True)
class QueueConfig:
    prefix: str = "palimpsest.work"
    ack_wait: float = 30.0  # seconds without word from a worker before its job goes again
    attempts: int = 3

    @classmethod
    def of(cls, settings: Settings) -> QueueConfig:
        return cls(settings.work_prefix, settings.work_ack_wait, settings.work_attempts)

    @property
    def stream(self) -> str:
        return self.prefix.upper().replace(".", "_").replace("-", "_")


class WorkQueue:
    def __init__(self, nats_url: str, config: QueueConfig) -> None:
        self._url = nats_url
        self.config = config
        self._nc: NatsClient | None = None

    async def start(self) -> WorkQueue:
        self._nc = await nats.connect(
            self._url, max_reconnect_attempts=-1, reconnect_time_wait=0.5, connect_timeout=5
        )
        js = self._nc.jetstream()
        stream = StreamConfig(
            name=self.config.stream,
            subjects=[f"{self.config.prefix}.>"],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
        )
        try:
            await js.add_stream(stream)
        except BadRequestError:  # made before with other settings: take the current ones
            await js.update_stream(stream)
        return self

    async def close(self) -> None:
        if self._nc is not None:
            await self._nc.close()

    async def submit(self, kind: str, message: bytes) -> None:
        assert self._nc is not None
        await self._nc.jetstream().publish(
            f"{self.config.prefix}.{kind}", message, stream=self.config.stream, timeout=5
        )

    async def work(self, kind: str, handle: Handler, stop: asyncio.Event) -> None:
        """Takes `kind` jobs one at a time and runs them until `stop` is set."""
        assert self._nc is not None
        subscription = await self._nc.jetstream().pull_subscribe(
            f"{self.config.prefix}.{kind}",
            durable=f"{kind}-workers",
            stream=self.config.stream,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=self.config.ack_wait,
                max_deliver=self.config.attempts + 1,
                max_ack_pending=-1,
            ),
        )
        while not stop.is_set():
            try:
                messages = await subscription.fetch(1, timeout=1)
            except TimeoutError:
                continue
            except Exception:
                log.warning("work queue fetch failed; retrying", kind=kind, exc_info=True)
                await asyncio.sleep(1)
                continue
            for message in messages:
                await self._run(message, handle)

    async def _run(self, message: Msg, handle: Handler) -> None:
        beat = asyncio.create_task(self._still_working(message))
        try:
            await handle(message.data, message.metadata.num_delivered)
        except Exception:  # the handler could not even record an outcome (database down?)
            log.exception("work queue job not handled; it goes again", subject=message.subject)
            await message.nak(delay=self.config.ack_wait)
            return
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
        await message.ack()

    async def _still_working(self, message: Msg) -> None:
        while True:
            await asyncio.sleep(self.config.ack_wait / 3)
            with contextlib.suppress(Exception):
                await message.in_progress()
