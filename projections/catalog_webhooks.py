"""The catalog's webhooks: CVAT's webhook read documents, projected from Webhook events.

Rows are written with upserts, so a replay over them ends in the same state. The secret is
not in the log (see web/webhooks.py); `last_status` and `last_delivery_date` are joined in
from the delivery history by the `webhook_docs` view.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from core.webhooks import Webhook
from projections.envelope import utc_iso

Cursor = psycopg.Cursor[Any]


def _created(cur: Cursor, event: Webhook.Created) -> None:
    from projections.catalog import basic_user  # not at the top: the catalog imports us

    stamp = utc_iso(event.timestamp)
    doc = {
        "id": event.webhook_id,
        "target_url": event.target_url,
        "description": event.description,
        "type": event.type,
        "content_type": event.content_type,
        "is_active": event.is_active,
        "enable_ssl": event.enable_ssl,
        "created_date": stamp,
        "updated_date": stamp,
        "owner": basic_user(cur, event.owner_id),
        "project_id": event.project_id,
        "organization": event.organization_id,
        "events": event.events,
    }
    cur.execute(
        "INSERT INTO catalog_webhooks"
        " (id, uuid, project_id, organization_id, is_active, events, doc)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET"
        " project_id = EXCLUDED.project_id, organization_id = EXCLUDED.organization_id,"
        " is_active = EXCLUDED.is_active, events = EXCLUDED.events, doc = EXCLUDED.doc",
        (
            event.webhook_id,
            event.originator_id,
            event.project_id,
            event.organization_id,
            event.is_active,
            event.events,
            Jsonb(doc),
        ),
    )


def _updated(cur: Cursor, event: Webhook.Updated) -> None:
    cur.execute("SELECT id, doc FROM catalog_webhooks WHERE uuid = %s", (event.originator_id,))
    row = cur.fetchone()
    if row is None:
        return
    webhook_id, doc = row
    doc.update(event.changes, updated_date=utc_iso(event.timestamp))
    cur.execute(
        "UPDATE catalog_webhooks SET doc = %s, is_active = %s, events = %s WHERE id = %s",
        (Jsonb(doc), doc["is_active"], doc["events"], webhook_id),
    )


def _deleted(cur: Cursor, event: Webhook.Deleted) -> None:
    cur.execute("DELETE FROM catalog_webhooks WHERE uuid = %s", (event.originator_id,))


HANDLERS: dict[type, Callable[[Cursor, Any], None]] = {
    Webhook.Created: _created,
    Webhook.Updated: _updated,
    Webhook.Deleted: _deleted,
}
