"""Accounts signed in through an OpenID Connect provider: found, linked or created.

An identity is the provider's (issuer, subject) pair, claimed once like a username, so two
accounts can never share it. Linking it to an account is an `IdentityLinked` event of that
User; nothing the provider issued (codes, tokens) ever reaches the log.

Email addresses are trusted only when the provider says they are verified: a verified
address links the identity to the account already holding it, and is claimed by an account
the sign-in creates. An unverified one is neither: claiming it would let whoever controls
the provider account take over the address's later, verified sign-ins.
"""

from __future__ import annotations

import re

import msgspec

from core.accounts import EMAIL_PATTERN, AccountEmail, AccountName, User
from core.aggregate import Entity
from core.errors import Conflict, PermissionDenied
from core.units import Unit

USERNAME_MAX_LENGTH = 150
_NOT_USERNAME_CHARACTERS = re.compile(r"[^\w.@+-]")


class ProviderIdentity(msgspec.Struct, frozen=True):
    """What a provider told about the person signing in (from a checked id_token)."""

    provider: str
    issuer: str
    subject: str
    email: str = ""
    email_verified: bool = False
    preferred_username: str = ""
    given_name: str = ""
    family_name: str = ""

    @property
    def claim_key(self) -> str:
        return f"{self.issuer} {self.subject}"  # a space is in neither an issuer url nor a sub

    @property
    def verified_email(self) -> str:
        if self.email_verified and EMAIL_PATTERN.match(self.email):
            return self.email
        return ""


class ExternalIdentity(Entity):
    """Claims a provider identity (issuer and subject) for one user."""

    KIND = "oidc_identity"

    class Created(Entity.Created):
        user_id: int

    def __init__(self, user_id: int) -> None:
        self.user_id = user_id


class IdentityLinked(User.Event):
    """An OpenID Connect identity now signs this user in."""

    provider: str
    issuer: str
    subject: str
    email: str  # the verified address the link was made by, or ""


def sign_in_with_identity(unit: Unit, identity: ProviderIdentity, *, may_create: bool) -> User:
    """The user this identity signs in: the one it is linked to, else the account holding its
    verified email (now linked), else a new account (if `may_create`)."""
    claim = unit.find(ExternalIdentity, identity.claim_key)
    if claim is not None:
        return unit.get(User, claim.user_id)
    email = identity.verified_email
    holder = unit.find(AccountEmail, email.lower()) if email else None
    if holder is not None:
        user = unit.get(User, holder.user_id)
    elif identity.email and unit.find(AccountEmail, identity.email.lower()) is not None:
        raise Conflict(
            f"An account with the email {identity.email} exists, but {identity.provider} does "
            "not say the address is verified, so this sign-in is not linked to it. Sign in "
            "with your password, or verify the address with the provider first."
        )
    elif not may_create:
        raise PermissionDenied(
            "sign-up is closed on this server, and no account is linked to this "
            f"{identity.provider} identity; ask an admin for an account"
        )
    else:
        user = _create_user(unit, identity)
    user.trigger_event(
        IdentityLinked,
        provider=identity.provider,
        issuer=identity.issuer,
        subject=identity.subject,
        email=email,
    )
    unit.add(ExternalIdentity._start(identity.claim_key, user_id=user.user_id))
    return user


def _create_user(unit: Unit, identity: ProviderIdentity) -> User:
    user_id = unit.next_id("user")
    username = _free_username(unit, _username_base(identity))
    email = identity.verified_email
    user = User._start(
        user_id,
        user_id=user_id,
        username=username,
        email=email,
        first_name=identity.given_name,
        last_name=identity.family_name,
        password_hash="",  # no password signs this account in until one is set
        is_superuser=False,
    )
    unit.add(user)
    unit.add(AccountName._start(username.lower(), user_id=user_id))
    if email:
        unit.add(AccountEmail._start(email.lower(), user_id=user_id))
    return user


def _username_base(identity: ProviderIdentity) -> str:
    for candidate in (identity.preferred_username, identity.email.partition("@")[0]):
        cleaned = _NOT_USERNAME_CHARACTERS.sub("", candidate)[: USERNAME_MAX_LENGTH - 10]
        if cleaned:
            return cleaned
    return "user"


def _free_username(unit: Unit, base: str) -> str:
    """`base`, or `base` with the smallest number after it that no account has taken."""
    candidate, number = base, 1
    while unit.find(AccountName, candidate.lower()) is not None:
        candidate, number = f"{base}{number}", number + 1
    return candidate
