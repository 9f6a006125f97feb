"""The read models `palimpsest replay` and `verify` know, by name.

Each entry makes a fresh projection implementing `projections.runner.Projection` (with the
tables it writes and the column they are compared by). `FOLLOWED` names those the server
keeps in the background (projections/follower.py); the others are brought up to date inline
by the writer (infra/runtime.py).
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
FOLLOWED: list[str] = ["annotation_index"]


def names() -> list[str]:
    return [make().name for make in REPLAYABLE]


def make(name: str) -> Projection:
    """A fresh projection called `name`; KeyError if there is none."""
    for factory in REPLAYABLE:
        projection = factory()
        if projection.name == name:
            return projection
    raise KeyError(name)
