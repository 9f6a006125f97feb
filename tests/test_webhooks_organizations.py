"""Organization webhooks: made and managed by an organization's owner and maintainers, sent
the events of everything it holds (projects, tasks, jobs, review issues and comments) and of
the organization itself (memberships, invitations, its own changes); maintainers manage the
webhooks of its projects too. A real HTTP receiver runs in a thread (tests/test_webhooks.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import register
from tests.live_server import LiveServer
from tests.task_setup import upload_task
from tests.test_webhooks import Received, Receiver, deliveries, verify, wait_until


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


def in_org(slug: str) -> dict[str, str]:
    return {"X-Organization": slug}


def email_of(client: httpx.Client) -> str:
    return client.get("/api/users/self").json()["email"]


def invite(inviter: httpx.Client, invitee: httpx.Client, slug: str, role: str) -> str:
    sent = inviter.post(
        "/api/invitations", json={"role": role, "email": email_of(invitee)}, headers=in_org(slug)
    )
    assert sent.status_code == 201, sent.text
    return sent.json()["key"]


def join(inviter: httpx.Client, invitee: httpx.Client, slug: str, role: str) -> None:
    key = invite(inviter, invitee, slug, role)
    assert invitee.post(f"/api/invitations/{key}/accept").status_code == 200


def make_organization(owner: httpx.Client, slug: str) -> int:
    created = owner.post("/api/organizations", json={"slug": slug, "name": slug.title()})
    assert created.status_code == 201, created.text
    return created.json()["id"]


def make_project(client: httpx.Client, name: str, slug: str | None = None) -> int:
    response = client.post(
        "/api/projects",
        json={"name": name, "labels": [{"name": "car"}]},
        headers=in_org(slug) if slug else {},
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def hook_body(url: str, events: list[str], **fields: Any) -> dict[str, Any]:
    return {"target_url": url, "type": "organization", "events": events, **fields}


def events_of(received: list[Received]) -> list[str]:
    return [r.payload["event"] for r in received]


def test_an_organization_webhook_hears_what_the_organization_holds_and_its_members(
    server: LiveServer, receiver: Receiver, tmp_path: Path
) -> None:
    olga, mary, walt = (register(server, f"whorg-{n}") for n in ("olga", "mary", "walt"))
    org_id = make_organization(olga, "hookorg")
    join(olga, mary, "hookorg", "maintainer")
    offered = mary.get("/api/webhooks/events", params={"type": "organization"}).json()
    keys = [e["key"] for e in offered["events"]]
    for key in ("create:membership", "delete:invitation", "update:organization", "create:issue"):
        assert key in keys
    made = mary.post(
        "/api/webhooks",
        json=hook_body(receiver.url("/org"), keys, secret="s3"),
        headers=in_org("hookorg"),
    )
    assert made.status_code == 201, made.text
    hook = made.json()
    assert hook["type"] == "organization" and hook["organization"] == org_id
    assert hook["project_id"] is None

    # What the organization holds: a project, its task and job, an issue and its comments.
    project_id = make_project(olga, "roads", "hookorg")
    task = upload_task(
        olga, tmp_path, ["0.png", "1.png"],
        {"name": "day 1", "project_id": project_id, "segment_size": 2},
    )  # fmt: skip
    job_id = olga.get("/api/jobs", params={"task_id": task["id"]}).json()["results"][0]["id"]
    issue = olga.post(
        "/api/issues", json={"frame": 0, "position": [1, 2, 3, 4], "job": job_id, "message": "hm"}
    ).json()
    comment = olga.post("/api/comments", json={"issue": issue["id"], "message": "see"}).json()
    assert olga.patch(f"/api/comments/{comment['id']}", json={"message": "seen"}).is_success
    assert olga.patch(f"/api/issues/{issue['id']}", json={"resolved": True}).is_success
    assert olga.delete(f"/api/comments/{comment['id']}").status_code == 204
    assert olga.delete(f"/api/issues/{issue['id']}").status_code == 204
    # The organization itself: invitations, memberships, its own fields.
    join(olga, walt, "hookorg", "worker")
    walts = olga.get("/api/memberships", headers=in_org("hookorg"), params={"user": "whorg-walt"})
    membership_id = walts.json()["results"][0]["id"]
    assert olga.patch(f"/api/memberships/{membership_id}", json={"role": "supervisor"}).is_success
    assert walt.delete(f"/api/memberships/{membership_id}").status_code == 204
    pending = invite(olga, register(server, "whorg-nora"), "hookorg", "worker")
    assert olga.delete(f"/api/invitations/{pending}").status_code == 204
    assert olga.patch(f"/api/organizations/{org_id}", json={"name": "Hook Org Inc"}).is_success
    # Elsewhere: a personal project of the same user is not the organization's.
    make_project(olga, "mine")

    receiver.wait_for(lambda got: "update:organization" in events_of(got))
    got = receiver.at("/org")
    assert all(verify("s3", r) for r in got)
    assert all(r.payload["webhook_id"] == hook["id"] for r in got)
    sent = events_of(got)
    for key in (
        "create:project", "create:task", "update:task", "create:job", "create:issue",
        "create:comment", "update:comment", "update:issue", "delete:comment", "delete:issue",
        "create:invitation", "create:membership", "update:membership", "delete:membership",
        "delete:invitation", "update:organization",
    ):  # fmt: skip
        assert key in sent, (key, sent)
    assert sent.count("create:project") == 1  # not the personal one
    assert sent.index("create:issue") < sent.index("update:issue") < sent.index("delete:issue")

    def first(key: str) -> dict[str, Any]:
        return next(r.payload for r in got if r.payload["event"] == key)

    assert first("create:project")["project"]["id"] == project_id
    opened = first("create:issue")
    assert opened["issue"]["id"] == issue["id"] and opened["issue"]["job"] == job_id
    assert opened["sender"]["username"] == "whorg-olga"
    assert first("update:issue")["before_update"] == {"resolved": False}
    assert first("update:issue")["issue"]["resolved"] is True
    assert first("delete:issue")["issue"]["id"] == issue["id"]
    assert {first("update:comment")["comment"]["id"], first("delete:comment")["comment"]["id"]} == {
        comment["id"]
    }
    assert first("create:invitation")["invitation"]["role"] == "worker"  # walt's
    assert first("delete:invitation")["invitation"]["key"] == pending
    joined = first("create:membership")["membership"]
    assert joined["id"] == membership_id and joined["user"]["username"] == "whorg-walt"
    changed = first("update:membership")
    assert changed["membership"]["role"] == "supervisor"
    assert changed["before_update"] == {"role": "worker"}
    assert first("delete:membership")["membership"]["id"] == membership_id
    renamed = first("update:organization")
    assert renamed["organization"]["name"] == "Hook Org Inc"
    assert renamed["before_update"] == {"name": "Hookorg"}
    assert wait_until(lambda: len(deliveries(mary, hook["id"])) >= len(got))


def test_organization_maintainers_manage_its_webhooks_and_its_projects(
    server: LiveServer, receiver: Receiver
) -> None:
    owner, keeper, sue, wes, stranger = (
        register(server, f"whman-{n}") for n in ("owner", "keeper", "sue", "wes", "stranger")
    )
    make_organization(owner, "hookmgmt")
    join(owner, keeper, "hookmgmt", "maintainer")
    join(owner, sue, "hookmgmt", "supervisor")
    join(owner, wes, "hookmgmt", "worker")
    org_hook = keeper.post(
        "/api/webhooks",
        json=hook_body(receiver.url("/mgmt"), ["update:organization"]),
        headers=in_org("hookmgmt"),
    )
    assert org_hook.status_code == 201, org_hook.text
    org_url = f"/api/webhooks/{org_hook.json()['id']}"

    # The owner's project in the organization: a maintainer manages its webhooks.
    owners_project = make_project(owner, "owned", "hookmgmt")
    project_hook = keeper.post(
        "/api/webhooks",
        json={
            "target_url": receiver.url("/mgmt-p"),
            "type": "project",
            "project_id": owners_project,
            "events": ["update:task", "create:issue"],
        },
    )
    assert project_hook.status_code == 201, project_hook.text
    project_url = f"/api/webhooks/{project_hook.json()['id']}"
    listed = {w["id"] for w in keeper.get("/api/webhooks").json()["results"]}
    assert listed == {org_hook.json()["id"], project_hook.json()["id"]}
    assert owner.patch(org_url, json={"description": "by the owner"}).status_code == 200

    # A supervisor manages the webhooks of their own project only.
    sues_project = make_project(sue, "sues", "hookmgmt")
    sues = sue.post(
        "/api/webhooks",
        json={
            "target_url": receiver.url("/mgmt-s"),
            "type": "project",
            "project_id": sues_project,
            "events": ["delete:task"],
        },
    )
    assert sues.status_code == 201, sues.text
    assert [w["id"] for w in sue.get("/api/webhooks").json()["results"]] == [sues.json()["id"]]
    assert keeper.get(f"/api/webhooks/{sues.json()['id']}").status_code == 200

    for member in (sue, wes):
        for method, path, body in [
            ("GET", org_url, None),
            ("PATCH", org_url, {"is_active": False}),
            ("DELETE", project_url, None),
            ("POST", f"{org_url}/ping", None),
        ]:
            refused = member.request(method, path, json=body)
            assert refused.status_code == 403, (method, path, refused.text)
            assert "detail" in refused.json()
    refused = wes.post(
        "/api/webhooks",
        json=hook_body(receiver.url("/x"), ["update:organization"]),
        headers=in_org("hookmgmt"),
    )
    assert refused.status_code == 403, refused.text
    assert stranger.get(org_url).status_code == 404  # not a member: not even there
    assert stranger.get("/api/webhooks").json()["count"] == 0

    # Which events each type takes.
    wrong = keeper.patch(project_url, json={"events": ["create:membership"]})
    assert wrong.status_code == 400 and "events" in wrong.json()
    assert keeper.patch(org_url, json={"events": ["create:membership"]}).status_code == 200
    outside = keeper.post(
        "/api/webhooks", json=hook_body(receiver.url("/x"), ["update:organization"])
    )
    assert outside.status_code == 400 and "type" in outside.json()
    assert keeper.get(org_url).json()["is_active"] is True
    assert keeper.delete(org_url).status_code == 204
    assert keeper.get(org_url).status_code == 404
