"""Review issues and comments: CVAT's /api/issues and /api/comments, live in the job's room."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD, register
from tests.live_server import LiveServer
from tests.room_client import RoomClient
from tests.task_setup import upload_task


@pytest.fixture(scope="module")
def bob(server: LiveServer) -> httpx.Client:
    return register(server, "reviewer-bob")


@pytest.fixture(scope="module")
def carol(server: LiveServer) -> httpx.Client:
    return register(server, "annotator-carol")


@pytest.fixture(scope="module")
def job(
    admin: httpx.Client,
    bob: httpx.Client,
    carol: httpx.Client,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """A task the reviewer bob is assigned to, whose first job is the annotator carol's."""
    task = upload_task(
        admin, tmp_path_factory.mktemp("frames"), [f"{i}.png" for i in range(6)],
        {"name": "review", "labels": [{"name": "car"}], "segment_size": 3},
    )  # fmt: skip
    admin.patch(f"/api/tasks/{task['id']}", json={"assignee_id": user_id(bob)})
    jobs = admin.get("/api/jobs", params={"task_id": task["id"], "sort": "id"}).json()["results"]
    admin.patch(f"/api/jobs/{jobs[0]['id']}", json={"assignee": user_id(carol)})
    return {"task": task["id"], "id": jobs[0]["id"], "second": jobs[1]["id"]}


def user_id(client: httpx.Client) -> int:
    return client.get("/api/users/self").json()["id"]


