"""The permission matrix, cell by cell: each role and relation x each action x each kind of
resource, inside an organization and in personal workspaces (README "Who may do what").

Not visible answers 404 (no probing of ids); visible but not allowed answers 403.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from tests.conftest import register
from tests.images import write_images
from tests.live_server import LiveServer
from tests.room_client import RoomClient
from tests.task_setup import wait_for_request

USERS = (
    "m-owner", "m-maintainer", "m-supervisor", "m-worker", "m-idle",
    "s-owner", "s-assignee", "s-jobber", "stranger",
)  # fmt: skip


@pytest.fixture(scope="module")
def world(server: LiveServer, admin: httpx.Client) -> dict[str, Any]:
    clients = {name: register(server, name) for name in USERS}
    clients["admin"] = admin
    ids = {name: c.get("/api/users/self").json()["id"] for name, c in clients.items()}
    org = {"X-Organization": "matrix"}
    owner = clients["m-owner"]
    assert owner.post("/api/organizations", json={"slug": "matrix"}).status_code == 201
    for name, role in (
        ("m-maintainer", "maintainer"), ("m-supervisor", "supervisor"),
        ("m-worker", "worker"), ("m-idle", "worker"),
    ):  # fmt: skip
        email = clients[name].get("/api/users/self").json()["email"]
        key = owner.post("/api/invitations", json={"role": role, "email": email}, headers=org)
        assert clients[name].post(f"/api/invitations/{key.json()['key']}/accept").is_success
    supervisor = clients["m-supervisor"]
    p = supervisor.post("/api/projects", json={"name": "P", "labels": [{"name": "a"}]}, headers=org)
    t = supervisor.post("/api/tasks", json={"name": "T", "project_id": p.json()["id"]}, headers=org)
    j = _one_job(supervisor, t.json()["id"])
    assert supervisor.patch(f"/api/jobs/{j}", json={"assignee": ids["m-worker"]}).is_success
    sandbox_owner = clients["s-owner"]
    q = sandbox_owner.post("/api/projects", json={"name": "Q", "labels": [{"name": "a"}]})
    u = sandbox_owner.post(
        "/api/tasks",
        json={"name": "U", "project_id": q.json()["id"], "assignee_id": ids["s-assignee"]},
    )
    k = _one_job(sandbox_owner, u.json()["id"])
    assert sandbox_owner.patch(f"/api/jobs/{k}", json={"assignee": ids["s-jobber"]}).is_success
    return {
        "clients": clients,
        "ids": {"P": p.json()["id"], "T": t.json()["id"], "J": j,
                "Q": q.json()["id"], "U": u.json()["id"], "K": k},
    }  # fmt: skip


def _one_job(client: httpx.Client, task_id: int) -> int:
    """Gives the task a frame so it has a job, and returns that job's id."""
    with tempfile.TemporaryDirectory() as folder:
        (image,) = write_images(Path(folder), ["f.png"])
        files = [("client_files[0]", ("f.png", image.read_bytes(), "image/png"))]
        started = client.post(
            f"/api/tasks/{task_id}/data", files=files, data={"image_quality": "70"}
        )
    assert started.status_code == 202, started.text
    assert wait_for_request(client, started.json()["rq_id"])["status"] == "finished"
    return client.get("/api/jobs", params={"task_id": task_id}).json()["results"][0]["id"]


# (user, what they try, on what, expected status). `view` is GET, `change` a PATCH of the
# name (projects, tasks) or the stage (jobs), `state` a PATCH of a job's state, `annotate` a
# PATCH creating a tag, `delete` a DELETE that must be refused (allowed deletes are tested
# elsewhere: they would empty the world).
MATRIX = [
    # Inside the organization: owner and maintainer see and do everything.
    *[(who, act, res, 200) for who in ("m-owner", "m-maintainer", "admin")
      for act in ("view", "change") for res in ("P", "T", "J")],
    *[(who, "annotate", "J", 200) for who in ("m-owner", "m-maintainer", "admin")],
    # The supervisor made P and T: owner of both, so parent of J.
    *[("m-supervisor", act, res, 200) for act in ("view", "change") for res in ("P", "T", "J")],
    ("m-supervisor", "annotate", "J", 200),
    # The worker is J's assignee: sees J and what holds it, works on J, changes nothing else.
    *[("m-worker", "view", res, 200) for res in ("P", "T", "J")],
    ("m-worker", "annotate", "J", 200),
    ("m-worker", "state", "J", 200),
    ("m-worker", "change", "J", 403),
    ("m-worker", "change", "T", 403),
    ("m-worker", "change", "P", 403),
    ("m-worker", "delete", "T", 403),
    ("m-worker", "delete", "P", 403),
    # Writing a task's annotations: its people; seeing it through a job is not enough.
    ("m-supervisor", "annotate", "T", 200),
    ("m-worker", "annotate", "T", 403),
    ("m-idle", "annotate", "T", 404),
    ("s-jobber", "annotate", "U", 403),
    ("s-assignee", "annotate", "U", 200),
    # A worker with nothing assigned, and a stranger to the organization, see nothing.
    *[(who, act, res, 404) for who in ("m-idle", "stranger", "s-owner")
      for act in ("view", "change", "annotate", "delete") for res in ("P", "T", "J")
      if not (act == "annotate" and res != "J") and not (act == "delete" and res == "J")],
    # Personal workspaces: the owner of Q (and U, K by being their parent).
    *[("s-owner", act, res, 200) for act in ("view", "change") for res in ("Q", "U", "K")],
    ("s-owner", "annotate", "K", 200),
    # U's assignee: sees all three, changes U, works on K; not Q, and deletes nothing.
    *[("s-assignee", "view", res, 200) for res in ("Q", "U", "K")],
    ("s-assignee", "change", "U", 200),
    ("s-assignee", "annotate", "K", 200),
    ("s-assignee", "change", "K", 200),
    ("s-assignee", "change", "Q", 403),
    ("s-assignee", "delete", "U", 403),
    ("s-assignee", "delete", "Q", 403),
    # K's assignee: sees all three, works on K only.
    *[("s-jobber", "view", res, 200) for res in ("Q", "U", "K")],
    ("s-jobber", "annotate", "K", 200),
    ("s-jobber", "state", "K", 200),
    ("s-jobber", "change", "K", 403),
    ("s-jobber", "change", "U", 403),
    ("s-jobber", "change", "Q", 403),
    # Others see nothing of someone's personal workspace, organization members included.
    *[(who, act, res, 404) for who in ("stranger", "m-owner", "m-worker")
      for act in ("view", "change", "annotate") for res in ("Q", "U", "K")
      if not (act == "annotate" and res != "K")],
    *[("admin", act, res, 200) for act in ("view", "change") for res in ("Q", "U", "K")],
]  # fmt: skip

