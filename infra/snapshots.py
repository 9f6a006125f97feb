"""Snapshots of big aggregates, taken after a commit and written off the writer thread.

Taking one is a shallow copy of the aggregate's attributes (its state is copy-on-write);
encoding and storing it happens in a thread of its own, so the edit that crossed the
interval does not wait for it.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

import structlog

from core.aggregate import Entity
from core.jobs import Job
from infra.store import Palimpsest

log = structlog.get_logger(__name__)

INTERVALS: dict[type[Entity], int] = {Job: 200}


class SnapshotTaker:
    def __init__(self, app: Palimpsest) -> None:
        self._app = app
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="snapshots", daemon=True)
        self._thread.start()

    def consider(self, aggregate: Entity, new_events: int) -> None:
        """Queues a snapshot if the events just saved crossed the aggregate's interval."""
        interval = INTERVALS.get(type(aggregate))
        if interval is None or self._app.snapshots is None or new_events == 0:
            return
        if aggregate.version // interval > (aggregate.version - new_events) // interval:
            self._queue.put(type(aggregate).Snapshot.take(aggregate))

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def drain(self) -> None:
        """Waits until every queued snapshot is stored (tests, shutdown)."""
        self._queue.join()

    def _loop(self) -> None:
        while True:
            snapshot = self._queue.get()
            try:
                if snapshot is None:
                    return
                assert self._app.snapshots is not None
                self._app.snapshots.put([snapshot])
            except Exception:
                log.exception("snapshot failed; the events are safe, only slower to load")
            finally:
                self._queue.task_done()
