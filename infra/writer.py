"""The one writer thread of a process: runs commands on warm aggregates, saves them in groups.

Handlers hand a command (a function of a `Unit`) to `CommandWriter.submit`. The thread drains
every command waiting, runs them one after another against the same loaded aggregates, and
saves all of their events in one transaction: one writer per aggregate in this process, and
group commit. A command that fails leaves nothing behind; if it failed after changing an
aggregate, the rest of its batch is run again, each command on its own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import psycopg
import structlog
from eventsourcing.persistence import IntegrityError, Notification, Recording

from core.aggregate import Entity
from core.commands import SYSTEM, CommandContext, acting_as
from core.errors import Conflict, NotFound
from infra.collector import collector_paused
from infra.database import IdSequences
from infra.snapshots import SnapshotTaker
from infra.store import Palimpsest
from infra.warm import CommittedViews, WarmAggregates

log = structlog.get_logger(__name__)

T = TypeVar("T")
E = TypeVar("E", bound=Entity)
Command = Callable[[Any], T]
AfterCommit = Callable[[Sequence[Recording]], None]
OnceKey = tuple[uuid.UUID, str, int | None]  # stream, command id, actor
DoneLookup = Callable[[list[OnceKey]], dict[OnceKey, int]]


class InlineReadModel(Protocol):
    """A read model written in the transaction that records the events it follows."""

    def apply_in_transaction(
        self, cur: psycopg.Cursor[Any], committing: Sequence[tuple[Any, Notification]]
    ) -> bool: ...

    def catch_up(self, until: int | None = None) -> int: ...


MAX_BATCH = 256
SAVE_ATTEMPTS = 3


@dataclass
class Written(Generic[T]):
    """A command's result and the last log position its save reached (None: nothing written)."""

    value: T
    position: int | None


class AlreadyDone(Exception):
    """The command id was carried out before in this stream; `version` is where it ended."""

    def __init__(self, version: int) -> None:
        super().__init__(f"already done (version {version})")
        self.version = version


@dataclass
class _Pending:
    command: Command[Any]
    context: CommandContext
    once_in: uuid.UUID | None = None  # the stream in which the command id runs at most once
    future: concurrent.futures.Future[Written[Any]] = field(
        default_factory=concurrent.futures.Future
    )


class _BatchUnit:
    """The `Unit` a batch of commands shares: the warm aggregates, plus new ones."""

    def __init__(self, warm: WarmAggregates, ids: IdSequences) -> None:
        self._warm = warm
        self._ids = ids
        self.loaded: dict[uuid.UUID, Entity | None] = {}
        self.new: dict[uuid.UUID, Entity] = {}

    def find(self, kind: type[E], key: int | str) -> E | None:
        stream = kind.stream_id(key)
        if stream in self.new:
            found: Entity | None = self.new[stream]
        elif stream in self.loaded:
            found = self.loaded[stream]
        else:
            found = self._warm.load(stream)
            self.loaded[stream] = found
        if found is not None and not isinstance(found, kind):
            return None
        return found  # type: ignore[return-value]

    def get(self, kind: type[E], key: int | str) -> E:
        found = self.find(kind, key)
        if found is None or found.deleted:
            raise NotFound(kind.KIND, key)
        return found

    def add(self, aggregate: Entity) -> None:
        if aggregate.id in self.new or self.loaded.get(aggregate.id) is not None:
            raise Conflict(f"{type(aggregate).KIND} {aggregate.id} exists already")
        self.new[aggregate.id] = aggregate

    def next_id(self, sequence: str) -> int:
        return self._ids.next(sequence)

    def next_ids(self, sequence: str, count: int) -> list[int]:
        return self._ids.take(sequence, count)

    def aggregates(self) -> list[Entity]:
        touched = [a for a in self.loaded.values() if a is not None and a.pending_events]
        return touched + list(self.new.values())

    def streams(self) -> list[uuid.UUID]:
        return [*self.loaded, *self.new]

    def mark(self) -> tuple[int, ...]:
        """A fingerprint of what is pending, to tell whether a failed command changed anything."""
        return (len(self.new), *(len(a.pending_events) for a in self.loaded.values() if a))


