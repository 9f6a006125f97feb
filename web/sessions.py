"""Who is asking: sessions, tokens and HTTP Basic, resolved to a Principal per request."""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass

from psycopg_pool import ConnectionPool

from core.access_tokens import token_digest
from core.passwords import verify_password
from core.permissions import Principal
from web.login_throttle import LoginThrottle

SESSION_DAYS = 14
BASIC_CACHE_SECONDS = 60  # how long another process may accept a just-changed password
LAST_USE_INTERVAL = "2 hours"  # an access token's last use is written at most this often
# The organization roles of user `u`, read in the same query as their credentials.
ROLES_OF_U = (
    "(SELECT coalesce(jsonb_object_agg(m.org_id, m.role), '{}')"
    " FROM catalog_memberships m WHERE m.user_id = u.id)"
)


@dataclass(frozen=True)
class Session:
    key: str
    session_id: str
    csrf_token: str
    principal: Principal
    roles: dict[int, str] | None = None  # when read from the database with the session


@dataclass(frozen=True)
class AccessToken:
    """The personal access token a request was signed with."""

    id: int
    read_only: bool
    principal: Principal
    roles: dict[int, str] | None = None


class TokenRefused(Exception):
    """An access token that is unknown, revoked or expired; the message says which."""


@dataclass(frozen=True)
class Credentials:
    """What a request presented; `via_cookie` decides whether CSRF is checked."""

    principal: Principal
    via_cookie: bool
    session: Session | None = None
    access_token: AccessToken | None = None
    # The caller's organization roles when read with the credentials (one query, not two).
    roles: dict[int, str] | None = None


class EmailNotVerified(Exception):
    """The password is right, but the account's address is not confirmed (and must be)."""


