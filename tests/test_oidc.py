"""Sign-in through OpenID Connect against a real local provider (tests/oidc_provider.py):
the whole browser-less flow, account creation and linking, and every refusal."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import closing
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import psycopg
import pytest
from joserfc.jwk import RSAKey

from core.errors import PermissionDenied
from core.external_accounts import ProviderIdentity, sign_in_with_identity
from infra.settings import ConfigError, Settings
from tests.conftest import register
from tests.live_server import LiveServer, free_port
from tests.oidc_provider import LocalProvider, Person

SECRET = "local-client-secret"


@pytest.fixture(scope="module")
def provider() -> Iterator[LocalProvider]:
    local = LocalProvider().start()
    yield local
    local.stop()


@pytest.fixture(scope="module")
def server(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, provider: LocalProvider
) -> Iterator[LiveServer]:
    configured = Settings.from_env(
        {
            "PALIMPSEST_OIDC_LOCAL_ISSUER": provider.issuer,
            "PALIMPSEST_OIDC_LOCAL_CLIENT_ID": "palimpsest",
            "PALIMPSEST_OIDC_LOCAL_CLIENT_SECRET": SECRET,
            "PALIMPSEST_OIDC_LOCAL_PUBLIC_NAME": "Local ID",
            "PALIMPSEST_OIDC_SECOND_ISSUER": provider.issuer,
            "PALIMPSEST_OIDC_SECOND_CLIENT_ID": "palimpsest-2",
            "PALIMPSEST_OIDC_SECOND_CLIENT_SECRET": SECRET,
            "PALIMPSEST_OIDC_DORMANT_ISSUER": provider.issuer,
            "PALIMPSEST_OIDC_DORMANT_CLIENT_ID": "palimpsest",
            "PALIMPSEST_OIDC_DORMANT_CLIENT_SECRET": SECRET,
            "PALIMPSEST_OIDC_DORMANT_ENABLED": "false",
            "PALIMPSEST_OIDC_KEYLESS_ISSUER": provider.issuer,
            "PALIMPSEST_OIDC_SLASHED_ISSUER": provider.issuer + "/",
            "PALIMPSEST_OIDC_SLASHED_CLIENT_ID": "palimpsest",
            "PALIMPSEST_OIDC_GONE_ISSUER": f"http://127.0.0.1:{free_port()}",
            "PALIMPSEST_OIDC_GONE_CLIENT_ID": "palimpsest",
        }
    )
    live = LiveServer(
        database_url,
        tmp_path_factory.mktemp("data"),
        port=free_port(),
        options={"oidc_providers": configured.oidc_providers},
    )
    for name, client_id in (("local", "palimpsest"), ("second", "palimpsest-2")):
        provider.register(client_id, SECRET, f"{live.url}/api/auth/{name}/login/callback/")
    live.start()
    yield live
    live.stop()


def browser(server: LiveServer) -> httpx.Client:
    """A cookie-keeping client that follows redirects, as a browser would."""
    return httpx.Client(base_url=server.url, follow_redirects=True, timeout=30)


def sign_in(
    server: LiveServer, person: Person, provider: LocalProvider, **query: str
) -> tuple[httpx.Client, httpx.Response]:
    """Signs `person` in through `local` in a new browser: the browser and the last answer."""
    provider.person = person
    client = browser(server)
    suffix = f"?{urlencode(query)}" if query else ""
    return client, client.get(f"/api/auth/local/login/{suffix}")


def callback_url(client: httpx.Client, provider_name: str = "local") -> str:
    """Starts a sign-in in `client` and walks it to the provider and back, stopping short of
    the callback: its url, with the code and state the provider sent."""
    start = client.get(f"/api/auth/{provider_name}/login/", follow_redirects=False)
    assert start.status_code == 302, start.text
    at_provider = httpx.get(start.headers["location"], follow_redirects=False)
    assert at_provider.status_code == 302, at_provider.text
    return at_provider.headers["location"]


def user_count(server: LiveServer) -> int:
    with psycopg.connect(server.database_url) as conn:
        row = conn.execute("SELECT count(*) FROM catalog_users").fetchone()
    assert row is not None
    return int(row[0])


def test_methods_list_each_provider_with_is_enabled_and_an_icon(server: LiveServer) -> None:
    methods = httpx.get(f"{server.url}/api/auth/social/methods/").json()
    assert set(methods) == {"local", "second", "dormant", "keyless", "slashed", "gone"}
    assert methods["local"]["is_enabled"] is True
    assert methods["local"]["public_name"] == "Local ID"
    assert "<svg" in methods["local"]["icon"]
    assert methods["dormant"] == {"is_enabled": False, "icon": None, "public_name": "Dormant"}
    assert methods["keyless"]["is_enabled"] is False


def test_first_sign_in_creates_the_user_and_signs_in(
    server: LiveServer, provider: LocalProvider
) -> None:
    person = Person(
        sub="ann-1",
        email="ann@corp.example",
        preferred_username="ann",
        given_name="Ann",
        family_name="Lee",
    )
    before = user_count(server)
    client, finished = sign_in(server, person, provider)
    with closing(client):
        assert finished.status_code == 200, finished.text
        hops = [urlsplit(str(r.url)).path for r in finished.history]
        assert hops == ["/api/auth/local/login/", "/authorize"]
        authorize = parse_qs(urlsplit(str(finished.history[1].url)).query)
        assert authorize["code_challenge_method"] == ["S256"] and authorize["nonce"][0]
        key = finished.json()["key"]
        assert {"sessionid", "csrftoken"} <= set(client.cookies.keys())
        assert "oidc_state" not in client.cookies
        me = client.get("/api/users/self").json()  # by the session cookie
        assert (me["username"], me["email"], me["first_name"]) == ("ann", person.email, "Ann")
        made = client.post(
            "/api/projects",
            json={"name": "ann's"},
            headers={"X-CSRFToken": client.cookies["csrftoken"]},
        )
        assert made.status_code == 201, made.text
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Token {key}"}) as token:
        assert token.get("/api/users/self").json()["id"] == me["id"]
        assert token.get("/api/projects").json()["count"] == 1
    assert user_count(server) == before + 1

    again, second = sign_in(server, person, provider)
    with closing(again):
        assert second.status_code == 200
        assert again.get("/api/users/self").json()["id"] == me["id"]
    assert user_count(server) == before + 1
    password = httpx.post(f"{server.url}/api/auth/login", json={"username": "ann", "password": ""})
    assert password.status_code == 400  # no password signs in an account made this way


def test_next_sends_the_signed_in_browser_on(server: LiveServer, provider: LocalProvider) -> None:
    client, finished = sign_in(
        server, Person(sub="ben-1", preferred_username="ben"), provider, next="/api/users/self"
    )
    with closing(client):
        assert finished.status_code == 200
        assert finished.url.path == "/api/users/self"
        assert finished.json()["username"] == "ben"
    for elsewhere in ("https://evil.example/", "//evil.example/x", "/\t/evil.example", "x"):
        refused = httpx.get(f"{server.url}/api/auth/local/login/", params={"next": elsewhere})
        assert refused.status_code == 400
        assert "next" in refused.json()


def test_usernames_are_made_unique_and_unverified_emails_not_kept(
    server: LiveServer, provider: LocalProvider
) -> None:
    register(server, "cleo").close()
    person = Person(sub="cleo-2", email="cleo@elsewhere.example", preferred_username="cleo")
    client, finished = sign_in(server, person, provider)
    with closing(client):
        assert finished.status_code == 200
        assert client.get("/api/users/self").json()["username"] == "cleo1"
    unverified = Person(
        sub="dan-1", email="dan@corp.example", email_verified=False, preferred_username="d a n"
    )
    client, finished = sign_in(server, unverified, provider)
    with closing(client):
        me = client.get("/api/users/self").json()
        assert (me["username"], me["email"]) == ("dan", "")
    # Nobody holds the address, so the real owner can still register with it.
    register_dan = httpx.post(
        f"{server.url}/api/auth/register",
        json={
            "username": "dan-real",
            "email": "dan@corp.example",
            "password1": "secret-pass-1",
            "password2": "secret-pass-1",
        },
    )
    assert register_dan.status_code == 201, register_dan.text


def test_verified_email_links_the_existing_account_unverified_is_refused(
    server: LiveServer, provider: LocalProvider
) -> None:
    with register(server, "erin") as erin:
        erin_id = erin.get("/api/users/self").json()["id"]
    before = user_count(server)
    unverified = Person(sub="erin-x", email="erin@example.com", email_verified=False)
    client, refused = sign_in(server, unverified, provider)
    client.close()
    assert refused.status_code == 409
    assert "not say the address is verified" in refused.json()["detail"]
    assert "sessionid" not in client.cookies
    verified = Person(sub="erin-x", email="ERIN@example.com", email_verified=True)
    client, linked = sign_in(server, verified, provider)
    with closing(client):
        assert linked.status_code == 200
        assert client.get("/api/users/self").json()["id"] == erin_id
    # Linked by (issuer, subject) now: a later sign-in finds erin whatever the email says.
    client, later = sign_in(server, Person(sub="erin-x", email="", email_verified=False), provider)
    with closing(client):
        assert client.get("/api/users/self").json()["id"] == erin_id
    assert user_count(server) == before


def test_another_provider_is_another_identity(server: LiveServer, provider: LocalProvider) -> None:
    """`second` shares the issuer, so the same subject is the same person there."""
    provider.person = Person(sub="fay-1", preferred_username="fay")
    with browser(server) as first:
        assert first.get("/api/auth/local/login/").status_code == 200
        fay = first.get("/api/users/self").json()["id"]
    with browser(server) as other:
        assert other.get("/api/auth/second/login/").status_code == 200
        assert other.get("/api/users/self").json()["id"] == fay


def test_the_log_links_the_identity_but_holds_no_provider_secret(
    server: LiveServer, provider: LocalProvider
) -> None:
    assert len(provider.issued) >= 6  # codes, access and id tokens of the tests above
    with psycopg.connect(server.database_url) as conn:
        states = [
            (r[0], bytes(r[1]).decode())
            for r in conn.execute("SELECT topic, state FROM palimpsest_events")
        ]
        pending = conn.execute("SELECT count(*) FROM oidc_sign_ins").fetchone()
    log = "\n".join(state for _, state in states)
    for value in provider.issued:
        assert value not in log
    links = [s for t, s in states if t == "core.external_accounts:IdentityLinked"]
    assert any('"subject":"ann-1"' in s and provider.issuer in s for s in links)
    assert pending == (0,)  # every finished sign-in was taken


def test_unknown_and_disabled_providers_are_refused(server: LiveServer) -> None:
    unknown = httpx.get(f"{server.url}/api/auth/nope/login/")
    assert unknown.status_code == 404 and "nope" in unknown.json()["detail"]
    for name, public in (("dormant", "Dormant"), ("keyless", "Keyless")):
        for path in ("login/", "login/callback/?code=x&state=y"):
            disabled = httpx.get(f"{server.url}/api/auth/{name}/{path}")
            assert disabled.status_code == 403
            assert disabled.json() == {"detail": f"Sign-in with {public} is disabled here."}


def test_bad_state_is_refused(server: LiveServer, provider: LocalProvider) -> None:
    provider.person = Person(sub="gus-1", preferred_username="gus")
    before = user_count(server)
    with browser(server) as client:
        url = callback_url(client)
        tampered = url.replace("state=", "state=x")
        refused = client.get(tampered)
        assert refused.status_code == 400 and "state" in refused.json()
        elsewhere = httpx.get(url)  # another browser: it has no state cookie
        assert elsewhere.status_code == 400 and "state" in elsewhere.json()
        no_state = client.get(url.split("?")[0] + "?code=abc")
        assert no_state.status_code == 400
        assert client.get(url).status_code == 200  # the rightful browser still may
        replayed = client.get(url)  # the very same callback again: its cookie is gone
        assert replayed.status_code == 400 and "state" in replayed.json()
        client.cookies.set("oidc_state", parse_qs(urlsplit(url).query)["state"][0])
        replayed = client.get(url)
        assert replayed.status_code == 400
        assert "already used" in replayed.json()["state"][0]
    assert user_count(server) == before + 1


def test_a_replayed_code_is_refused(server: LiveServer, provider: LocalProvider) -> None:
    provider.person = Person(sub="hal-1", preferred_username="hal")
    with browser(server) as client:
        first = callback_url(client)
        assert client.get(first).status_code == 200
        used_code = parse_qs(urlsplit(first).query)["code"][0]
        second = callback_url(client)
        state = parse_qs(urlsplit(second).query)["state"][0]
        replay = client.get(
            "/api/auth/local/login/callback/", params={"code": used_code, "state": state}
        )
    assert replay.status_code == 400
    assert replay.json() == {
        "code": ["Local ID refused the code: invalid_grant (this code was already used)"]
    }


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"aud": "someone-else"}, "The id_token was refused: the 'aud' claim is wrong or missing."),
        ({"aud": ["someone-else"], "azp": "palimpsest"}, "the 'aud' claim is wrong"),
        ({"nonce": "not-the-one-sent"}, "The id_token was refused: the 'nonce' claim"),
        ({"iss": "http://impostor.example"}, "the 'iss' claim is wrong"),
        ({"exp": int(time.time()) - 3600}, "The id_token has expired."),
    ],
)
def test_id_tokens_that_do_not_hold_are_refused(
    server: LiveServer, provider: LocalProvider, changes: dict[str, object], reason: str
) -> None:
    before = user_count(server)
    provider.id_token_changes = changes
    client, refused = sign_in(server, Person(sub="ivy-1", preferred_username="ivy"), provider)
    client.close()
    assert refused.status_code == 400, refused.text
    assert reason in refused.json()["id_token"][0]
    assert "sessionid" not in client.cookies
    assert user_count(server) == before


def test_an_id_token_signed_with_an_unknown_key_is_refused(
    server: LiveServer, provider: LocalProvider
) -> None:
    provider.signing_key = RSAKey.generate_key(
        2048, parameters={"kid": "good", "use": "sig", "alg": "RS256"}
    )
    try:
        client, refused = sign_in(server, Person(sub="jon-1"), provider)
        client.close()
    finally:
        provider.signing_key = provider.key
    assert refused.status_code == 400
    assert refused.json()["id_token"][0].startswith("The id_token was refused")


def test_a_provider_refusal_is_reported(server: LiveServer, provider: LocalProvider) -> None:
    provider.deny_next = True
    client, refused = sign_in(server, Person(sub="kim-1"), provider)
    client.close()
    assert refused.status_code == 400
    assert refused.json() == {
        "detail": "Local ID did not sign you in: access_denied (the user said no)"
    }


def test_a_provider_that_cannot_be_asked_or_names_another_issuer_is_a_bad_gateway(
    server: LiveServer,
) -> None:
    gone = httpx.get(f"{server.url}/api/auth/gone/login/")
    assert gone.status_code == 502 and "could not be asked" in gone.json()["detail"]
    slashed = httpx.get(f"{server.url}/api/auth/slashed/login/")
    assert slashed.status_code == 502
    assert "names the issuer" in slashed.json()["detail"]


def test_with_sign_up_closed_only_known_people_sign_in(
    server: LiveServer, provider: LocalProvider
) -> None:
    assert server.runtime is not None
    writer = server.runtime.writer

    def closed(subject: str) -> str:
        identity = ProviderIdentity("local", provider.issuer, subject)
        command = lambda unit: sign_in_with_identity(unit, identity, may_create=False)  # noqa: E731
        return writer.submit_sync(command).value.username

    assert closed("ann-1") == "ann"  # linked in an earlier test
    before = user_count(server)
    with pytest.raises(PermissionDenied, match="sign-up is closed"):
        closed("stranger-1")
    assert user_count(server) == before


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PALIMPSEST_OIDC_X_CLIENT_ID": "c"}, "PALIMPSEST_OIDC_X_ISSUER"),
        ({"PALIMPSEST_OIDC_X_ISSUER": "accounts.example"}, "PALIMPSEST_OIDC_X_ISSUER"),
        (
            {"PALIMPSEST_OIDC_X_ISSUER": "https://a.example", "PALIMPSEST_OIDC_X_SCOPES": "email"},
            "PALIMPSEST_OIDC_X_SCOPES",
        ),
        (
            {"PALIMPSEST_OIDC_X_ISSUER": "https://a.example", "PALIMPSEST_OIDC_X_ENABLED": "maybe"},
            "PALIMPSEST_OIDC_X_ENABLED",
        ),
        (
            {
                "PALIMPSEST_OIDC_X_ISSUER": "https://a.example",
                "PALIMPSEST_OIDC_X_ICON": "/nope.svg",
            },
            "PALIMPSEST_OIDC_X_ICON",
        ),
    ],
)
def test_bad_provider_settings_stop_the_server_naming_the_variable(
    env: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        Settings.from_env(env)
