"""Links emailed to an account: password reset and email confirmation.

A link carries a random token; only its SHA-256 digest is stored (outside the log), with
what the token is bound to when made: the fingerprint of the password hash for a reset (so a
password change voids every reset link, as Django does) or the address for a confirmation.
A token is used at most once and expires. Requesting a reset, resetting, sending and
confirming are events of the User stream; the events never hold a token or its digest.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import msgspec

from core.accounts import User, check_new_password
from core.passwords import hash_password
from core.units import Unit

LINK_LIFETIME = timedelta(hours=24)


class Purpose(StrEnum):
    PASSWORD_RESET = "password_reset"
    CONFIRM_EMAIL = "confirm_email"


class PasswordResetForm(msgspec.Struct):
    """dj-rest-auth's PasswordResetSerializer, as CVAT uses it."""

    email: str


class PasswordResetConfirmForm(msgspec.Struct):
    """dj-rest-auth's PasswordResetConfirmSerializer."""

    uid: str
    token: str
    new_password1: str
    new_password2: str


class PasswordResetRequested(User.Event):
    expires: datetime

    def apply(self, user: User) -> None:
        pass


class PasswordReset(User.PasswordChanged):
    """The password set through a reset link (actor: the user holding the link)."""


class EmailConfirmationSent(User.Event):
    email: str
    expires: datetime

    def apply(self, user: User) -> None:
        user.email_confirmed = False  # type: ignore[attr-defined]


class EmailConfirmed(User.Event):
    email: str

    def apply(self, user: User) -> None:
        user.email_confirmed = True  # type: ignore[attr-defined]


def new_link_token() -> str:
    return secrets.token_urlsafe(32)


def link_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def password_fingerprint(password_hash: str) -> str:
    """What a reset link is bound to (the database computes the same, see web/account_links)."""
    return hashlib.sha256(password_hash.encode()).hexdigest()


def encode_uid(user_id: int) -> str:
    """Django's urlsafe_base64_encode(force_bytes(pk)), as dj-rest-auth sends `uid`."""
    return base64.urlsafe_b64encode(str(user_id).encode()).decode().rstrip("=")


def decode_uid(uid: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(uid + "=" * (-len(uid) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return int(text) if text.isdigit() and len(text) < 10 else None


def link_expiry(now: datetime | None = None) -> datetime:
    return (now or datetime.now(UTC)) + LINK_LIFETIME


def request_password_reset(unit: Unit, user_id: int, expires: datetime) -> None:
    unit.get(User, user_id).trigger_event(PasswordResetRequested, expires=expires)


def reset_password(unit: Unit, user_id: int, new1: str, new2: str) -> None:
    check_new_password(new1, new2)
    unit.get(User, user_id).trigger_event(PasswordReset, password_hash=hash_password(new1))


def send_email_confirmation(unit: Unit, user_id: int, expires: datetime) -> User:
    user = unit.get(User, user_id)
    user.trigger_event(EmailConfirmationSent, email=user.email, expires=expires)
    return user


def confirm_email(unit: Unit, user_id: int) -> None:
    user = unit.get(User, user_id)
    if not email_confirmed(user):
        user.trigger_event(EmailConfirmed, email=user.email)


def email_confirmed(user: User) -> bool:
    """Users made before confirmation existed, or while it was off, count as confirmed."""
    return bool(getattr(user, "email_confirmed", True))
