"""Personal access tokens (CVAT's PATs), granted, changed and revoked as events of their User.

The events name the token (id, name, expiry, read-only flag), never its value: the value is
shown once, when the token is made, and kept only as a SHA-256 digest outside of the log. A
token value is 256 random bits behind a recognisable prefix, so one unsalted hash suffices.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec

from core.accounts import User
from core.errors import ErrorCollector, NotFound, ValidationFailed
from core.units import Unit

TOKEN_PREFIX = "plm_"  # tells a token from a session key, and makes leaked ones easy to find
NAME_MAX_LENGTH = 50
MAX_TOKENS_PER_USER = 50
TOO_MANY = "You have reached the maximum allowed number of Personal Access Tokens for a user"


def new_token_value() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def is_token_value(value: str) -> bool:
    return value.startswith(TOKEN_PREFIX)


class AccessTokenForm(msgspec.Struct):
    """CVAT's AccessTokenWriteRequest (POST); like CVAT, a token is read-only by default."""

    name: str
    expiry_date: datetime | None = None
    read_only: bool = True


class AccessTokenChanges(msgspec.Struct):
    """CVAT's PatchedAccessTokenWriteRequest: only the fields sent change."""

    name: str | msgspec.UnsetType = msgspec.UNSET
    expiry_date: datetime | None | msgspec.UnsetType = msgspec.UNSET
    read_only: bool | msgspec.UnsetType = msgspec.UNSET


@dataclass(frozen=True)
class Grant:
    """A live (not revoked) token as its owner's aggregate knows it."""

    name: str
    expiry_date: datetime | None
    read_only: bool

    def expired(self, now: datetime) -> bool:
        return self.expiry_date is not None and self.expiry_date <= now


def grants(user: User) -> dict[int, Grant]:
    """The user's live tokens by id (users from before tokens existed have none)."""
    found: dict[int, Grant] = getattr(user, "access_tokens", {})
    return found


def _replace_grants(user: User, updated: dict[int, Grant]) -> None:
    user.access_tokens = updated  # type: ignore[attr-defined]  # copy-on-write, never in place


class TokenGranted(User.Event):
    """A token's fields as granted (all of them); created and updated tokens alike."""

    token_id: int
    name: str
    expiry_date: datetime | None
    read_only: bool

    def apply(self, user: User) -> None:
        grant = Grant(self.name, self.expiry_date, self.read_only)
        _replace_grants(user, {**grants(user), self.token_id: grant})


class AccessTokenCreated(TokenGranted):
    pass


class AccessTokenUpdated(TokenGranted):
    pass


class AccessTokenRevoked(User.Event):
    token_id: int
    name: str

    def apply(self, user: User) -> None:
        _replace_grants(user, {k: v for k, v in grants(user).items() if k != self.token_id})


def create_access_token(unit: Unit, user_id: int, token_id: int, form: AccessTokenForm) -> Grant:
    """Grants token `token_id` (its digest is stored by the caller) to user `user_id`."""
    now = datetime.now(UTC)
    name = _checked_name(form.name)
    expiry = _checked_expiry(form.expiry_date, now)
    user = unit.get(User, user_id)
    usable = [g for g in grants(user).values() if not g.expired(now)]
    if len(usable) >= MAX_TOKENS_PER_USER:
        raise ValidationFailed.one("non_field_errors", TOO_MANY)
    user.trigger_event(
        AccessTokenCreated,
        token_id=token_id,
        name=name,
        expiry_date=expiry,
        read_only=form.read_only,
    )
    return grants(user)[token_id]


def update_access_token(
    unit: Unit, owner_id: int, token_id: int, changes: AccessTokenChanges
) -> Grant:
    now = datetime.now(UTC)
    user = unit.get(User, owner_id)
    grant = _usable_grant(user, token_id, now)
    updated = Grant(
        name=grant.name if changes.name is msgspec.UNSET else _checked_name(changes.name),
        expiry_date=(
            grant.expiry_date
            if changes.expiry_date is msgspec.UNSET
            else _checked_expiry(changes.expiry_date, now)
        ),
        read_only=grant.read_only if changes.read_only is msgspec.UNSET else changes.read_only,
    )
    if updated != grant:
        user.trigger_event(
            AccessTokenUpdated,
            token_id=token_id,
            name=updated.name,
            expiry_date=updated.expiry_date,
            read_only=updated.read_only,
        )
    return updated


def revoke_access_token(unit: Unit, owner_id: int, token_id: int) -> None:
    user = unit.get(User, owner_id)
    grant = _usable_grant(user, token_id, datetime.now(UTC))
    user.trigger_event(AccessTokenRevoked, token_id=token_id, name=grant.name)


def _usable_grant(user: User, token_id: int, now: datetime) -> Grant:
    grant = grants(user).get(token_id)
    if grant is None or grant.expired(now):
        raise NotFound("access token", token_id)
    return grant


def _checked_name(name: str) -> str:
    name = name.strip()
    errors = ErrorCollector()
    if not name:
        errors.add("name", "This field may not be blank.")
    elif len(name) > NAME_MAX_LENGTH:
        errors.add("name", f"Ensure this field has no more than {NAME_MAX_LENGTH} characters.")
    errors.raise_if_any()
    return name


def _checked_expiry(expiry: datetime | None, now: datetime) -> datetime | None:
    if expiry is None:
        return None
    if expiry.tzinfo is None:
        expiry = expiry.replace(tzinfo=UTC)  # as Django reads a naive time: in UTC
    expiry = expiry.astimezone(UTC)
    if expiry <= now:
        raise ValidationFailed.one("expiry_date", "The expiry date must be in the future.")
    return expiry