class Authenticator:
    def __init__(
        self,
        pool: ConnectionPool,
        throttle: LoginThrottle | None = None,
        require_verified_email: bool = False,
    ) -> None:
        self._pool = pool
        self._throttle = throttle
        self._require_verified_email = require_verified_email
        self._basic_cache: dict[tuple[str, str], tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def check_password(self, login: str, password: str) -> Principal | None:
        """The user whose username or email is `login`, if `password` is theirs."""
        found = self._check_password(login, password)
        return found[0] if found else None

    def sign_in(self, login: str, password: str, address: str | None) -> Principal | None:
        """As check_password, for someone signing in from `address`: raises LoginLocked
        while the login name or the address is throttled, EmailNotVerified when the account
        must confirm its address first."""
        if self._throttle is not None:
            self._throttle.check(login, address)
        found = self._check_password(login, password)
        if self._throttle is not None:
            if found is None:
                self._throttle.failed(login, address)
            else:
                self._throttle.succeeded(login)
        if found is None:
            return None
        principal, email_verified = found
        if self._require_verified_email and not email_verified:
            raise EmailNotVerified()
        return principal

    def _check_password(self, login: str, password: str) -> tuple[Principal, bool] | None:
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT id, username, is_superuser, password_hash, email_verified"
                " FROM catalog_users"
                " WHERE lower(username) = lower(%s) OR (email <> '' AND lower(email) = lower(%s))"
                " ORDER BY (lower(username) = lower(%s)) DESC LIMIT 1",
                (login, login, login),
            ).fetchone()
        if row is None or not verify_password(password, row[3]):
            return None
        return Principal(id=row[0], username=row[1], is_superuser=row[2]), row[4]

    def check_basic(self, header_value: str, address: str | None = None) -> Principal | None:
        try:
            decoded = base64.b64decode(header_value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        username, _, password = decoded.partition(":")
        cache_key = (username, hashlib.sha256(password.encode()).hexdigest())
        now = time.monotonic()
        with self._lock:
            cached = self._basic_cache.get(cache_key)
        if cached and cached[0] > now:
            return cached[1]
        try:
            principal = self.sign_in(username, password, address)
        except EmailNotVerified:
            return None
        if principal is not None:
            with self._lock:
                self._basic_cache[cache_key] = (now + BASIC_CACHE_SECONDS, principal)
        return principal

    def roles(self, user_id: int) -> dict[int, str]:
        """The user's role in each organization they belong to."""
        with self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT org_id, role FROM catalog_memberships WHERE user_id = %s", (user_id,)
            ).fetchall()
        return {org_id: role for org_id, role in rows}

    def organization_id(self, slug: str | None, org_id: int | None) -> int | None:
        """The id of the organization named by slug or id, if there is one."""
        where = "lower(slug) = lower(%s)" if slug is not None else "id = %s"
        with self._pool.connection() as conn:
            row = conn.execute(
                f"SELECT id FROM catalog_organizations WHERE {where}",
                (slug if slug is not None else org_id,),
            ).fetchone()
        return row[0] if row else None

    def forget(self, user_id: int) -> None:
        """Drops cached credentials of a user whose password just changed."""
        with self._lock:
            for key, (_, principal) in list(self._basic_cache.items()):
                if principal.id == user_id:
                    del self._basic_cache[key]

    def open_session(self, principal: Principal) -> Session:
        session = Session(
            key=secrets.token_hex(20),
            session_id=secrets.token_hex(16),
            csrf_token=secrets.token_hex(16),
            principal=principal,
        )
        with self._pool.connection() as conn:
            conn.execute(
                "INSERT INTO auth_sessions (key, session_id, csrf_token, user_id, expires)"
                " VALUES (%s, %s, %s, %s, now() + make_interval(days => %s))",
                (session.key, session.session_id, session.csrf_token, principal.id, SESSION_DAYS),
            )
        return session

    def close_session(self, session: Session) -> None:
        with self._pool.connection() as conn:
            conn.execute("DELETE FROM auth_sessions WHERE key = %s", (session.key,))

    def close_sessions_of(self, user_id: int) -> None:
        """Ends every session of a user (after their password was reset) and forgets them."""
        with self._pool.connection() as conn:
            conn.execute("DELETE FROM auth_sessions WHERE user_id = %s", (user_id,))
        self.forget(user_id)

    def by_token(self, key: str) -> Session | None:
        return self._find_session("s.key = %s", key)

    def by_access_token(self, value: str) -> AccessToken:
        """The token whose value this is (one indexed lookup by digest), or TokenRefused."""
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT t.id, t.read_only, t.revoked, t.expiry_date <= now(),"
                " u.id, u.username, u.is_superuser,"
                f" k.last_used IS NULL OR k.last_used < now() - interval '{LAST_USE_INTERVAL}',"
                f" {ROLES_OF_U}"
                " FROM access_token_keys k"
                " JOIN catalog_access_tokens t ON t.id = k.token_id"
                " JOIN catalog_users u ON u.id = t.owner_id"
                " WHERE k.digest = %s",
                (token_digest(value),),
            ).fetchone()
            if row is None or row[2]:
                raise TokenRefused("Invalid token.")
            if row[3]:
                raise TokenRefused("Token has expired.")
            if row[7]:
                conn.execute(
                    "UPDATE access_token_keys SET last_used = now() WHERE token_id = %s", (row[0],)
                )
        return AccessToken(row[0], row[1], Principal(row[4], row[5], row[6]), _roles(row[8]))

    def by_session_id(self, session_id: str) -> Session | None:
        return self._find_session("s.session_id = %s", session_id)

    def _find_session(self, condition: str, value: str) -> Session | None:
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT s.key, s.session_id, s.csrf_token, u.id, u.username, u.is_superuser,"
                f" {ROLES_OF_U}"
                " FROM auth_sessions s JOIN catalog_users u ON u.id = s.user_id"
                f" WHERE {condition} AND s.expires > now()",
                (value,),
            ).fetchone()
        if row is None:
            return None
        return Session(row[0], row[1], row[2], Principal(row[3], row[4], row[5]), _roles(row[6]))


def _roles(found: dict[str, str]) -> dict[int, str]:
    return {int(org_id): role for org_id, role in found.items()}
