"""Password reset and email confirmation by emailed links (CVAT's dj-rest-auth endpoints).

`POST /api/auth/password/reset` answers the same whether or not the address belongs to
someone, and does the work (token, event, mail) after answering, so neither the answer nor
its timing tells who has an account. Link tokens are stored only as digests
(`account_link_tokens`) and spent with one DELETE, so each works once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import datetime
from typing import Any

import msgspec
import structlog
from psycopg_pool import ConnectionPool
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.account_links import (
    PasswordResetConfirmForm,
    PasswordResetForm,
    Purpose,
    check_new_password,
    confirm_email,
    decode_uid,
    encode_uid,
    link_digest,
    link_expiry,
    new_link_token,
    request_password_reset,
    reset_password,
    send_email_confirmation,
)
from core.accounts import EMAIL_PATTERN
from core.errors import ValidationFailed
from core.permissions import Principal
from infra.mail import Mailer
from web.context import runtime
from web.responses import json_response, read_body

log = structlog.get_logger(__name__)

RESET_PATH = "/auth/password/reset/confirm"  # where CVAT's UI takes the link
CONFIRM_PATH = "/api/account-confirm-email/{key}/"
# What each purpose's token is bound to, as SQL over the user's catalog row `u`.
BINDING_SQL = {
    Purpose.PASSWORD_RESET: "encode(sha256(convert_to(u.password_hash, 'UTF8')), 'hex')",
    Purpose.CONFIRM_EMAIL: "lower(u.email)",
}
INVALID_LINK = "Invalid value"


class ResendForm(msgspec.Struct):
    email: str


async def password_reset(request: Request) -> Response:
    form = await read_body(request, PasswordResetForm)
    email = _checked_email(form.email)
    _in_background(request, _send_reset_link(request, email))
    return json_response({"detail": "Password reset e-mail has been sent."})


async def password_reset_link(request: Request) -> Response:
    """The page the emailed link opens: tells whether the link is still good (without
    spending it) and where to send the new password."""
    uid, token = request.query_params.get("uid", ""), request.query_params.get("token", "")
    user_id = decode_uid(uid)
    usable = user_id is not None and await run_in_threadpool(
        _link_usable, runtime(request).pool, Purpose.PASSWORD_RESET, token, user_id
    )
    if not usable:
        raise ValidationFailed.one("token", INVALID_LINK)
    return json_response(
        {
            "uid": uid,
            "token": token,
            "detail": "POST uid, token, new_password1 and new_password2 to"
            " /api/auth/password/reset/confirm",
        }
    )


async def password_reset_confirm(request: Request) -> Response:
    form = await read_body(request, PasswordResetConfirmForm)
    check_new_password(form.new_password1, form.new_password2)
    user_id = decode_uid(form.uid)
    if user_id is None:
        raise ValidationFailed.one("uid", INVALID_LINK)
    user = await run_in_threadpool(
        _spend_link, runtime(request).pool, Purpose.PASSWORD_RESET, form.token, user_id
    )
    if user is None:
        raise ValidationFailed.one("token", INVALID_LINK)
    await runtime(request).execute(
        lambda unit: reset_password(unit, user.id, form.new_password1, form.new_password2), user
    )
    await run_in_threadpool(request.app.state.authenticator.close_sessions_of, user.id)
    return json_response({"detail": "Password has been reset with the new password."})


async def confirm_email_link(request: Request) -> Response:
    token = request.path_params["key"]
    user = await run_in_threadpool(
        _spend_link, runtime(request).pool, Purpose.CONFIRM_EMAIL, token, None
    )
    if user is None:
        raise ValidationFailed.one("key", "This confirmation link is invalid, used or expired.")
    await runtime(request).execute(lambda unit: confirm_email(unit, user.id), user)
    return json_response({"detail": "The e-mail address has been confirmed."})


async def resend_confirmation(request: Request) -> Response:
    """dj-rest-auth's resend-email: a new link for an unconfirmed address, said to no one."""
    form = await read_body(request, ResendForm)
    email = _checked_email(form.email)
    if runtime(request).settings.email_confirmation != "none":
        _in_background(request, _resend_confirmation(request, email))
    return json_response({"detail": "ok"})


def send_confirmation_link(request: Request, user_id: int, email: str, expires: datetime) -> None:
    """Stores a confirmation token for a just-registered user and mails its link, after the
    answer."""
    _in_background(request, _mail_confirmation(request, user_id, email, expires))


async def _send_reset_link(request: Request, email: str) -> None:
    mailer = Mailer(runtime(request).settings)
    if not mailer.configured:
        log.warning("password reset asked, but no PALIMPSEST_SMTP_HOST is set: no mail sent")
        return
    pool = runtime(request).pool
    found = await run_in_threadpool(_user_by_email, pool, email)
    if found is None:
        return
    user_id, address = found
    expires = link_expiry()
    token = new_link_token()
    await run_in_threadpool(_store_link, pool, Purpose.PASSWORD_RESET, token, user_id, expires)
    await runtime(request).execute(
        lambda unit: request_password_reset(unit, user_id, expires), None
    )
    link = f"{_public_base(request)}{RESET_PATH}?uid={encode_uid(user_id)}&token={token}"
    body = (
        "Someone asked to reset the password of your Palimpsest account.\n\n"
        f"To choose a new password, open this link (it works once, for 24 hours):\n{link}\n\n"
        "If it was not you, ignore this message; your password stays as it is.\n"
    )
    await run_in_threadpool(mailer.send, address, "Reset your Palimpsest password", body)


