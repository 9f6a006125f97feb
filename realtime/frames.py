"""Turning committed job events into `event` frames."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import msgspec

from core.jobs import Job
from realtime.protocol import Event


def event_frame(event: Job.Event) -> Event:
    return Event(
        version=event.originator_version,
        name=type(event).__name__,
        actor=event.actor,
        cid=event.command_id,
        time=event.timestamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        data=event_data(event),
    )


def event_data(event: Job.Event) -> dict[str, Any]:
    fields = {
        name: value
        for name, value in vars(event).items()
        if name not in ("originator_id", "originator_version", "timestamp", "actor", "command_id")
    }
    if isinstance(event, Job.AnnotationsCreated | Job.AnnotationsUpdated):
        return msgspec.to_builtins(event.data)
    if isinstance(event, Job.AnnotationsDeleted):
        return msgspec.to_builtins(event.ids)
    return msgspec.to_builtins(fields)
