"""Two `palimpsest serve` processes on one PostgreSQL and NATS: one room across both."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.live_server import free_port
from tests.room_client import RoomClient
from tests.task_setup import upload_task
from tests.test_serve import ServeProcess

PASSWORD = "two-servers-1"


@pytest.fixture
def two_servers(
    database_url: str, nats_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServeProcess, ServeProcess]]:
    data_dir = tmp_path_factory.mktemp("shared")
    env = {
        "PALIMPSEST_DATABASE_URL": database_url,
        "PALIMPSEST_NATS_URL": nats_url,
        "PALIMPSEST_ADMIN_PASSWORD": PASSWORD,
    }
    first = ServeProcess(data_dir, free_port(), **env)
    first.wait_ready()
    second = ServeProcess(data_dir, free_port(), **env)
    second.wait_ready()
    yield first, second
    first.stop()
    second.stop()


def test_clients_on_different_servers_see_each_other(
    two_servers: tuple[ServeProcess, ServeProcess], tmp_path: Path
) -> None:
    first, second = two_servers
    with httpx.Client(base_url=first.url, auth=("admin", PASSWORD), timeout=30) as admin:
        task = upload_task(
            admin, tmp_path, ["a.png", "b.png"], {"name": "shared", "labels": [{"name": "car"}]}
        )
        job = admin.get("/api/jobs", params={"task_id": task["id"]}).json()["results"][0]["id"]
        label = admin.get("/api/labels", params={"task_id": task["id"]}).json()["results"][0]["id"]
        key = httpx.post(
            f"{first.url}/api/auth/login", json={"username": "admin", "password": PASSWORD}
        ).json()["key"]
    alice = RoomClient(first.url, job, key)
    bob = RoomClient(second.url, job, key)
    shape = {"type": "rectangle", "label_id": label, "frame": 0, "points": [1, 1, 4, 4]}
    ack = alice.command({"type": "create", "shapes": [shape]})
    assert ack["type"] == "ack"
    bob.wait_version(ack["version"])
    created = ack["result"]["shapes"][0]
    assert bob.objects[created["id"]]["points"] == [1.0, 1.0, 4.0, 4.0]
    moved = bob.command({"type": "update", "kind": "shape", "id": created["id"],
                         "base": ack["version"], "changes": {"points": [2, 2, 5, 5]}})  # fmt: skip
    assert moved["type"] == "ack"
    alice.wait_version(moved["version"])
    assert alice.objects[created["id"]]["points"] == [2.0, 2.0, 5.0, 5.0]
    alice.send({"type": "presence", "cursor": [7, 8], "frame": 1})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        bob.receive(0.2)
        member = bob.members.get(alice.welcome["session"])
        if member and member["cursor"] == [7.0, 8.0]:
            break
    assert bob.members[alice.welcome["session"]]["cursor"] == [7.0, 8.0]
    alice.close()
    bob.close()
