"""Configuration from PALIMPSEST_* environment variables, checked once at start."""

from __future__ import annotations

import os
import re
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
    oidc_providers: tuple[OidcProvider, ...] = ()
    share_dir: Path | None = None
    work_prefix: str = "palimpsest.work"
    work_ack_wait: float = 30.0
    work_attempts: int = 3
    inline_worker: bool = True
    secret_key: str | None = None  # seals cloud storage credentials; generated when unset
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
            oidc_providers=_oidc_providers(env),
            share_dir=_folder(env, "PALIMPSEST_SHARE_DIR"),
            work_prefix=_subject(env, "PALIMPSEST_WORK_SUBJECT", "palimpsest.work"),
            work_ack_wait=_seconds(env, "PALIMPSEST_WORK_ACK_WAIT", 30.0),
            work_attempts=_count(env, "PALIMPSEST_WORK_ATTEMPTS", 3),
            inline_worker=_flag(env, "PALIMPSEST_INLINE_WORKER", True),
            secret_key=env.get("PALIMPSEST_SECRET_KEY") or None,
            **_mail_settings(env),
            login_failures_per_account=_count(env, "PALIMPSEST_LOGIN_FAILURES_PER_ACCOUNT", 5),
            login_failures_per_address=_count(env, "PALIMPSEST_LOGIN_FAILURES_PER_ADDRESS", 20),
            login_lock_seconds=_seconds(env, "PALIMPSEST_LOGIN_LOCK_SECONDS", 900.0),
            bypass_policy=_flag(env, "PALIMPSEST_TEST_BYPASS_POLICY", False),
        )


@dataclass(frozen=True)
class OidcProvider:
    """An OpenID Connect provider users may sign in with, from PALIMPSEST_OIDC_<NAME>_*.

    `name` is the provider's id in urls: <NAME> in lower case with `_` as `-` (as CVAT
    names `amazon-cognito`). A provider without a client id, or with ENABLED=false, is
    listed but disabled."""

    name: str
    issuer: str
    client_id: str = ""
    client_secret: str = ""
    scopes: str = "openid email profile"
    public_name: str = ""
    enabled: bool = True
    icon: str | None = None  # SVG text

    @property
    def is_enabled(self) -> bool:
        return self.enabled and bool(self.client_id)


_OIDC_VARIABLE = re.compile(
    r"^PALIMPSEST_OIDC_(?P<name>[A-Z0-9_]+?)_"
    r"(?P<field>ISSUER|CLIENT_ID|CLIENT_SECRET|SCOPES|PUBLIC_NAME|ENABLED|ICON)$"
)


def _oidc_providers(env: Mapping[str, str]) -> tuple[OidcProvider, ...]:
    fields: dict[str, dict[str, str]] = {}
    for variable, value in env.items():
        match = _OIDC_VARIABLE.match(variable)
        if match and value != "":
            fields.setdefault(match["name"], {})[match["field"]] = value
    providers = []
    for name, given in sorted(fields.items()):
        prefix = f"PALIMPSEST_OIDC_{name}_"
        issuer = given.get("ISSUER", "")
        if not issuer.startswith(("https://", "http://")):
            raise ConfigError(f"{prefix}ISSUER={issuer!r} is not an http(s) url of an issuer")
        scopes = given.get("SCOPES", "openid email profile").replace(",", " ")
        if "openid" not in scopes.split():
            raise ConfigError(f"{prefix}SCOPES={scopes!r} does not include openid")
        providers.append(
            OidcProvider(
                name=name.lower().replace("_", "-"),
                issuer=issuer,
                client_id=given.get("CLIENT_ID", ""),
                client_secret=given.get("CLIENT_SECRET", ""),
                scopes=" ".join(scopes.split()),
                public_name=given.get("PUBLIC_NAME", name.replace("_", " ").title()),
                enabled=_flag(given, "ENABLED", True, prefix),
                icon=_svg(prefix + "ICON", given["ICON"]) if "ICON" in given else None,
            )
        )
    return tuple(providers)


def _svg(name: str, path: str) -> str:
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{name}={path!r} cannot be read: {error}") from None
    if "<svg" not in text:
        raise ConfigError(f"{name}={path!r} is not an SVG file")
    return text


def _folder(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name)
    if raw is None or raw == "":
        return None
    if not Path(raw).is_dir():
        raise ConfigError(f"{name}={raw!r} is not a folder")
    return Path(raw).absolute()


def _subject(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name) or default
    tokens = raw.split(".")
    if not all(token and token.replace("-", "").replace("_", "").isalnum() for token in tokens):
        raise ConfigError(f"{name}={raw!r} is not a NATS subject (letters, digits, - _ and dots)")
    return raw


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


def _flag(env: Mapping[str, str], name: str, default: bool, prefix: str = "") -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{prefix}{name}={raw!r} is not a yes/no value (true, false, 1, 0)")


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str):  # type: ignore[no-untyped-def]
    raw = env.get(name) or default
    if raw not in allowed:
        raise ConfigError(f"{name}={raw!r} is not one of {', '.join(allowed)}")
    return raw
