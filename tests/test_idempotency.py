"""A command sent twice with the same Idempotency-Key writes once."""

from __future__ import annotations

import concurrent.futures

import httpx
import psycopg

from tests.live_server import LiveServer


def event_count(server: LiveServer) -> int:
    with psycopg.connect(server.database_url) as conn:
        return conn.execute("SELECT count(*) FROM palimpsest_events").fetchone()[0]


def test_retry_with_the_same_key_returns_the_first_answer_and_writes_once(
    server: LiveServer, admin: httpx.Client
) -> None:
    headers = {"Idempotency-Key": "create-project-1"}
    first = admin.post("/api/projects", json={"name": "once"}, headers=headers)
    events_after_first = event_count(server)
    second = admin.post("/api/projects", json={"name": "once"}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert event_count(server) == events_after_first
    names = [
        p["name"] for p in admin.get("/api/projects", params={"page_size": "all"}).json()["results"]
    ]
    assert names.count("once") == 1


def test_concurrent_retries_write_once(server: LiveServer, admin: httpx.Client) -> None:
    headers = {"Idempotency-Key": "create-project-race"}

    def send() -> httpx.Response:
        return admin.post("/api/projects", json={"name": "raced"}, headers=headers)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: send(), range(4)))
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    listed = admin.get("/api/projects", params={"name": "raced"}).json()
    assert listed["count"] == 1


def test_same_key_with_a_different_body_is_refused(admin: httpx.Client) -> None:
    headers = {"Idempotency-Key": "reused-key"}
    assert admin.post("/api/projects", json={"name": "a"}, headers=headers).status_code == 201
    clash = admin.post("/api/projects", json={"name": "b"}, headers=headers)
    assert clash.status_code == 422
    assert "different request" in clash.json()["detail"]
    assert admin.get("/api/projects", params={"name": "b"}).json()["count"] == 0


def test_events_carry_the_key_as_their_command_id(server: LiveServer, admin: httpx.Client) -> None:
    admin.post("/api/projects", json={"name": "traced"}, headers={"Idempotency-Key": "trace-me"})
    with psycopg.connect(server.database_url) as conn:
        states = [
            bytes(row[0]).decode()
            for row in conn.execute("SELECT state FROM palimpsest_events").fetchall()
        ]
    assert any(
        '"command_id":"trace-me"' in state and '"name":"traced"' in state for state in states
    )


def test_keys_are_per_user(server: LiveServer, admin: httpx.Client) -> None:
    from tests.conftest import register

    headers = {"Idempotency-Key": "shared-key"}
    assert admin.post("/api/projects", json={"name": "admins"}, headers=headers).status_code == 201
    with register(server, "keyuser") as other:
        mine = other.post("/api/projects", json={"name": "others"}, headers=headers)
    assert mine.status_code == 201
    assert mine.json()["name"] == "others"
