"""/api/webhooks: CVAT's webhook API (CRUD, events, ping, deliveries, redelivery).

A webhook's secret is stored in `webhook_secrets`, outside of the log, and never returned:
on creation it is stored (under a new id) before the Created event is saved and dropped if
the command fails; a changed secret is stored once the change is saved.
"""

from __future__ import annotations

from typing import Any

import msgspec
from psycopg import sql
from psycopg_pool import ConnectionPool
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.errors import NotFound
from core.permissions import (
    Action,
    Principal,
    authorize,
    managed_organizations,
    may_attempt,
)
from core.webhooks import (
    ORGANIZATION_EVENTS,
    PROJECT_EVENTS,
    WebhookPatch,
    WebhookWrite,
    create_webhook,
    delete_webhook,
    event_group,
    replacement,
    update_webhook,
    webhook_resource,
)
from projections.catalog import basic_user
from projections.list_query import Field, ListSpec
from projections.webhook_dispatch import WebhookDispatcher
from web.context import base_url, execute, path_id, principal, runtime
from web.errors import BadRequest
from web.pagination import Listing, list_response
from web.representations import with_user_url
from web.responses import json_response, read_body

Doc = dict[str, Any]
EVENTS_BY_TYPE = {
    "all": ORGANIZATION_EVENTS,
    "project": PROJECT_EVENTS,
    "organization": ORGANIZATION_EVENTS,
}


def webhook_json(doc: Doc, base: str) -> Doc:
    return {
        "url": f"{base}/api/webhooks/{doc['id']}",
        **doc,
        "owner": with_user_url(doc["owner"], base),
    }


def delivery_json(doc: Doc, base: str) -> Doc:
    return doc


WEBHOOKS = Listing(
    table="webhook_docs",
    spec=ListSpec(
        fields={
            "id": Field(sql.Identifier("id"), "int", cast=False),
            "target_url": Field(sql.SQL("doc->>'target_url'"), "text"),
            "owner": Field(sql.SQL("doc->'owner'->>'username'"), "text"),
            "type": Field(sql.SQL("doc->>'type'"), "text"),
            "description": Field(sql.SQL("doc->>'description'"), "text"),
            "project_id": Field(sql.Identifier("project_id"), "int", cast=False),
            "organization": Field(sql.Identifier("organization_id"), "int", cast=False),
            "updated_date": Field(sql.SQL("doc->>'updated_date'"), "datetime"),
        },
        search_fields=("target_url", "owner", "type", "description"),
        simple_filters=("target_url", "owner", "type", "project_id"),
        ordering_fields=(
            "id",
            "target_url",
            "owner",
            "type",
            "description",
            "project_id",
            "updated_date",
        ),
        default_order="-id",
    ),
    render=webhook_json,
)

DELIVERIES = Listing(
    table="webhook_delivery_docs",
    spec=ListSpec(
        fields={
            "id": Field(sql.Identifier("id"), "int", cast=False),
            "event": Field(sql.SQL("doc->>'event'"), "text"),
            "status_code": Field(sql.SQL("doc->>'status_code'"), "int"),
        },
        search_fields=("event",),
        simple_filters=("event", "status_code"),
        ordering_fields=("id", "event", "status_code"),
        default_order="-id",
    ),
    render=delivery_json,
)


def signed_in(request: Request) -> Principal:
    """The caller; who may do what to a webhook is decided with the webhook itself."""
    return may_attempt(principal(request), Action.LIST, "webhook")


def dispatcher(request: Request) -> WebhookDispatcher:
    return request.app.state.webhooks


async def webhooks_list(request: Request) -> Response:
    """The webhooks the caller manages: of their projects and of the organizations they
    maintain (every one, for an admin)."""
    caller = signed_in(request)
    if caller.is_superuser:
        return await list_response(request, WEBHOOKS)
    return await list_response(
        request,
        WEBHOOKS,
        extra_where=sql.SQL("(manager_id = %s OR organization_id = ANY(%s))"),
        extra_params=(caller.id, managed_organizations(caller)),
    )


async def webhook_create(request: Request) -> Response:
    caller = signed_in(request)
    form = await read_body(request, WebhookWrite)
    pool = runtime(request).pool
    webhook_id = await run_in_threadpool(_store_new_secret, pool, form.secret)
    try:
        await execute(request, lambda unit: create_webhook(unit, caller, webhook_id, form))
    except BaseException:
        await run_in_threadpool(_drop_secret, pool, webhook_id)
        raise
    doc, _, _ = await _load(request, webhook_id)
    return json_response(webhook_json(doc, base_url(request)), status=201)


async def webhook_detail(request: Request) -> Response:
    doc = await _permitted_doc(request, Action.VIEW)
    return json_response(webhook_json(doc, base_url(request)))


async def webhook_update(request: Request) -> Response:
    patch = await read_body(request, WebhookPatch)
    return await _change(request, patch)


async def webhook_replace(request: Request) -> Response:
    form = await read_body(request, WebhookWrite)
    return await _change(request, replacement(form))


async def _change(request: Request, patch: WebhookPatch) -> Response:
    caller = signed_in(request)
    webhook_id = path_id(request)
    await execute(request, lambda unit: update_webhook(unit, caller, webhook_id, patch))
    if patch.secret is not msgspec.UNSET:
        await run_in_threadpool(_store_secret, runtime(request).pool, webhook_id, patch.secret)
    doc, _, _ = await _load(request, webhook_id)
    return json_response(webhook_json(doc, base_url(request)))


async def webhook_delete(request: Request) -> Response:
    caller = signed_in(request)
    webhook_id = path_id(request)
    await execute(request, lambda unit: delete_webhook(unit, caller, webhook_id))
    await run_in_threadpool(_drop_secret, runtime(request).pool, webhook_id)
    return Response(status_code=204)


