"""Who is acting and under which command id: stamped onto every event a command triggers."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class CommandContext:
    actor: int | None  # the acting user's id; None for the system itself
    command_id: str | None  # the client's idempotency key or websocket command id


SYSTEM = CommandContext(actor=None, command_id=None)

_current: ContextVar[CommandContext] = ContextVar("palimpsest_command", default=SYSTEM)


def current_command() -> CommandContext:
    return _current.get()


@contextlib.contextmanager
def acting_as(context: CommandContext) -> Iterator[None]:
    token = _current.set(context)
    try:
        yield
    finally:
        _current.reset(token)
