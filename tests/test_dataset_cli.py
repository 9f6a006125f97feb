"""`palimpsest export` / `palimpsest import` against a running server."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import register
from tests.live_server import ADMIN_PASSWORD, LiveServer
from tests.task_setup import upload_task

PALIMPSEST = str(Path(sys.executable).parent / "palimpsest")
LABELS = [{"name": "car"}, {"name": "person"}]


def palimpsest(
    server: LiveServer, *args: str, auth: str = f"admin:{ADMIN_PASSWORD}"
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PALIMPSEST_")}
    return subprocess.run(
        [PALIMPSEST, *args, "--server", server.url, "--auth", auth],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip


def annotations(admin: httpx.Client, task_id: int) -> list[tuple[Any, ...]]:
    names = {
        label["id"]: label["name"]
        for label in admin.get("/api/labels", params={"task_id": task_id}).json()["results"]
    }
    data = admin.get(f"/api/tasks/{task_id}/annotations/").json()
    return sorted(
        [(s["type"], names[s["label_id"]], s["frame"], s["points"]) for s in data["shapes"]]
        + [("tag", names[t["label_id"]], t["frame"], []) for t in data["tags"]]
    )


@pytest.fixture(scope="module")
def source(admin: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("cli")
    project = admin.post("/api/projects", json={"name": "cli", "labels": LABELS}).json()
    task = upload_task(
        admin,
        folder,
        ["0.png", "1.png"],
        {"name": "t", "project_id": project["id"], "subset": "train"},
    )
    labels = {
        label["name"]: label["id"]
        for label in admin.get("/api/labels", params={"project_id": project["id"]}).json()[
            "results"
        ]
    }
    body = {
        "shapes": [{"type": "rectangle", "label_id": labels["car"], "frame": 1, "points": [1, 2, 3, 4]}],
        "tags": [{"label_id": labels["person"], "frame": 0}],
    }  # fmt: skip
    assert admin.put(f"/api/tasks/{task['id']}/annotations/", json=body).status_code == 200
    return {"project": project, "task": task, "folder": folder}


def test_task_export_then_import_into_another_task(
    server: LiveServer, admin: httpx.Client, source: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "task.zip"
    exported = palimpsest(
        server, "export", "--task", str(source["task"]["id"]),
        "--format", "CVAT for images 1.1", "-o", str(out), "--with-images",
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert "exporting" in exported.stderr and "downloading" in exported.stderr
    with zipfile.ZipFile(out) as archive:
        assert {"annotations.xml", "images/0.png", "images/1.png"} <= set(archive.namelist())
    target = upload_task(
        admin, source["folder"] / "dst", ["0.png", "1.png"],
        {"name": "dst", "project_id": source["project"]["id"]},
    )  # fmt: skip
    imported = palimpsest(
        server, "import", "--task", str(target["id"]), "--format", "CVAT 1.1", str(out)
    )
    assert imported.returncode == 0, imported.stderr
    assert "uploading" in imported.stderr and "importing" in imported.stderr
    assert annotations(admin, target["id"]) == annotations(admin, source["task"]["id"])


def test_job_export_and_append_import(
    server: LiveServer, admin: httpx.Client, source: dict[str, Any], tmp_path: Path
) -> None:
    job = admin.get("/api/jobs", params={"task_id": source["task"]["id"]}).json()["results"][0]
    out = tmp_path / "job.zip"
    exported = palimpsest(
        server, "export", "--job", str(job["id"]), "--format", "COCO 1.0", "-o", str(out)
    )
    assert exported.returncode == 0, exported.stderr
    before = len(admin.get(f"/api/jobs/{job['id']}/annotations/").json()["shapes"])
    imported = palimpsest(
        server, "import", "--job", str(job["id"]), "--format", "COCO 1.0", "--mode", "append", str(out)
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    assert len(admin.get(f"/api/jobs/{job['id']}/annotations/").json()["shapes"]) == before + 1


def test_project_export_and_import_as_a_new_project(
    server: LiveServer, admin: httpx.Client, source: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "project.zip"
    exported = palimpsest(
        server, "export", "--project", str(source["project"]["id"]),
        "--format", "CVAT for images 1.1", "-o", str(out), "--with-images",
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    copy = admin.post("/api/projects", json={"name": "cli copy", "labels": LABELS}).json()
    imported = palimpsest(
        server, "import", "--project", str(copy["id"]), "--format", "CVAT 1.1", str(out)
    )
    assert imported.returncode == 0, imported.stderr
    found = admin.get("/api/tasks", params={"project_id": copy["id"]}).json()["results"]
    tasks = {t["subset"]: t for t in found}
    assert sorted((t["name"], t["subset"], t["size"]) for t in found)[-1] == ("train", "train", 2)
    assert annotations(admin, tasks["train"]["id"]) == annotations(admin, source["task"]["id"])


def test_permissions_apply_and_failures_are_reported(
    server: LiveServer, source: dict[str, Any], tmp_path: Path
) -> None:
    register(server, "cli-outsider").close()
    archive = tmp_path / "empty.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("annotations.xml", "<annotations/>")
    refused = palimpsest(
        server, "import", "--project", str(source["project"]["id"]), "--format", "CVAT 1.1",
        str(archive), auth="cli-outsider:secret-pass-1",
    )  # fmt: skip
    assert refused.returncode == 1
    assert "404" in refused.stderr  # not theirs: they cannot even see it
    wrong_password = palimpsest(
        server, "export", "--task", str(source["task"]["id"]), "--format", "COCO 1.0",
        "-o", str(tmp_path / "x.zip"), auth="admin:wrong",
    )  # fmt: skip
    assert wrong_password.returncode == 1 and "401" in wrong_password.stderr
    failed = palimpsest(
        server, "import", "--project", str(source["project"]["id"]), "--format", "CVAT 1.1",
        str(archive),
    )  # fmt: skip
    assert failed.returncode == 1
    assert "no images" in failed.stderr
    assert not (tmp_path / "x.zip").exists()
