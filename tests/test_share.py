"""Files already on the server: /api/server/share and tasks made from `server_files`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cvat_sdk import make_client, models
from cvat_sdk.core.proxies.tasks import ResourceType

from tests.conftest import register
from tests.images import write_images
from tests.live_server import ADMIN_PASSWORD, LiveServer
from tests.task_setup import wait_for_request
from tests.videos import write_video

LABELS = [{"name": "car"}]


@pytest.fixture(scope="module")
def share(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("share")
    write_images(root / "day1", ["b.png", "a.png", ".hidden.png"])
    write_images(root / "day1" / "night", ["c.png"])
    packed = write_images(tmp_path_factory.mktemp("packing"), ["z1.png", "z2.png"])
    with zipfile.ZipFile(root / "pack.zip", "w") as archive:
        for path in packed:
            archive.write(path, path.name)
    write_video(root / "clip.mp4", frames=30)
    (root / "notes.txt").write_text("not media")
    secret = tmp_path_factory.mktemp("outside")
    write_images(secret, ["secret.png"])
    os.symlink(secret / "secret.png", root / "escape.png")
    os.symlink(secret, root / "escape_dir")
    return root


@pytest.fixture(scope="module")
def server(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, share: Path
) -> Iterator[LiveServer]:
    live = LiveServer(database_url, tmp_path_factory.mktemp("data"), share_dir=share).start()
    yield live
    live.stop()


def new_task(client: httpx.Client, name: str) -> int:
    created = client.post("/api/tasks", json={"name": name, "labels": LABELS})
    assert created.status_code == 201, created.text
    return created.json()["id"]


def from_share(client: httpx.Client, task_id: int, files: list[str]) -> httpx.Response:
    return client.post(
        f"/api/tasks/{task_id}/data/", json={"server_files": files, "image_quality": 70}
    )


def test_share_lists_folders_first_and_never_a_way_out(admin: httpx.Client) -> None:
    root = admin.get("/api/server/share", params={"directory": "/"})
    assert root.status_code == 200, root.text
    assert root.json() == [
        {"name": "day1", "type": "DIR", "mime_type": "DIR"},
        {"name": "clip.mp4", "type": "REG", "mime_type": "video"},
        {"name": "notes.txt", "type": "REG", "mime_type": "unknown"},
        {"name": "pack.zip", "type": "REG", "mime_type": "archive"},
    ]
    day1 = admin.get("/api/server/share", params={"directory": "day1/"}).json()
    assert [e["name"] for e in day1] == ["night", ".hidden.png", "a.png", "b.png"]
    searched = admin.get("/api/server/share", params={"directory": "/day1", "search": "a"})
    assert [e["name"] for e in searched.json()] == ["a.png"]
    for bad in ("../", "day1/../..", "escape_dir", "/etc", "pack.zip", "missing"):
        response = admin.get("/api/server/share", params={"directory": bad})
        assert response.status_code == 400, (bad, response.text)
        assert "directory" in response.json()


def test_a_task_from_share_images_and_an_archive(admin: httpx.Client) -> None:
    task_id = new_task(admin, "from share")
    response = from_share(admin, task_id, ["day1", "pack.zip"])
    assert response.status_code == 202, response.text
    status = wait_for_request(admin, response.json()["rq_id"])
    assert status["status"] == "finished", status
    meta = admin.get(f"/api/tasks/{task_id}/data/meta").json()
    assert [f["name"] for f in meta["frames"]] == [
        "day1/a.png", "day1/b.png", "day1/night/c.png", "z1.png", "z2.png"
    ]  # fmt: skip
    assert meta["storage"] == "share"
    frame = admin.get(f"/api/tasks/{task_id}/data", params={"type": "frame", "number": 4})
    assert frame.status_code == 200
    assert frame.headers["content-type"] == "image/jpeg"


def test_a_task_from_a_share_video(admin: httpx.Client, share: Path) -> None:
    task_id = new_task(admin, "share video")
    response = from_share(admin, task_id, ["/clip.mp4"])
    assert response.status_code == 202, response.text
    assert wait_for_request(admin, response.json()["rq_id"])["status"] == "finished"
    task = admin.get(f"/api/tasks/{task_id}").json()
    assert (task["size"], task["mode"]) == (30, "interpolation")
    assert (share / "clip.mp4").exists()  # the share keeps its files


@pytest.mark.parametrize(
    "files",
    [["../outside.png"], ["day1/../../x.png"], ["escape.png"], ["escape_dir/secret.png"],
     ["/etc/passwd"], ["day1/missing.png"], []],
)  # fmt: skip
def test_paths_out_of_the_share_are_refused(admin: httpx.Client, files: list[str]) -> None:
    task_id = new_task(admin, "escape")
    response = from_share(admin, task_id, files)
    if files:
        assert response.status_code == 400, response.text
        assert "server_files" in response.json()
    else:  # no files at all: the request fails and says so
        assert response.status_code == 202
        status = wait_for_request(admin, response.json()["rq_id"])
        assert status["status"] == "failed" and status["message"]
    assert admin.get(f"/api/tasks/{task_id}/data/meta").status_code == 404


def test_a_non_media_share_file_fails_the_request_and_leaves_no_data(admin: httpx.Client) -> None:
    task_id = new_task(admin, "notes")
    response = from_share(admin, task_id, ["notes.txt"])
    status = wait_for_request(admin, response.json()["rq_id"])
    assert status["status"] == "failed"
    assert "notes.txt" in status["message"]
    assert admin.get(f"/api/tasks/{task_id}/data/meta").status_code == 404
    retried = from_share(admin, task_id, ["day1/a.png"])
    assert wait_for_request(admin, retried.json()["rq_id"])["status"] == "finished"
    assert admin.get(f"/api/tasks/{task_id}").json()["size"] == 1


def test_share_needs_a_signed_in_user(server: LiveServer) -> None:
    anonymous = httpx.get(f"{server.url}/api/server/share")
    assert anonymous.status_code == 401
    user = register(server, "share-user")
    assert user.get("/api/server/share").status_code == 200
    assert json.loads(user.get("/api/server/share").text)


def test_cvat_sdk_makes_a_task_from_the_share(server: LiveServer) -> None:
    with make_client(server.url, credentials=("admin", ADMIN_PASSWORD)) as client:
        task = client.tasks.create_from_data(
            spec=models.TaskWriteRequest(name="sdk share", labels=[{"name": "car"}]),
            resource_type=ResourceType.SHARE,
            resources=["day1/b.png", "day1/a.png"],
        )
        assert [f.name for f in task.get_meta().frames] == ["day1/a.png", "day1/b.png"]


def test_cvat_cli_makes_a_task_from_the_share(server: LiveServer, admin: httpx.Client) -> None:
    cli = str(Path(sys.executable).parent / "cvat-cli")
    made = subprocess.run(
        [cli, "--server-host", server.url, "--auth", f"admin:{ADMIN_PASSWORD}", "task", "create",
         "cli share", "share", "day1/night/c.png", "pack.zip", "--labels", '[{"name": "car"}]'],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    tasks = admin.get("/api/tasks", params={"name": "cli share"}).json()["results"]
    meta = admin.get(f"/api/tasks/{tasks[0]['id']}/data/meta").json()
    assert [f["name"] for f in meta["frames"]] == ["day1/night/c.png", "z1.png", "z2.png"]
