"""The catalog's cloud storages: CVAT's cloud storage read documents, from CloudStorage events.

Rows are written with upserts, so a replay over them ends in the same state. Credentials
are not in the log (see infra/credentials.py) and never in a document.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from core.cloud_storages import CloudStorage
from projections.envelope import utc_iso
from projections.runner import Table

Cursor = psycopg.Cursor[Any]
TABLES = (Table("catalog_cloud_storages", "id"),)


def _created(cur: Cursor, event: CloudStorage.Created) -> None:
    from projections.catalog import basic_user  # not at the top: the catalog imports us

    stamp = utc_iso(event.timestamp)
    doc = {
        "id": event.cloud_storage_id,
        "owner": basic_user(cur, event.owner_id),
        "manifests": event.manifests,
        "provider_type": event.provider_type,
        "resource": event.resource,
        "display_name": event.display_name,
        "created_date": stamp,
        "updated_date": stamp,
        "credentials_type": event.credentials_type,
        "specific_attributes": event.specific_attributes,
        "description": event.description,
        "organization": event.organization_id,
    }
    cur.execute(
        "INSERT INTO catalog_cloud_storages (id, uuid, doc) VALUES (%s, %s, %s)"
        " ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc",
        (event.cloud_storage_id, event.originator_id, Jsonb(doc)),
    )


def _updated(cur: Cursor, event: CloudStorage.Updated) -> None:
    cur.execute(
        "UPDATE catalog_cloud_storages SET doc = doc || %s WHERE uuid = %s",
        (Jsonb({**event.changes, "updated_date": utc_iso(event.timestamp)}), event.originator_id),
    )


def _deleted(cur: Cursor, event: CloudStorage.Deleted) -> None:
    cur.execute("DELETE FROM catalog_cloud_storages WHERE uuid = %s", (event.originator_id,))


HANDLERS: dict[type, Callable[[Cursor, Any], None]] = {
    CloudStorage.Created: _created,
    CloudStorage.Updated: _updated,
    CloudStorage.Deleted: _deleted,
}