async def webhook_events(request: Request) -> Response:
    signed_in(request)
    webhook_type = request.query_params.get("type") or "all"
    if webhook_type not in EVENTS_BY_TYPE:
        raise BadRequest({"type": [f"{webhook_type!r} is not one of all, project, organization"]})
    events = [
        {"key": key, "group": {"display_name": event_group(key)}}
        for key in EVENTS_BY_TYPE[webhook_type]
    ]
    return json_response({"webhook_type": webhook_type, "events": events})


async def webhook_ping(request: Request) -> Response:
    doc = await _permitted_doc(request, Action.CHANGE)
    base = base_url(request)
    pool = runtime(request).pool
    sender = await run_in_threadpool(_basic_user, pool, signed_in(request).id)
    payload = {
        "event": "ping",
        "webhook": webhook_json(doc, base),
        "sender": with_user_url(sender, base),
    }
    delivery = await dispatcher(request).send_now(doc["id"], "ping", payload)
    return json_response(delivery)


async def deliveries_list(request: Request) -> Response:
    doc = await _permitted_doc(request, Action.VIEW)
    return await list_response(
        request, DELIVERIES, extra_where=sql.SQL("webhook_id = %s"), extra_params=(doc["id"],)
    )


async def delivery_detail(request: Request) -> Response:
    doc = await _permitted_doc(request, Action.VIEW)
    delivery_id = path_id(request, "delivery_id")
    found = await run_in_threadpool(_delivery, runtime(request).pool, doc["id"], delivery_id)
    if found is None:
        raise NotFound("webhook delivery", delivery_id)
    return json_response(found)


async def delivery_redeliver(request: Request) -> Response:
    doc = await _permitted_doc(request, Action.CHANGE)
    delivery_id = path_id(request, "delivery_id")
    queued = await run_in_threadpool(dispatcher(request).redeliver, doc["id"], delivery_id)
    if not queued:
        raise NotFound("webhook delivery", delivery_id)
    return json_response({})


async def _permitted_doc(request: Request, action: Action) -> Doc:
    """The webhook's document if the caller may do `action` to it: 404 if there is no such
    webhook (or it is in an organization they are not in), 403 if it is not theirs to
    manage."""
    caller = signed_in(request)
    webhook_id = path_id(request)
    doc, manager_id, organization_id = await _load(request, webhook_id)
    authorize(caller, action, webhook_resource(manager_id, organization_id, webhook_id))
    return doc


async def _load(request: Request, webhook_id: int) -> tuple[Doc, int | None, int | None]:
    """The webhook's document, its manager (its project's owner) and its organization."""
    pool = runtime(request).pool

    def run() -> tuple[Doc, int | None, int | None] | None:
        with pool.connection() as conn:
            row = conn.execute(
                "SELECT doc, manager_id, organization_id FROM webhook_docs WHERE id = %s",
                (webhook_id,),
            ).fetchone()
        return (row[0], row[1], row[2]) if row else None

    found = await run_in_threadpool(run)
    if found is None:
        raise NotFound("webhook", webhook_id)
    return found


def _delivery(pool: ConnectionPool, webhook_id: int, delivery_id: int) -> Doc | None:
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT doc FROM webhook_delivery_docs WHERE id = %s AND webhook_id = %s",
            (delivery_id, webhook_id),
        ).fetchone()
    return row[0] if row else None


def _basic_user(pool: ConnectionPool, user_id: int) -> Doc | None:
    with pool.connection() as conn:
        return basic_user(conn.cursor(), user_id)


def _store_new_secret(pool: ConnectionPool, secret: str) -> int:
    """Takes a webhook id and stores the secret under it; returns the id."""
    with pool.connection() as conn:
        row = conn.execute(
            "INSERT INTO webhook_secrets (webhook_id, secret)"
            " VALUES (nextval('palimpsest_webhook_id'), %s) RETURNING webhook_id",
            (secret,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def _store_secret(pool: ConnectionPool, webhook_id: int, secret: str) -> None:
    with pool.connection() as conn:
        conn.execute(
            "INSERT INTO webhook_secrets (webhook_id, secret) VALUES (%s, %s)"
            " ON CONFLICT (webhook_id) DO UPDATE SET secret = EXCLUDED.secret",
            (webhook_id, secret),
        )


def _drop_secret(pool: ConnectionPool, webhook_id: int) -> None:
    with pool.connection() as conn:
        conn.execute("DELETE FROM webhook_secrets WHERE webhook_id = %s", (webhook_id,))


ROUTES = [
    Route("/api/webhooks", webhooks_list, methods=["GET"]),
    Route("/api/webhooks", webhook_create, methods=["POST"]),
    Route("/api/webhooks/events", webhook_events, methods=["GET"]),
    Route("/api/webhooks/{id:int}", webhook_detail, methods=["GET"]),
    Route("/api/webhooks/{id:int}", webhook_update, methods=["PATCH"]),
    Route("/api/webhooks/{id:int}", webhook_replace, methods=["PUT"]),
    Route("/api/webhooks/{id:int}", webhook_delete, methods=["DELETE"]),
    Route("/api/webhooks/{id:int}/ping", webhook_ping, methods=["POST"]),
    Route("/api/webhooks/{id:int}/deliveries", deliveries_list, methods=["GET"]),
    Route("/api/webhooks/{id:int}/deliveries/{delivery_id:int}", delivery_detail, methods=["GET"]),
    Route(
        "/api/webhooks/{id:int}/deliveries/{delivery_id:int}/redelivery",
        delivery_redeliver,
        methods=["POST"],
    ),
]
