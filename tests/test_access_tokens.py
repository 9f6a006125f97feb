"""Personal access tokens: made, used with Bearer, listed, changed, revoked and expired."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from cvat_sdk import make_client, models

from tests.conftest import register
from tests.live_server import ADMIN_PASSWORD, LiveServer

CLI = str(Path(sys.executable).parent / "cvat-cli")
MADE: list[str] = []  # every token value this module made, to look for in the log


def make_token(client: httpx.Client, **body: Any) -> dict[str, Any]:
    response = client.post("/api/auth/access_tokens", json={"name": "ci", **body})
    assert response.status_code == 201, response.text
    MADE.append(response.json()["value"])
    return response.json()


def bearer(server: LiveServer, value: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {value}"}, timeout=30
    )


def test_create_use_list_update_revoke(server: LiveServer) -> None:
    with register(server, "tia") as tia:
        made = make_token(tia, name="laptop", read_only=False)
        assert made["value"].startswith("plm_")
        assert made["owner"]["username"] == "tia"
        assert made["read_only"] is False and made["expiry_date"] is None
        with bearer(server, made["value"]) as token:
            assert token.get("/api/users/self").json()["username"] == "tia"
            assert token.post("/api/projects", json={"name": "via token"}).status_code == 201
            current = token.get("/api/auth/access_tokens/self").json()
            assert current["id"] == made["id"] and "value" not in current
            listed = tia.get("/api/auth/access_tokens").json()
            assert [t["id"] for t in listed["results"]] == [made["id"]]
            assert "value" not in listed["results"][0]
            assert listed["results"][0]["last_used_date"] is not None
            renamed = tia.patch(f"/api/auth/access_tokens/{made['id']}", json={"name": "old"})
            assert renamed.status_code == 200 and renamed.json()["name"] == "old"
            assert tia.delete(f"/api/auth/access_tokens/{made['id']}").status_code == 204
            refused = token.get("/api/users/self")
            assert refused.status_code == 401
            assert refused.json() == {"detail": "Invalid token."}
        assert tia.get("/api/auth/access_tokens").json()["count"] == 0
        assert tia.get(f"/api/auth/access_tokens/{made['id']}").status_code == 404


def test_read_only_tokens_only_read_and_tokens_never_manage_tokens(server: LiveServer) -> None:
    with register(server, "uma") as uma:
        reader = make_token(uma, name="reader")
        writer = make_token(uma, name="writer", read_only=False)
        assert reader["read_only"] is True  # CVAT's default
        with bearer(server, reader["value"]) as token:
            assert token.get("/api/projects").status_code == 200
            refused = token.post("/api/projects", json={"name": "nope"})
            assert refused.status_code == 403
            assert refused.json() == {"detail": "Access token is read only"}
        with bearer(server, writer["value"]) as token:
            assert token.get("/api/auth/access_tokens").json()["count"] == 2
            assert token.post("/api/auth/access_tokens", json={"name": "x"}).status_code == 403
            assert token.delete(f"/api/auth/access_tokens/{reader['id']}").status_code == 403
            password = token.post(
                "/api/auth/password/change",
                json={"old_password": "x", "new_password1": "y", "new_password2": "y"},
            )
            assert password.status_code == 403


def test_expired_tokens_are_refused(server: LiveServer) -> None:
    with register(server, "vic") as vic:
        past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        bad = vic.post("/api/auth/access_tokens", json={"name": "old", "expiry_date": past})
        assert bad.status_code == 400 and "expiry_date" in bad.json()
        soon = datetime.now(UTC) + timedelta(seconds=1.5)
        made = make_token(vic, name="brief", expiry_date=soon.isoformat())
        assert made["expiry_date"].endswith("Z")
        with bearer(server, made["value"]) as token:
            assert token.get("/api/users/self").status_code == 200
            time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.2)
            expired = token.get("/api/users/self")
            assert expired.status_code == 401
            assert expired.json() == {"detail": "Token has expired."}
        assert vic.get("/api/auth/access_tokens").json()["count"] == 0
        assert vic.get(f"/api/auth/access_tokens/{made['id']}").status_code == 404


def test_only_the_owner_or_an_admin_reaches_a_token(
    server: LiveServer, admin: httpx.Client
) -> None:
    with register(server, "wes") as wes, register(server, "xia") as xia:
        made = make_token(wes, name="wes's")
        path = f"/api/auth/access_tokens/{made['id']}"
        assert xia.get(path).status_code == 403
        assert xia.delete(path).status_code == 403
        assert xia.get("/api/auth/access_tokens").json()["count"] == 0
        assert admin.get(path).json()["name"] == "wes's"
        assert admin.delete(path).status_code == 204
        with bearer(server, made["value"]) as token:
            assert token.get("/api/users/self").status_code == 401


def test_bearer_session_keys_and_bad_tokens(server: LiveServer) -> None:
    key = httpx.post(
        f"{server.url}/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
    ).json()["key"]
    with bearer(server, key) as session:
        assert session.get("/api/users/self").json()["username"] == "admin"
        assert session.get("/api/auth/access_tokens/self").status_code == 401
    with bearer(server, "plm_not-a-token") as unknown:
        assert unknown.get("/api/users/self").status_code == 401


def test_idempotency_key_is_refused_on_creation(admin: httpx.Client) -> None:
    response = admin.post(
        "/api/auth/access_tokens", json={"name": "k"}, headers={"Idempotency-Key": "pat-1"}
    )
    assert response.status_code == 400


def test_cli_with_cvat_access_token_and_no_login(server: LiveServer, tmp_path: Path) -> None:
    with register(server, "yan") as yan:
        made = make_token(yan, name="cli")
        assert yan.post("/api/projects", json={"name": "p"}).status_code == 201
    sessions_before = _count(server, "SELECT count(*) FROM auth_sessions")
    env = {**os.environ, "CVAT_ACCESS_TOKEN": made["value"], "HOME": str(tmp_path)}
    env.pop("PASS", None)
    listed = subprocess.run(
        [CLI, "--server-host", server.url, "task", "ls"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert listed.returncode == 0, listed.stderr
    assert _count(server, "SELECT count(*) FROM auth_sessions") == sessions_before


def test_sdk_creates_and_uses_tokens(server: LiveServer) -> None:
    with make_client(
        "http://127.0.0.1", port=server.port, credentials=("admin", ADMIN_PASSWORD)
    ) as client:
        expiry = datetime.now(UTC) + timedelta(days=30)
        made, _ = client.api_client.auth_api.create_access_tokens(
            models.AccessTokenWriteRequest(name="sdk", expiry_date=expiry, read_only=False)
        )
        MADE.append(made.value)
        assert made.read_only is False and made.expiry_date is not None
    with make_client("http://127.0.0.1", port=server.port, access_token=made.value) as client:
        current, _ = client.api_client.auth_api.retrieve_access_tokens_self()
        assert current.id == made.id and current.name == "sdk"
        assert current.last_used_date is not None
        page, _ = client.api_client.auth_api.list_access_tokens()
        assert made.id in [t.id for t in page.results]
        project = client.projects.create(models.ProjectWriteRequest(name="by sdk token"))
        assert project.owner.username == "admin"
        assert client.api_client.users_api.retrieve_self()[0].username == "admin"


def test_the_log_names_tokens_but_never_holds_their_values(server: LiveServer) -> None:
    assert len(MADE) >= 5  # runs after the tests above (one module, one worker)
    with psycopg.connect(server.database_url) as conn:
        states = [
            (r[0], bytes(r[1]).decode())
            for r in conn.execute("SELECT topic, state FROM palimpsest_events")
        ]
        digests = [r[0] for r in conn.execute("SELECT digest FROM access_token_keys")]
    log = "\n".join(state for _, state in states)
    for value in MADE:
        assert value not in log
        assert value.removeprefix("plm_") not in log
    for digest in digests:
        assert digest not in log
    topics = {topic for topic, _ in states}
    assert {
        "core.access_tokens:AccessTokenCreated",
        "core.access_tokens:AccessTokenUpdated",
        "core.access_tokens:AccessTokenRevoked",
    } <= topics
    assert any('"name":"laptop"' in s for t, s in states if t.endswith("AccessTokenCreated"))


def _count(server: LiveServer, query: str) -> int:
    with psycopg.connect(server.database_url) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0])
