"""The read models `palimpsest replay` and `verify` know, by name.

Each entry makes a fresh projection implementing `projections.runner.Projection` (with the
tables it writes and the column they are compared by). `FOLLOWED` names those the server
keeps in the background (projections/follower.py), with the advisory lock key of their
leader; the others are brought up to date inline by the writer (infra/runtime.py).
"""

from __future__ import annotations

from collections.abc import Callable

from infra import lock_keys
from infra.settings import Settings
from projections.analytics import DEFAULT_IDLE_CUTOFF, AnalyticsProjection
from projections.annotation_index import AnnotationIndexProjection
from projections.catalog import CatalogProjection
from projections.history import HistoryProjection
from projections.runner import Projection


def _analytics(settings: Settings | None) -> AnalyticsProjection:
    return AnalyticsProjection(settings.analytics_idle_cutoff if settings else DEFAULT_IDLE_CUTOFF)


REPLAYABLE: list[Callable[[Settings | None], Projection]] = [
    lambda _: CatalogProjection(),
    lambda _: HistoryProjection(),
    lambda _: AnnotationIndexProjection(),
    _analytics,
]
FOLLOWED: dict[str, int] = {"annotation_index": lock_keys.ANNOTATION_INDEX}


def names() -> list[str]:
    return [make(None).name for make in REPLAYABLE]


def make(name: str, settings: Settings | None = None) -> Projection:
    """A fresh projection called `name` (configured by `settings`); KeyError if none."""
    for factory in REPLAYABLE:
        projection = factory(settings)
        if projection.name == name:
            return projection
    raise KeyError(name)
