"""Pieces of CVAT read documents shared by the catalog's parts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg

Cursor = psycopg.Cursor[Any]
Doc = dict[str, Any]


def iso(moment: datetime) -> str:
    """CVAT's datetime form: 2026-05-11T17:25:43.375000Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def basic_user(cur: Cursor, user_id: int | None) -> Doc | None:
    if user_id is None:
        return None
    cur.execute("SELECT doc FROM catalog_users WHERE id = %s", (user_id,))
    row = cur.fetchone()
    if row is None:
        return None
    doc = row[0]
    return {
        "id": doc["id"],
        "username": doc["username"],
        "first_name": doc["first_name"],
        "last_name": doc["last_name"],
    }
