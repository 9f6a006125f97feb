"""Organizations, memberships and invitations, and acting inside an organization."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import register
from tests.live_server import LiveServer

CLI = str(Path(sys.executable).parent / "cvat-cli")


@pytest.fixture(scope="module")
def olga(server: LiveServer) -> httpx.Client:
    return register(server, "olga-owner")


@pytest.fixture(scope="module")
def walt(server: LiveServer) -> httpx.Client:
    return register(server, "walt-worker")


@pytest.fixture(scope="module")
def mary(server: LiveServer) -> httpx.Client:
    return register(server, "mary-maintainer")


@pytest.fixture(scope="module")
def org(olga: httpx.Client, walt: httpx.Client, mary: httpx.Client) -> dict[str, Any]:
    created = olga.post(
        "/api/organizations",
        json={"slug": "acme", "name": "Acme", "contact": {"email": "team@acme.test"}},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    join(olga, walt, "acme", "worker")
    join(olga, mary, "acme", "maintainer")
    return body


def in_org(slug: str) -> dict[str, str]:
    return {"X-Organization": slug}


def email_of(client: httpx.Client) -> str:
    return client.get("/api/users/self").json()["email"]


def join(inviter: httpx.Client, invitee: httpx.Client, slug: str, role: str) -> dict[str, Any]:
    sent = inviter.post(
        "/api/invitations",
        json={"role": role, "email": email_of(invitee)},
        headers=in_org(slug),
    )
    assert sent.status_code == 201, sent.text
    accepted = invitee.post(f"/api/invitations/{sent.json()['key']}/accept")
    assert accepted.status_code == 200, accepted.text
    assert accepted.json() == {"organization_slug": slug}
    return sent.json()


def members(client: httpx.Client, slug: str) -> dict[str, str]:
    listed = client.get("/api/memberships", headers=in_org(slug), params={"page_size": 100})
    return {m["user"]["username"]: m["role"] for m in listed.json()["results"]}


def test_the_creator_owns_the_organization_and_only_members_see_it(
    server: LiveServer, olga: httpx.Client, org: dict[str, Any]
) -> None:
    assert org["slug"] == "acme" and org["name"] == "Acme"
    assert org["owner"]["username"] == "olga-owner"
    assert org["contact"] == {"email": "team@acme.test"}
    stranger = register(server, "sam-stranger")
    assert stranger.get(f"/api/organizations/{org['id']}").status_code == 404
    assert org["id"] not in [o["id"] for o in stranger.get("/api/organizations").json()["results"]]
    assert stranger.get("/api/projects", headers=in_org("acme")).status_code == 403
    assert olga.get("/api/projects", headers=in_org("nope")).status_code == 404
    assert org["id"] in [o["id"] for o in olga.get("/api/organizations").json()["results"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [({"slug": "has space"}, "slug"), ({"slug": "ACME"}, "slug"), ({"name": "x"}, "slug")],
)
def test_bad_organizations_are_refused(
    olga: httpx.Client, org: dict[str, Any], body: dict[str, Any], field: str
) -> None:
    response = olga.post("/api/organizations", json=body)
    assert response.status_code == 400 and field in response.text


def test_invited_members_join_with_the_role_they_were_given(
    olga: httpx.Client, org: dict[str, Any]
) -> None:
    assert members(olga, "acme") == {
        "olga-owner": "owner",
        "walt-worker": "worker",
        "mary-maintainer": "maintainer",
    }


def test_someone_without_an_account_signs_up_and_accepts(
    server: LiveServer, olga: httpx.Client, org: dict[str, Any]
) -> None:
    sent = olga.post(
        "/api/invitations",
        json={"role": "supervisor", "email": "newbie@example.com"},
        headers=in_org("acme"),
    ).json()
    assert sent["user"] is None and sent["role"] == "supervisor"
    newbie = register(server, "newbie")  # registers newbie@example.com
    pending = newbie.get("/api/invitations").json()["results"]
    assert [i["key"] for i in pending] == [sent["key"]]
    assert newbie.post(f"/api/invitations/{sent['key']}/accept").status_code == 200
    assert members(olga, "acme")["newbie"] == "supervisor"
    project = newbie.post("/api/projects", json={"name": "in acme"}, headers=in_org("acme"))
    assert project.status_code == 201 and project.json()["organization"] == org["id"]


def test_workers_may_not_invite_or_create_and_maintainers_not_grant_maintainer(
    server: LiveServer, walt: httpx.Client, mary: httpx.Client, org: dict[str, Any]
) -> None:
    invite = {"role": "worker", "email": "someone@example.com"}
    assert walt.post("/api/invitations", json=invite, headers=in_org("acme")).status_code == 403
    assert walt.post("/api/projects", json={"name": "w"}, headers=in_org("acme")).status_code == 403
    promote = {"role": "maintainer", "email": "someone@example.com"}
    assert mary.post("/api/invitations", json=promote, headers=in_org("acme")).status_code == 403
    owner = {"role": "owner", "email": "someone@example.com"}
    assert mary.post("/api/invitations", json=owner, headers=in_org("acme")).status_code == 400
    assert walt.post("/api/projects", json={"name": "mine"}).status_code == 201  # personal


def test_roles_change_members_leave_and_the_owner_stays(
    server: LiveServer, olga: httpx.Client, mary: httpx.Client, org: dict[str, Any]
) -> None:
    pat = register(server, "pat-member")
    join(mary, pat, "acme", "worker")
    listed = olga.get("/api/memberships", headers=in_org("acme"), params={"user": "pat-member"})
    membership = listed.json()["results"][0]
    promoted = mary.patch(f"/api/memberships/{membership['id']}", json={"role": "supervisor"})
    assert promoted.status_code == 200 and promoted.json()["role"] == "supervisor"
    too_high = mary.patch(f"/api/memberships/{membership['id']}", json={"role": "maintainer"})
    assert too_high.status_code == 403
    assert pat.delete(f"/api/memberships/{membership['id']}").status_code == 204
    assert "pat-member" not in members(olga, "acme")
    owner = olga.get("/api/memberships", headers=in_org("acme"), params={"role": "owner"})
    owner_id = owner.json()["results"][0]["id"]
    assert olga.delete(f"/api/memberships/{owner_id}").status_code == 403
    assert mary.patch(f"/api/memberships/{owner_id}", json={"role": "worker"}).status_code == 403


def test_invitations_are_declined_resent_and_revoked(
    server: LiveServer, olga: httpx.Client, org: dict[str, Any]
) -> None:
    dina = register(server, "dina-decliner")
    body = {"role": "worker", "email": email_of(dina)}
    first = olga.post("/api/invitations", json=body, headers=in_org("acme")).json()
    again = olga.post("/api/invitations", json=body, headers=in_org("acme"))
    assert again.status_code == 400  # one pending invitation an address
    assert olga.post(f"/api/invitations/{first['key']}/resend").status_code == 204
    assert dina.post(f"/api/invitations/{first['key']}/decline").status_code == 204
    assert dina.post(f"/api/invitations/{first['key']}/accept").status_code == 404
    second = olga.post("/api/invitations", json=body, headers=in_org("acme")).json()
    assert olga.delete(f"/api/invitations/{second['key']}").status_code == 204
    assert dina.post(f"/api/invitations/{second['key']}/accept").status_code == 404
    assert "dina-decliner" not in members(olga, "acme")


def test_lists_in_an_organization_show_its_resources_only(
    olga: httpx.Client, org: dict[str, Any]
) -> None:
    inside = olga.post("/api/projects", json={"name": "inside"}, headers=in_org("acme")).json()
    outside = olga.post("/api/projects", json={"name": "outside"}).json()
    assert inside["organization"] == org["id"] and outside["organization"] is None
    task = olga.post(
        "/api/tasks", json={"name": "t", "project_id": inside["id"]}, headers=in_org("acme")
    ).json()
    assert task["organization"] == org["id"]
    listed = olga.get("/api/projects", headers=in_org("acme"), params={"page_size": 100}).json()
    names = [p["name"] for p in listed["results"]]
    assert "inside" in names and "outside" not in names
    by_query = olga.get("/api/projects", params={"org": "acme", "page_size": 100}).json()
    assert [p["id"] for p in by_query["results"]] == [p["id"] for p in listed["results"]]


def test_cvat_cli_creates_inside_an_organization(
    server: LiveServer, olga: httpx.Client, org: dict[str, Any], tmp_path: Path
) -> None:
    made = subprocess.run(
        [CLI, "--server-host", server.url, "--auth", "olga-owner:secret-pass-1", "--org", "acme",
         "project", "create", "cli-in-acme"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    project_id = int(made.stdout.strip().splitlines()[-1])
    assert olga.get(f"/api/projects/{project_id}").json()["organization"] == org["id"]


def test_deleting_an_organization_deletes_what_it_holds(server: LiveServer, tmp_path: Path) -> None:
    owner = register(server, "short-lived")
    assert owner.post("/api/organizations", json={"slug": "gone"}).status_code == 201
    task = owner.post(
        "/api/tasks", json={"name": "doomed", "labels": [{"name": "x"}]}, headers=in_org("gone")
    ).json()
    assert task["organization"] is not None
    org_id = task["organization"]
    assert owner.delete(f"/api/organizations/{org_id}").status_code == 204
    assert owner.get(f"/api/tasks/{task['id']}").status_code == 404
    assert owner.get(f"/api/organizations/{org_id}").status_code == 404
    assert owner.get("/api/projects", headers=in_org("gone")).status_code == 404
