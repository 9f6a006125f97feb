"""The port a command runs against: warm aggregates, new aggregates, and fresh integer ids."""

from __future__ import annotations

from typing import Protocol, TypeVar

from core.aggregate import Entity

E = TypeVar("E", bound=Entity)


class Unit(Protocol):
    def get(self, kind: type[E], key: int | str) -> E:
        """The live aggregate, or NotFound (also for a deleted one)."""
        ...

    def find(self, kind: type[E], key: int | str) -> E | None:
        """The aggregate if it was ever created (deleted ones included), else None."""
        ...

    def add(self, aggregate: Entity) -> None:
        """Registers a new aggregate so its events are saved with the command's."""
        ...

    def next_id(self, sequence: str) -> int:
        """A new integer id from the named sequence (user, project, task, job, label, ...)."""
        ...

    def next_ids(self, sequence: str, count: int) -> list[int]:
        """`count` new ids from the named sequence, ascending."""
        ...
