"""Personal access tokens: /api/auth/access_tokens (CVAT's API, for `Authorization: Bearer`).

A token's value is made here, shown once in the creation answer, and stored only as its
digest in `access_token_keys`, before the grant event is saved: a token authenticates only
once its grant is in the log (the lookup joins the projected `catalog_access_tokens` row).
"""

from __future__ import annotations

from typing import Any

from psycopg import sql
from psycopg_pool import ConnectionPool
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.access_tokens import (
    AccessTokenChanges,
    AccessTokenForm,
    create_access_token,
    new_token_value,
    revoke_access_token,
    token_digest,
    update_access_token,
)
from core.errors import NotAuthenticated, NotFound, PermissionDenied
from core.permissions import Action
from projections.list_query import Field, ListSpec
from web.context import allowed, base_url, execute, path_id, runtime
from web.errors import BadRequest
from web.pagination import Listing, list_response
from web.representations import with_user_url
from web.responses import json_response, read_body

Doc = dict[str, Any]
USABLE = "NOT revoked AND (expiry_date IS NULL OR expiry_date > now())"


def token_json(doc: Doc, base: str) -> Doc:
    return {**doc, "owner": with_user_url(doc["owner"], base)}


TOKENS = Listing(
    table="access_token_docs",
    spec=ListSpec(
        fields={
            "id": Field(sql.Identifier("id"), "int", cast=False),
            "name": Field(sql.SQL("doc->>'name'"), "text"),
            "created_date": Field(sql.SQL("doc->>'created_date'"), "datetime"),
            "updated_date": Field(sql.SQL("doc->>'updated_date'"), "datetime"),
            "expiry_date": Field(sql.SQL("doc->>'expiry_date'"), "datetime"),
            "last_used_date": Field(sql.SQL("doc->>'last_used_date'"), "datetime"),
            "read_only": Field(sql.SQL("doc->>'read_only'"), "bool"),
        },
        search_fields=("name",),
        simple_filters=("name", "read_only"),
        ordering_fields=(
            "id",
            "name",
            "created_date",
            "updated_date",
            "expiry_date",
            "last_used_date",
            "read_only",
        ),
        default_order="-id",
    ),
    render=token_json,
)


async def tokens_list(request: Request) -> Response:
    """The caller's own usable tokens (as in CVAT, admins too see only their own here)."""
    caller = allowed(request, Action.LIST, "access_token")
    return await list_response(
        request,
        TOKENS,
        extra_where=sql.SQL(f"owner_id = %s AND {USABLE}"),
        extra_params=(caller.id,),
    )


async def token_create(request: Request) -> Response:
    caller = allowed(request, Action.CREATE, "access_token")
    if request.headers.get("idempotency-key"):
        raise BadRequest(
            "Idempotency-Key is not accepted here: the answer holds the token's secret value, "
            "which is never stored."
        )
    form = await read_body(request, AccessTokenForm)
    pool = runtime(request).pool
    value = new_token_value()
    token_id = await run_in_threadpool(_store_digest, pool, token_digest(value))
    try:
        await execute(request, lambda unit: create_access_token(unit, caller.id, token_id, form))
    except BaseException:
        await run_in_threadpool(_drop_digest, pool, token_id)
        raise
    doc = await run_in_threadpool(_load_doc, pool, token_id)
    assert doc is not None  # the catalog is brought up to a commit before it is acknowledged
    return json_response({**token_json(doc, base_url(request)), "value": value}, status=201)


async def token_detail(request: Request) -> Response:
    doc = await _owned_doc(request, Action.VIEW)
    return json_response(token_json(doc, base_url(request)))


async def token_self(request: Request) -> Response:
    """The token the request was signed with; only for requests signed with a token."""
    credentials = request.scope.get("state", {}).get("credentials")
    token = credentials.access_token if credentials is not None else None
    if token is None:
        raise NotAuthenticated()
    doc = await run_in_threadpool(_load_doc, runtime(request).pool, token.id)
    if doc is None:
        raise NotFound("access token", token.id)
    return json_response(token_json(doc, base_url(request)))


async def token_update(request: Request) -> Response:
    doc = await _owned_doc(request, Action.CHANGE)
    changes = await read_body(request, AccessTokenChanges)
    owner_id = doc["owner"]["id"]
    await execute(request, lambda unit: update_access_token(unit, owner_id, doc["id"], changes))
    updated = await run_in_threadpool(_load_doc, runtime(request).pool, doc["id"])
    assert updated is not None
    return json_response(token_json(updated, base_url(request)))


async def token_revoke(request: Request) -> Response:
    doc = await _owned_doc(request, Action.DELETE)
    owner_id = doc["owner"]["id"]
    await execute(request, lambda unit: revoke_access_token(unit, owner_id, doc["id"]))
    return Response(status_code=204)


async def _owned_doc(request: Request, action: Action) -> Doc:
    """A usable token of the caller (of anyone, for an admin), or 404/403 as CVAT answers."""
    caller = allowed(request, action, "access_token")
    token_id = path_id(request)
    doc = await run_in_threadpool(_load_doc, runtime(request).pool, token_id)
    if doc is None:
        raise NotFound("access token", token_id)
    if not caller.is_superuser and (doc["owner"] or {}).get("id") != caller.id:
        raise PermissionDenied("only the owner of this token or an admin may see or change it")
    return doc


def _load_doc(pool: ConnectionPool, token_id: int) -> Doc | None:
    with pool.connection() as conn:
        row = conn.execute(
            f"SELECT doc FROM access_token_docs WHERE id = %s AND {USABLE}", (token_id,)
        ).fetchone()
    return row[0] if row else None


def _store_digest(pool: ConnectionPool, digest: str) -> int:
    """Takes a token id and stores the value's digest under it; returns the id."""
    with pool.connection() as conn:
        row = conn.execute(
            "INSERT INTO access_token_keys (token_id, digest)"
            " VALUES (nextval('palimpsest_access_token_id'), %s) RETURNING token_id",
            (digest,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def _drop_digest(pool: ConnectionPool, token_id: int) -> None:
    with pool.connection() as conn:
        conn.execute("DELETE FROM access_token_keys WHERE token_id = %s", (token_id,))


ROUTES = [
    Route("/api/auth/access_tokens", tokens_list, methods=["GET"]),
    Route("/api/auth/access_tokens", token_create, methods=["POST"]),
    Route("/api/auth/access_tokens/self", token_self, methods=["GET"]),
    Route("/api/auth/access_tokens/{id:int}", token_detail, methods=["GET"]),
    Route("/api/auth/access_tokens/{id:int}", token_update, methods=["PATCH"]),
    Route("/api/auth/access_tokens/{id:int}", token_revoke, methods=["DELETE"]),
]
