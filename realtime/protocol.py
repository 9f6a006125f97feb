"""The job-room websocket protocol: every frame a client may send or receive.

Frames are JSON objects with a `type`. A client sends `hello` first (with the last job
version it saw), then commands (`create`, `update`, `delete`, `undo`, `redo`), `presence`
and `ping`. The server answers `welcome`, then the events the client missed, then live
`event` frames in version order; each command gets an `ack` or a `reject`; `presence` frames
say who is in the room; a frame the server cannot read gets an `error`.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from core.annotations import Shape, Tag, Track


class Hello(msgspec.Struct, tag="hello", forbid_unknown_fields=True):
    since: int | None = None  # the last job version the client has; None: send a snapshot


class Create(msgspec.Struct, tag="create"):
    cid: str  # the client's command id: a retry with the same id writes nothing twice
    tags: list[Tag] = []
    shapes: list[Shape] = []
    tracks: list[Track] = []


class Update(msgspec.Struct, tag="update"):
    cid: str
    kind: Literal["tag", "shape", "track"]
    id: int
    base: int  # the job version at which the client last saw this object
    changes: dict[str, Any]  # only the fields the client changed


class Target(msgspec.Struct):
    kind: Literal["tag", "shape", "track"]
    id: int
    base: int | None = None


class Delete(msgspec.Struct, tag="delete"):
    cid: str
    objects: list[Target]


class Undo(msgspec.Struct, tag="undo"):
    cid: str


class Redo(msgspec.Struct, tag="redo"):
    cid: str


class Presence(msgspec.Struct, tag="presence"):
    """Only the fields sent change; an explicit null clears one (e.g. nothing selected)."""

    frame: int | None | msgspec.UnsetType = msgspec.UNSET
    cursor: tuple[float, float] | None | msgspec.UnsetType = msgspec.UNSET
    selected: int | None | msgspec.UnsetType = msgspec.UNSET
    tool: str | None | msgspec.UnsetType = msgspec.UNSET


class Ping(msgspec.Struct, tag="ping"):
    pass


ClientFrame = Hello | Create | Update | Delete | Undo | Redo | Presence | Ping
COMMANDS = (Create, Update, Delete, Undo, Redo)


class Member(msgspec.Struct):
    session: str
    user_id: int
    username: str
    color: str
    frame: int | None = None
    cursor: tuple[float, float] | None = None
    selected: int | None = None
    tool: str | None = None


class Welcome(msgspec.Struct, tag="welcome"):
    session: str
    job: int
    version: int
    you: Member
    members: list[Member]


class Snapshot(msgspec.Struct, tag="snapshot"):
    version: int
    tags: list[Tag]
    shapes: list[Shape]
    tracks: list[Track]
    revisions: dict[int, int]  # object id -> the job version it last changed at


class Event(msgspec.Struct, tag="event"):
    version: int
    name: str  # AnnotationsCreated, AnnotationsUpdated, AnnotationsDeleted, Updated, ...
    actor: int | None
    cid: str | None
    time: str
    data: dict[str, Any]


class Ack(msgspec.Struct, tag="ack"):
    cid: str
    version: int  # the job version after the command (or when it was first applied)
    result: dict[str, Any] = {}
    duplicate: bool = False


class Reject(msgspec.Struct, tag="reject"):
    cid: str
    reason: Literal["conflict", "invalid", "not_found", "forbidden", "nothing_to_undo", "error"]
    detail: str
    fields: dict[str, list[str]] = {}
    current: dict[str, Any] | None = None  # the object as it is now, on a conflict
    version: int | None = None


class PresenceUpdate(msgspec.Struct, tag="presence"):
    members: list[Member]
    left: list[str] = []


class Error(msgspec.Struct, tag="error"):
    detail: str


class Pong(msgspec.Struct, tag="pong"):
    pass


ServerFrame = Welcome | Snapshot | Event | Ack | Reject | PresenceUpdate | Error | Pong

client_decoder = msgspec.json.Decoder(ClientFrame)
encoder = msgspec.json.Encoder()
