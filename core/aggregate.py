"""The base of every aggregate: integer ids mapped to UUIDs, and events that carry their cause."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar, Self

from eventsourcing.domain import Aggregate

from core.commands import current_command

NAMESPACE = uuid.UUID("6f1c5a52-3f0e-4c57-9a57-9d0f4f3f9c11")


def aggregate_uuid(kind: str, key: int | str) -> uuid.UUID:
    """The stream id of aggregate `kind` with integer id (or natural key) `key`."""
    return uuid.uuid5(NAMESPACE, f"{kind}/{key}")


class Entity(Aggregate):
    """An aggregate whose identity is a CVAT integer id; events record actor and command."""

    KIND: ClassVar[str]

    class Event(Aggregate.Event):
        actor: int | None
        command_id: str | None

    class Created(Event, Aggregate.Created):
        pass

    class Deleted(Event):
        def apply(self, aggregate: Entity) -> None:
            aggregate.deleted = True

    deleted: bool = False

    @classmethod
    def stream_id(cls, key: int | str) -> uuid.UUID:
        return aggregate_uuid(cls.KIND, key)

    @classmethod
    def _start(cls, key: int | str, **fields: Any) -> Self:
        context = current_command()
        return cls._create(
            cls.Created,
            id=cls.stream_id(key),
            actor=context.actor,
            command_id=context.command_id,
            **fields,
        )

    def trigger_event(self, event_class: type[Any], **kwargs: Any) -> None:
        context = current_command()
        kwargs.setdefault("actor", context.actor)
        kwargs.setdefault("command_id", context.command_id)
        super().trigger_event(event_class, **kwargs)

    def delete(self) -> None:
        self.trigger_event(self.Deleted)
