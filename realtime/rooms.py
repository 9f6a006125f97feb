"""Job rooms: who is connected to which job, live events in version order, coalesced presence.

Everything here runs on the event loop. Committed events arrive from the writer thread
through `Hub.committed`; each is encoded once per room and queued to every member in version
order. A member that joins registers first and buffers live frames while it catches up from
the log, then skips what it already got: no gap and no duplicate across a reconnect.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import structlog

from core.jobs import Job
from core.labels import PALETTE
from core.permissions import Principal
from realtime.frames import event_frame
from realtime.protocol import Member, PresenceUpdate, encoder

log = structlog.get_logger(__name__)

TICK = 0.05  # presence goes out at most once per tick (20 Hz)
SILENCE_LIMIT = 30.0  # a member that sent nothing for this long is dropped
RECENT_EVENTS = 2000  # encoded event frames a room keeps for members catching up
OUTBOX_LIMIT = 10_000  # frames queued to one member before it is dropped as too slow


@dataclass(eq=False)
class Connection:
    principal: Principal
    job_id: int
    session: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    outbox: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    sent_version: int = 0
    joining: bool = True
    pending: list[tuple[int, bytes]] = field(default_factory=list)
    last_seen: float = field(default_factory=time.monotonic)
    member: Member | None = None

    def send(self, frame: bytes) -> None:
        if self.outbox.qsize() >= OUTBOX_LIMIT:
            self.close()
            return
        self.outbox.put_nowait(frame)

    def send_event(self, version: int, frame: bytes) -> None:
        if self.joining:
            self.pending.append((version, frame))
        elif version > self.sent_version:
            self.sent_version = version
            self.send(frame)

    def caught_up(self, version: int) -> None:
        """The catch-up sent everything up to `version`; release what arrived meanwhile."""
        self.sent_version = max(self.sent_version, version)
        self.joining = False
        pending, self.pending = self.pending, []
        for event_version, frame in sorted(pending, key=lambda item: item[0]):
            self.send_event(event_version, frame)

    def close(self) -> None:
        self.outbox.put_nowait(None)


@dataclass(eq=False)
class Room:
    job_id: int
    members: dict[str, Connection] = field(default_factory=dict)
    recent: deque[tuple[int, bytes]] = field(default_factory=lambda: deque(maxlen=RECENT_EVENTS))
    changed: set[str] = field(default_factory=set)
    left: list[str] = field(default_factory=list)
    version: int | None = None  # the last job version broadcast (or known when joining)
    remote: dict[str, tuple[Member, float]] = field(default_factory=dict)
    catching_up: bool = False

    def broadcast_event(self, version: int, frame: bytes) -> bool:
        """Sends the next event; False if it is not the next one (a gap: read the log)."""
        if self.version is not None and version <= self.version:
            return True  # already broadcast
        if self.version is not None and version != self.version + 1:
            return False
        self.version = version
        self.recent.append((version, frame))
        for connection in list(self.members.values()):
            connection.send_event(version, frame)
        return True

    def recent_since(self, version: int) -> list[tuple[int, bytes]] | None:
        """Frames after `version` if the room still holds all of them, else None."""
        if not self.recent or self.recent[0][0] > version + 1:
            return None
        return [(v, frame) for v, frame in self.recent if v > version]


LoadEvents = Callable[[int, int], list[Any]]  # (job id, after version) -> events in order
Publish = Callable[[str, dict[str, Any]], None]  # (subject kind, message) to other instances


class Hub:
    def __init__(self, load_events: LoadEvents) -> None:
        self.rooms: dict[int, Room] = {}
        self._streams: dict[uuid.UUID, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._load_events = load_events
        self.publish: Publish | None = None  # set when other instances listen (NATS)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._ticker = asyncio.create_task(self._tick())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        for room in self.rooms.values():
            for connection in room.members.values():
                connection.close()

    # Membership

    def join(self, connection: Connection) -> Room:
        room = self.rooms.get(connection.job_id)
        if room is None:
            room = self.rooms[connection.job_id] = Room(connection.job_id)
            self._streams[Job.stream_id(connection.job_id)] = connection.job_id
        connection.member = Member(
            session=connection.session,
            user_id=connection.principal.id,
            username=connection.principal.username,
            color=PALETTE[connection.principal.id % len(PALETTE)],
        )
        room.members[connection.session] = connection
        room.changed.add(connection.session)
        return room

    def leave(self, connection: Connection) -> None:
        room = self.rooms.get(connection.job_id)
        if room is None or room.members.pop(connection.session, None) is None:
            return
        room.changed.discard(connection.session)
        room.left.append(connection.session)
        if not room.members:
            del self.rooms[connection.job_id]
            self._streams.pop(Job.stream_id(connection.job_id), None)

    def members(self, job_id: int) -> list[Member]:
        room = self.rooms.get(job_id)
        if room is None:
            return []
        local = [c.member for c in room.members.values() if c.member is not None]
        return local + [member for member, _ in room.remote.values()]

    def touch(self, connection: Connection, **presence: Any) -> None:
        connection.last_seen = time.monotonic()
        if presence and connection.member is not None:
            for name, value in presence.items():
                setattr(connection.member, name, value)
            room = self.rooms.get(connection.job_id)
            if room is not None:
                room.changed.add(connection.session)

    # Events

    def committed(self, events: Iterable[Any]) -> None:
        """From the writer thread, after a commit: queue the job events for their rooms."""
        jobs = [e for e in events if isinstance(e, Job.Event) and e.originator_id in self._streams]
        if jobs and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._broadcast, jobs)

    def _broadcast(self, events: list[Job.Event]) -> None:
        behind: set[int] = set()
        for event in sorted(events, key=lambda e: e.originator_version):
            job_id = self._streams.get(event.originator_id)
            room = self.rooms.get(job_id) if job_id is not None else None
            if room is None or job_id in behind:
                continue
            frame = encoder.encode(event_frame(event))
            if not room.broadcast_event(event.originator_version, frame):
                behind.add(room.job_id)
        for job_id in behind:
            self.read_log(job_id)
        if self.publish is not None:
            latest: dict[int, int] = {}
            for event in events:
                job_id = self._streams.get(event.originator_id)
                if job_id is not None:
                    latest[job_id] = max(latest.get(job_id, 0), event.originator_version)
            for job_id, version in latest.items():
                self.publish("live", {"job": job_id, "version": version})

    def remote_version(self, job_id: int, version: int) -> None:
        """Another instance committed `version` of a job: read it from the log, in order."""
        room = self.rooms.get(job_id)
        if room is not None and (room.version is None or version > room.version):
            self.read_log(job_id)

    def read_log(self, job_id: int) -> None:
        room = self.rooms.get(job_id)
        if room is None or room.catching_up:
            return
        room.catching_up = True
        asyncio.get_running_loop().create_task(self._read_log(room))

    async def _read_log(self, room: Room) -> None:
        try:
            while room.version is not None:
                events = await asyncio.to_thread(self._load_events, room.job_id, room.version)
                if not events:
                    return
                for event in events:
                    frame = encoder.encode(event_frame(event))
                    room.broadcast_event(event.originator_version, frame)
        finally:
            room.catching_up = False

    # Presence

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            now = time.monotonic()
            for room in list(self.rooms.values()):
                self._drop_silent(room, now)
                self._send_presence(room)

    def _drop_silent(self, room: Room, now: float) -> None:
        for session, (_, seen) in list(room.remote.items()):
            if now - seen > SILENCE_LIMIT:
                del room.remote[session]
                room.left.append(session)
        for connection in list(room.members.values()):
            if now - connection.last_seen > SILENCE_LIMIT:
                log.info("dropping a silent member", session=connection.session)
                connection.close()
                self.leave(connection)

    def remote_presence(self, job_id: int, members: list[Member], left: list[str]) -> None:
        """Members of this job's room connected to another instance moved or left."""
        room = self.rooms.get(job_id)
        if room is None:
            return
        now = time.monotonic()
        for member in members:
            room.remote[member.session] = (member, now)
            room.changed.add(member.session)
        for session in left:
            if room.remote.pop(session, None) is not None:
                room.left.append(session)

    def _send_presence(self, room: Room) -> None:
        if not room.changed and not room.left:
            return
        local = [
            c.member for s, c in room.members.items() if s in room.changed and c.member is not None
        ]
        remote = [m for s, (m, _) in room.remote.items() if s in room.changed]
        if self.publish is not None and (local or room.left):
            local_left = [s for s in room.left if s not in room.remote]
            self.publish(
                "presence",
                {"job": room.job_id, "members": msgspec.to_builtins(local), "left": local_left},
            )
        frame = encoder.encode(PresenceUpdate(members=local + remote, left=list(room.left)))
        room.changed.clear()
        room.left.clear()
        for connection in room.members.values():
            if not connection.joining:
                connection.send(frame)