def open_issue(client: httpx.Client, job_id: int, **fields: Any) -> dict[str, Any]:
    body = {"frame": 1, "position": [1, 2, 30, 40], "job": job_id, "message": "box too wide"}
    response = client.post("/api/issues", json={**body, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def test_an_issue_opens_with_its_first_comment_and_counts_on_the_job(
    admin: httpx.Client, bob: httpx.Client, job: dict[str, Any]
) -> None:
    before = admin.get(f"/api/jobs/{job['id']}").json()["issues"]["count"]
    issue = open_issue(bob, job["id"], frame=2)
    assert issue["frame"] == 2 and issue["job"] == job["id"]
    assert issue["position"] == [1.0, 2.0, 30.0, 40.0]
    assert issue["owner"]["username"] == "reviewer-bob" and issue["resolved"] is False
    assert issue["comments"]["count"] == 1
    assert issue["comments"]["url"].endswith(f"/api/comments?issue_id={issue['id']}")
    comments = admin.get("/api/comments", params={"issue_id": issue["id"]}).json()
    assert [c["message"] for c in comments["results"]] == ["box too wide"]
    assert comments["results"][0]["owner"]["username"] == "reviewer-bob"
    assert admin.get(f"/api/jobs/{job['id']}").json()["issues"]["count"] == before + 1
    assert admin.get(f"/api/issues/{issue['id']}").json() == issue


def test_issue_lists_filter_by_job_frame_and_resolution(
    admin: httpx.Client, bob: httpx.Client, job: dict[str, Any]
) -> None:
    first = open_issue(bob, job["id"], frame=0, message="missing car")
    other = open_issue(bob, job["second"], frame=4, message="wrong label", resolved=True)
    on_job = admin.get("/api/issues", params={"job_id": job["id"], "page_size": 100}).json()
    assert first["id"] in [i["id"] for i in on_job["results"]]
    assert other["id"] not in [i["id"] for i in on_job["results"]]
    on_frame = admin.get("/api/issues", params={"job_id": job["id"], "frame_id": 0}).json()
    assert [i["id"] for i in on_frame["results"]] == [first["id"]]
    resolved = admin.get("/api/issues", params={"task_id": job["task"], "resolved": "true"})
    assert [i["id"] for i in resolved.json()["results"]] == [other["id"]]


def test_anyone_on_the_job_resolves_and_reopens_only_the_author_removes(
    admin: httpx.Client, bob: httpx.Client, carol: httpx.Client, job: dict[str, Any]
) -> None:
    issue = open_issue(bob, job["id"])
    resolved = carol.patch(f"/api/issues/{issue['id']}", json={"resolved": True})
    assert resolved.status_code == 200 and resolved.json()["resolved"] is True
    reopened = carol.patch(f"/api/issues/{issue['id']}", json={"resolved": False})
    assert reopened.json()["resolved"] is False
    moved = bob.patch(f"/api/issues/{issue['id']}", json={"position": [5, 5, 9, 9], "assignee": 1})
    assert moved.json()["position"] == [5.0, 5.0, 9.0, 9.0]
    assert moved.json()["assignee"]["username"] == "admin"
    assert carol.delete(f"/api/issues/{issue['id']}").status_code == 403
    assert bob.delete(f"/api/issues/{issue['id']}").status_code == 204
    assert admin.get(f"/api/issues/{issue['id']}").status_code == 404
    assert admin.get("/api/comments", params={"issue_id": issue["id"]}).json()["count"] == 0


def test_comments_are_added_by_anyone_and_changed_by_their_author(
    admin: httpx.Client, bob: httpx.Client, carol: httpx.Client, job: dict[str, Any]
) -> None:
    issue = open_issue(bob, job["id"])
    reply = carol.post("/api/comments", json={"issue": issue["id"], "message": "fixed it"})
    assert reply.status_code == 201
    comment = reply.json()
    assert comment["issue"] == issue["id"] and comment["owner"]["username"] == "annotator-carol"
    assert admin.get(f"/api/issues/{issue['id']}").json()["comments"]["count"] == 2
    assert bob.patch(f"/api/comments/{comment['id']}", json={"message": "x"}).status_code == 403
    edited = carol.patch(f"/api/comments/{comment['id']}", json={"message": "fixed the box"})
    assert edited.status_code == 200 and edited.json()["message"] == "fixed the box"
    by_job = admin.get("/api/comments", params={"job_id": job["id"], "page_size": 100}).json()
    assert "fixed the box" in [c["message"] for c in by_job["results"]]
    assert bob.delete(f"/api/comments/{comment['id']}").status_code == 403
    assert carol.delete(f"/api/comments/{comment['id']}").status_code == 204
    assert admin.get(f"/api/issues/{issue['id']}").json()["comments"]["count"] == 1


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"frame": 3}, "frame"),  # the first job holds frames 0-2
        ({"position": [1, 2, 3]}, "position"),
        ({"position": []}, "position"),
        ({"message": "   "}, "message"),
        ({"assignee": 999_999}, "assignee"),
        ({"position": "1,2"}, "position"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_issues_are_refused_naming_the_field(
    admin: httpx.Client, bob: httpx.Client, job: dict[str, Any], fields: dict[str, Any], field: str
) -> None:
    count = admin.get(f"/api/jobs/{job['id']}").json()["issues"]["count"]
    body = {"frame": 1, "position": [1, 2, 3, 4], "job": job["id"], "message": "m", **fields}
    response = bob.post("/api/issues", json=body)
    assert response.status_code == 400
    assert field in response.text
    assert admin.get(f"/api/jobs/{job['id']}").json()["issues"]["count"] == count


def test_issues_on_missing_things_are_not_found(bob: httpx.Client) -> None:
    body = {"frame": 0, "position": [1, 2], "job": 999_999, "message": "m"}
    assert bob.post("/api/issues", json=body).status_code == 404
    assert bob.post("/api/comments", json={"issue": 999_999, "message": "m"}).status_code == 404
    assert bob.patch("/api/issues/999999", json={"resolved": True}).status_code == 404
    assert bob.delete("/api/comments/999999").status_code == 404
    assert httpx.get(str(bob.base_url) + "/api/issues").status_code == 401


def test_a_reviewers_issue_reaches_the_annotator_live_and_the_history(
    server: LiveServer, admin: httpx.Client, bob: httpx.Client, job: dict[str, Any]
) -> None:
    token = httpx.post(
        f"{server.url}/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
    ).json()["key"]
    annotator = RoomClient(server.url, job["id"], token)
    issue = open_issue(bob, job["id"], message="look here")
    opened = annotator.wait_for(
        lambda f: f["type"] == "event" and f["name"] == "IssueOpened"
        and f["data"]["issue"]["id"] == issue["id"]
    )  # fmt: skip
    assert opened["data"]["message"] == "look here"
    bob.post("/api/comments", json={"issue": issue["id"], "message": "still wrong"})
    comment = annotator.wait_for(lambda f: f.get("name") == "CommentAdded")
    assert comment["data"]["issue_id"] == issue["id"]
    assert comment["data"]["message"] == "still wrong"
    annotator.close()
    history = admin.get(f"/api/jobs/{job['id']}/history", params={"page_size": 1000}).json()
    kinds = [entry["type"] for entry in history["results"]]
    assert "IssueOpened" in kinds and "CommentAdded" in kinds


def test_rejecting_a_job_with_open_issues_sends_it_back_to_its_annotator(
    admin: httpx.Client, bob: httpx.Client, carol: httpx.Client, job: dict[str, Any]
) -> None:
    job_id = job["second"]
    carol_id = carol.get("/api/users/self").json()["id"]
    bob_id = bob.get("/api/users/self").json()["id"]
    admin.patch(f"/api/jobs/{job_id}", json={"assignee": carol_id})
    admin.patch(f"/api/jobs/{job_id}", json={"stage": "validation", "assignee": bob_id})
    open_issue(bob, job_id, frame=3, message="redo this")
    rejected = bob.patch(f"/api/jobs/{job_id}", json={"state": "rejected"}).json()
    assert (rejected["stage"], rejected["state"]) == ("annotation", "rejected")
    assert rejected["assignee"]["id"] == carol_id
    for issue in admin.get("/api/issues", params={"job_id": job_id}).json()["results"]:
        admin.patch(f"/api/issues/{issue['id']}", json={"resolved": True})
    admin.patch(f"/api/jobs/{job_id}", json={"stage": "validation", "assignee": bob_id})
    accepted = bob.patch(f"/api/jobs/{job_id}", json={"state": "rejected"}).json()
    assert (accepted["stage"], accepted["state"]) == ("validation", "rejected")
