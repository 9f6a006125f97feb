"""Configuration from PALIMPSEST_* environment variables, checked once at start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal


class ConfigError(ValueError):
    """A setting has a value Palimpsest cannot use; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8080
    database_url: str | None = None
    nats_url: str | None = None
    admin_password: str | None = None
    allow_signup: bool = True
    log_format: Literal["console", "json"] = "console"
    public_url: str | None = None
    analytics_idle_cutoff: float = 300.0
    media_cache_bytes: int = 2 << 30
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "palimpsest@localhost"
    smtp_tls: Literal["none", "starttls", "ssl"] = "none"
    email_confirmation: Literal["none", "optional", "mandatory"] = "none"
    login_failures_per_account: int = 5
    login_failures_per_address: int = 20
    login_lock_seconds: float = 900.0
    # Test-only: lets every action through, to measure what the permission policy costs.
    bypass_policy: bool = False

    @property
    def public_base(self) -> str:
        """The server's address as others reach it (links in mail, webhook payloads)."""
        return self.public_url or f"http://{self.host}:{self.port}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            data_dir=Path(env.get("PALIMPSEST_DATA_DIR", ".palimpsest")).absolute(),
            host=env.get("PALIMPSEST_HOST", "127.0.0.1"),
            port=_port(env, "PALIMPSEST_PORT", 8080),
            database_url=env.get("PALIMPSEST_DATABASE_URL") or None,
            nats_url=env.get("PALIMPSEST_NATS_URL") or None,
            admin_password=env.get("PALIMPSEST_ADMIN_PASSWORD") or None,
            allow_signup=_flag(env, "PALIMPSEST_ALLOW_SIGNUP", True),
            log_format=_choice(env, "PALIMPSEST_LOG_FORMAT", ("console", "json"), "console"),
            public_url=env.get("PALIMPSEST_PUBLIC_URL") or None,
            analytics_idle_cutoff=_seconds(env, "PALIMPSEST_ANALYTICS_IDLE_CUTOFF", 300.0),
            media_cache_bytes=_byte_count(env, "PALIMPSEST_MEDIA_CACHE_BYTES", 2 << 30),
            **_mail_settings(env),
            login_failures_per_account=_count(env, "PALIMPSEST_LOGIN_FAILURES_PER_ACCOUNT", 5),
            login_failures_per_address=_count(env, "PALIMPSEST_LOGIN_FAILURES_PER_ADDRESS", 20),
            login_lock_seconds=_seconds(env, "PALIMPSEST_LOGIN_LOCK_SECONDS", 900.0),
            bypass_policy=_flag(env, "PALIMPSEST_TEST_BYPASS_POLICY", False),
        )


def _mail_settings(env: Mapping[str, str]) -> dict[str, Any]:
    host = env.get("PALIMPSEST_SMTP_HOST") or None
    tls = _choice(env, "PALIMPSEST_SMTP_TLS", ("none", "starttls", "ssl"), "none")
    confirmation = _choice(
        env, "PALIMPSEST_EMAIL_CONFIRMATION", ("none", "optional", "mandatory"), "none"
    )
    if confirmation != "none" and host is None:
        raise ConfigError(
            f"PALIMPSEST_EMAIL_CONFIRMATION={confirmation!r} needs PALIMPSEST_SMTP_HOST to send"
            " the confirmation links"
        )
    return {
        "smtp_host": host,
        "smtp_port": _port(env, "PALIMPSEST_SMTP_PORT", 465 if tls == "ssl" else 25),
        "smtp_user": env.get("PALIMPSEST_SMTP_USER") or None,
        "smtp_password": env.get("PALIMPSEST_SMTP_PASSWORD") or None,
        "smtp_from": env.get("PALIMPSEST_SMTP_FROM") or "palimpsest@localhost",
        "smtp_tls": tls,
        "email_confirmation": confirmation,
    }


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"{name}={raw!r} is not a positive whole number")
    return int(raw)


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not 0 <= int(raw) <= 65535:
        raise ConfigError(f"{name}={raw!r} is not a port number (0-65535)")
    return int(raw)


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise ConfigError(f"{name}={raw!r} is not a positive number of seconds")
    return value


def _byte_count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"{name}={raw!r} is not a positive number of bytes")
    return int(raw)


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r} is not a yes/no value (true, false, 1, 0)")


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str):  # type: ignore[no-untyped-def]
    raw = env.get(name) or default
    if raw not in allowed:
        raise ConfigError(f"{name}={raw!r} is not one of {', '.join(allowed)}")
    return raw
