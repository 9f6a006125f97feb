"""Organizations: a team's shared workspace, its members and their roles, and invitations.

Every membership and role change is an event of the organization's stream, made by an actor
(who granted what to whom). An invitation names an email; whoever signs in with that email
(or signs up with it later) may accept it.
"""

from __future__ import annotations

import re
import secrets
from typing import Literal

import msgspec

from core.accounts import AccountEmail, User
from core.aggregate import Entity
from core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from core.permissions import ROLE_RANK as RANK
from core.permissions import Principal
from core.units import Unit

Role = Literal["owner", "maintainer", "supervisor", "worker"]
SLUG_PATTERN = re.compile(r"^[-a-zA-Z0-9_]{1,16}$")
UNSET = msgspec.UNSET
# The least role that may take each action on an organization (members leave by themselves).
ORGANIZATION_RULES: dict[str, str] = {
    "change this organization": "maintainer",
    "delete this organization": "owner",
    "invite members": "maintainer",
    "resend invitations": "maintainer",
    "revoke invitations": "maintainer",
    "change roles": "maintainer",
    "remove members": "maintainer",
}
# Roles from this one up are granted, changed and taken only by the owner.
OWNER_GRANTS_FROM = "maintainer"


class Invitation(msgspec.Struct, frozen=True):
    key: str
    email: str
    role: str
    owner_id: int | None
    accepted: bool = False


class Organization(Entity):
    KIND = "organization"

    class Created(Entity.Created):
        org_id: int
        slug: str
        name: str
        description: str
        contact: dict[str, str]
        owner_id: int
        membership_id: int

    def __init__(
        self,
        org_id: int,
        slug: str,
        name: str,
        description: str,
        contact: dict[str, str],
        owner_id: int,
        membership_id: int,
    ) -> None:
        self.org_id = org_id
        self.slug = slug
        self.name = name
        self.description = description
        self.contact = contact
        self.owner_id = owner_id
        self.roles: dict[int, str] = {owner_id: "owner"}
        self.membership_ids: dict[int, int] = {owner_id: membership_id}
        self.invitations: dict[str, Invitation] = {}

    class Updated(Entity.Event):
        changes: dict[str, object]

        def apply(self, org: Organization) -> None:
            for field, value in self.changes.items():
                setattr(org, field, value)

    class MemberJoined(Entity.Event):
        user_id: int
        role: str
        membership_id: int
        invitation_key: str

        def apply(self, org: Organization) -> None:
            org.roles = {**org.roles, self.user_id: self.role}
            org.membership_ids = {**org.membership_ids, self.user_id: self.membership_id}
            invitation = org.invitations[self.invitation_key]
            org.invitations = {
                **org.invitations,
                self.invitation_key: msgspec.structs.replace(invitation, accepted=True),
            }

    class RoleChanged(Entity.Event):
        user_id: int
        role: str

        def apply(self, org: Organization) -> None:
            org.roles = {**org.roles, self.user_id: self.role}

    class MemberLeft(Entity.Event):
        user_id: int
        removed_by_other: bool

        def apply(self, org: Organization) -> None:
            org.roles = {u: r for u, r in org.roles.items() if u != self.user_id}
            org.membership_ids = {u: m for u, m in org.membership_ids.items() if u != self.user_id}

    class Invited(Entity.Event):
        invitation: Invitation

        def apply(self, org: Organization) -> None:
            org.invitations = {**org.invitations, self.invitation.key: self.invitation}

    class InvitationResent(Entity.Event):
        key: str

        def apply(self, org: Organization) -> None:
            pass

    class InvitationDropped(Entity.Event):
        """Declined by the invitee or revoked by the organization."""

        key: str
        declined: bool

        def apply(self, org: Organization) -> None:
            org.invitations = {k: i for k, i in org.invitations.items() if k != self.key}

    def role_of(self, user_id: int) -> str | None:
        return self.roles.get(user_id)


