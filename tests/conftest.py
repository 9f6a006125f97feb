"""Test set-up: one PostgreSQL and one NATS for the session, a fresh database per module.

By default both are started with the embedded launcher; PALIMPSEST_TEST_DATABASE_URL and
PALIMPSEST_TEST_NATS_URL point the tests at running servers instead.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from playwright.sync_api import Browser

from infra.database import ensure_database
from infra.embedded import EmbeddedNats, EmbeddedPostgres
from infra.services import with_database
from tests.browser import SignedInPage, chromium
from tests.live_server import ADMIN_PASSWORD, LiveServer


@pytest.fixture(scope="session")
def worker_name(request: pytest.FixtureRequest) -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def scratch_root(worker_name: str) -> Iterator[Path]:
    # Short, so that unix socket paths under it stay below the limit.
    path = Path(tempfile.mkdtemp(prefix=f"plm-{worker_name}-", dir="/tmp"))
    yield path


@pytest.fixture(scope="session")
def postgres_server_url(scratch_root: Path) -> Iterator[str]:
    configured = os.environ.get("PALIMPSEST_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    server = EmbeddedPostgres(scratch_root / "pg")
    yield server.start()
    server.stop()


@pytest.fixture(scope="session")
def nats_url(scratch_root: Path) -> Iterator[str]:
    configured = os.environ.get("PALIMPSEST_TEST_NATS_URL")
    if configured:
        yield configured
        return
    server = EmbeddedNats(scratch_root / "nats")
    yield server.start()
    server.stop()


@pytest.fixture(scope="module")
def database_url(
    postgres_server_url: str, worker_name: str, request: pytest.FixtureRequest
) -> Iterator[str]:
    module = re.sub(r"\W", "_", request.module.__name__.rsplit(".", 1)[-1])
    name = f"plm_{worker_name}_{module}"[:60]
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                psycopg.sql.Identifier(name)
            )
        )
    ensure_database(postgres_server_url, name)
    yield with_database(postgres_server_url, name)
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                psycopg.sql.Identifier(name)
            )
        )


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(database_url, tmp_path_factory.mktemp("data")).start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def admin(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, auth=("admin", ADMIN_PASSWORD), timeout=30) as client:
        yield client


def register(server: LiveServer, username: str, password: str = "secret-pass-1") -> httpx.Client:
    """Signs up a new user and returns a client signed in as them (HTTP Basic)."""
    response = httpx.post(
        f"{server.url}/api/auth/register",
        json={
            "username": username,
            "email": f"{username}@example.com",
            "password1": password,
            "password2": password,
            "first_name": username.title(),
            "last_name": "Tester",
        },
    )
    assert response.status_code == 201, response.text
    return httpx.Client(base_url=server.url, auth=(username, password), timeout=30)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, for the module's browser tests."""
    with chromium() as launched:
        yield launched


@pytest.fixture
def pages() -> Iterator[list[SignedInPage]]:
    """The pages a browser test opens; closed after it, which must have logged no errors."""
    opened: list[SignedInPage] = []
    yield opened
    for signed in opened:
        assert signed.errors == [], signed.errors
        signed.close()
