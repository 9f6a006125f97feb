"""Creating tasks with real images through the REST API, for tests."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import quote

import httpx

from tests.images import write_images


def wait_for_request(client: httpx.Client, rq_id: str) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = client.get(f"/api/requests/{quote(rq_id, safe='')}").json()
        if status["status"] in ("finished", "failed"):
            return status
        time.sleep(0.05)
    raise AssertionError("the request did not finish")


def upload_task(
    client: httpx.Client, folder: Path, names: list[str], task: dict[str, object], **params: object
) -> dict[str, object]:
    created = client.post("/api/tasks", json=task)
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]
    files = [
        (f"client_files[{i}]", (str(path), path.read_bytes(), "image/png"))
        for i, path in enumerate(write_images(folder, names))
    ]
    data = {key: str(value) for key, value in params.items()}
    response = client.post(f"/api/tasks/{task_id}/data", files=files, data=data)
    assert response.status_code == 202, response.text
    status = wait_for_request(client, response.json()["rq_id"])
    assert status["status"] == "finished", status
    assert status["result_id"] == task_id
    return client.get(f"/api/tasks/{task_id}").json()


def attach_files(
    client: httpx.Client, task: dict[str, object], files: list[Path], **params: object
) -> tuple[int, dict[str, object]]:
    """Creates a task and uploads ``files`` as its data in one request; the task id and the
    finished (or failed) background request."""
    created = client.post("/api/tasks", json=task)
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]
    parts = [
        (f"client_files[{i}]", (path.name, path.read_bytes(), "application/octet-stream"))
        for i, path in enumerate(files)
    ]
    data = {key: str(value) for key, value in params.items()}
    response = client.post(f"/api/tasks/{task_id}/data", files=parts, data=data)
    assert response.status_code == 202, response.text
    return task_id, wait_for_request(client, response.json()["rq_id"])