class OrganizationSlug(Entity):
    """Claims a slug (case-insensitively): a second claim fails to save."""

    KIND = "organization-slug"

    class Created(Entity.Created):
        org_id: int

    def __init__(self, org_id: int) -> None:
        self.org_id = org_id


class OrganizationInput(msgspec.Struct, forbid_unknown_fields=True):
    slug: str
    name: str = ""
    description: str = ""
    contact: dict[str, str] = {}


class OrganizationPatch(msgspec.Struct, forbid_unknown_fields=True):
    slug: str | msgspec.UnsetType = UNSET
    name: str | msgspec.UnsetType = UNSET
    description: str | msgspec.UnsetType = UNSET
    contact: dict[str, str] | msgspec.UnsetType = UNSET


class InvitationInput(msgspec.Struct, forbid_unknown_fields=True):
    role: Role
    email: str


def create_organization(unit: Unit, principal: Principal, body: OrganizationInput) -> int:
    slug = _slug(unit, body.slug)
    org_id = unit.next_id("organization")
    org = Organization._start(
        org_id,
        org_id=org_id,
        slug=slug,
        name=body.name.strip(),
        description=body.description,
        contact=dict(body.contact),
        owner_id=principal.id,
        membership_id=unit.next_id("membership"),
    )
    unit.add(org)
    unit.add(OrganizationSlug._start(slug.lower(), org_id=org_id))
    return org_id


def update_organization(
    unit: Unit, principal: Principal, org_id: int, body: OrganizationPatch
) -> None:
    org = organization_for(unit, principal, org_id)
    _require(principal, org, "change this organization")
    changes: dict[str, object] = {}
    if body.slug is not UNSET and body.slug != org.slug:
        changes["slug"] = _slug(unit, body.slug)
        unit.add(OrganizationSlug._start(body.slug.lower(), org_id=org_id))
    for field in ("name", "description", "contact"):
        value = getattr(body, field)
        if value is not UNSET and value != getattr(org, field):
            changes[field] = value
    if changes:
        org.trigger_event(Organization.Updated, changes=changes)


def delete_organization(unit: Unit, principal: Principal, org_id: int) -> Organization:
    org = organization_for(unit, principal, org_id)
    _require(principal, org, "delete this organization")
    org.delete()
    return org


def invite(unit: Unit, principal: Principal, org_id: int, body: InvitationInput) -> Invitation:
    org = organization_for(unit, principal, org_id)
    _require(principal, org, "invite members")
    _may_grant(principal, org, body.role)
    email = body.email.strip().lower()
    if "@" not in email:
        raise ValidationFailed.one("email", "Enter a valid email address.")
    invited = _user_by_email(unit, email)
    if invited is not None and invited.user_id in org.roles:
        raise ValidationFailed.one("email", "This user is already a member of the organization.")
    if any(i.email == email and not i.accepted for i in org.invitations.values()):
        raise ValidationFailed.one("email", "This email has a pending invitation already.")
    invitation = Invitation(
        key=secrets.token_urlsafe(32), email=email, role=body.role, owner_id=principal.id
    )
    org.trigger_event(Organization.Invited, invitation=invitation)
    return invitation


def accept_invitation(unit: Unit, principal: Principal, org_id: int, key: str) -> Organization:
    org, invitation = _invitation_for_invitee(unit, principal, org_id, key)
    if principal.id in org.roles:
        raise Conflict("you are a member of this organization already")
    org.trigger_event(
        Organization.MemberJoined,
        user_id=principal.id,
        role=invitation.role,
        membership_id=unit.next_id("membership"),
        invitation_key=key,
    )
    return org


def decline_invitation(unit: Unit, principal: Principal, org_id: int, key: str) -> None:
    org, _ = _invitation_for_invitee(unit, principal, org_id, key)
    org.trigger_event(Organization.InvitationDropped, key=key, declined=True)