class CommandWriter:
    def __init__(
        self,
        app: Palimpsest,
        ids: IdSequences,
        after_commit: AfterCommit | None = None,
        views: CommittedViews | None = None,
        snapshots: SnapshotTaker | None = None,
        read_models: Sequence[InlineReadModel] = (),
        done_lookup: DoneLookup | None = None,
    ) -> None:
        self._app = app
        self._ids = ids
        self._read_models = read_models
        self._done_lookup = done_lookup
        self._after_commit = after_commit
        self._warm = WarmAggregates(app)
        self.views = views or CommittedViews()
        self._snapshots = snapshots
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="command-writer", daemon=True)
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def stop(self) -> None:
        if self._started:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._started = False

    async def submit(
        self,
        command: Command[T],
        context: CommandContext = SYSTEM,
        *,
        once_in: uuid.UUID | None = None,
    ) -> Written[T]:
        """Runs `command`; with `once_in`, a command id already carried out in that stream by
        the same actor raises AlreadyDone instead (checked with the batch, so exactly once)."""
        if once_in is not None and (context.command_id is None or self._done_lookup is None):
            raise ValueError("once_in needs a command id and a done_lookup")
        pending = _Pending(command, context, once_in)
        self._queue.put(pending)
        return await asyncio.wrap_future(pending.future)

    def submit_sync(self, command: Command[T], context: CommandContext = SYSTEM) -> Written[T]:
        pending = _Pending(command, context)
        self._queue.put(pending)
        return pending.future.result()

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                batch.append(item)
            try:
                # A batch may make hundreds of thousands of objects (an import); the cycle
                # collector runs between batches rather than walking every job's state in one.
                with collector_paused():
                    self._run_batch(self._without_repeats(batch))
            except Exception as error:  # the thread must survive anything
                log.exception("writer batch failed", size=len(batch))
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(error)

    def _without_repeats(self, batch: list[_Pending]) -> list[_Pending]:
        """Answers commands whose id was carried out already; a repeat within the batch waits
        for the next batch, where the first one's outcome is known."""
        keys = {id(p): _once_key(p) for p in batch if p.once_in is not None}
        if not keys or self._done_lookup is None:
            return batch
        done = self._done_lookup(list(set(keys.values())))
        fresh: list[_Pending] = []
        seen: set[OnceKey] = set()
        for pending in batch:
            key = keys.get(id(pending))
            if key is None:
                fresh.append(pending)
            elif key in done:
                pending.future.set_exception(AlreadyDone(done[key]))
            elif key in seen:
                self._queue.put(pending)
            else:
                seen.add(key)
                fresh.append(pending)
        return fresh

    def _run_batch(self, batch: list[_Pending], attempt: int = 1) -> None:
        unit = _BatchUnit(self._warm, self._ids)
        outcomes: list[tuple[_Pending, Any]] = []
        for index, pending in enumerate(batch):
            before = unit.mark()
            try:
                with acting_as(pending.context):
                    value = pending.command(unit)
            except Exception as error:
                if unit.mark() != before:
                    # It changed aggregates before failing: drop them, and run its
                    # batch-mates again on fresh copies.
                    self._warm.evict(unit.streams())
                    pending.future.set_exception(error)
                    self._run_alone(batch[:index] + batch[index + 1 :], attempt)
                    return
                pending.future.set_exception(error)
                continue
            outcomes.append((pending, value))
        if not outcomes:
            return
        saved = unit.aggregates()
        lagging: list[InlineReadModel] = []
        try:
            recordings = self._app.save(
                *saved, in_transaction=self._read_model_writer(saved, lagging)
            )
        except IntegrityError:
            self._warm.evict(unit.streams())
            self._retry_after_race(batch, outcomes, attempt)
            return
        except Exception:
            self._warm.evict(unit.streams())
            raise
        self._after_save(unit, saved, recordings)
        position = max((r.notification.id for r in recordings), default=None)
        for model in lagging:
            model.catch_up(until=position)
        if recordings and self._after_commit is not None:
            try:
                self._after_commit(recordings)
            except Exception:
                log.exception("after-commit hook failed; the events are saved")
        for pending, value in outcomes:
            pending.future.set_result(Written(value, position))

    def _read_model_writer(
        self, saved: list[Entity], lagging: list[InlineReadModel]
    ) -> Callable[[psycopg.Cursor[Any], list[Notification]], None] | None:
        """What writes the read models inside the save's transaction (see infra/recorder.py)."""
        if not self._read_models:
            return None
        events = {
            (event.originator_id, event.originator_version): event
            for aggregate in saved
            for event in aggregate.pending_events
        }

        def write(cur: psycopg.Cursor[Any], notifications: list[Notification]) -> None:
            committing = [
                (events[(n.originator_id, n.originator_version)], n) for n in notifications
            ]
            lagging.clear()  # a retried transaction starts again
            for model in self._read_models:
                if not model.apply_in_transaction(cur, committing):
                    lagging.append(model)

        return write

    def _after_save(
        self, unit: _BatchUnit, saved: list[Entity], recordings: Sequence[Recording]
    ) -> None:
        for aggregate in unit.new.values():
            self._warm.adopt(aggregate)
        for aggregate in saved:
            self.views.publish(aggregate)
        if self._snapshots is not None:
            written: dict[uuid.UUID, int] = {}
            for recording in recordings:
                stream = recording.domain_event.originator_id
                written[stream] = written.get(stream, 0) + 1
            for aggregate in saved:
                self._snapshots.consider(aggregate, written.get(aggregate.id, 0))

    def _run_alone(self, batch: list[_Pending], attempt: int) -> None:
        for pending in batch:
            self._run_batch([pending], attempt)

    def _retry_after_race(
        self, batch: list[_Pending], outcomes: list[tuple[_Pending, Any]], attempt: int
    ) -> None:
        """Another process wrote to one of these streams first: run again on fresh state."""
        retry = [pending for pending, _ in outcomes]
        if attempt >= SAVE_ATTEMPTS:
            for pending in retry:
                pending.future.set_exception(
                    Conflict("the data changed while this was saved; try again")
                )
            return
        if len(retry) == 1:
            self._run_batch(retry, attempt + 1)
        else:
            self._run_alone(retry, attempt + 1)


def _once_key(pending: _Pending) -> OnceKey:
    assert pending.once_in is not None and pending.context.command_id is not None
    return (pending.once_in, pending.context.command_id, pending.context.actor)
