"""Undo lives in the log: it still works after the server restarts."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.live_server import ADMIN_PASSWORD, LiveServer
from tests.room_client import RoomClient
from tests.task_setup import upload_task


def login(server: LiveServer) -> str:
    return httpx.post(
        f"{server.url}/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
    ).json()["key"]


def test_undo_after_a_restart(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    data_dir = tmp_path_factory.mktemp("data")
    first = LiveServer(database_url, data_dir).start()
    try:
        with httpx.Client(base_url=first.url, auth=("admin", ADMIN_PASSWORD)) as admin:
            task = upload_task(admin, tmp_path, ["a.png"], {"name": "t", "labels": [{"name": "c"}]})
            job = admin.get("/api/jobs", params={"task_id": task["id"]}).json()["results"][0]["id"]
            label = admin.get("/api/labels", params={"task_id": task["id"]}).json()["results"][0]
        client = RoomClient(first.url, job, login(first))
        shape = {"type": "rectangle", "label_id": label["id"], "frame": 0, "points": [1, 1, 2, 2]}
        created = client.command({"type": "create", "shapes": [shape]})
        assert created["type"] == "ack"
        client.close()
    finally:
        first.stop()

    second = LiveServer(database_url, data_dir).start()
    try:
        client = RoomClient(second.url, job, login(second))
        undone = client.command({"type": "undo"})
        assert undone["type"] == "ack", undone
        with httpx.Client(base_url=second.url, auth=("admin", ADMIN_PASSWORD)) as admin:
            assert admin.get(f"/api/jobs/{job}/annotations/").json()["shapes"] == []
        redone = client.command({"type": "redo"})
        assert redone["type"] == "ack"
        with httpx.Client(base_url=second.url, auth=("admin", ADMIN_PASSWORD)) as admin:
            shapes = admin.get(f"/api/jobs/{job}/annotations/").json()["shapes"]
        assert [s["id"] for s in shapes] == [created["result"]["shapes"][0]["id"]]
        client.close()
    finally:
        second.stop()
