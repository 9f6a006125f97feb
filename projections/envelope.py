"""The versioned JSON envelope the relay publishes to JetStream for each event of the log.

One envelope per notification: where the event sits in the log and in its stream, who caused
it, which organization/project/task/job it concerns, and the event's own fields as plain JSON.
Consumers decode it with `msgspec.json.decode(data, type=Envelope)`; `schema` changes only on
an incompatible change.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

import msgspec

SCHEMA_VERSION = 1
SUBJECT_PREFIX = "palimpsest.events"
MISSING = "_"
# Fields every event carries; the envelope holds them outside of the payload.
ENVELOPE_FIELDS = frozenset(
    {"originator_id", "originator_version", "timestamp", "actor", "command_id"}
)
# Secrets never leave the event store.
REDACTED_FIELDS = frozenset({"password_hash"})


class Scope(NamedTuple):
    """The ids an event belongs to; None where it has none (a user belongs to none)."""

    organization_id: int | None = None
    project_id: int | None = None
    task_id: int | None = None
    job_id: int | None = None


class Envelope(msgspec.Struct, kw_only=True):
    schema: int = SCHEMA_VERSION
    notification_id: int
    type: str
    stream: str
    stream_version: int
    actor: int | None
    command_id: str | None
    time: str
    organization_id: int | None
    project_id: int | None
    task_id: int | None
    job_id: int | None
    payload: dict[str, Any]
    # True when the payload was too big for one NATS message; read the event from the API.
    payload_omitted: bool = False

    @property
    def event_type(self) -> str:
        """The event class name without its aggregate: "AnnotationsCreated"."""
        return self.type.rsplit(".", 1)[-1]


def event_type_name(event: object) -> str:
    """The event class qualname, e.g. "Job.AnnotationsCreated"."""
    return type(event).__qualname__


def utc_iso(moment: datetime) -> str:
    """2026-05-11T17:25:43.375000Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_payload(event: object) -> dict[str, Any]:
    """The event's own fields as JSON builtins (nested Structs too), secrets left out."""
    fields = {
        name: value
        for name, value in vars(event).items()
        if name not in ENVELOPE_FIELDS and name not in REDACTED_FIELDS
    }
    payload: dict[str, Any] = msgspec.to_builtins(fields)
    return payload


def build_envelope(notification_id: int, event: Any, scope: Scope) -> Envelope:
    return Envelope(
        notification_id=notification_id,
        type=event_type_name(event),
        stream=str(event.originator_id),
        stream_version=event.originator_version,
        actor=event.actor,
        command_id=event.command_id,
        time=utc_iso(event.timestamp),
        organization_id=scope.organization_id,
        project_id=scope.project_id,
        task_id=scope.task_id,
        job_id=scope.job_id,
        payload=event_payload(event),
    )


def subject_for(envelope: Envelope, prefix: str = SUBJECT_PREFIX) -> str:
    """`<prefix>.<org>.<project>.<task>.<job>.<EventType>`, `_` for a missing id."""
    ids = (envelope.organization_id, envelope.project_id, envelope.task_id, envelope.job_id)
    tokens = [MISSING if value is None else str(value) for value in ids]
    return ".".join([prefix, *tokens, envelope.event_type])


def encode(envelope: Envelope, max_bytes: int | None = None) -> bytes:
    """The envelope as JSON; over max_bytes, without its payload (`payload_omitted`)."""
    data = msgspec.json.encode(envelope)
    if max_bytes is None or len(data) <= max_bytes:
        return data
    return msgspec.json.encode(msgspec.structs.replace(envelope, payload={}, payload_omitted=True))


def decode(data: bytes) -> Envelope:
    return msgspec.json.decode(data, type=Envelope)


def envelope_schema() -> dict[str, Any]:
    """The envelope's JSON Schema, for consumers."""
    return msgspec.json.schema(Envelope)