def resend_invitation(unit: Unit, principal: Principal, org_id: int, key: str) -> None:
    org = organization_for(unit, principal, org_id)
    _require(principal, org, "resend invitations")
    _pending(org, key)
    org.trigger_event(Organization.InvitationResent, key=key)


def revoke_invitation(unit: Unit, principal: Principal, org_id: int, key: str) -> None:
    org = organization_for(unit, principal, org_id)
    _require(principal, org, "revoke invitations")
    _may_grant(principal, org, _pending(org, key).role)
    org.trigger_event(Organization.InvitationDropped, key=key, declined=False)


def change_role(unit: Unit, principal: Principal, org_id: int, user_id: int, role: Role) -> None:
    org = organization_for(unit, principal, org_id)
    _require(principal, org, "change roles")
    current = _member_role(org, user_id)
    if current == "owner":
        raise PermissionDenied("the owner's role cannot be changed")
    _may_grant(principal, org, current)
    _may_grant(principal, org, role)
    if role != current:
        org.trigger_event(Organization.RoleChanged, user_id=user_id, role=role)


def remove_member(unit: Unit, principal: Principal, org_id: int, user_id: int) -> None:
    """Removes a member; a member removing themself leaves (the owner cannot leave)."""
    org = organization_for(unit, principal, org_id)
    role = _member_role(org, user_id)
    if role == "owner":
        raise PermissionDenied("the owner cannot leave or be removed from the organization")
    leaving = user_id == principal.id
    if not leaving:
        _require(principal, org, "remove members")
        _may_grant(principal, org, role)
    org.trigger_event(Organization.MemberLeft, user_id=user_id, removed_by_other=not leaving)


def organization_for(unit: Unit, principal: Principal, org_id: int) -> Organization:
    """The organization if the caller may see it (members and admins); NotFound otherwise."""
    org = unit.get(Organization, org_id)
    if not principal.is_superuser and principal.id not in org.roles:
        raise NotFound("organization", org_id)
    return org


def _require(principal: Principal, org: Organization, what: str) -> None:
    if principal.is_superuser:
        return
    least = ORGANIZATION_RULES[what]
    if RANK.get(org.roles.get(principal.id, ""), 0) < RANK[least]:
        raise PermissionDenied(f"only a {least} or above may {what}")


def _may_grant(principal: Principal, org: Organization, role: str) -> None:
    """Owners grant any role but owner; maintainers grant the roles below their own."""
    if role == "owner":
        raise ValidationFailed.one("role", "there is one owner: the one who created it")
    if principal.is_superuser or org.roles.get(principal.id) == "owner":
        return
    if RANK[role] >= RANK[OWNER_GRANTS_FROM]:
        raise PermissionDenied("only the owner may grant or take the maintainer role")


def _member_role(org: Organization, user_id: int) -> str:
    role = org.roles.get(user_id)
    if role is None:
        raise NotFound("membership of user", user_id)
    return role


def _pending(org: Organization, key: str) -> Invitation:
    invitation = org.invitations.get(key)
    if invitation is None or invitation.accepted:
        raise NotFound("invitation", key)
    return invitation


def _invitation_for_invitee(
    unit: Unit, principal: Principal, org_id: int, key: str
) -> tuple[Organization, Invitation]:
    org = unit.get(Organization, org_id)
    invitation = _pending(org, key)
    user = unit.get(User, principal.id)
    if (user.email or "").lower() != invitation.email:
        raise NotFound("invitation", key)
    return org, invitation


def _user_by_email(unit: Unit, email: str) -> User | None:
    claim = unit.find(AccountEmail, email)
    return unit.find(User, claim.user_id) if claim is not None else None


def _slug(unit: Unit, slug: str) -> str:
    if not SLUG_PATTERN.match(slug):
        raise ValidationFailed.one("slug", "Use 1 to 16 letters, digits, hyphens or underscores.")
    if unit.find(OrganizationSlug, slug.lower()) is not None:
        raise ValidationFailed.one("slug", "An organization with this slug already exists.")
    return slug
