"""Sign-in through OpenID Connect providers, on CVAT's social sign-in paths.

* `GET /api/auth/social/methods/`: the configured providers, `is_enabled` and an icon each.
* `GET /api/auth/<provider>/login/`: redirects to the provider's authorization endpoint
  (authorization code flow with PKCE S256, a state and a nonce). `?next=/path` names where
  to go once signed in.
* `GET /api/auth/<provider>/login/callback/`: where the provider sends the browser back.
  The state must be the one this browser was given (a cookie) and is taken once from
  `oidc_sign_ins`; the code is exchanged with the PKCE verifier; the id_token's signature
  (the provider's JWKS), issuer, audience, expiry and nonce are checked. The account is
  found, linked or created (core/external_accounts.py) and signed in as POST
  /api/auth/login does: `sessionid` and `csrftoken` cookies and `{"key": ...}` (or a
  redirect to `next`).

Sign-ins under way live in PostgreSQL, so any server instance can finish one another began.
"""

from __future__ import annotations

import contextlib
import hmac
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from joserfc.errors import ExpiredTokenError, JoseError
from psycopg_pool import ConnectionPool
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from core.errors import NotFound, PermissionDenied
from core.external_accounts import ProviderIdentity, sign_in_with_identity
from core.permissions import Principal
from infra.settings import OidcProvider
from web.accounts import set_session_cookies
from web.context import base_url, runtime
from web.errors import BadRequest
from web.responses import json_response

with warnings.catch_warnings():
    # authlib asks for the httpx2 package and falls back to httpx, which this project uses;
    # its module turns its own warnings on when imported, so it is imported first.
    import authlib.deprecate  # noqa: F401

    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    from authlib.integrations.starlette_client import OAuth, OAuthError, StarletteOAuth2App

STATE_COOKIE = "oidc_state"
STATE_COOKIE_PATH = "/api/auth/"
SIGN_IN_SECONDS = 600  # how long a sign-in may stay at the provider
PROVIDER_TIMEOUT_SECONDS = 10
DEFAULT_ICON = (Path(__file__).parent / "static" / "social" / "openid.svg").read_text()


class OidcProviders:
    """The configured providers and an authlib client for each enabled one; a client keeps
    the provider's discovery document and keys once it has fetched them."""

    def __init__(self, providers: tuple[OidcProvider, ...]) -> None:
        self.providers = {provider.name: provider for provider in providers}
        self._oauth = OAuth()
        for provider in providers:
            if provider.is_enabled:
                self._oauth.register(
                    provider.name,
                    client_id=provider.client_id,
                    client_secret=provider.client_secret or None,
                    server_metadata_url=provider.issuer.rstrip("/")
                    + "/.well-known/openid-configuration",
                    client_kwargs={
                        "scope": provider.scopes,
                        "code_challenge_method": "S256",
                        "token_endpoint_auth_method": (
                            "client_secret_basic" if provider.client_secret else "none"
                        ),
                        "timeout": PROVIDER_TIMEOUT_SECONDS,
                    },
                )

    def enabled(self, name: str) -> tuple[OidcProvider, StarletteOAuth2App]:
        """The provider named `name` and its client: NotFound if no such provider is
        configured, PermissionDenied if it is disabled."""
        provider = self.providers.get(name)
        if provider is None:
            raise NotFound("sign-in provider", repr(name))
        if not provider.is_enabled:
            raise PermissionDenied(f"Sign-in with {provider.public_name} is disabled here.")
        client = self._oauth.create_client(name)
        assert client is not None
        return provider, client

    async def metadata(self, provider: OidcProvider, client: StarletteOAuth2App) -> dict:
        """The provider's discovery document, which must name the configured issuer."""
        metadata: dict[str, Any] = await client.load_server_metadata()
        if metadata.get("issuer") != provider.issuer:
            client.server_metadata.clear()  # fetched again next time: it may get fixed
            raise HTTPException(
                502,
                f"{provider.public_name}'s discovery document names the issuer "
                f"{metadata.get('issuer')!r}, not the configured {provider.issuer!r}.",
            )
        return metadata


@dataclass(frozen=True)
class PendingSignIn:
    provider: str
    code_verifier: str
    nonce: str
    redirect_uri: str
    next_path: str | None


