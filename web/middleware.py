"""ASGI middleware: who is asking (with CSRF for cookie sessions), and one log line a request."""

from __future__ import annotations

import hmac
import re
import time
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocketClose

from core.access_tokens import is_token_value
from core.permissions import policy_bypassed
from web.login_throttle import LoginLocked
from web.responses import json_response
from web.sessions import AccessToken, Authenticator, Credentials, TokenRefused

log = structlog.get_logger("palimpsest.http")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
CSRF_EXEMPT = frozenset(
    {
        "/api/auth/login",
        "/api/auth/register",
        "/api/auth/password/reset",
        "/api/auth/password/reset/confirm",
    }
)
# As in CVAT, an access token never changes accounts or tokens; a read-only one only reads
# (and starts exports, which write nothing but a file).
TOKEN_FORBIDDEN_WRITES = ("/api/auth/access_tokens", "/api/auth/password", "/api/users")
READ_ONLY_TOKEN_WRITES = re.compile(r"^/api/(projects|tasks|jobs)/\d+/(dataset|backup)/export/?$")


class AuthenticationMiddleware:
    """Resolves Token, Bearer, Basic or session-cookie credentials into scope state."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request = HTTPConnection(scope)
        scope.setdefault("state", {})
        try:
            credentials = await self._credentials(request)
        except _Refused as refusal:
            await _refuse(refusal, scope, receive, send)
            return
        try:
            if credentials is not None:
                credentials = await self._in_organization(request, credentials)
        except _Refused as refusal:
            await _refuse(refusal, scope, receive, send)
            return
        scope["state"]["credentials"] = credentials
        await self.app(scope, receive, send)

    async def _in_organization(
        self, request: HTTPConnection, credentials: Credentials
    ) -> Credentials:
        """Puts the caller's organization roles on them, and the organization the request
        acts in (`X-Organization: slug`, `?org=slug` or `?org_id=N`; empty for the personal
        workspace)."""
        principal = credentials.principal
        bypassed = policy_bypassed()
        roles = credentials.roles
        if roles is None:
            roles = (
                {} if bypassed else await run_in_threadpool(self.authenticator.roles, principal.id)
            )
        principal = replace(principal, roles=roles)
        slug = request.headers.get("x-organization") or request.query_params.get("org") or None
        raw_id = request.query_params.get("org_id") or None
        if slug is not None or raw_id is not None:
            org_id = None
            if slug is None:
                if not raw_id.isdigit():  # type: ignore[union-attr]
                    raise _Refused(400, f"org_id {raw_id!r} is not a whole number")
                org_id = int(raw_id)  # type: ignore[arg-type]
            found = await run_in_threadpool(self.authenticator.organization_id, slug, org_id)
            if found is None:
                raise _Refused(404, f"organization {slug or org_id!r} not found")
            if found not in roles and not principal.is_superuser and not bypassed:
                raise _Refused(403, "You are not a member of this organization.")
            principal = replace(principal, org_id=found, org_role=roles.get(found))
        return replace(credentials, principal=principal)

    async def _credentials(self, request: HTTPConnection) -> Credentials | None:
        header = request.headers.get("authorization", "")
        if not header and request.scope["type"] == "websocket" and "token" in request.query_params:
            header = f"Token {request.query_params['token']}"  # browsers can't set headers
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme == "bearer" and is_token_value(value):
            return await self._access_token(request, value)
        if scheme in ("token", "bearer") and value:
            session = await run_in_threadpool(self.authenticator.by_token, value)
            if session is None:
                raise _Refused(401, "Invalid token.")
            return Credentials(
                session.principal, via_cookie=False, session=session, roles=session.roles
            )
        if scheme == "basic" and value:
            address = request.client.host if request.client else None
            try:
                principal = await run_in_threadpool(self.authenticator.check_basic, value, address)
            except LoginLocked as locked:
                raise _Refused(429, str(locked), retry_after=locked.retry_after) from None
            if principal is None:
                raise _Refused(401, "Invalid username/password.")
            return Credentials(principal, via_cookie=False)
        session_id = request.cookies.get("sessionid")
        if not session_id:
            return None
        session = await run_in_threadpool(self.authenticator.by_session_id, session_id)
        if session is None:
            return None
        if request.scope["type"] == "websocket":
            _check_same_origin(request)
        elif request.scope["method"] not in SAFE_METHODS and request.url.path not in CSRF_EXEMPT:
            sent = request.headers.get("x-csrftoken", "")
            if not hmac.compare_digest(sent, session.csrf_token):
                raise _Refused(403, "CSRF Failed: CSRF token missing or incorrect.")
        return Credentials(session.principal, via_cookie=True, session=session, roles=session.roles)

    async def _access_token(self, request: HTTPConnection, value: str) -> Credentials:
        try:
            token = await run_in_threadpool(self.authenticator.by_access_token, value)
        except TokenRefused as refusal:
            raise _Refused(401, str(refusal)) from None
        _check_token_scope(request, token)
        return Credentials(token.principal, via_cookie=False, access_token=token, roles=token.roles)


async def _refuse(refusal: _Refused, scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket":
        await WebSocketClose(code=4000 + refusal.status, reason=refusal.detail)(
            scope, receive, send
        )
    else:
        response = json_response({"detail": refusal.detail}, status=refusal.status)
        if refusal.retry_after is not None:
            response.headers["Retry-After"] = str(refusal.retry_after)
        await response(scope, receive, send)


def _check_token_scope(request: HTTPConnection, token: AccessToken) -> None:
    if request.scope["type"] == "websocket":  # a job room takes edits
        if token.read_only:
            raise _Refused(403, "Access token is read only")
        return
    path = request.scope["path"]
    if request.scope["method"] in SAFE_METHODS:
        return
    if path.startswith(TOKEN_FORBIDDEN_WRITES):
        raise _Refused(403, "An access token cannot change accounts or access tokens.")
    if token.read_only and not READ_ONLY_TOKEN_WRITES.match(path):
        raise _Refused(403, "Access token is read only")


def _check_same_origin(request: HTTPConnection) -> None:
    """A cookie-signed websocket must come from our own pages (no cross-site hijacking)."""
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host"):
        raise _Refused(403, "websocket from another origin")


class _Refused(Exception):
    def __init__(self, status: int, detail: str, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.retry_after = retry_after


class RequestLogMiddleware:
    """One structured line per request: method, path, status, user, duration."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status["code"],
                user=_username(scope),
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )


def _username(scope: Scope) -> Any:
    credentials = scope.get("state", {}).get("credentials")
    return credentials.principal.username if credentials else None
