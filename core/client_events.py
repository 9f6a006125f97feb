"""Client events (CVAT's `POST /api/events`): what a user's browser or SDK reports it did.

Each accepted post is one event of its own stream, so client events are on the log like every
edit (and reach JetStream through the relay) without making any aggregate's history longer.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import msgspec

from core.aggregate import Entity
from core.commands import current_command
from core.errors import ErrorCollector
from core.units import Unit

# The scopes CVAT accepts from clients (cvat/apps/events/serializers.py, plus user:activity).
CLIENT_SCOPES = frozenset(
    {
        "load:cvat", "load:job", "save:job", "restore:job", "upload:annotations",
        "send:exception", "send:task_info", "draw:object", "paste:object", "copy:object",
        "propagate:object", "drag:object", "resize:object", "delete:object", "lock:object",
        "merge:objects", "split:objects", "group:objects", "slice:object", "join:objects",
        "change:attribute", "change:label", "change:frame", "zoom:image", "fit:image",
        "rotate:image", "action:undo", "action:redo", "debug:info", "run:annotations_action",
        "click:element", "user:activity",
    }
)  # fmt: skip
MAX_EVENTS = 1000
MAX_PAYLOAD = 64 * 1024


Id = Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]
Count = Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]
Big = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
Text = Annotated[str, msgspec.Meta(max_length=4096)]


class ClientEvent(msgspec.Struct, kw_only=True):
    """One event as cvat-ui and cvat-sdk send it (the user and org fields are the server's)."""

    scope: Text
    timestamp: datetime
    obj_name: Text | None = None
    obj_id: Big | None = None
    obj_val: Text | None = None
    source: Text | None = None
    count: Count | None = None
    duration: Big = 0
    project_id: Id | None = None
    task_id: Id | None = None
    job_id: Id | None = None
    user_id: int | None = None
    user_name: str | None = None
    user_email: str | None = None
    org_id: int | None = None
    org_slug: str | None = None
    payload: Annotated[str, msgspec.Meta(max_length=MAX_PAYLOAD)] | None = None


class ClientEventsBody(msgspec.Struct, kw_only=True):
    timestamp: datetime  # when the client sent the body, by its own clock
    events: list[ClientEvent] = []
    previous_event: ClientEvent | None = None


class Poster(msgspec.Struct, frozen=True):
    user_id: int
    username: str
    email: str | None


class ClientEventBatch(Entity):
    KIND = "client_events"

    class ClientEventsPosted(Entity.Created):
        batch_id: str
        events: list[dict[str, Any]]

    def __init__(self, batch_id: str, events: list[dict[str, Any]]) -> None:
        self.batch_id = batch_id
        self.events = events


def accepted_events(
    body: ClientEventsBody, poster: Poster, received: datetime
) -> list[dict[str, Any]]:
    """The events as CVAT stores them: times moved onto the server's clock by (receive - send),
    the poster's identity filled in, `payload` checked to be JSON. Raises ValidationFailed."""
    errors = ErrorCollector()
    if len(body.events) > MAX_EVENTS:
        errors.add("events", f"at most {MAX_EVENTS} events a request")
    for index, event in enumerate(body.events[:MAX_EVENTS]):
        if event.scope not in CLIENT_SCOPES:
            errors.add(
                f"events[{index}].scope", f"scope {event.scope!r} is not allowed from client"
            )
        if event.payload is not None and not _is_json(event.payload):
            errors.add(f"events[{index}].payload", "JSON payload is not valid")
        for name in ("scope", "obj_name", "obj_val", "source"):
            if "\x00" in (getattr(event, name) or ""):
                errors.add(f"events[{index}].{name}", "must not contain NUL characters")
    errors.raise_if_any()
    correction = received - _utc(body.timestamp)
    return [_accepted(event, poster, correction) for event in body.events]


def _utc(moment: datetime) -> datetime:
    """A time without a zone is taken as UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _accepted(event: ClientEvent, poster: Poster, correction: timedelta) -> dict[str, Any]:
    moment = _utc(event.timestamp)
    payload = json.loads(event.payload) if event.payload is not None else {}
    fields: dict[str, Any] = msgspec.to_builtins(event)
    fields.update(
        timestamp=(moment + correction).astimezone(UTC).isoformat().replace("+00:00", "Z"),
        source="client",
        org_id=None,
        org_slug=None,
        user_id=poster.user_id,
        user_name=poster.username,
        user_email=poster.email,
        payload=json.dumps(payload),
    )
    return fields


def post_client_events(unit: Unit, events: list[dict[str, Any]]) -> ClientEventBatch:
    """Puts the accepted events on the log as one ClientEventsPosted event."""
    batch_id = str(uuid.uuid4())
    context = current_command()
    batch = ClientEventBatch._create(
        ClientEventBatch.ClientEventsPosted,
        id=ClientEventBatch.stream_id(batch_id),
        actor=context.actor,
        command_id=context.command_id,
        batch_id=batch_id,
        events=events,
    )
    unit.add(batch)
    return batch
