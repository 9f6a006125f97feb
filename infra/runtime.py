"""Everything one server process holds open: the store, the writer, projections, the pool."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
from projections.history import HistoryProjection
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
            store, ids, after_commit=_catch_up(hooks, catalog, history), snapshots=snapshots
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
    ) -> Written[T]:
        context = CommandContext(principal.id if principal else None, command_id)
        return await self.writer.submit(command, context)

    def close(self) -> None:
        self.writer.stop()
        self.snapshots.stop()
        if self.instance is not None:
            self.instance.close()
        self.store.close()
        self.pool.close()


def _catch_up(
    hooks: list[Callable[[Sequence[Recording]], None]], *runners: ProjectionRunner
) -> Callable[[Sequence[Recording]], None]:
    """Brings the read models up to a commit before it is acknowledged (read your write),
    then tells whoever follows the log (the relay) that there is more."""

    def after_commit(recordings: Sequence[Recording]) -> None:
        ordered = sorted(recordings, key=lambda r: r.notification.id)
        for runner in runners:
            runner.apply_committed(ordered)
        for hook in hooks:
            hook(recordings)

    return after_commit