KIND = {"P": "projects", "Q": "projects", "T": "tasks", "U": "tasks", "J": "jobs", "K": "jobs"}


def attempt(client: httpx.Client, action: str, kind: str, ident: int) -> httpx.Response:
    path = f"/api/{kind}/{ident}"
    if action == "view":
        return client.get(path)
    if action == "delete":
        return client.delete(path)
    if action == "annotate":
        return client.patch(
            f"{path}/annotations", params={"action": "create"}, json={"tags": [], "shapes": []}
        )
    if kind == "jobs":
        body = {"state": "in progress"} if action == "state" else {"stage": "annotation"}
        return client.patch(path, json=body)
    return client.patch(path, json={"name": f"renamed {kind} {ident}"})


@pytest.mark.parametrize(("who", "action", "resource", "expected"), MATRIX)
def test_rest(world: dict[str, Any], who: str, action: str, resource: str, expected: int) -> None:
    client = world["clients"][who]
    response = attempt(client, action, KIND[resource], world["ids"][resource])
    assert response.status_code == expected, response.text


@pytest.mark.parametrize(
    ("who", "sees"),
    [
        ("m-owner", {"J"}), ("m-worker", {"J"}), ("m-idle", set()), ("stranger", set()),
        ("s-owner", {"K"}), ("s-jobber", {"K"}), ("admin", {"J", "K"}),
    ],
)  # fmt: skip
def test_lists_hold_only_what_one_may_see(world: dict[str, Any], who: str, sees: set[str]) -> None:
    listed = world["clients"][who].get("/api/jobs", params={"page_size": 1000}).json()
    ids = {i["id"] for i in listed["results"]}
    assert {name for name in ("J", "K") if world["ids"][name] in ids} == sees
    for kind, names in (("tasks", ("T", "U")), ("projects", ("P", "Q"))):
        listed = world["clients"][who].get(f"/api/{kind}", params={"page_size": 1000}).json()
        ids = {i["id"] for i in listed["results"]}
        expected = {n for n in names if {"T": "J", "U": "K", "P": "J", "Q": "K"}[n] in sees}
        assert {n for n in names if world["ids"][n] in ids} == expected


@pytest.mark.parametrize(
    ("who", "joins"),
    [("m-worker", True), ("m-idle", False), ("stranger", False), ("m-maintainer", True)],
)
def test_job_rooms_follow_the_same_rule(
    server: LiveServer, world: dict[str, Any], who: str, joins: bool
) -> None:
    password = "secret-pass-1"
    token = httpx.post(
        f"{server.url}/api/auth/login", json={"username": who, "password": password}
    ).json()["key"]
    if joins:
        RoomClient(server.url, world["ids"]["J"], token).close()
    else:
        with pytest.raises(InvalidStatus):
            RoomClient(server.url, world["ids"]["J"], token)


def test_leaving_the_organization_takes_away_what_one_was_given_there(
    server: LiveServer, world: dict[str, Any]
) -> None:
    """A change is authorized by the command on the state it loads (no lookup before it):
    the assignee of a task and a job keeps no power over them once out of the organization."""
    owner, leaver = world["clients"]["m-owner"], register(server, "m-leaver")
    org = {"X-Organization": "matrix"}
    me = leaver.get("/api/users/self").json()
    key = owner.post(
        "/api/invitations", json={"role": "worker", "email": me["email"]}, headers=org
    ).json()["key"]
    assert leaver.post(f"/api/invitations/{key}/accept").is_success
    task = owner.post(
        "/api/tasks",
        json={"name": "V", "labels": [{"name": "a"}], "assignee_id": me["id"]},
        headers=org,
    ).json()["id"]
    job = _one_job(owner, task)
    assert owner.patch(f"/api/jobs/{job}", json={"assignee": me["id"]}).is_success
    assert leaver.patch(f"/api/tasks/{task}", json={"name": "V2"}).status_code == 200
    assert leaver.patch(f"/api/jobs/{job}", json={"state": "in progress"}).status_code == 200
    membership = leaver.get("/api/memberships", headers=org, params={"user": "m-leaver"})
    assert leaver.delete(f"/api/memberships/{membership.json()['results'][0]['id']}").is_success
    assert leaver.get(f"/api/tasks/{task}").status_code == 404
    assert leaver.patch(f"/api/tasks/{task}", json={"name": "V3"}).status_code == 404
    assert leaver.patch(f"/api/jobs/{job}", json={"state": "completed"}).status_code == 404
    assert leaver.patch(f"/api/jobs/{job}", json={"state": "new"}).status_code == 404
    assert leaver.get("/api/jobs", params={"page_size": 1000}).json()["count"] == 0
