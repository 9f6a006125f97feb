"""Server info, sign-up, sign-in and users: /api/server/about, /api/auth/*, /api/users."""

from __future__ import annotations

import msgspec
from psycopg import sql
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.account_links import link_expiry, send_email_confirmation
from core.accounts import Registration, User, change_password, register_user
from core.errors import NotFound, PermissionDenied, ValidationFailed
from core.permissions import Action, Resource, authorize
from core.policy import describe_policy
from core.units import Unit
from projections.envelope import envelope_schema
from projections.list_query import Field, ListSpec
from web.account_links import send_confirmation_link
from web.context import allowed, base_url, execute, path_id, runtime
from web.login_throttle import LoginLocked
from web.pagination import Listing, list_response
from web.representations import user_json
from web.responses import json_response, read_body
from web.sessions import EmailNotVerified, Session

API_VERSION = "2.80.0"
SESSION_MAX_AGE = 14 * 24 * 3600


class LoginForm(msgspec.Struct):
    password: str
    username: str = ""
    email: str = ""


class PasswordChangeForm(msgspec.Struct):
    old_password: str
    new_password1: str
    new_password2: str


async def about(request: Request) -> Response:
    return json_response(
        {
            "name": "Palimpsest",
            "description": "A CVAT-compatible annotation server where every edit is kept: "
            "many annotators on one job, and any past state readable.",
            "version": API_VERSION,
            "logo_url": f"{base_url(request)}/static/logo.svg",
            "subtitle": "Collaborative annotation on an append-only log",
        }
    )


async def events_schema(request: Request) -> Response:
    """The JSON Schema of the envelope every event is published in on JetStream."""
    return json_response(envelope_schema())


async def rules(request: Request) -> Response:
    """The permission policy, made from the tables the checks use (see "Who may do what")."""
    return json_response(describe_policy())


async def register(request: Request) -> Response:
    if not runtime(request).settings.allow_signup:
        raise PermissionDenied("sign-up is closed on this server; ask an admin for an account")
    form = await read_body(request, Registration)
    confirmation = runtime(request).settings.email_confirmation
    confirming = confirmation != "none" and bool(form.email)
    expires = link_expiry()

    def sign_up(unit: Unit) -> User:
        user = register_user(unit, form)
        if confirming:  # in the same command: never a moment when it could sign in unconfirmed
            send_email_confirmation(unit, user.user_id, expires)
        return user

    written = await runtime(request).execute(sign_up, principal=None)
    user = written.value
    if confirming:
        send_confirmation_link(request, user.user_id, user.email, expires)
    return json_response(
        {
            "username": user.username,
            "email": user.email,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "email_verification_required": confirmation == "mandatory",
            "key": None,
        },
        status=201,
    )


async def login(request: Request) -> Response:
    form = await read_body(request, LoginForm)
    login_name = form.username or form.email
    if not login_name:
        raise ValidationFailed.one("username", 'Must include "username" and "password".')
    authenticator = request.app.state.authenticator
    address = request.client.host if request.client else None
    try:
        caller = await run_in_threadpool(authenticator.sign_in, login_name, form.password, address)
    except LoginLocked as locked:
        return json_response(
            {"detail": str(locked)}, status=429, headers={"Retry-After": str(locked.retry_after)}
        )
    except EmailNotVerified:
        raise ValidationFailed({"non_field_errors": ["E-mail is not verified."]}) from None
    if caller is None:
        raise ValidationFailed(
            {"non_field_errors": ["Unable to log in with provided credentials."]}
        )
    session = await run_in_threadpool(authenticator.open_session, caller)
    response = json_response({"key": session.key})
    set_session_cookies(response, session)
    return response


def set_session_cookies(response: Response, session: Session) -> None:
    response.set_cookie(
        "sessionid", session.session_id, max_age=SESSION_MAX_AGE, httponly=True, samesite="lax"
    )
    response.set_cookie("csrftoken", session.csrf_token, max_age=SESSION_MAX_AGE, samesite="lax")


async def logout(request: Request) -> Response:
    credentials = request.scope.get("state", {}).get("credentials")
    if credentials is not None and credentials.session is not None:
        await run_in_threadpool(request.app.state.authenticator.close_session, credentials.session)
    response = json_response({"detail": "Successfully logged out."})
    response.delete_cookie("sessionid")
    response.delete_cookie("csrftoken")
    return response


async def password_change(request: Request) -> Response:
    caller = allowed(request, Action.VIEW, "user")
    authorize(caller, Action.CHANGE, Resource("user", owner_id=caller.id))
    form = await read_body(request, PasswordChangeForm)
    authenticator = request.app.state.authenticator
    old_ok = await run_in_threadpool(
        authenticator.check_password, caller.username, form.old_password
    )
    await execute(
        request,
        lambda unit: change_password(
            unit, caller.id, old_ok is not None, form.new_password1, form.new_password2
        ),
    )
    authenticator.forget(caller.id)
    return json_response({"detail": "New password has been saved."})


USERS = Listing(
    table="catalog_users",
    spec=ListSpec(
        fields={
            "id": Field(sql.Identifier("id"), "int", cast=False),
            "username": Field(sql.SQL("doc->>'username'"), "text"),
            "first_name": Field(sql.SQL("doc->>'first_name'"), "text"),
            "last_name": Field(sql.SQL("doc->>'last_name'"), "text"),
            "is_active": Field(sql.SQL("doc->>'is_active'"), "bool"),
        },
        search_fields=("username", "first_name", "last_name"),
        simple_filters=("id", "username", "first_name", "last_name", "is_active"),
        ordering_fields=("id", "username", "first_name", "last_name", "is_active"),
        default_order="id",
    ),
    render=user_json,
)


async def users_list(request: Request) -> Response:
    allowed(request, Action.LIST, "user")
    return await list_response(request, USERS)


async def user_self(request: Request) -> Response:
    return await _user_response(request, allowed(request, Action.VIEW, "user").id)


async def user_detail(request: Request) -> Response:
    allowed(request, Action.VIEW, "user")
    return await _user_response(request, path_id(request))


async def _user_response(request: Request, user_id: int) -> Response:
    with runtime(request).pool.connection() as conn:
        row = conn.execute("SELECT doc FROM catalog_users WHERE id = %s", (user_id,)).fetchone()
    if row is None:
        raise NotFound("user", user_id)
    return json_response(user_json(row[0], base_url(request)))


ROUTES = [
    Route("/api/server/about", about, methods=["GET"]),
    Route("/api/events/schema", events_schema, methods=["GET"]),
    Route("/api/auth/rules", rules, methods=["GET"]),
    Route("/api/auth/register", register, methods=["POST"]),
    Route("/api/auth/login", login, methods=["POST"]),
    Route("/api/auth/logout", logout, methods=["POST"]),
    Route("/api/auth/password/change", password_change, methods=["POST"]),
    Route("/api/users", users_list, methods=["GET"]),
    Route("/api/users/self", user_self, methods=["GET"]),
    Route("/api/users/{id:int}", user_detail, methods=["GET"]),
]
