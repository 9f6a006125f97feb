"""Dataset export and annotation import through the request flow, with cvat-cli and cvat-sdk."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from cvat_sdk import make_client

from tests.live_server import ADMIN_PASSWORD, LiveServer
from tests.task_setup import upload_task, wait_for_request

CLI = str(Path(sys.executable).parent / "cvat-cli")
LABELS = [
    {"name": "car", "attributes": [
        {"name": "color", "mutable": False, "input_type": "select", "values": ["red", "blue"]}]},
    {"name": "person"},
]  # fmt: skip


def cli(server: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, "--server-host", server.url, "--auth", f"admin:{ADMIN_PASSWORD}", *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.fixture(scope="module")
def annotated(admin: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("frames")
    task = upload_task(
        admin, folder, [f"{i}.png" for i in range(4)], {"name": "src", "labels": LABELS}
    )
    labels = {
        label["name"]: label
        for label in admin.get("/api/labels", params={"task_id": task["id"]}).json()["results"]
    }
    car, person = labels["car"], labels["person"]
    color = car["attributes"][0]["id"]
    body = {
        "shapes": [
            {"type": "rectangle", "label_id": car["id"], "frame": 0, "points": [1, 2, 30, 40],
             "attributes": [{"spec_id": color, "value": "blue"}]},
            {"type": "polygon", "label_id": person["id"], "frame": 1, "points": [0, 0, 20, 0, 20, 20]},
            {"type": "points", "label_id": person["id"], "frame": 2, "points": [5, 5]},
        ],
        "tags": [{"label_id": person["id"], "frame": 3}],
    }  # fmt: skip
    assert admin.put(f"/api/tasks/{task['id']}/annotations/", json=body).status_code == 200
    return {"task": task, "folder": folder}


def fresh_task(admin: httpx.Client, folder: Path, name: str) -> dict[str, Any]:
    return upload_task(
        admin, folder / name, [f"{i}.png" for i in range(4)], {"name": name, "labels": LABELS}
    )


def comparable(admin: httpx.Client, task_id: int) -> list[tuple[Any, ...]]:
    labels = {
        label["id"]: label["name"]
        for label in admin.get("/api/labels", params={"task_id": task_id}).json()["results"]
    }
    data = admin.get(f"/api/tasks/{task_id}/annotations/").json()
    shapes = [(s["type"], labels[s["label_id"]], s["frame"], s["points"]) for s in data["shapes"]]
    tags = [("tag", labels[t["label_id"]], t["frame"]) for t in data["tags"]]
    return sorted(shapes) + sorted(tags)


def test_formats_are_listed(admin: httpx.Client) -> None:
    formats = admin.get("/api/server/annotation/formats").json()
    exporters = {f["name"] for f in formats["exporters"]}
    importers = {f["name"] for f in formats["importers"]}
    assert {"CVAT for images 1.1", "COCO 1.0"} <= exporters
    assert {"CVAT 1.1", "COCO 1.0"} <= importers


def test_cli_export_then_import_into_a_fresh_task(
    server: LiveServer, admin: httpx.Client, annotated: dict[str, Any], tmp_path: Path
) -> None:
    task_id = annotated["task"]["id"]
    out = tmp_path / "export.zip"
    exported = cli(server, "task", "export-dataset", str(task_id), str(out),
                   "--format", "CVAT for images 1.1", "--completion_verification_period", "0.1")  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    with zipfile.ZipFile(out) as archive:
        assert "annotations.xml" in archive.namelist()
    target = fresh_task(admin, annotated["folder"], "dst-cli")
    imported = cli(
        server, "task", "import-dataset", str(target["id"]), str(out), "--format", "CVAT 1.1"
    )
    assert imported.returncode == 0, imported.stderr
    assert comparable(admin, target["id"]) == comparable(admin, task_id)
    history = admin.get(
        f"/api/jobs/{admin.get('/api/jobs', params={'task_id': target['id']}).json()['results'][0]['id']}/history",
        params={"page_size": "all"},
    ).json()["results"]
    assert (
        history[-1]["type"] == "AnnotationsCreated" and history[-1]["actor"]["username"] == "admin"
    )


def test_sdk_exports_with_images_and_coco_round_trips(
    server: LiveServer, admin: httpx.Client, annotated: dict[str, Any], tmp_path: Path
) -> None:
    task_id = annotated["task"]["id"]
    out = tmp_path / "coco.zip"
    with make_client(
        "http://127.0.0.1", port=server.port, credentials=("admin", ADMIN_PASSWORD)
    ) as c:
        c.config.status_check_period = 0.1
        task = c.tasks.retrieve(task_id)
        task.export_dataset("COCO 1.0", out, include_images=True)
        with zipfile.ZipFile(out) as archive:
            names = archive.namelist()
        assert any(name.endswith("0.png") for name in names)
        instances = next(n for n in names if n.endswith(".json"))
        target = fresh_task(admin, annotated["folder"], "dst-sdk")
        c.tasks.retrieve(target["id"]).import_annotations("COCO 1.0", out)
    source_shapes = [s for s in comparable(admin, task_id) if s[0] in ("rectangle", "polygon")]
    target_shapes = [s for s in comparable(admin, target["id"]) if s[0] in ("rectangle", "polygon")]
    assert target_shapes == source_shapes
    assert instances


def test_a_hostile_file_fails_the_request_and_changes_nothing(
    admin: httpx.Client, annotated: dict[str, Any], tmp_path: Path
) -> None:
    target = fresh_task(admin, annotated["folder"], "dst-hostile")
    before = admin.get(f"/api/tasks/{target['id']}/annotations/").json()
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
        "<annotations>&lol2;</annotations>"
    )
    response = admin.post(
        f"/api/tasks/{target['id']}/annotations/",
        params={"format": "CVAT 1.1"},
        files={"annotation_file": ("annotations.xml", bomb.encode(), "application/xml")},
    )
    assert response.status_code == 202, response.text
    status = wait_for_request(admin, response.json()["rq_id"])
    assert status["status"] == "failed"
    assert status["message"]
    assert admin.get(f"/api/tasks/{target['id']}/annotations/").json() == before


def test_unknown_format_is_400(admin: httpx.Client, annotated: dict[str, Any]) -> None:
    task_id = annotated["task"]["id"]
    response = admin.post(f"/api/tasks/{task_id}/dataset/export", params={"format": "Nope 9.9"})
    assert response.status_code == 400
    assert "format" in json.dumps(response.json())