async def methods(request: Request) -> Response:
    providers: OidcProviders = request.app.state.oidc
    return json_response(
        {
            name: {
                "is_enabled": provider.is_enabled,
                "icon": (provider.icon or DEFAULT_ICON) if provider.is_enabled else None,
                "public_name": provider.public_name,
            }
            for name, provider in providers.providers.items()
        }
    )


async def sign_in_start(request: Request) -> Response:
    provider, client = request.app.state.oidc.enabled(request.path_params["provider"])
    next_path = _local_path(request.query_params.get("next"))
    redirect_uri = f"{base_url(request)}/api/auth/{provider.name}/login/callback/"
    async with _talking_to(provider):
        await request.app.state.oidc.metadata(provider, client)
        authorization = await client.create_authorization_url(redirect_uri)
    pending = PendingSignIn(
        provider.name,
        authorization["code_verifier"],
        authorization["nonce"],
        redirect_uri,
        next_path,
    )
    await run_in_threadpool(_save_pending, runtime(request).pool, authorization["state"], pending)
    response = RedirectResponse(authorization["url"], status_code=302)
    response.set_cookie(
        STATE_COOKIE,
        authorization["state"],
        max_age=SIGN_IN_SECONDS,
        path=STATE_COOKIE_PATH,
        httponly=True,
        samesite="lax",  # sent along the provider's top-level redirect back to us
    )
    return response


async def sign_in_finish(request: Request) -> Response:
    providers: OidcProviders = request.app.state.oidc
    provider, client = providers.enabled(request.path_params["provider"])
    pending = await _take_pending(request, provider)
    identity = await _identity_from(providers, provider, client, pending, request.query_params)
    settings = runtime(request).settings
    written = await runtime(request).execute(
        lambda unit: sign_in_with_identity(unit, identity, may_create=settings.allow_signup),
        principal=None,
    )
    user = written.value
    principal = Principal(id=user.user_id, username=user.username, is_superuser=user.is_superuser)
    session = await run_in_threadpool(request.app.state.authenticator.open_session, principal)
    response: Response
    if pending.next_path is not None:
        response = RedirectResponse(pending.next_path, status_code=302)
    else:
        response = json_response({"key": session.key})
    set_session_cookies(response, session)
    response.delete_cookie(STATE_COOKIE, path=STATE_COOKIE_PATH)
    return response


async def _identity_from(
    providers: OidcProviders,
    provider: OidcProvider,
    client: StarletteOAuth2App,
    pending: PendingSignIn,
    query: QueryParams,
) -> ProviderIdentity:
    """Who the provider says signed in, once the code it sent back has been exchanged and
    the id_token checked."""
    if "error" in query:
        refusal = OAuthError(query["error"], query.get("error_description"))
        raise BadRequest(f"{provider.public_name} did not sign you in: {_describe(refusal)}")
    code = query.get("code")
    if not code:
        raise BadRequest({"code": ["The provider sent no authorization code."]})
    async with _talking_to(provider):
        metadata = await providers.metadata(provider, client)
        try:
            token = await client.fetch_access_token(
                redirect_uri=pending.redirect_uri, code=code, code_verifier=pending.code_verifier
            )
        except OAuthError as refusal:
            raise BadRequest(
                {"code": [f"{provider.public_name} refused the code: {_describe(refusal)}"]}
            ) from None
        claims = await _checked_id_token(provider, client, token, pending.nonce)
        userinfo = await _userinfo(client, metadata, token, claims["sub"])
    return _identity(provider, {**userinfo, **claims})


async def _take_pending(request: Request, provider: OidcProvider) -> PendingSignIn:
    """The sign-in this callback finishes, taken so that it can never finish twice."""
    state = request.query_params.get("state", "")
    expected = request.cookies.get(STATE_COOKIE, "")
    if not state:
        raise BadRequest({"state": ["The provider sent no state."]})
    if not hmac.compare_digest(state.encode(), expected.encode()):
        raise BadRequest(
            {"state": ["This state was not given to this browser: start the sign-in again."]}
        )
    pending = await run_in_threadpool(_load_pending, runtime(request).pool, state)
    if pending is None or pending.provider != provider.name:
        raise BadRequest(
            {"state": ["Unknown, expired or already used state: start the sign-in again."]}
        )
    return pending


