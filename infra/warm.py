"""Warm aggregates kept by the writer, and the committed views readers get from them.

The writer is the only thread that changes a warm aggregate. Aggregate state is replaced,
never changed in place (copy-on-write), so a view taken after a commit stays valid while the
writer moves on. Before use, a warm aggregate is brought up to the stream's latest version
(one indexed lookup), which catches writes made by other processes.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from eventsourcing.application import AggregateNotFoundError

from core.aggregate import Entity
from infra.store import Palimpsest

CACHE_SIZE = 2000


class WarmAggregates:
    """An LRU of aggregates for the writer thread."""

    def __init__(self, app: Palimpsest, size: int = CACHE_SIZE) -> None:
        self._app = app
        self._size = size
        self._items: OrderedDict[uuid.UUID, Entity] = OrderedDict()

    def load(self, stream: uuid.UUID) -> Entity | None:
        cached = self._items.get(stream)
        if cached is None:
            try:
                cached = self._app.repository.get(stream)
            except AggregateNotFoundError:
                return None
            self._put(stream, cached)
            return cached
        for event in self._app.events.get(stream, gt=cached.version):
            event.mutate(cached)
        self._items.move_to_end(stream)
        return cached

    def evict(self, streams: Any) -> None:
        for stream in streams:
            self._items.pop(stream, None)

    def adopt(self, aggregate: Entity) -> None:
        """Keeps a newly created (and saved) aggregate warm."""
        self._put(aggregate.id, aggregate)

    def _put(self, stream: uuid.UUID, aggregate: Entity) -> None:
        self._items[stream] = aggregate
        self._items.move_to_end(stream)
        while len(self._items) > self._size:
            self._items.popitem(last=False)


@dataclass(frozen=True)
class View:
    """An aggregate's state as committed at `version`, safe to read from any thread."""

    version: int
    state: dict[str, Any]


class CommittedViews:
    """The latest committed view of each recently written or read aggregate (an LRU)."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._views: OrderedDict[uuid.UUID, View] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def publish(self, aggregate: Entity) -> None:
        view = View(aggregate.version, dict(vars(aggregate)))
        self.offer(aggregate.id, view)

    def offer(self, stream: uuid.UUID, view: View) -> None:
        with self._lock:
            current = self._views.get(stream)
            if current is None or current.version < view.version:
                self._views[stream] = view
            self._views.move_to_end(stream)
            while len(self._views) > self._size:
                self._views.popitem(last=False)

    def get(self, stream: uuid.UUID) -> View | None:
        with self._lock:
            return self._views.get(stream)

    def forget(self, stream: uuid.UUID) -> None:
        with self._lock:
            self._views.pop(stream, None)
