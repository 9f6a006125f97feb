"""Everything one server process holds open: the store, the writer, projections, the pool."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import structlog
from eventsourcing.persistence import Recording
from psycopg_pool import ConnectionPool

from core.commands import CommandContext
from core.permissions import Principal
from infra.database import IdSequences, create_schema, open_pool
from infra.instances import InstanceLock
from infra.settings import Settings
from infra.snapshots import SnapshotTaker
from infra.store import Palimpsest, open_store
from infra.writer import CommandWriter, Written
from projections.analytics import AnalyticsProjection
from projections.catalog import CatalogProjection
from projections.history import HistoryProjection, versions_of_commands
from projections.runner import ProjectionRunner

log = structlog.get_logger(__name__)
T = TypeVar("T")


@dataclass
class Runtime:
    settings: Settings
    database_url: str
    store: Palimpsest
    pool: ConnectionPool
    ids: IdSequences
    writer: CommandWriter
    catalog: ProjectionRunner
    snapshots: SnapshotTaker
    history: ProjectionRunner
    nats_url: str | None = None
    instance: InstanceLock | None = None
    after_commit_hooks: list[Callable[[Sequence[Recording]], None]] = field(default_factory=list)
    # Follows the log in the background (projections/follower.py), not in the write path.
    analytics: ProjectionRunner = field(init=False)

    @classmethod
    def open(cls, settings: Settings, database_url: str, nats_url: str | None = None) -> Runtime:
        pool = open_pool(database_url)
        create_schema(pool)
        store = open_store(database_url)
        ids = IdSequences(pool)
        catalog = ProjectionRunner(store, pool, CatalogProjection())
        history = ProjectionRunner(store, pool, HistoryProjection())
        snapshots = SnapshotTaker(store)
        hooks: list[Callable[[Sequence[Recording]], None]] = []
        writer = CommandWriter(
            store,
            ids,
            after_commit=_run_hooks(hooks),
            snapshots=snapshots,
            read_models=(catalog, history),
            done_lookup=partial(versions_of_commands, pool),
        )
        runtime = cls(
            settings, database_url, store, pool, ids, writer, catalog, snapshots, history,
            nats_url, after_commit_hooks=hooks,
        )  # fmt: skip
        runtime.analytics = ProjectionRunner(
            store, pool, AnalyticsProjection(settings.analytics_idle_cutoff)
        )
        runtime.instance = InstanceLock(database_url)
        for runner in (catalog, history):
            runner.catch_up()
        writer.start()
        return runtime

    @property
    def media_dir(self) -> Path:
        return self.settings.data_dir / "media"

    async def execute(
        self,
        command: Callable[[Any], T],
        principal: Principal | None,
        command_id: str | None = None,
        *,
        once_in: uuid.UUID | None = None,
    ) -> Written[T]:
        """Runs `command` as `principal`; with `once_in` (a stream), a `command_id` that
        already ran there raises AlreadyDone."""
        context = CommandContext(principal.id if principal else None, command_id)
        return await self.writer.submit(command, context, once_in=once_in)

    def close(self) -> None:
        self.writer.stop()
        self.snapshots.stop()
        if self.instance is not None:
            self.instance.close()
        self.store.close()
        self.pool.close()


def _run_hooks(
    hooks: list[Callable[[Sequence[Recording]], None]],
) -> Callable[[Sequence[Recording]], None]:
    """Tells whoever follows the log (the relay, the rooms) that there is more."""

    def after_commit(recordings: Sequence[Recording]) -> None:
        for hook in hooks:
            hook(recordings)

    return after_commit