async def _checked_id_token(
    provider: OidcProvider, client: StarletteOAuth2App, token: dict, nonce: str
) -> dict[str, Any]:
    """The id_token's claims once its signature, issuer, audience, expiry and nonce hold."""
    if "id_token" not in token:
        raise BadRequest({"id_token": [f"{provider.public_name} sent no id_token."]})
    options = {
        "iss": {"essential": True, "value": provider.issuer},
        "aud": {"essential": True, "value": provider.client_id},
        "sub": {"essential": True},
    }
    try:
        claims = await client.parse_id_token(token, nonce=nonce, claims_options=options)
    except ExpiredTokenError:
        raise BadRequest({"id_token": ["The id_token has expired."]}) from None
    except JoseError as error:
        claim = getattr(error, "claim", None)
        reason = f"the {claim!r} claim is wrong or missing" if claim else error.description
        raise BadRequest({"id_token": [f"The id_token was refused: {reason}."]}) from None
    return dict(claims)


async def _userinfo(
    client: StarletteOAuth2App, metadata: dict, token: dict, subject: str
) -> dict[str, Any]:
    """The userinfo endpoint's claims about `subject` (nothing if it has none)."""
    if not metadata.get("userinfo_endpoint") or "access_token" not in token:
        return {}
    info = dict(await client.userinfo(token=token))
    return info if info.get("sub") == subject else {}


def _identity(provider: OidcProvider, claims: dict[str, Any]) -> ProviderIdentity:
    def text(name: str) -> str:
        value = claims.get(name)
        return value.strip() if isinstance(value, str) else ""

    return ProviderIdentity(
        provider=provider.name,
        issuer=provider.issuer,
        subject=str(claims["sub"]),
        email=text("email"),
        email_verified=claims.get("email_verified") in (True, "true"),  # Cognito says "true"
        preferred_username=text("preferred_username") or text("nickname"),
        given_name=text("given_name"),
        family_name=text("family_name"),
    )


@contextlib.asynccontextmanager
async def _talking_to(provider: OidcProvider) -> AsyncIterator[None]:
    """Turns a provider that cannot be reached, or answers nonsense, into a 502."""
    try:
        yield
    except (httpx.HTTPError, ValueError) as error:
        raise HTTPException(502, f"{provider.public_name} could not be asked: {error!r}") from None


def _describe(refusal: OAuthError) -> str:
    return refusal.error + (f" ({refusal.description})" if refusal.description else "")


def _local_path(raw: str | None) -> str | None:
    """`next` if it is a path on this server (never another site)."""
    if raw is None or raw == "":
        return None
    if (
        not raw.startswith("/")
        or raw.startswith("//")
        or "\\" in raw
        or any(ord(c) < 0x20 for c in raw)  # browsers drop tabs and newlines: "/\t/evil"
    ):
        raise BadRequest({"next": ["Must be a path on this server, starting with one /."]})
    return raw


def _save_pending(pool: ConnectionPool, state: str, pending: PendingSignIn) -> None:
    with pool.connection() as conn:
        conn.execute("DELETE FROM oidc_sign_ins WHERE expires < now()")
        conn.execute(
            "INSERT INTO oidc_sign_ins"
            " (state, provider, code_verifier, nonce, redirect_uri, next_path, expires)"
            " VALUES (%s, %s, %s, %s, %s, %s, now() + make_interval(secs => %s))",
            (
                state,
                pending.provider,
                pending.code_verifier,
                pending.nonce,
                pending.redirect_uri,
                pending.next_path,
                SIGN_IN_SECONDS,
            ),
        )


def _load_pending(pool: ConnectionPool, state: str) -> PendingSignIn | None:
    with pool.connection() as conn:
        row = conn.execute(
            "DELETE FROM oidc_sign_ins WHERE state = %s AND expires > now()"
            " RETURNING provider, code_verifier, nonce, redirect_uri, next_path",
            (state,),
        ).fetchone()
    return PendingSignIn(*row) if row else None


ROUTES = [
    Route("/api/auth/social/methods", methods, methods=["GET"]),
    Route("/api/auth/social/methods/", methods, methods=["GET"]),
    Route("/api/auth/{provider}/login/", sign_in_start, methods=["GET"]),
    Route("/api/auth/{provider}/login/callback/", sign_in_finish, methods=["GET"]),
]
