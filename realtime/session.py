"""One client in a job room: its hello and catch-up, its commands, its presence."""

from __future__ import annotations

from typing import Any

import msgspec
import structlog
from starlette.concurrency import run_in_threadpool

from core.annotations import LabeledData
from core.errors import Conflict, DomainError, NotFound, PermissionDenied, ValidationFailed
from core.job_annotations import patch_annotations
from core.jobs import Job
from core.object_edits import EditConflict, delete_objects, edit_object
from core.undo import NothingToUndo, redo, undo
from infra.job_reads import JobReader
from infra.runtime import Runtime
from infra.writer import AlreadyDone
from realtime.frames import event_frame
from realtime.protocol import (
    Ack,
    ClientFrame,
    Create,
    Delete,
    Error,
    Hello,
    Ping,
    Pong,
    Presence,
    Redo,
    Reject,
    Snapshot,
    Undo,
    Update,
    Welcome,
    client_decoder,
    encoder,
)
from realtime.rooms import Connection, Hub

log = structlog.get_logger(__name__)

CATCH_UP_LIMIT = 5000  # more missed events than this and a snapshot is cheaper


class RoomSession:
    def __init__(self, runtime: Runtime, hub: Hub, reader: JobReader, connection: Connection):
        self.runtime = runtime
        self.hub = hub
        self.reader = reader
        self.connection = connection
        self.greeted = False

    async def receive(self, raw: str | bytes) -> None:
        """Handles one frame from the client; a bad frame gets an error frame, nothing else."""
        try:
            frame: ClientFrame = client_decoder.decode(raw)
        except msgspec.DecodeError as error:
            self._error(f"unreadable frame: {error}")
            return
        except msgspec.ValidationError as error:
            self._error(f"bad frame: {error}")
            return
        self.hub.touch(self.connection)
        if isinstance(frame, Hello):
            await self._hello(frame)
        elif not self.greeted:
            self._error("send hello first")
        elif isinstance(frame, Presence):
            self.hub.touch(self.connection, **_presence_fields(frame))
        elif isinstance(frame, Ping):
            self.connection.send(encoder.encode(Pong()))
        else:
            await self._command(frame)

    # Joining

    async def _hello(self, hello: Hello) -> None:
        if self.greeted:
            self._error("hello was sent already")
            return
        self.greeted = True
        room = self.hub.join(self.connection)
        version = await run_in_threadpool(self.reader.latest_version, self.connection.job_id)
        if room.version is None:
            room.version = version
        assert self.connection.member is not None
        self.connection.send(
            encoder.encode(
                Welcome(
                    session=self.connection.session,
                    job=self.connection.job_id,
                    version=version,
                    you=self.connection.member,
                    members=self.hub.members(self.connection.job_id),
                )
            )
        )
        since = hello.since
        if since is not None and version - since <= CATCH_UP_LIMIT and since <= version:
            recent = room.recent_since(since)
            frames = recent if recent is not None else await self._events_since(since)
            for event_version, frame in frames:
                self.connection.sent_version = event_version
                self.connection.send(frame)
            self.connection.caught_up(max([since, *(v for v, _ in frames)]))
        else:
            snapshot_version = await self._send_snapshot()
            self.connection.caught_up(snapshot_version)

    async def _events_since(self, since: int) -> list[tuple[int, bytes]]:
        stream = Job.stream_id(self.connection.job_id)

        def load() -> list[tuple[int, bytes]]:
            events = self.runtime.store.events.get(stream, gt=since)
            return [(e.originator_version, encoder.encode(event_frame(e))) for e in events]

        return await run_in_threadpool(load)

    async def _send_snapshot(self) -> int:
        version, state = await run_in_threadpool(self.reader.current, self.connection.job_id)
        snapshot = Snapshot(
            version=version,
            tags=list(state.tags.values()),
            shapes=list(state.shapes.values()),
            tracks=list(state.tracks.values()),
            revisions={ident: r.version for ident, r in state.revisions.items()},
        )
        self.connection.send(encoder.encode(snapshot))
        return version

    # Commands

    async def _command(self, frame: Any) -> None:
        cid = frame.cid
        principal = self.connection.principal
        job_id = self.connection.job_id
        command = _command_for(frame, principal, job_id)

        def run(unit: Any) -> tuple[Any, int]:
            result = command(unit)
            return result, unit.get(Job, job_id).version

        try:
            written = await self.runtime.execute(run, principal, cid, once_in=Job.stream_id(job_id))
        except AlreadyDone as done:
            self.connection.send(encoder.encode(Ack(cid=cid, version=done.version, duplicate=True)))
            return
        except EditConflict as conflict:
            self._reject(cid, "conflict", str(conflict), current=conflict, version=conflict.version)
            return
        except NothingToUndo as nothing:
            self._reject(cid, "nothing_to_undo", str(nothing))
            return
        except ValidationFailed as invalid:
            self._reject(cid, "invalid", str(invalid), fields=invalid.errors)
            return
        except NotFound as missing:
            self._reject(cid, "not_found", str(missing))
            return
        except PermissionDenied as denied:
            self._reject(cid, "forbidden", str(denied))
            return
        except (Conflict, DomainError) as error:
            self._reject(cid, "conflict", str(error))
            return
        result, version = written.value
        self.connection.send(
            encoder.encode(Ack(cid=cid, version=version, result=msgspec.to_builtins(result)))
        )

    def _reject(
        self,
        cid: str,
        reason: Any,
        detail: str,
        *,
        fields: dict[str, list[str]] | None = None,
        current: EditConflict | None = None,
        version: int | None = None,
    ) -> None:
        frame = Reject(
            cid=cid,
            reason=reason,
            detail=detail,
            fields=fields or {},
            current=msgspec.to_builtins(current.current) if current is not None else None,
            version=version,
        )
        self.connection.send(encoder.encode(frame))

    def _error(self, detail: str) -> None:
        self.connection.send(encoder.encode(Error(detail=detail)))


def _command_for(frame: Any, principal: Any, job_id: int) -> Any:
    if isinstance(frame, Create):
        data = LabeledData(tags=frame.tags, shapes=frame.shapes, tracks=frame.tracks)
        return lambda unit: patch_annotations(unit, principal, job_id, "create", data)
    if isinstance(frame, Update):
        return lambda unit: edit_object(
            unit, principal, job_id, frame.kind, frame.id, frame.base, frame.changes
        )
    if isinstance(frame, Delete):
        targets = [(t.kind, t.id, t.base) for t in frame.objects]
        return lambda unit: delete_objects(unit, principal, job_id, targets)
    if isinstance(frame, Undo):
        return lambda unit: undo(unit, principal, job_id)
    if isinstance(frame, Redo):
        return lambda unit: redo(unit, principal, job_id)
    raise TypeError(type(frame))


def _presence_fields(frame: Presence) -> dict[str, Any]:
    return {
        name: getattr(frame, name)
        for name in ("frame", "cursor", "selected", "tool")
        if getattr(frame, name) is not msgspec.UNSET
    }
