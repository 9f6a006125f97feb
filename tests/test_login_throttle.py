"""Failed sign-ins are throttled per login name and per client address (429, Retry-After),
the same way for names that exist and names that do not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.conftest import register
from tests.live_server import ADMIN_PASSWORD, LiveServer

LOCK_SECONDS = 600


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    overrides = {"login_failures_per_address": 12, "login_lock_seconds": LOCK_SECONDS}
    live = LiveServer(
        database_url, Path(tmp_path_factory.mktemp("data")), options=overrides
    ).start()
    yield live
    live.stop()


@pytest.fixture(autouse=True)
def no_failures_yet(server: LiveServer) -> None:
    with psycopg.connect(server.database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM login_failures")


def login(server: LiveServer, name: str, password: str) -> httpx.Response:
    return httpx.post(f"{server.url}/api/auth/login", json={"username": name, "password": password})


def assert_locked(answer: httpx.Response) -> None:
    assert answer.status_code == 429, answer.text
    assert 0 < int(answer.headers["Retry-After"]) <= LOCK_SECONDS
    assert "Too many failed sign-ins" in answer.json()["detail"]


def test_five_failures_lock_the_account_for_a_while(server: LiveServer) -> None:
    for _ in range(5):
        assert login(server, "admin", "wrong-password").status_code == 400
    assert_locked(login(server, "admin", ADMIN_PASSWORD))  # even the right password
    assert_locked(login(server, "ADMIN", "wrong-password"))
    assert_locked(httpx.get(f"{server.url}/api/users/self", auth=("admin", ADMIN_PASSWORD)))
    with register(server, "other") as other:  # another account from the same address
        assert other.get("/api/users/self").status_code == 200


def test_names_without_an_account_lock_the_same_way(server: LiveServer) -> None:
    answers = [login(server, "ghost", "wrong-password") for _ in range(5)]
    assert {a.status_code for a in answers} == {400}
    assert answers[0].json() == login_refusal()
    locked = login(server, "ghost", "wrong-password")
    assert_locked(locked)


def test_a_success_clears_the_account_failures(server: LiveServer) -> None:
    register(server, "sam").close()
    for _ in range(4):
        assert login(server, "sam", "wrong-password").status_code == 400
    assert login(server, "sam", "secret-pass-1").status_code == 200
    for _ in range(4):
        assert login(server, "sam", "wrong-password").status_code == 400
    assert login(server, "sam", "secret-pass-1").status_code == 200


def test_many_failures_from_one_address_lock_every_name(server: LiveServer) -> None:
    register(server, "carol").close()
    for attempt in range(12):
        assert login(server, f"guess-{attempt}", "wrong-password").status_code == 400
    assert_locked(login(server, "carol", "secret-pass-1"))
    with psycopg.connect(server.database_url, autocommit=True) as conn:
        conn.execute("UPDATE login_failures SET failed_at = now() - interval '601 seconds'")
    assert login(server, "carol", "secret-pass-1").status_code == 200  # the lock has passed


def login_refusal() -> dict[str, list[str]]:
    return {"non_field_errors": ["Unable to log in with provided credentials."]}
