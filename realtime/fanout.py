"""Rooms across instances: job versions and presence over core NATS.

An instance that commits a job's events says so on `palimpsest.live.<job>`; the others read
the events from the log (so order and completeness come from Postgres, and a lost NATS
message only delays them until the next one). Presence goes on `palimpsest.presence.<job>`
and is never stored.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import msgspec
import nats
import structlog
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from realtime.protocol import Member
from realtime.rooms import Hub

log = structlog.get_logger(__name__)

PREFIX = "palimpsest"


class LiveMessage(msgspec.Struct):
    instance: str
    job: int
    version: int | None = None
    members: list[Member] = []
    left: list[str] = []


class LiveFanout:
    def __init__(self, hub: Hub, nats_url: str) -> None:
        self.hub = hub
        self.nats_url = nats_url
        self.instance = uuid.uuid4().hex[:12]
        self._client: NatsClient | None = None
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder(LiveMessage)

    async def start(self) -> None:
        self._client = await nats.connect(
            self.nats_url,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            error_cb=self._on_error,
        )
        await self._client.subscribe(f"{PREFIX}.live.*", cb=self._on_live)
        await self._client.subscribe(f"{PREFIX}.presence.*", cb=self._on_presence)
        self.hub.publish = self.publish

    async def stop(self) -> None:
        self.hub.publish = None
        if self._client is not None:
            await self._client.drain()

    def publish(self, kind: str, message: dict[str, Any]) -> None:
        """Called on the event loop by the hub; fire and forget (core NATS may drop)."""
        if self._client is None or not self._client.is_connected:
            return
        body = self._encoder.encode({"instance": self.instance, **message})
        subject = f"{PREFIX}.{kind}.{message['job']}"
        asyncio.get_running_loop().create_task(self._client.publish(subject, body))

    async def _on_live(self, msg: Msg) -> None:
        message = self._decode(msg)
        if message is not None and message.version is not None:
            self.hub.remote_version(message.job, message.version)

    async def _on_presence(self, msg: Msg) -> None:
        message = self._decode(msg)
        if message is not None:
            self.hub.remote_presence(message.job, message.members, message.left)

    def _decode(self, msg: Msg) -> LiveMessage | None:
        try:
            message = self._decoder.decode(msg.data)
        except msgspec.DecodeError:
            log.warning("unreadable live message", subject=msg.subject)
            return None
        return None if message.instance == self.instance else message

    async def _on_error(self, error: Exception) -> None:
        log.warning("nats live connection", error=str(error))
