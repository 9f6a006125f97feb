"""Project dataset export and import through the request flow, driven by the real cvat-sdk;
imports as undoable edits of the importing user."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from cvat_sdk import make_client, models
from lxml import etree

from tests.conftest import register
from tests.live_server import ADMIN_PASSWORD, LiveServer
from tests.room_client import RoomClient
from tests.task_setup import upload_task, wait_for_request

LABELS = [{"name": "car"}, {"name": "person"}]


def label_ids(admin: httpx.Client, **where: int) -> dict[str, int]:
    found = admin.get("/api/labels", params={**where, "page_size": 100}).json()["results"]
    return {label["name"]: label["id"] for label in found}


def annotate(admin: httpx.Client, task_id: int, labels: dict[str, int], frame: int) -> None:
    body = {
        "shapes": [
            {"type": "rectangle", "label_id": labels["car"], "frame": frame,
             "points": [1, 2, 30, 40]},
            {"type": "polygon", "label_id": labels["person"], "frame": 0,
             "points": [0, 0, 20, 0, 20, 20]},
        ],
        "tags": [{"label_id": labels["person"], "frame": 1}],
    }  # fmt: skip
    assert admin.put(f"/api/tasks/{task_id}/annotations/", json=body).status_code == 200


def summary(admin: httpx.Client, project_id: int) -> dict[str, Any]:
    """Per subset: frame names and the annotations by label name, ids left out."""
    labels = {v: k for k, v in label_ids(admin, project_id=project_id).items()}
    tasks = admin.get("/api/tasks", params={"project_id": project_id}).json()["results"]
    result = {}
    for task in tasks:
        meta = admin.get(f"/api/tasks/{task['id']}/data/meta").json()
        data = admin.get(f"/api/tasks/{task['id']}/annotations/").json()
        result[task["subset"]] = {
            "frames": [frame["name"] for frame in meta["frames"]],
            "shapes": sorted(
                (s["type"], labels[s["label_id"]], s["frame"], s["points"]) for s in data["shapes"]
            ),
            "tags": sorted((labels[t["label_id"]], t["frame"]) for t in data["tags"]),
        }
    return result


@pytest.fixture(scope="module")
def project(admin: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("project")
    created = admin.post("/api/projects", json={"name": "roads", "labels": LABELS}).json()
    labels = label_ids(admin, project_id=created["id"])
    for subset, names, frame in (
        ("train", ["a.png", "b.png", "c.png"], 2),
        ("val", ["d.png", "e.png"], 1),
    ):
        task = upload_task(
            admin, folder / subset, names,
            {"name": f"roads {subset}", "project_id": created["id"], "subset": subset},
        )  # fmt: skip
        annotate(admin, task["id"], labels, frame)
    return created


def sdk(server: LiveServer) -> Any:
    client = make_client(
        "http://127.0.0.1", port=server.port, credentials=("admin", ADMIN_PASSWORD)
    )
    client.config.status_check_period = 0.1
    return client


def test_cvat_xml_export_with_images_round_trips_into_a_new_project(
    server: LiveServer, admin: httpx.Client, project: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "roads.zip"
    with sdk(server) as client:
        client.projects.retrieve(project["id"]).export_dataset(
            "CVAT for images 1.1", out, include_images=True
        )
        with zipfile.ZipFile(out) as archive:
            names = set(archive.namelist())
            document = etree.fromstring(archive.read("annotations.xml"))
        assert {"images/train/a.png", "images/train/c.png", "images/val/e.png"} <= names
        images = document.findall("image")
        assert [(i.get("name"), i.get("subset")) for i in images] == [
            ("a.png", "train"), ("b.png", "train"), ("c.png", "train"),
            ("d.png", "val"), ("e.png", "val"),
        ]  # fmt: skip
        assert images[2].find("box").get("label") == "car"
        copy = client.projects.create_from_dataset(
            models.ProjectWriteRequest(name="copy", labels=LABELS),
            dataset_path=str(out),
            dataset_format="CVAT 1.1",
        )
    assert summary(admin, copy.id) == summary(admin, project["id"])
    tasks = admin.get("/api/tasks", params={"project_id": copy.id}).json()["results"]
    assert sorted(task["name"] for task in tasks) == ["train", "val"]


def test_coco_project_export_keeps_subsets_and_imports_back(
    server: LiveServer, admin: httpx.Client, project: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "coco.zip"
    with sdk(server) as client:
        client.projects.retrieve(project["id"]).export_dataset("COCO 1.0", out, include_images=True)
        with zipfile.ZipFile(out) as archive:
            names = set(archive.namelist())
        assert {"annotations/instances_train.json", "annotations/instances_val.json"} <= names
        assert {"images/train/b.png", "images/val/d.png"} <= names
        target = admin.post("/api/projects", json={"name": "coco copy", "labels": LABELS}).json()
        client.projects.retrieve(target["id"]).import_dataset("COCO 1.0", out)
    imported = summary(admin, target["id"])
    original = summary(admin, project["id"])
    assert imported.keys() == {"train", "val"}
    for subset, part in original.items():
        assert imported[subset]["frames"] == part["frames"]
        assert imported[subset]["shapes"] == part["shapes"]  # COCO carries no tags


def test_an_import_without_images_fails_and_creates_nothing(
    admin: httpx.Client, project: dict[str, Any], tmp_path: Path
) -> None:
    response = admin.post(
        f"/api/projects/{project['id']}/dataset/export",
        params={"format": "CVAT for images 1.1", "save_images": "false"},
    )
    assert response.status_code == 202, response.text
    status = wait_for_request(admin, response.json()["rq_id"])
    assert status["status"] == "finished", status
    archive = admin.get(status["result_url"]).content
    target = admin.post("/api/projects", json={"name": "empty", "labels": LABELS}).json()
    imported = admin.post(
        f"/api/projects/{target['id']}/dataset/",
        params={"format": "CVAT 1.1"},
        files={"dataset_file": ("roads.zip", archive, "application/zip")},
    )
    assert imported.status_code == 202, imported.text
    status = wait_for_request(admin, imported.json()["rq_id"])
    assert status["status"] == "failed"
    assert "no images" in status["message"]
    assert admin.get("/api/tasks", params={"project_id": target["id"]}).json()["count"] == 0


def test_project_import_refuses_an_unknown_format(
    admin: httpx.Client, project: dict[str, Any]
) -> None:
    response = admin.post(
        f"/api/projects/{project['id']}/dataset/",
        params={"format": "Nope 1.0"},
        files={"dataset_file": ("x.zip", b"PK", "application/zip")},
    )
    assert response.status_code == 400
    assert "format" in response.json()


def login(server: LiveServer) -> str:
    return httpx.post(
        f"{server.url}/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
    ).json()["key"]


def test_a_task_import_is_an_undoable_edit_of_the_importer(
    server: LiveServer, admin: httpx.Client, project: dict[str, Any], tmp_path: Path
) -> None:
    source = admin.get("/api/tasks", params={"project_id": project["id"], "subset": "val"})
    source_id = source.json()["results"][0]["id"]
    exported = admin.post(
        f"/api/tasks/{source_id}/dataset/export", params={"format": "CVAT for images 1.1"}
    )
    archive = admin.get(wait_for_request(admin, exported.json()["rq_id"])["result_url"]).content
    target = upload_task(
        admin, tmp_path, ["d.png", "e.png"], {"name": "undo me", "project_id": project["id"]}
    )
    job = admin.get("/api/jobs", params={"task_id": target["id"]}).json()["results"][0]["id"]
    labels = label_ids(admin, project_id=project["id"])
    before = {"type": "rectangle", "label_id": labels["person"], "frame": 0, "points": [5, 5, 9, 9]}
    assert admin.put(f"/api/jobs/{job}/annotations/", json={"shapes": [before]}).status_code == 200
    imported = admin.post(
        f"/api/tasks/{target['id']}/annotations/",
        params={"format": "CVAT 1.1"},
        files={"annotation_file": ("val.zip", archive, "application/zip")},
    )
    assert wait_for_request(admin, imported.json()["rq_id"])["status"] == "finished"
    after = admin.get(f"/api/jobs/{job}/annotations/").json()
    assert len(after["shapes"]) == 2 and len(after["tags"]) == 1
    history = admin.get(f"/api/jobs/{job}/history", params={"page_size": "all"}).json()["results"]
    assert history[-1]["actor"]["username"] == "admin"

    client = RoomClient(server.url, job, login(server))
    try:
        assert client.command({"type": "undo"})["type"] == "ack"
        restored = admin.get(f"/api/jobs/{job}/annotations/").json()
        assert [s["points"] for s in restored["shapes"]] == [[5, 5, 9, 9]]
        assert restored["tags"] == []
        assert client.command({"type": "redo"})["type"] == "ack"
        again = admin.get(f"/api/jobs/{job}/annotations/").json()
        assert len(again["shapes"]) == 2 and len(again["tags"]) == 1
    finally:
        client.close()


def test_a_hostile_archive_is_refused_and_creates_nothing(admin: httpx.Client) -> None:
    target = admin.post("/api/projects", json={"name": "hostile", "labels": LABELS}).json()
    body = io.BytesIO()
    with zipfile.ZipFile(body, "w") as archive:
        archive.writestr("images/train/a.png", b"not really")
        archive.writestr("../../escape.png", b"x")
    response = admin.post(
        f"/api/projects/{target['id']}/dataset/",
        params={"format": "CVAT 1.1"},
        files={"dataset_file": ("bad.zip", body.getvalue(), "application/zip")},
    )
    assert response.status_code == 202, response.text
    status = wait_for_request(admin, response.json()["rq_id"])
    assert status["status"] == "failed"
    assert "zip slip" in status["message"]
    assert admin.get("/api/tasks", params={"project_id": target["id"]}).json()["count"] == 0


def test_a_project_owner_imports_as_themself(
    server: LiveServer, admin: httpx.Client, project: dict[str, Any]
) -> None:
    exported = admin.post(
        f"/api/projects/{project['id']}/dataset/export",
        params={"format": "CVAT for images 1.1", "save_images": "true"},
    )
    archive = admin.get(wait_for_request(admin, exported.json()["rq_id"])["result_url"]).content
    with register(server, "project-owner") as owner:
        mine = owner.post("/api/projects", json={"name": "mine", "labels": LABELS}).json()
        imported = owner.post(
            f"/api/projects/{mine['id']}/dataset/",
            params={"format": "CVAT 1.1"},
            files={"dataset_file": ("roads.zip", archive, "application/zip")},
        )
        assert wait_for_request(owner, imported.json()["rq_id"])["status"] == "finished"
        tasks = owner.get("/api/tasks", params={"project_id": mine["id"]}).json()["results"]
        assert {t["owner"]["username"] for t in tasks} == {"project-owner"}
        job = owner.get("/api/jobs", params={"task_id": tasks[0]["id"]}).json()["results"][0]
        history = owner.get(f"/api/jobs/{job['id']}/history").json()["results"]
        assert history[-1]["type"] == "AnnotationsCreated"
        assert history[-1]["actor"]["username"] == "project-owner"
        refused = admin.post(
            f"/api/projects/{mine['id']}/dataset/",
            params={"format": "CVAT 1.1"},
            headers={"Upload-Start": "true"},
        )
        assert refused.status_code == 202  # an admin may; someone else may not:
    with register(server, "project-stranger") as stranger:
        denied = stranger.post(
            f"/api/projects/{mine['id']}/dataset/",
            params={"format": "CVAT 1.1"},
            files={"dataset_file": ("roads.zip", archive, "application/zip")},
        )
        assert denied.status_code == 404, denied.text  # not theirs: not even visible
    after = admin.get("/api/tasks", params={"project_id": mine["id"]}).json()["results"]
    assert len(after) == len(tasks)
