"""/api/organizations, /api/memberships and /api/invitations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec
from psycopg import sql
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.errors import NotFound
from core.organizations import (
    InvitationInput,
    OrganizationInput,
    OrganizationPatch,
    Role,
    accept_invitation,
    change_role,
    create_organization,
    decline_invitation,
    invite,
    remove_member,
    resend_invitation,
    revoke_invitation,
    update_organization,
)
from core.organizations import delete_organization as delete_org
from core.permissions import Action, Principal
from core.tasks import delete_everything_of
from projections.list_query import Field, ListSpec
from web.context import allowed, base_url, execute, path_id
from web.errors import BadRequest
from web.pagination import Listing, list_response
from web.reads import fetch_all, fetch_doc
from web.representations import with_user_url
from web.responses import json_response, read_body

Doc = dict[str, object]
Endpoint = Callable[[Request], Awaitable[Response]]


def organization_json(doc: Doc, base: str) -> Doc:
    return {
        "url": f"{base}/api/organizations/{doc['id']}",
        **doc,
        "owner": with_user_url(doc["owner"], base),  # type: ignore[arg-type]
    }


def membership_json(doc: Doc, base: str) -> Doc:
    return {
        "url": f"{base}/api/memberships/{doc['id']}",
        **doc,
        "user": with_user_url(doc["user"], base),  # type: ignore[arg-type]
    }


def invitation_json(doc: Doc, base: str) -> Doc:
    return {
        "url": f"{base}/api/invitations/{doc['key']}",
        **{k: v for k, v in doc.items() if k != "email"},
        "owner": with_user_url(doc["owner"], base),  # type: ignore[arg-type]
        "user": with_user_url(doc["user"], base),  # type: ignore[arg-type]
    }


ORGANIZATIONS = Listing(
    table="catalog_organizations",
    spec=ListSpec(
        fields={
            "id": Field(sql.Identifier("id"), "int", cast=False),
            "slug": Field(sql.Identifier("slug"), "text", cast=False),
            "name": Field(sql.SQL("doc->>'name'"), "text"),
            "owner": Field(sql.SQL("doc->'owner'->>'username'"), "text"),
        },
        search_fields=("slug", "name", "owner"),
        simple_filters=("slug", "name", "owner"),
        ordering_fields=("id", "slug", "name", "owner"),
        default_order="-id",
    ),
    render=organization_json,
)

MEMBERSHIPS = Listing(
    table="catalog_memberships",
    spec=ListSpec(
        fields={
            "id": Field(sql.Identifier("id"), "int", cast=False),
            "user": Field(sql.SQL("doc->'user'->>'username'"), "text"),
            "role": Field(sql.Identifier("role"), "text", cast=False),
        },
        search_fields=("user", "role"),
        simple_filters=("user", "role"),
        ordering_fields=("id", "user", "role"),
        default_order="id",
    ),
    render=membership_json,
)

INVITATIONS = Listing(
    table="catalog_invitations",
    spec=ListSpec(
        fields={
            "id": Field(sql.Identifier("key"), "text", cast=False),  # the tiebreak
            "created_date": Field(sql.SQL("doc->>'created_date'"), "datetime"),
            "owner": Field(sql.SQL("doc->'owner'->>'username'"), "text"),
            "user_id": Field(sql.SQL("doc->'user'->>'id'"), "int"),
            "accepted": Field(sql.Identifier("accepted"), "bool", cast=False),
        },
        search_fields=("owner",),
        simple_filters=("owner", "user_id", "accepted"),
        ordering_fields=("created_date", "owner"),
        default_order="-created_date",
    ),
    render=invitation_json,
)

MEMBER_OF = "org_id IN (SELECT org_id FROM catalog_memberships WHERE user_id = %s)"
MANAGES = (
    "org_id IN (SELECT org_id FROM catalog_memberships"
    " WHERE user_id = %s AND role IN ('owner', 'maintainer'))"
)


class RoleBody(msgspec.Struct, forbid_unknown_fields=True):
    role: Role


# Organizations


async def organizations_list(request: Request) -> Response:
    caller = allowed(request, Action.LIST, "organization")
    if caller.is_superuser:
        return await list_response(request, ORGANIZATIONS)
    where = sql.SQL("id IN (SELECT org_id FROM catalog_memberships WHERE user_id = %s)")
    return await list_response(request, ORGANIZATIONS, extra_where=where, extra_params=(caller.id,))


async def organization_create(request: Request) -> Response:
    caller = allowed(request, Action.CREATE, "organization")
    body = await read_body(request, OrganizationInput)
    written = await execute(request, lambda unit: create_organization(unit, caller, body))
    return await _organization_response(request, caller, written.value, status=201)


async def organization_detail(request: Request) -> Response:
    caller = allowed(request, Action.VIEW, "organization")
    return await _organization_response(request, caller, path_id(request))


async def organization_update(request: Request) -> Response:
    caller = allowed(request, Action.CHANGE, "organization")
    org_id = path_id(request)
    body = await read_body(request, OrganizationPatch)
    await execute(request, lambda unit: update_organization(unit, caller, org_id, body))
    return await _organization_response(request, caller, org_id)


async def organization_delete(request: Request) -> Response:
    caller = allowed(request, Action.DELETE, "organization")
    org_id = path_id(request)
    projects = await fetch_all(
        request, "SELECT id FROM catalog_projects WHERE doc->>'organization' = %s", (str(org_id),)
    )
    tasks = await fetch_all(
        request, "SELECT id FROM catalog_tasks WHERE doc->>'organization' = %s", (str(org_id),)
    )

    def delete(unit: object) -> None:
        delete_org(unit, caller, org_id)  # type: ignore[arg-type]
        delete_everything_of(unit, [r[0] for r in projects], [r[0] for r in tasks])  # type: ignore[arg-type]

    await execute(request, delete)
    return Response(status_code=204)


async def _organization_response(
    request: Request, caller: Principal, org_id: int, status: int = 200
) -> Response:
    await _must_see_organization(request, caller, org_id)
    doc = await fetch_doc(request, "catalog_organizations", org_id, "organization")
    return json_response(organization_json(doc, base_url(request)), status=status)


async def _must_see_organization(request: Request, caller: Principal, org_id: int) -> None:
    if caller.is_superuser:
        return
    rows = await fetch_all(
        request,
        "SELECT 1 FROM catalog_memberships WHERE org_id = %s AND user_id = %s",
        (org_id, caller.id),
    )
    if not rows:
        raise NotFound("organization", org_id)


# Memberships


async def memberships_list(request: Request) -> Response:
    caller = allowed(request, Action.LIST, "membership")
    if caller.org_id is not None:
        where = sql.SQL("org_id = %s")
        return await list_response(
            request, MEMBERSHIPS, extra_where=where, extra_params=(caller.org_id,)
        )
    if caller.is_superuser:
        return await list_response(request, MEMBERSHIPS)
    return await list_response(
        request, MEMBERSHIPS, extra_where=sql.SQL(MEMBER_OF), extra_params=(caller.id,)
    )


async def membership_detail(request: Request) -> Response:
    caller = allowed(request, Action.VIEW, "membership")
    org_id, _ = await _membership(request, caller, path_id(request))
    return await _membership_response(request, path_id(request))


async def membership_update(request: Request) -> Response:
    caller = allowed(request, Action.CHANGE, "membership")
    membership_id = path_id(request)
    body = await read_body(request, RoleBody)
    org_id, user_id = await _membership(request, caller, membership_id)
    await execute(request, lambda unit: change_role(unit, caller, org_id, user_id, body.role))
    return await _membership_response(request, membership_id)


async def membership_delete(request: Request) -> Response:
    caller = allowed(request, Action.DELETE, "membership")
    org_id, user_id = await _membership(request, caller, path_id(request))
    await execute(request, lambda unit: remove_member(unit, caller, org_id, user_id))
    return Response(status_code=204)


async def _membership(request: Request, caller: Principal, membership_id: int) -> tuple[int, int]:
    rows = await fetch_all(
        request,
        "SELECT org_id, user_id FROM catalog_memberships WHERE id = %s",
        (membership_id,),
    )
    if not rows:
        raise NotFound("membership", membership_id)
    org_id, user_id = rows[0]
    await _must_see_organization(request, caller, org_id)
    return org_id, user_id


async def _membership_response(request: Request, membership_id: int) -> Response:
    doc = await fetch_doc(request, "catalog_memberships", membership_id, "membership")
    return json_response(membership_json(doc, base_url(request)))


# Invitations


async def invitations_list(request: Request) -> Response:
    caller = allowed(request, Action.LIST, "invitation")
    email = await _email_of(request, caller)
    if caller.org_id is not None:
        where = sql.SQL("org_id = %s AND (" + MANAGES + " OR email = %s)")
        params: tuple[object, ...] = (caller.org_id, caller.id, email)
    else:
        where = sql.SQL("(" + MANAGES + " OR email = %s)")
        params = (caller.id, email)
    if caller.is_superuser and caller.org_id is None:
        return await list_response(request, INVITATIONS)
    return await list_response(request, INVITATIONS, extra_where=where, extra_params=params)


async def invitation_create(request: Request) -> Response:
    caller = allowed(request, Action.CREATE, "invitation")
    if caller.org_id is None:
        raise BadRequest({"detail": "choose the organization (X-Organization or ?org=slug)"})
    org_id = caller.org_id
    body = await read_body(request, InvitationInput)
    written = await execute(request, lambda unit: invite(unit, caller, org_id, body))
    return await _invitation_response(request, written.value.key, status=201)


async def invitation_detail(request: Request) -> Response:
    caller = allowed(request, Action.VIEW, "invitation")
    key = request.path_params["key"]
    await _invitation_org(request, caller, key)
    return await _invitation_response(request, key)


async def invitation_accept(request: Request) -> Response:
    caller = allowed(request, Action.CHANGE, "invitation")
    key = request.path_params["key"]
    org_id = await _invitation_org(request, caller, key)
    written = await execute(request, lambda unit: accept_invitation(unit, caller, org_id, key))
    return json_response({"organization_slug": written.value.slug})


def _invitation_step(action: Action, command: Callable[..., None]) -> Endpoint:
    """A 204 endpoint running `command(unit, caller, org_id, key)` on the invitation named
    in the path (decline, resend, revoke)."""

    async def endpoint(request: Request) -> Response:
        caller = allowed(request, action, "invitation")
        key = request.path_params["key"]
        org_id = await _invitation_org(request, caller, key)
        await execute(request, lambda unit: command(unit, caller, org_id, key))
        return Response(status_code=204)

    return endpoint


invitation_decline = _invitation_step(Action.CHANGE, decline_invitation)
invitation_resend = _invitation_step(Action.CHANGE, resend_invitation)
invitation_delete = _invitation_step(Action.DELETE, revoke_invitation)


async def _invitation_org(request: Request, caller: Principal, key: str) -> int:
    """The invitation's organization, if the caller is its invitee or manages the org."""
    email = await _email_of(request, caller)
    rows = await fetch_all(
        request,
        "SELECT org_id FROM catalog_invitations WHERE key = %s AND (email = %s OR "
        + MANAGES
        + " OR %s)",
        (key, email, caller.id, caller.is_superuser),
    )
    if not rows:
        raise NotFound("invitation", key)
    return int(rows[0][0])


