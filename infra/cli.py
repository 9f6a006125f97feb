"""The `palimpsest` command: serve, replay, export, import."""

from __future__ import annotations

import argparse
import errno
import secrets
import socket
import sys

import structlog
import uvicorn

from core.accounts import AccountName, Registration, register_user
from core.errors import ValidationFailed
from infra import dataset_cli
from infra.logs import configure_logging
from infra.runtime import Runtime
from infra.services import Services
from infra.settings import ConfigError, Settings

log = structlog.get_logger("palimpsest")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="palimpsest", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="start the server (and embedded Postgres/NATS if needed)")
    commands.add_parser("replay", help="rebuild every read model from the event log")
    dataset_cli.add_commands(commands)
    args = parser.parse_args(argv)
    if args.command in ("export", "import"):
        return dataset_cli.run(args)
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"palimpsest: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format)
    if args.command == "serve":
        return serve(settings)
    return replay(settings)


def serve(settings: Settings) -> int:
    problem = port_problem(settings.host, settings.port)
    if problem:
        print(f"palimpsest: {problem}", file=sys.stderr)
        return 2
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    services = Services.start(settings)
    runtime = Runtime.open(settings, services.database_url, services.nats_url)
    try:
        password = ensure_admin(runtime, settings.admin_password)
        from web.app import create_app

        app = create_app(runtime)
        url = f"http://{settings.host}:{settings.port}"
        print(f"Palimpsest is listening on {url}", flush=True)
        if password:
            print(f"Sign in as admin with password: {password}  (shown once)", flush=True)
        else:
            print("Sign in as admin (password from PALIMPSEST_ADMIN_PASSWORD or set earlier)")
        print(f"  cvat-cli --server-host {url} --auth admin:PASSWORD task ls", flush=True)
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            # Compressing every frame for every member costs more than the bytes it saves.
            ws_per_message_deflate=False,
        )
    finally:
        runtime.close()
        services.stop()
    return 0


def replay(settings: Settings) -> int:
    services = Services.start(settings)
    runtime = Runtime.open(settings, services.database_url)
    try:
        for runner in (runtime.catalog, runtime.history, runtime.analytics):
            position = runner.rebuild()
            print(f"{runner.projection.name} rebuilt from the log up to position {position}")
    finally:
        runtime.close()
        services.stop()
    return 0


def port_problem(host: str, port: int) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is taken by another process; set PALIMPSEST_PORT"
            return f"cannot listen on {host}:{port}: {error.strerror}"
    return None


def ensure_admin(runtime: Runtime, password: str | None) -> str | None:
    """Creates user `admin` on first run; returns the password if it was generated here."""
    exists = runtime.writer.submit_sync(lambda unit: unit.find(AccountName, "admin")).value
    if exists is not None:
        return None
    generated = password is None
    password = password or secrets.token_urlsafe(12)
    form = Registration(username="admin", password1=password, password2=password)
    try:
        runtime.writer.submit_sync(lambda unit: register_user(unit, form, is_superuser=True))
    except ValidationFailed as error:
        raise SystemExit(f"palimpsest: cannot create the admin user: {error}") from None
    log.info("created the admin user")
    return password if generated else None


if __name__ == "__main__":
    sys.exit(main())
