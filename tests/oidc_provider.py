"""A small, real OpenID Connect provider for tests, served on a free port in a thread.

Discovery, /authorize, /token, /jwks and /userinfo with the authorization code flow: PKCE
S256 required, codes good once, clients authenticated with HTTP Basic, id_tokens signed
RS256 with the key the JWKS publishes. There is no login page: /authorize signs in `person`
at once. `id_token_changes` alters the next id_token (a wrong audience, nonce, an expiry in
the past) and `signing_key` may be swapped for one the JWKS does not know, to see a client
refuse them.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import uvicorn
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.live_server import ServerThread, free_port


@dataclass
class Person:
    sub: str
    email: str = ""
    email_verified: bool = True
    preferred_username: str = ""
    given_name: str = ""
    family_name: str = ""

    def claims(self) -> dict[str, Any]:
        found = {
            "sub": self.sub,
            "email": self.email,
            "email_verified": self.email_verified,
            "preferred_username": self.preferred_username,
            "given_name": self.given_name,
            "family_name": self.family_name,
        }
        return {k: v for k, v in found.items() if v != ""}


@dataclass
class Client:
    secret: str
    redirect_uris: set[str] = field(default_factory=set)


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    nonce: str | None
    challenge: str
    person: Person
    used: bool = False


def _new_key(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"})


class LocalProvider:
    def __init__(self) -> None:
        self.port = free_port()
        self.key = _new_key("good")
        self.signing_key = self.key
        self.clients: dict[str, Client] = {}
        self.person = Person(sub="nobody")
        self.deny_next = False
        self.id_token_changes: dict[str, Any] = {}
        self.issued: list[str] = []  # every code and token handed out
        self._grants: dict[str, Grant] = {}
        self._access: dict[str, Person] = {}
        self._serving: ServerThread | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def register(self, client_id: str, secret: str, redirect_uri: str) -> None:
        client = self.clients.setdefault(client_id, Client(secret))
        client.redirect_uris.add(redirect_uri)

    def start(self) -> LocalProvider:
        app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self._discovery),
                Route("/authorize", self._authorize),
                Route("/token", self._token, methods=["POST"]),
                Route("/jwks", self._jwks),
                Route("/userinfo", self._userinfo),
            ]
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self._serving = ServerThread.start(config, "the test OIDC provider")
        return self

    def stop(self) -> None:
        if self._serving is not None:
            self._serving.stop()

    async def _discovery(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "userinfo_endpoint": f"{self.issuer}/userinfo",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                "scopes_supported": ["openid", "email", "profile"],
            }
        )

    async def _jwks(self, request: Request) -> Response:
        return JSONResponse({"keys": [self.key.as_dict(private=False)]})

    async def _authorize(self, request: Request) -> Response:
        query = request.query_params
        client = self.clients.get(query.get("client_id", ""))
        redirect_uri = query.get("redirect_uri", "")
        if client is None or redirect_uri not in client.redirect_uris:
            return JSONResponse({"error": "unknown client or redirect_uri"}, status_code=400)

        def back(**params: str) -> Response:
            params["state"] = query.get("state", "")
            return RedirectResponse(f"{redirect_uri}?{urlencode(params)}", status_code=302)

        if query.get("response_type") != "code" or "openid" not in query.get("scope", "").split():
            return back(error="invalid_request", error_description="code flow with openid only")
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return back(error="invalid_request", error_description="PKCE S256 is required")
        if self.deny_next:
            self.deny_next = False
            return back(error="access_denied", error_description="the user said no")
        code = secrets.token_urlsafe(24)
        self.issued.append(code)
        self._grants[code] = Grant(
            client_id=query["client_id"],
            redirect_uri=redirect_uri,
            nonce=query.get("nonce"),
            challenge=query["code_challenge"],
            person=self.person,
        )
        return back(code=code)

    async def _token(self, request: Request) -> Response:
        form = await request.form()
        client_id, secret = _basic_credentials(request)
        client = self.clients.get(client_id)
        if client is None or not secrets.compare_digest(client.secret, secret):
            return _token_error("invalid_client", "client authentication failed", 401)
        if form.get("grant_type") != "authorization_code":
            return _token_error("unsupported_grant_type", "authorization_code only")
        grant = self._grants.get(str(form.get("code", "")))
        if grant is None or grant.client_id != client_id:
            return _token_error("invalid_grant", "unknown code")
        if grant.used:
            return _token_error("invalid_grant", "this code was already used")
        grant.used = True
        if form.get("redirect_uri") != grant.redirect_uri:
            return _token_error("invalid_grant", "redirect_uri differs from the authorization's")
        verifier = str(form.get("code_verifier", ""))
        digest = hashlib.sha256(verifier.encode()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != grant.challenge:
            return _token_error("invalid_grant", "PKCE verification failed")
        access_token = secrets.token_urlsafe(24)
        self._access[access_token] = grant.person
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": client_id,
            "iat": now,
            "exp": now + 300,
            **grant.person.claims(),
        }
        if grant.nonce is not None:
            claims["nonce"] = grant.nonce
        claims.update(self.id_token_changes)
        self.id_token_changes = {}
        header = {"alg": "RS256", "kid": self.signing_key.kid}
        id_token = jwt.encode(header, claims, self.signing_key)
        self.issued += [access_token, id_token]
        return JSONResponse(
            {
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": id_token,
            },
            headers={"Cache-Control": "no-store"},
        )

    async def _userinfo(self, request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        person = self._access.get(token) if scheme.lower() == "bearer" else None
        if person is None:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return JSONResponse(person.claims())


def _basic_credentials(request: Request) -> tuple[str, str]:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    user, _, password = base64.b64decode(value).decode().partition(":")
    return user, password


def _token_error(error: str, description: str, status: int = 400) -> Response:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)
