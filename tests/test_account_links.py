"""Email confirmation (mandatory here) and password reset, through a real SMTP server, by
following the emailed links; tokens work once, expire, die with a password change and never
reach the log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import psycopg
import pytest

from core.accounts import User
from tests.live_server import LiveServer
from tests.mailbox import Mailbox

PASSWORD = "secret-pass-1"
LINKS_SEEN: list[str] = []


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    box, controller = Mailbox().start()
    yield box
    controller.stop()


@pytest.fixture(scope="module")
def server(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, mailbox: Mailbox
) -> Iterator[LiveServer]:
    overrides = {
        "smtp_host": "127.0.0.1",
        "smtp_port": mailbox.port,
        "smtp_from": "palimpsest@example.com",
        "email_confirmation": "mandatory",
    }
    live = LiveServer(
        database_url, Path(tmp_path_factory.mktemp("data")), options=overrides
    ).start()
    yield live
    live.stop()


def sign_up(server: LiveServer, name: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/auth/register",
        json={
            "username": name,
            "email": f"{name}@example.com",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )


def login(server: LiveServer, name: str, password: str = PASSWORD) -> httpx.Response:
    return httpx.post(f"{server.url}/api/auth/login", json={"username": name, "password": password})


def follow(mailbox: Mailbox, to: str, subject_word: str) -> str:
    link = mailbox.wait_for(to, subject_word).link()
    LINKS_SEEN.append(link)
    return link


def confirmed_user(server: LiveServer, mailbox: Mailbox, name: str) -> None:
    assert sign_up(server, name).status_code == 201
    assert httpx.get(follow(mailbox, f"{name}@example.com", "confirm")).status_code == 200


def request_reset(server: LiveServer, mailbox: Mailbox, name: str) -> dict[str, str]:
    answer = httpx.post(
        f"{server.url}/api/auth/password/reset", json={"email": f"{name}@example.com"}
    )
    assert answer.status_code == 200
    link = follow(mailbox, f"{name}@example.com", "reset")
    assert link.startswith(f"{server.url}/auth/password/reset/confirm?")
    query = parse_qs(urlsplit(link).query)
    return {"uid": query["uid"][0], "token": query["token"][0], "link": link}


def confirm_reset(server: LiveServer, link: dict[str, str], new: str, again: str | None = None):
    return httpx.post(
        f"{server.url}/api/auth/password/reset/confirm",
        json={
            "uid": link["uid"],
            "token": link["token"],
            "new_password1": new,
            "new_password2": again or new,
        },
    )


def test_an_unconfirmed_address_cannot_sign_in_until_the_link_is_followed(
    server: LiveServer, mailbox: Mailbox
) -> None:
    answer = sign_up(server, "una")
    assert answer.status_code == 201
    assert answer.json()["email_verification_required"] is True
    refused = login(server, "una")
    assert refused.status_code == 400
    assert refused.json() == {"non_field_errors": ["E-mail is not verified."]}
    assert httpx.get(f"{server.url}/api/users/self", auth=("una", PASSWORD)).status_code == 401
    wrong = login(server, "una", "not-her-password")
    assert wrong.json() == {"non_field_errors": ["Unable to log in with provided credentials."]}

    link = follow(mailbox, "una@example.com", "confirm")
    assert link.startswith(f"{server.url}/api/account-confirm-email/")
    assert httpx.get(link).status_code == 200
    assert login(server, "una").status_code == 200
    assert httpx.get(f"{server.url}/api/users/self", auth=("una", PASSWORD)).status_code == 200
    used = httpx.get(link)
    assert used.status_code == 400 and "key" in used.json()


def test_resend_gives_a_new_confirmation_link(server: LiveServer, mailbox: Mailbox) -> None:
    assert sign_up(server, "rory").status_code == 201
    mailbox.wait_for("rory@example.com", "confirm")  # lost, say
    resent = httpx.post(
        f"{server.url}/api/auth/register/resend-email", json={"email": "rory@example.com"}
    )
    assert resent.status_code == 200
    assert httpx.get(follow(mailbox, "rory@example.com", "confirm")).status_code == 200
    assert login(server, "rory").status_code == 200


def test_password_reset_by_the_emailed_link(server: LiveServer, mailbox: Mailbox) -> None:
    confirmed_user(server, mailbox, "rita")
    key = login(server, "rita").json()["key"]
    link = request_reset(server, mailbox, "rita")
    page = httpx.get(link["link"])
    assert page.status_code == 200 and page.json()["uid"] == link["uid"]

    mismatch = confirm_reset(server, link, "brand-new-pass", "other-new-pass")
    assert mismatch.status_code == 400 and "new_password2" in mismatch.json()
    weak = confirm_reset(server, link, "123")
    assert weak.status_code == 400 and "new_password1" in weak.json()
    done = confirm_reset(server, link, "brand-new-pass")
    assert done.status_code == 200
    assert done.json() == {"detail": "Password has been reset with the new password."}

    assert login(server, "rita").status_code == 400
    assert login(server, "rita", "brand-new-pass").status_code == 200
    old_session = httpx.get(
        f"{server.url}/api/users/self", headers={"Authorization": f"Token {key}"}
    )
    assert old_session.status_code == 401  # a reset ends every session
    again = confirm_reset(server, link, "third-new-pass")
    assert again.status_code == 400 and again.json() == {"token": ["Invalid value"]}
    assert httpx.get(link["link"]).status_code == 400


def test_reset_tells_nothing_about_who_has_an_account(server: LiveServer, mailbox: Mailbox) -> None:
    confirmed_user(server, mailbox, "nina")
    unknown = httpx.post(
        f"{server.url}/api/auth/password/reset", json={"email": "nobody@example.com"}
    )
    known = httpx.post(f"{server.url}/api/auth/password/reset", json={"email": "nina@example.com"})
    assert unknown.status_code == known.status_code == 200
    assert unknown.json() == known.json()
    mailbox.wait_for("nina@example.com", "reset")
    assert not [m for m in mailbox.received if "nobody@example.com" in m.to]
    bad = httpx.post(f"{server.url}/api/auth/password/reset", json={"email": "not an address"})
    assert bad.status_code == 400 and "email" in bad.json()
    missing = httpx.post(f"{server.url}/api/auth/password/reset", json={})
    assert missing.status_code == 400


def test_a_password_change_voids_reset_links(server: LiveServer, mailbox: Mailbox) -> None:
    confirmed_user(server, mailbox, "pete")
    link = request_reset(server, mailbox, "pete")
    changed = httpx.post(
        f"{server.url}/api/auth/password/change",
        auth=("pete", PASSWORD),
        json={
            "old_password": PASSWORD,
            "new_password1": "changed-pass-1",
            "new_password2": "changed-pass-1",
        },
    )
    assert changed.status_code == 200
    refused = confirm_reset(server, link, "brand-new-pass")
    assert refused.status_code == 400 and refused.json() == {"token": ["Invalid value"]}
    assert login(server, "pete", "changed-pass-1").status_code == 200


def test_links_expire_and_are_bound_to_their_user(server: LiveServer, mailbox: Mailbox) -> None:
    confirmed_user(server, mailbox, "ezra")
    confirmed_user(server, mailbox, "olga")
    olga = request_reset(server, mailbox, "olga")
    ezra = request_reset(server, mailbox, "ezra")
    swapped = confirm_reset(server, {**ezra, "uid": olga["uid"]}, "brand-new-pass")
    assert swapped.status_code == 400
    garbled = confirm_reset(server, {**ezra, "uid": "!!"}, "brand-new-pass")
    assert garbled.status_code == 400 and garbled.json() == {"uid": ["Invalid value"]}
    with psycopg.connect(server.database_url, autocommit=True) as conn:
        conn.execute("UPDATE account_link_tokens SET expires = now() - interval '1 second'")
    assert confirm_reset(server, ezra, "brand-new-pass").status_code == 400
    assert login(server, "ezra").status_code == 200


def test_every_change_is_a_user_event_and_no_link_secret_is_stored_plainly(
    server: LiveServer, mailbox: Mailbox
) -> None:
    confirmed_user(server, mailbox, "lena")
    link = request_reset(server, mailbox, "lena")
    assert confirm_reset(server, link, "brand-new-pass").status_code == 200
    lena_id = httpx.get(f"{server.url}/api/users/self", auth=("lena", "brand-new-pass")).json()[
        "id"
    ]
    with psycopg.connect(server.database_url) as conn:
        rows = conn.execute(
            "SELECT originator_id, topic, convert_from(state, 'UTF8') FROM palimpsest_events"
            " ORDER BY notification_id"
        ).fetchall()
        stored = conn.execute("SELECT digest, bound_to FROM account_link_tokens").fetchall()
    lenas = [
        (t.rsplit(":", 1)[-1].rsplit(".", 1)[-1], s)
        for o, t, s in rows
        if o == User.stream_id(lena_id)
    ]
    assert [name for name, _ in lenas] == [
        "Created",
        "EmailConfirmationSent",
        "EmailConfirmed",
        "PasswordResetRequested",
        "PasswordReset",
    ]
    assert '"actor":null' in lenas[3][1]  # asked for by someone not signed in
    assert f'"actor":{lena_id}' in lenas[4][1]  # done by whoever held lena's link
    everything = "\n".join(state for _, _, state in rows)
    for seen in LINKS_SEEN:
        secret = seen.rstrip("/").rsplit("/", 1)[-1].rsplit("token=", 1)[-1]
        assert secret not in everything
        assert all(secret not in digest + bound for digest, bound in stored)
