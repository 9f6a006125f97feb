"""The `palimpsest` command: serve, worker, replay, verify, export, import."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import secrets
import socket
import sys
from collections.abc import Iterator

import structlog
import uvicorn
from psycopg_pool import ConnectionPool

from core.accounts import AccountName, Registration, register_user
from core.errors import ValidationFailed
from infra import dataset_cli
from infra.database import create_schema, open_pool
from infra.logs import configure_logging
from infra.progress import ProgressBar
from infra.runtime import Runtime
from infra.services import Services
from infra.settings import ConfigError, Settings
from infra.store import Palimpsest, open_store
from infra.workers import work_alone
from projections import registry
from projections.rebuild import RebuildBusy, Rebuilder
from projections.runner import ProjectionRunner

log = structlog.get_logger("palimpsest")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="palimpsest", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="start the server (and embedded Postgres/NATS if needed)")
    commands.add_parser(
        "worker", help="take background jobs (task data) from the JetStream work queue"
    )
    replay_parser = commands.add_parser(
        "replay", help="rebuild read models from the event log, in place of the live ones"
    )
    verify_parser = commands.add_parser(
        "verify", help="rebuild read models aside and compare them with the live ones"
    )
    for sub in (replay_parser, verify_parser):
        sub.add_argument(
            "--projection",
            action="append",
            choices=registry.names(),
            help="only this read model (repeatable; default: every one)",
        )
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
    if args.command == "worker":
        return worker(settings)
    projections = args.projection or registry.names()
    if args.command == "replay":
        return replay(settings, projections)
    return verify(settings, projections)


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


def worker(settings: Settings) -> int:
    """Runs workers alone, against the PostgreSQL, NATS and data folder the servers use."""
    if settings.database_url is None or settings.nats_url is None:
        print(
            "palimpsest: a worker needs PALIMPSEST_DATABASE_URL and PALIMPSEST_NATS_URL"
            " (those of the servers; and their PALIMPSEST_DATA_DIR)",
            file=sys.stderr,
        )
        return 2
    runtime = Runtime.open(settings, settings.database_url, settings.nats_url)
    try:
        asyncio.run(work_alone(runtime))
    finally:
        runtime.close()
    return 0


def replay(settings: Settings, projections: list[str]) -> int:
    """Rebuilds each projection aside and swaps it in (see projections/rebuild.py)."""
    with log_store(settings) as (store, pool):
        for name in projections:
            bar = ProgressBar(f"replay {name}", store.recorder.max_notification_id() or 0)
            try:
                replayed = Rebuilder(store, pool, registry.make(name, settings)).replay(
                    progress=bar
                )
            except RebuildBusy as error:
                print(f"palimpsest: {error}", file=sys.stderr)
                return 1
            bar.done()
            print(
                f"{name} rebuilt from the log up to position {replayed.position}"
                f" in {replayed.build_seconds:.1f} s, swapped in {replayed.swap_seconds:.1f} s",
                flush=True,
            )
    return 0


def verify(settings: Settings, projections: list[str]) -> int:
    """Rebuilds each projection aside and compares it with the live one; 1 if any differs."""
    differs = False
    with log_store(settings) as (store, pool):
        for name in projections:
            projection = registry.make(name, settings)
            live = ProjectionRunner(store, pool, registry.make(name, settings))
            bar = ProgressBar(f"verify {name}", store.recorder.max_notification_id() or 0)
            try:
                comparison = Rebuilder(store, pool, projection).verify(live, progress=bar)
            except RebuildBusy as error:
                print(f"palimpsest: {error}", file=sys.stderr)
                return 1
            bar.done()
            if not comparison.differing_keys:
                print(
                    f"{name}: same as rebuilt at position {comparison.position}"
                    f" ({comparison.rows} rows)",
                    flush=True,
                )
                continue
            differs = True
            print(
                f"{name}: DIFFERS from the rebuilt read model at position {comparison.position}:"
                f" {comparison.differing_keys} key(s)",
                flush=True,
            )
            for difference in comparison.differences:
                print(f"  {name}: {difference.describe()}", flush=True)
    return 1 if differs else 0


@contextlib.contextmanager
def log_store(settings: Settings) -> Iterator[tuple[Palimpsest, ConnectionPool]]:
    """The event store and a pool on the configured database (started if embedded)."""
    services = Services.start(settings)
    try:
        pool = open_pool(services.database_url)
        try:
            create_schema(pool)
            store = open_store(services.database_url)
            try:
                yield store, pool
            finally:
                store.close()
        finally:
            pool.close()
    finally:
        services.stop()


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
