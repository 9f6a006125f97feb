"""Sign-up, sign-in (token, session cookie with CSRF, HTTP Basic) and sign-out."""

from __future__ import annotations

import httpx

from tests.conftest import register
from tests.live_server import ADMIN_PASSWORD, LiveServer


def test_login_sets_cvat_cookies_and_returns_a_token(server: LiveServer) -> None:
    response = httpx.post(
        f"{server.url}/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
    )
    assert response.status_code == 200
    key = response.json()["key"]
    assert isinstance(key, str) and len(key) == 40
    assert {"sessionid", "csrftoken"} <= set(response.cookies)
    me = httpx.get(f"{server.url}/api/users/self", headers={"Authorization": f"Token {key}"})
    assert me.json()["username"] == "admin"
    assert me.json()["is_superuser"] is True


def test_login_by_email(server: LiveServer) -> None:
    register(server, "emma").close()
    response = httpx.post(
        f"{server.url}/api/auth/login",
        json={"email": "emma@example.com", "password": "secret-pass-1"},
    )
    assert response.status_code == 200


def test_wrong_password_is_refused(server: LiveServer) -> None:
    response = httpx.post(
        f"{server.url}/api/auth/login", json={"username": "admin", "password": "wrong"}
    )
    assert response.status_code == 400
    assert response.json() == {"non_field_errors": ["Unable to log in with provided credentials."]}
    basic = httpx.get(f"{server.url}/api/users/self", auth=("admin", "wrong"))
    assert basic.status_code == 401


def test_cookie_session_needs_csrf_on_writes(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url) as browser:
        browser.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        assert browser.get("/api/users/self").status_code == 200
        refused = browser.post("/api/projects", json={"name": "csrf"})
        assert refused.status_code == 403
        assert "CSRF" in refused.json()["detail"]
        token = browser.cookies["csrftoken"]
        accepted = browser.post(
            "/api/projects", json={"name": "csrf"}, headers={"X-CSRFToken": token}
        )
        assert accepted.status_code == 201
        assert browser.cookies["csrftoken"] == token  # never rotated


def test_logout_ends_the_session(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url) as browser:
        key = browser.post(
            "/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        ).json()["key"]
        csrf = browser.cookies["csrftoken"]
        assert browser.post("/api/auth/logout", headers={"X-CSRFToken": csrf}).status_code == 200
    gone = httpx.get(f"{server.url}/api/users/self", headers={"Authorization": f"Token {key}"})
    assert gone.status_code == 401


def test_anonymous_requests_are_401(server: LiveServer) -> None:
    for path in ("/api/tasks", "/api/projects", "/api/users/self", "/api/jobs"):
        assert httpx.get(f"{server.url}{path}").status_code == 401


def test_register_validates_and_refuses_duplicates(server: LiveServer) -> None:
    register(server, "dora").close()
    again = httpx.post(
        f"{server.url}/api/auth/register",
        json={"username": "DORA", "password1": "secret-pass-1", "password2": "secret-pass-1"},
    )
    assert again.status_code == 400
    assert "username" in again.json()
    mismatch = httpx.post(
        f"{server.url}/api/auth/register",
        json={"username": "eve", "password1": "secret-pass-1", "password2": "other-pass-1"},
    )
    assert mismatch.status_code == 400
    assert "password2" in mismatch.json()
    short = httpx.post(
        f"{server.url}/api/auth/register",
        json={"username": "fay", "password1": "short", "password2": "short", "email": "bad"},
    )
    assert short.status_code == 400
    assert {"password1", "email"} <= set(short.json())


def test_users_list_and_password_change(server: LiveServer, admin: httpx.Client) -> None:
    with register(server, "gus") as gus:
        names = [
            u["username"]
            for u in admin.get("/api/users", params={"page_size": 100}).json()["results"]
        ]
        assert {"admin", "gus"} <= set(names)
        changed = gus.post(
            "/api/auth/password/change",
            json={
                "old_password": "secret-pass-1",
                "new_password1": "new-secret-2",
                "new_password2": "new-secret-2",
            },
        )
        assert changed.status_code == 200
        assert gus.get("/api/users/self").status_code == 401  # cached Basic credentials dropped
    assert (
        httpx.get(f"{server.url}/api/users/self", auth=("gus", "new-secret-2")).status_code == 200
    )


def test_events_record_who_acted(server: LiveServer) -> None:
    import psycopg

    with register(server, "hank") as hank:
        hank_id = hank.get("/api/users/self").json()["id"]
        hank.post("/api/projects", json={"name": "by hank"})
    with psycopg.connect(server.database_url) as conn:
        states = [bytes(r[0]).decode() for r in conn.execute("SELECT state FROM palimpsest_events")]
    assert any(f'"actor":{hank_id}' in s and '"name":"by hank"' in s for s in states)
