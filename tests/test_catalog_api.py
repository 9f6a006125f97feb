"""Projects, tasks and jobs through the REST API: lists, updates, deletes, task data."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.conftest import register
from tests.live_server import LiveServer
from tests.task_setup import upload_task


def test_one_shot_upload_with_segments_and_overlap(admin: httpx.Client, tmp_path: Path) -> None:
    task = upload_task(
        admin, tmp_path, [f"{i}.png" for i in range(10)],
        {"name": "seg", "labels": [{"name": "a"}], "segment_size": 4, "overlap": 1},
        image_quality=40,
    )  # fmt: skip
    assert task["size"] == 10
    assert task["image_quality"] == 40
    assert (task["segment_size"], task["overlap"]) == (4, 1)
    jobs = admin.get("/api/jobs", params={"task_id": task["id"], "sort": "id"}).json()["results"]
    assert [(j["start_frame"], j["stop_frame"]) for j in jobs] == [(0, 3), (3, 6), (6, 9)]
    assert task["jobs"]["count"] == 3


def test_random_sorting_is_decided_once(admin: httpx.Client, tmp_path: Path) -> None:
    names = [f"img{i:02d}.png" for i in range(12)]
    task = upload_task(
        admin, tmp_path, names, {"name": "rnd", "labels": [{"name": "a"}]},
        sorting_method="random",
    )  # fmt: skip
    first = [f["name"] for f in admin.get(f"/api/tasks/{task['id']}/data/meta").json()["frames"]]
    again = [f["name"] for f in admin.get(f"/api/tasks/{task['id']}/data/meta").json()["frames"]]
    assert sorted(first) == names
    assert first == again
    assert first != names


def test_predefined_order_and_frame_step(admin: httpx.Client, tmp_path: Path) -> None:
    names = ["c.png", "a.png", "b.png", "d.png"]
    task = upload_task(
        admin, tmp_path, names, {"name": "pre", "labels": [{"name": "a"}]},
        sorting_method="predefined", frame_filter="step=2",
    )  # fmt: skip
    meta = admin.get(f"/api/tasks/{task['id']}/data/meta").json()
    assert [f["name"] for f in meta["frames"]] == ["c.png", "b.png"]
    assert meta["frame_filter"] == "step=2"
    assert (meta["start_frame"], meta["stop_frame"], meta["size"]) == (0, 2, 2)


def test_adding_data_twice_is_refused(admin: httpx.Client, tmp_path: Path) -> None:
    task = upload_task(admin, tmp_path, ["x.png"], {"name": "once", "labels": [{"name": "a"}]})
    again = admin.post(f"/api/tasks/{task['id']}/data/", headers={"Upload-Start": ""})
    assert again.status_code == 400
    assert "Adding more data is not supported" in json.dumps(again.json())


def test_lists_filter_sort_search_and_page(admin: httpx.Client) -> None:
    for name in ("alpha one", "beta two", "gamma three"):
        created = admin.post("/api/tasks", json={"name": name, "labels": [{"name": "a"}]})
        assert created.status_code == 201
    listed = admin.get("/api/tasks", params={"search": "beta"}).json()
    assert [t["name"] for t in listed["results"]] == ["beta two"]
    flt = json.dumps(
        {"and": [{"==": [{"var": "owner"}, "admin"]}, {"in": ["mm", {"var": "name"}]}]}
    )
    assert [
        t["name"] for t in admin.get("/api/tasks", params={"filter": flt}).json()["results"]
    ] == ["gamma three"]
    page = admin.get("/api/tasks", params={"sort": "name", "page_size": 2}).json()
    assert page["count"] >= 3 and len(page["results"]) == 2
    assert page["next"] is not None and page["previous"] is None
    second = httpx.get(page["next"], auth=admin.auth).json()
    assert second["previous"] is not None
    names = [t["name"] for t in page["results"] + second["results"]]
    assert names == sorted(names)


def test_a_write_is_visible_in_lists_at_once(admin: httpx.Client) -> None:
    for index in range(5):
        created = admin.post(
            "/api/tasks", json={"name": f"fresh-{index}", "labels": [{"name": "a"}]}
        )
        listed = admin.get("/api/tasks", params={"name": f"fresh-{index}"}).json()
        assert [t["id"] for t in listed["results"]] == [created.json()["id"]]


def test_task_patch_and_job_workflow(
    server: LiveServer, admin: httpx.Client, tmp_path: Path
) -> None:
    task = upload_task(
        admin, tmp_path, ["a.png", "b.png"], {"name": "wf", "labels": [{"name": "a"}]}
    )
    with register(server, "ann") as ann:
        ann_id = ann.get("/api/users/self").json()["id"]
        renamed = admin.patch(
            f"/api/tasks/{task['id']}",
            json={"name": "workflow", "assignee_id": ann_id, "labels": [{"name": "b"}]},
        )
        assert renamed.status_code == 200, renamed.text
        assert renamed.json()["assignee"]["username"] == "ann"
        labels = admin.get("/api/labels", params={"task_id": task["id"]}).json()["results"]
        assert sorted(label["name"] for label in labels) == ["a", "b"]
        job = admin.get("/api/jobs", params={"task_id": task["id"]}).json()["results"][0]
        assert job["task_name"] == "workflow"
        moved = ann.patch(
            f"/api/jobs/{job['id']}", json={"stage": "acceptance", "state": "completed"}
        )
        assert moved.status_code == 200
        assert moved.json()["status"] == "completed"
        assert admin.get(f"/api/tasks/{task['id']}").json()["status"] == "completed"
        bad = ann.patch(f"/api/jobs/{job['id']}", json={"state": "deferred"})
        assert bad.status_code == 400 and "state" in bad.json()
        staged = ann.patch(f"/api/jobs/{job['id']}", json={"stage": "validation"})
        assert staged.json()["state"] == "new"
        assert ann.delete(f"/api/tasks/{task['id']}").status_code == 403  # assignee, not owner
        assert ann.patch(f"/api/tasks/{task['id']}", json={"name": "ann's"}).status_code == 200


def test_deleting_a_project_deletes_its_tasks_and_jobs(admin: httpx.Client, tmp_path: Path) -> None:
    project = admin.post("/api/projects", json={"name": "doomed", "labels": [{"name": "a"}]}).json()
    task = upload_task(admin, tmp_path, ["a.png"], {"name": "t", "project_id": project["id"]})
    job_id = admin.get("/api/jobs", params={"task_id": task["id"]}).json()["results"][0]["id"]
    assert admin.delete(f"/api/projects/{project['id']}").status_code == 204
    for path in (
        f"/api/projects/{project['id']}",
        f"/api/tasks/{task['id']}",
        f"/api/jobs/{job_id}",
    ):
        assert admin.get(path).status_code == 404


@pytest.mark.parametrize("bad_name", ["../escape.png", "/etc/..", ".hidden.png"])
def test_upload_refuses_unsafe_names(admin: httpx.Client, bad_name: str) -> None:
    task = admin.post("/api/tasks", json={"name": "unsafe", "labels": [{"name": "a"}]}).json()
    response = admin.post(
        f"/api/tasks/{task['id']}/data/",
        headers={"Upload-Multiple": ""},
        files=[("client_files[0]", (bad_name, b"x", "image/png"))],
    )
    if bad_name == "../escape.png":  # the base name is kept, as CVAT does
        assert response.status_code == 200
    else:
        assert response.status_code == 400


def test_owners_change_and_delete_their_own_projects_and_tasks_others_may_not(
    server: LiveServer,
) -> None:
    owner = register(server, "owner-olga")
    other = register(server, "other-oscar")
    project = owner.post("/api/projects", json={"name": "olga's"}).json()
    task = owner.post("/api/tasks", json={"name": "t", "labels": [{"name": "a"}]}).json()
    # Not theirs and not assigned to them: invisible, so not even there to refuse.
    assert other.patch(f"/api/projects/{project['id']}", json={"name": "x"}).status_code == 404
    assert other.delete(f"/api/tasks/{task['id']}").status_code == 404
    assert owner.patch(f"/api/projects/{project['id']}", json={"name": "y"}).status_code == 200
    assert owner.delete(f"/api/tasks/{task['id']}").status_code == 204
    assert owner.delete(f"/api/projects/{project['id']}").status_code == 204
