"""The catalog's organization documents: CVAT's OrganizationRead, MembershipRead, InvitationRead.

Part of the catalog projection (its handlers are merged into CatalogProjection's).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from core.organizations import Organization
from projections.catalog_docs import basic_user, iso
from projections.runner import Table

Cursor = psycopg.Cursor[Any]
Doc = dict[str, Any]

TABLES = (
    Table("catalog_organizations", "id"),
    Table("catalog_memberships", "org_id"),
    Table("catalog_invitations", "org_id"),
)


def _org_id(cur: Cursor, stream: Any) -> int | None:
    row = cur.execute("SELECT id FROM catalog_organizations WHERE uuid = %s", (stream,)).fetchone()
    return row[0] if row else None


def _created(cur: Cursor, event: Organization.Created) -> None:
    stamp = iso(event.timestamp)
    doc = {
        "id": event.org_id,
        "slug": event.slug,
        "name": event.name,
        "description": event.description,
        "created_date": stamp,
        "updated_date": stamp,
        "contact": event.contact,
        "owner": basic_user(cur, event.owner_id),
    }
    cur.execute(
        "INSERT INTO catalog_organizations (id, uuid, slug, doc) VALUES (%s, %s, %s, %s)",
        (event.org_id, event.originator_id, event.slug, Jsonb(doc)),
    )
    _add_member(cur, event.membership_id, event.org_id, event.owner_id, "owner", None, stamp)


def _updated(cur: Cursor, event: Organization.Updated) -> None:
    row = cur.execute(
        "SELECT id, doc FROM catalog_organizations WHERE uuid = %s", (event.originator_id,)
    ).fetchone()
    if row is None:
        return
    org_id, doc = row
    for field in ("slug", "name", "description", "contact"):
        if field in event.changes:
            doc[field] = event.changes[field]
    doc["updated_date"] = iso(event.timestamp)
    cur.execute(
        "UPDATE catalog_organizations SET doc = %s, slug = %s WHERE id = %s",
        (Jsonb(doc), doc["slug"], org_id),
    )


def _deleted(cur: Cursor, event: Organization.Deleted) -> None:
    org_id = _org_id(cur, event.originator_id)
    if org_id is None:
        return
    for table in TABLES[1:]:
        cur.execute(
            psycopg.sql.SQL("DELETE FROM {} WHERE org_id = %s").format(
                psycopg.sql.Identifier(table.name)
            ),
            (org_id,),
        )
    cur.execute("DELETE FROM catalog_organizations WHERE id = %s", (org_id,))


def _member_joined(cur: Cursor, event: Organization.MemberJoined) -> None:
    org_id = _org_id(cur, event.originator_id)
    if org_id is None:
        return
    stamp = iso(event.timestamp)
    _add_member(
        cur, event.membership_id, org_id, event.user_id, event.role, event.invitation_key, stamp
    )
    cur.execute(
        "UPDATE catalog_invitations SET accepted = true,"
        " doc = doc || jsonb_build_object('accepted', true) WHERE key = %s",
        (event.invitation_key,),
    )


def _role_changed(cur: Cursor, event: Organization.RoleChanged) -> None:
    org_id = _org_id(cur, event.originator_id)
    cur.execute(
        "UPDATE catalog_memberships SET role = %s,"
        " doc = doc || jsonb_build_object('role', %s::text) WHERE org_id = %s AND user_id = %s",
        (event.role, event.role, org_id, event.user_id),
    )


def _member_left(cur: Cursor, event: Organization.MemberLeft) -> None:
    org_id = _org_id(cur, event.originator_id)
    cur.execute(
        "DELETE FROM catalog_memberships WHERE org_id = %s AND user_id = %s",
        (org_id, event.user_id),
    )


def _invited(cur: Cursor, event: Organization.Invited) -> None:
    row = cur.execute(
        "SELECT id, doc FROM catalog_organizations WHERE uuid = %s", (event.originator_id,)
    ).fetchone()
    if row is None:
        return
    org_id, org = row
    invitation = event.invitation
    user = cur.execute(
        "SELECT id FROM catalog_users WHERE lower(email) = %s", (invitation.email,)
    ).fetchone()
    doc = {
        "key": invitation.key,
        "created_date": iso(event.timestamp),
        "owner": basic_user(cur, invitation.owner_id),
        "role": invitation.role,
        "user": basic_user(cur, user[0]) if user else None,
        "email": invitation.email,
        "organization": org_id,
        "organization_info": {"id": org_id, "slug": org["slug"], "name": org["name"]},
        "expired": False,
        "accepted": False,
    }
    cur.execute(
        "INSERT INTO catalog_invitations (key, org_id, email, accepted, doc)"
        " VALUES (%s, %s, %s, false, %s)",
        (invitation.key, org_id, invitation.email, Jsonb(doc)),
    )


def _invitation_resent(cur: Cursor, event: Organization.InvitationResent) -> None:
    cur.execute(
        "UPDATE catalog_invitations SET doc = doc || jsonb_build_object('created_date', %s::text)"
        " WHERE key = %s",
        (iso(event.timestamp), event.key),
    )


def _invitation_dropped(cur: Cursor, event: Organization.InvitationDropped) -> None:
    cur.execute("DELETE FROM catalog_invitations WHERE key = %s", (event.key,))


def _add_member(
    cur: Cursor,
    membership_id: int,
    org_id: int,
    user_id: int,
    role: str,
    invitation: str | None,
    stamp: str,
) -> None:
    doc = {
        "id": membership_id,
        "user": basic_user(cur, user_id),
        "organization": org_id,
        "is_active": True,
        "joined_date": stamp,
        "role": role,
        "invitation": invitation,
    }
    cur.execute(
        "INSERT INTO catalog_memberships (id, org_id, user_id, role, doc)"
        " VALUES (%s, %s, %s, %s, %s)",
        (membership_id, org_id, user_id, role, Jsonb(doc)),
    )


HANDLERS: dict[type, Callable[[Cursor, Any], None]] = {
    Organization.Created: _created,
    Organization.Updated: _updated,
    Organization.Deleted: _deleted,
    Organization.MemberJoined: _member_joined,
    Organization.RoleChanged: _role_changed,
    Organization.MemberLeft: _member_left,
    Organization.Invited: _invited,
    Organization.InvitationResent: _invitation_resent,
    Organization.InvitationDropped: _invitation_dropped,
}