async def _invitation_response(request: Request, key: str, status: int = 200) -> Response:
    rows = await fetch_all(request, "SELECT doc FROM catalog_invitations WHERE key = %s", (key,))
    if not rows:
        raise NotFound("invitation", key)
    return json_response(invitation_json(rows[0][0], base_url(request)), status=status)


async def _email_of(request: Request, caller: Principal) -> str:
    rows = await fetch_all(request, "SELECT email FROM catalog_users WHERE id = %s", (caller.id,))
    return (rows[0][0] or "").lower() if rows else ""


ROUTES = [
    Route("/api/organizations", organizations_list, methods=["GET"]),
    Route("/api/organizations", organization_create, methods=["POST"]),
    Route("/api/organizations/{id:int}", organization_detail, methods=["GET"]),
    Route("/api/organizations/{id:int}", organization_update, methods=["PATCH"]),
    Route("/api/organizations/{id:int}", organization_delete, methods=["DELETE"]),
    Route("/api/memberships", memberships_list, methods=["GET"]),
    Route("/api/memberships/{id:int}", membership_detail, methods=["GET"]),
    Route("/api/memberships/{id:int}", membership_update, methods=["PATCH"]),
    Route("/api/memberships/{id:int}", membership_delete, methods=["DELETE"]),
    Route("/api/invitations", invitations_list, methods=["GET"]),
    Route("/api/invitations", invitation_create, methods=["POST"]),
    Route("/api/invitations/{key}", invitation_detail, methods=["GET"]),
    Route("/api/invitations/{key}", invitation_delete, methods=["DELETE"]),
    Route("/api/invitations/{key}/accept", invitation_accept, methods=["POST"]),
    Route("/api/invitations/{key}/decline", invitation_decline, methods=["POST"]),
    Route("/api/invitations/{key}/resend", invitation_resend, methods=["POST"]),
]
