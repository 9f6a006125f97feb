"""The catalog's label rows: CVAT's label JSON for a project's or a task's labels."""

from __future__ import annotations

from typing import Any

import msgspec
import psycopg
from psycopg.types.json import Jsonb

from core.labels import LabelSpec

Cursor = psycopg.Cursor[Any]
Doc = dict[str, Any]


def write_labels(
    cur: Cursor,
    labels: list[LabelSpec],
    *,
    project_id: int | None = None,
    task_id: int | None = None,
) -> None:
    """Replaces the label rows of a project or a task."""
    if project_id is not None:
        cur.execute("DELETE FROM catalog_labels WHERE project_id = %s", (project_id,))
    else:
        cur.execute("DELETE FROM catalog_labels WHERE task_id = %s", (task_id,))
    for position, label in enumerate(labels):
        doc = label_doc(label, project_id=project_id, task_id=task_id)
        cur.execute(
            "INSERT INTO catalog_labels (id, project_id, task_id, position, doc)"
            " VALUES (%s, %s, %s, %s, %s)",
            (label.id, project_id, task_id, position, Jsonb(doc)),
        )


def label_doc(label: LabelSpec, *, project_id: int | None, task_id: int | None) -> Doc:
    return {
        "id": label.id,
        "name": label.name,
        "color": label.color,
        "attributes": [msgspec.to_builtins(a) for a in label.attributes],
        "type": label.type,
        "svg": label.svg,
        "sublabels": [
            {
                "id": sub.id,
                "name": sub.name,
                "color": sub.color,
                "attributes": [msgspec.to_builtins(a) for a in sub.attributes],
                "type": sub.type,
                "has_parent": True,
            }
            for sub in label.sublabels
        ],
        "project_id": project_id,
        "task_id": task_id,
        "parent_id": None,
        "has_parent": False,
    }