async def _resend_confirmation(request: Request, email: str) -> None:
    pool = runtime(request).pool
    found = await run_in_threadpool(_user_by_email, pool, email, True)
    if found is None:
        return
    user_id, address = found
    expires = link_expiry()
    await runtime(request).execute(
        lambda unit: send_email_confirmation(unit, user_id, expires), None
    )
    await _mail_confirmation(request, user_id, address, expires)


async def _mail_confirmation(request: Request, user_id: int, email: str, expires: datetime) -> None:
    token = new_link_token()
    await run_in_threadpool(
        _store_link, runtime(request).pool, Purpose.CONFIRM_EMAIL, token, user_id, expires
    )
    link = _public_base(request) + CONFIRM_PATH.format(key=token)
    body = (
        "Welcome to Palimpsest. To confirm that this address is yours, open this link"
        f" (it works once, for 24 hours):\n{link}\n"
    )
    mailer = Mailer(runtime(request).settings)
    await run_in_threadpool(mailer.send, email, "Confirm your e-mail address", body)


def _in_background(request: Request, work: Coroutine[Any, Any, None]) -> None:
    async def logged() -> None:
        try:
            await work
        except Exception:
            log.exception("sending an account link failed", path=request.url.path)

    tasks: set[asyncio.Task[None]] = request.app.state.background
    task = asyncio.create_task(logged())
    tasks.add(task)
    task.add_done_callback(tasks.discard)


def _public_base(request: Request) -> str:
    """Links in mail use the configured public url, never the request's Host header."""
    return runtime(request).settings.public_base.rstrip("/")


def _checked_email(email: str) -> str:
    email = email.strip()
    if not EMAIL_PATTERN.match(email):
        raise ValidationFailed.one("email", "Enter a valid email address.")
    return email


def _user_by_email(
    pool: ConnectionPool, email: str, unverified_only: bool = False
) -> tuple[int, str] | None:
    condition = " AND NOT email_verified" if unverified_only else ""
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT id, email FROM catalog_users WHERE email <> '' AND lower(email) = lower(%s)"
            + condition,
            (email,),
        ).fetchone()
    return (row[0], row[1]) if row else None


def _store_link(
    pool: ConnectionPool, purpose: Purpose, token: str, user_id: int, expires: datetime
) -> None:
    with pool.connection() as conn:
        conn.execute(
            "DELETE FROM account_link_tokens WHERE user_id = %s AND expires <= now()", (user_id,)
        )
        conn.execute(
            "INSERT INTO account_link_tokens (digest, purpose, user_id, bound_to, expires)"
            f" SELECT %s, %s, u.id, {BINDING_SQL[purpose]}, %s FROM catalog_users u"
            " WHERE u.id = %s",
            (link_digest(token), purpose, expires, user_id),
        )


def _link_condition(purpose: Purpose) -> str:
    return (
        "k.digest = %s AND k.purpose = %s AND (%s::int IS NULL OR k.user_id = %s)"
        f" AND u.id = k.user_id AND k.expires > now() AND k.bound_to = {BINDING_SQL[purpose]}"
    )


def _link_usable(pool: ConnectionPool, purpose: Purpose, token: str, user_id: int) -> bool:
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT 1 FROM account_link_tokens k, catalog_users u WHERE "
            + _link_condition(purpose),
            (link_digest(token), purpose, user_id, user_id),
        ).fetchone()
    return row is not None


def _spend_link(
    pool: ConnectionPool, purpose: Purpose, token: str, user_id: int | None
) -> Principal | None:
    """Deletes the link's token if it is good (for `user_id`, when given); its user."""
    with pool.connection() as conn:
        row = conn.execute(
            "DELETE FROM account_link_tokens k USING catalog_users u WHERE "
            + _link_condition(purpose)
            + " RETURNING u.id, u.username, u.is_superuser",
            (link_digest(token), purpose, user_id, user_id),
        ).fetchone()
    return Principal(row[0], row[1], row[2]) if row else None


ROUTES = [
    Route("/api/auth/password/reset", password_reset, methods=["POST"]),
    Route("/api/auth/password/reset/confirm", password_reset_confirm, methods=["POST"]),
    Route(RESET_PATH, password_reset_link, methods=["GET"]),
    Route("/api/account-confirm-email/{key}", confirm_email_link, methods=["GET"]),
    Route(CONFIRM_PATH, confirm_email_link, methods=["GET"]),
    Route("/api/auth/register/resend-email", resend_confirmation, methods=["POST"]),
]
