"""The read models `palimpsest replay` and `verify` know, by name.

Each entry makes a fresh projection implementing `projections.runner.Projection` (with the
tables it writes and the column they are compared by). `FOLLOWED` names those the server
keeps in the background (projections/follower.py), with the advisory lock key of their
leader; the others are brought up to date inline by the writer (infra/runtime.py).
"""

from __future__ import annotations

from collections.abc import Callable

from projections.annotation_index import AnnotationIndexProjection
from projections.catalog import CatalogProjection
from projections.history import HistoryProjection
from projections.runner import Projection

REPLAYABLE: list[Callable[[], Projection]] = [
    CatalogProjection,
    HistoryProjection,
    AnnotationIndexProjection,
]
# pg advisory lock keys taken: 7310001 schema, 7310002 relay, 7310003 analytics, 7310040 webhooks
FOLLOWED: dict[str, int] = {"annotation_index": 7310004}


def names() -> list[str]:
    return [make().name for make in REPLAYABLE]


def make(name: str) -> Projection:
    """A fresh projection called `name`; KeyError if there is none."""
    for factory in REPLAYABLE:
        projection = factory()
        if projection.name == name:
            return projection
    raise KeyError(name)
