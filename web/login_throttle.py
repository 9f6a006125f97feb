"""Throttling of failed sign-ins, per account and per client address, kept in PostgreSQL so
every server instance counts the same failures.

A login name (known or not, so locks tell nothing about which accounts exist) or an address
with `limit` failures within the lock period is locked until the oldest of those failures
is that period old. A success clears the account's failures, never the address's.
"""

from __future__ import annotations

import math

from psycopg_pool import ConnectionPool


class LoginLocked(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many failed sign-ins; try again in {retry_after} seconds.")
        self.retry_after = retry_after


class LoginThrottle:
    def __init__(
        self, pool: ConnectionPool, per_account: int, per_address: int, lock_seconds: float
    ) -> None:
        self._pool = pool
        self._limits = {"account": per_account, "address": per_address}
        self._lock_seconds = lock_seconds

    def check(self, login: str, address: str | None) -> None:
        """Raises LoginLocked if the login name or the address is locked now."""
        waits = [self._wait(key, self._limits[kind]) for kind, key in _keys(login, address).items()]
        longest = max(waits)
        if longest > 0:
            raise LoginLocked(math.ceil(longest))

    def failed(self, login: str, address: str | None) -> None:
        keys = list(_keys(login, address).values())
        with self._pool.connection() as conn:
            conn.execute(
                "DELETE FROM login_failures WHERE key = ANY(%s)"
                " AND failed_at < now() - make_interval(secs => %s)",
                (keys, self._lock_seconds),
            )
            for key in keys:
                conn.execute("INSERT INTO login_failures (key) VALUES (%s)", (key,))

    def succeeded(self, login: str) -> None:
        with self._pool.connection() as conn:
            conn.execute("DELETE FROM login_failures WHERE key = %s", (_account_key(login),))

    def _wait(self, key: str, limit: int) -> float:
        """Seconds until `key` has fewer than `limit` failures within the lock period."""
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT extract(epoch FROM failed_at + make_interval(secs => %s) - now())"
                " FROM login_failures WHERE key = %s"
                " AND failed_at > now() - make_interval(secs => %s)"
                " ORDER BY failed_at DESC OFFSET %s LIMIT 1",
                (self._lock_seconds, key, self._lock_seconds, limit - 1),
            ).fetchone()
        return float(row[0]) if row else 0.0


def _account_key(login: str) -> str:
    return "account:" + login.strip().lower()


def _keys(login: str, address: str | None) -> dict[str, str]:
    keys = {"account": _account_key(login)}
    if address:
        keys["address"] = "address:" + address
    return keys
