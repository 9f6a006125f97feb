"""Decoding stored events in one typed msgspec pass, for replaying the log fast.

The event store writes each event as JSON (eventsourcing's JSONTranscoder) in which custom
values are `{"_type_": name, "_data_": ...}` objects: datetimes as ISO strings, the small
Structs (`EVENT_VALUE_TYPES`) as their builtins, the large ones (`LARGE_VALUE_TYPES`,
annotations) as a JSON string. The standard decoder parses that into dicts and revives the
wrapped values one by one through Python hooks: about 20 µs an event, most of a replay.

`FastMapper` instead derives, per event class, a msgspec Struct of exactly that layout from
the class's type hints, so one typed decode gives every field its final type (a large value
still takes a second decode of its string). Classes with a field of any other kind (a
`dict[str, object]` of changes, a list of label specs...) or with an upcast version are read
by the store's own mapper, as are events whose JSON the typed layout refuses. Either way
the events are equal to what `app.mapper.to_domain_event` gives.
"""

from __future__ import annotations

import datetime
import types
import typing
from typing import Any, Union

import msgspec
from eventsourcing.persistence import Mapper, StoredEvent
from eventsourcing.utils import resolve_topic

from infra.store import EVENT_VALUE_TYPES, LARGE_VALUE_TYPES, Palimpsest

PLAIN = (int, str, bool, float, type(None))
SKIPPED_FIELDS = frozenset({"originator_id", "originator_version"})


class _Iso(msgspec.Struct):
    data: datetime.datetime = msgspec.field(name="_data_")


class _Text(msgspec.Struct):
    data: str = msgspec.field(name="_data_")


class _Layout(typing.NamedTuple):
    cls: type
    decoder: msgspec.json.Decoder[Any]
    wrapped: tuple[str, ...]  # fields whose value is the `data` of a wrapper
    large: tuple[tuple[str, msgspec.json.Decoder[Any]], ...]  # wrappers of a JSON string


class FastMapper:
    def __init__(self, app: Palimpsest) -> None:
        self._fallback: Mapper[Any] = app.mapper
        self._layouts: dict[str, _Layout | None] = {}

    def to_domain_event(self, stored: StoredEvent) -> Any:
        try:
            layout = self._layouts[stored.topic]
        except KeyError:
            layout = self._layouts[stored.topic] = _layout_of(resolve_topic(stored.topic))
        if layout is None:
            return self._fallback.to_domain_event(stored)
        try:
            state = msgspec.structs.asdict(layout.decoder.decode(stored.state))
        except (msgspec.ValidationError, msgspec.DecodeError):
            return self._fallback.to_domain_event(stored)
        for name in layout.wrapped:
            state[name] = state[name].data
        for name, decoder in layout.large:
            state[name] = decoder.decode(state[name])
        state["originator_id"] = stored.originator_id
        state["originator_version"] = stored.originator_version
        event = object.__new__(layout.cls)
        object.__setattr__(event, "__dict__", state)
        return event


def _layout_of(cls: type) -> _Layout | None:
    """The typed layout of `cls`'s stored JSON, or None if it has fields of other kinds."""
    if getattr(cls, "class_version", 1) != 1:
        return None
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # a hint that does not resolve: leave the class to the store's mapper
        return None
    fields: list[tuple[str, Any]] = []
    wrapped: list[str] = []
    large: list[tuple[str, msgspec.json.Decoder[Any]]] = []
    for name, hint in hints.items():
        if name in SKIPPED_FIELDS or typing.get_origin(hint) is typing.ClassVar:
            continue
        if hint is datetime.datetime:
            fields.append((name, _Iso))
            wrapped.append(name)
        elif hint in LARGE_VALUE_TYPES:
            fields.append((name, _Text))
            wrapped.append(name)
            large.append((name, msgspec.json.Decoder(hint)))
        elif hint in EVENT_VALUE_TYPES:
            fields.append((name, _wrapper(hint)))
            wrapped.append(name)
        elif _is_plain(hint):
            fields.append((name, hint))
        else:
            return None
    struct = msgspec.defstruct(f"Stored{cls.__qualname__.replace('.', '')}", fields)
    return _Layout(cls, msgspec.json.Decoder(struct, strict=False), tuple(wrapped), tuple(large))


def _wrapper(value_type: type) -> type:
    return msgspec.defstruct(
        f"Wrapped{value_type.__name__}",
        [("data", value_type, msgspec.field(name="_data_"))],
    )


def _is_plain(hint: Any) -> bool:
    """A JSON scalar, an optional one, or a list of them (stored as they are)."""
    if hint in PLAIN:
        return True
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return all(_is_plain(arg) for arg in typing.get_args(hint))
    if origin is list:
        return all(arg in PLAIN for arg in typing.get_args(hint))
    return False
