"""Job rooms over real websockets: live edits, resume, conflicts, undo/redo, presence."""

from __future__ import annotations

import random
import time
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from tests.conftest import register
from tests.live_server import ADMIN_PASSWORD, LiveServer
from tests.room_client import RoomClient
from tests.task_setup import upload_task


def token(server: LiveServer, username: str, password: str) -> str:
    response = httpx.post(
        f"{server.url}/api/auth/login", json={"username": username, "password": password}
    )
    return response.json()["key"]


@pytest.fixture(scope="module")
def room(
    server: LiveServer, admin: httpx.Client, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    task = upload_task(
        admin, tmp_path_factory.mktemp("frames"), [f"{i}.png" for i in range(5)],
        {"name": "room", "labels": [{"name": "car"}, {"name": "tree"}]},
    )  # fmt: skip
    job = admin.get("/api/jobs", params={"task_id": task["id"]}).json()["results"][0]["id"]
    labels = [
        label["id"]
        for label in admin.get("/api/labels", params={"task_id": task["id"]}).json()["results"]
    ]
    with register(server, "bob") as bob:  # bob works on the task with admin
        bob_id = bob.get("/api/users/self").json()["id"]
    admin.patch(f"/api/tasks/{task['id']}", json={"assignee_id": bob_id})
    return {
        "job": job,
        "labels": labels,
        "admin": token(server, "admin", ADMIN_PASSWORD),
        "bob": token(server, "bob", "secret-pass-1"),
    }


def box(room: dict[str, Any], x: float = 1, frame: int = 0) -> dict[str, Any]:
    return {
        "type": "rectangle",
        "label_id": room["labels"][0],
        "frame": frame,
        "points": [x, x, x + 5, x + 5],
    }


def test_an_edit_reaches_the_other_member_and_rest_sees_it(
    server: LiveServer, admin: httpx.Client, room: dict[str, Any]
) -> None:
    alice = RoomClient(server.url, room["job"], room["admin"])
    bob = RoomClient(server.url, room["job"], room["bob"])
    ack = alice.command({"type": "create", "shapes": [box(room, 3)]})
    assert ack["type"] == "ack", ack
    bob.wait_version(ack["version"])
    created = ack["result"]["shapes"][0]
    assert bob.objects[created["id"]]["points"] == [3.0, 3.0, 8.0, 8.0]
    rest = admin.get(f"/api/jobs/{room['job']}/annotations/").json()
    assert created["id"] in {s["id"] for s in rest["shapes"]}
    # An edit over REST reaches the room too.
    admin.patch(f"/api/jobs/{room['job']}/annotations/", params={"action": "update"},
                json={"shapes": [{**created, "points": [9, 9, 10, 10]}]})  # fmt: skip
    latest = admin.get(f"/api/jobs/{room['job']}/annotations/").json()["version"]
    alice.wait_version(latest)
    assert alice.objects[created["id"]]["points"] == [9.0, 9.0, 10.0, 10.0]
    alice.close()
    bob.close()


def test_resume_after_disconnect_catches_up_exactly(
    server: LiveServer, admin: httpx.Client, room: dict[str, Any]
) -> None:
    alice = RoomClient(server.url, room["job"], room["admin"])
    bob = RoomClient(server.url, room["job"], room["bob"])
    bob.wait_version(alice.welcome["version"])
    seen = bob.version
    state_before = bob.state()
    bob.close()
    for x in range(6):
        assert alice.command({"type": "create", "shapes": [box(room, x)]})["type"] == "ack"
    back = RoomClient(server.url, room["job"], room["bob"], since=seen, known=state_before)
    back.wait_version(
        alice.version or admin.get(f"/api/jobs/{room['job']}/annotations/").json()["version"]
    )
    rest = admin.get(f"/api/jobs/{room['job']}/annotations/").json()
    assert back.versions_seen == list(range(seen + 1, rest["version"] + 1))
    assert [s["id"] for s in back.state()["shapes"]] == sorted(s["id"] for s in rest["shapes"])
    alice.close()
    back.close()


def test_same_field_clash_and_different_fields_merge(
    server: LiveServer, room: dict[str, Any]
) -> None:
    alice = RoomClient(server.url, room["job"], room["admin"])
    bob = RoomClient(server.url, room["job"], room["bob"])
    ack = alice.command({"type": "create", "shapes": [box(room, 20)]})
    shape, base = ack["result"]["shapes"][0], ack["version"]
    first = alice.command({"type": "update", "kind": "shape", "id": shape["id"], "base": base,
                           "changes": {"points": [1, 1, 2, 2]}})  # fmt: skip
    assert first["type"] == "ack"
    clash = bob.command({"type": "update", "kind": "shape", "id": shape["id"], "base": base,
                         "changes": {"points": [7, 7, 8, 8]}})  # fmt: skip
    assert clash["type"] == "reject" and clash["reason"] == "conflict"
    assert clash["current"]["points"] == [1.0, 1.0, 2.0, 2.0]
    merged = bob.command({"type": "update", "kind": "shape", "id": shape["id"], "base": base,
                          "changes": {"occluded": True, "z_order": 3}})  # fmt: skip
    assert merged["type"] == "ack"
    final = merged["result"]
    assert final["points"] == [1.0, 1.0, 2.0, 2.0] and final["occluded"] and final["z_order"] == 3
    stale_delete = bob.command(
        {"type": "delete", "objects": [{"kind": "shape", "id": shape["id"], "base": base}]}
    )
    assert stale_delete["type"] == "reject" and stale_delete["reason"] == "conflict"
    alice.close()
    bob.close()


def test_retried_command_id_writes_once(
    server: LiveServer, admin: httpx.Client, room: dict[str, Any]
) -> None:
    alice = RoomClient(server.url, room["job"], room["admin"])
    first = alice.command({"type": "create", "cid": "retry-me", "shapes": [box(room, 40)]})
    again = alice.command({"type": "create", "cid": "retry-me", "shapes": [box(room, 40)]})
    assert again["type"] == "ack" and again["duplicate"] and again["version"] == first["version"]
    shapes = admin.get(f"/api/jobs/{room['job']}/annotations/").json()["shapes"]
    assert sum(1 for s in shapes if s["points"][0] == 40.0) == 1
    alice.close()


def test_a_command_id_sent_at_once_on_two_sockets_writes_once(
    server: LiveServer, admin: httpx.Client, room: dict[str, Any]
) -> None:
    """The repeat is not yet in the history when it arrives: the writer must still see it."""
    first_socket = RoomClient(server.url, room["job"], room["admin"])
    second_socket = RoomClient(server.url, room["job"], room["admin"])
    frame = {"type": "create", "cid": "sent-twice-at-once", "shapes": [box(room, 41)]}
    for client in (first_socket, second_socket, first_socket):
        client.send(frame)
    answers = [
        client.wait_for(lambda f: f.get("cid") == "sent-twice-at-once" and f["type"] == "ack")
        for client in (first_socket, second_socket)
    ]
    answers.append(
        first_socket.wait_for(
            lambda f: f.get("cid") == "sent-twice-at-once" and f is not answers[0]
            and f["type"] == "ack"
        )
    )  # fmt: skip
    assert sorted(bool(a.get("duplicate")) for a in answers) == [False, True, True]
    assert len({a["version"] for a in answers}) == 1
    shapes = admin.get(f"/api/jobs/{room['job']}/annotations/").json()["shapes"]
    assert sum(1 for s in shapes if s["points"][0] == 41.0) == 1
    first_socket.close()
    second_socket.close()


def test_undo_redo_and_refusal_when_someone_else_changed_it(
    server: LiveServer, admin: httpx.Client, room: dict[str, Any]
) -> None:
    alice = RoomClient(server.url, room["job"], room["admin"])
    bob = RoomClient(server.url, room["job"], room["bob"])
    url = f"/api/jobs/{room['job']}/annotations/"
    created = alice.command({"type": "create", "shapes": [box(room, 50)]})
    shape = created["result"]["shapes"][0]
    moved = alice.command({"type": "update", "kind": "shape", "id": shape["id"], "base": created["version"],
                           "changes": {"points": [51, 51, 52, 52]}})  # fmt: skip
    undone = alice.command({"type": "undo"})
    assert undone["type"] == "ack", undone
    points = {s["id"]: s["points"] for s in admin.get(url).json()["shapes"]}
    assert points[shape["id"]] == [50.0, 50.0, 55.0, 55.0]
    redone = alice.command({"type": "redo"})
    assert redone["type"] == "ack"
    points = {s["id"]: s["points"] for s in admin.get(url).json()["shapes"]}
    assert points[shape["id"]] == [51.0, 51.0, 52.0, 52.0]
    # Bob changes it; Alice's undo of her move must not erase his change.
    bob.command({"type": "update", "kind": "shape", "id": shape["id"], "base": redone["version"],
                 "changes": {"points": [60, 60, 61, 61]}})  # fmt: skip
    refused = alice.command({"type": "undo"})
    assert refused["type"] == "reject" and refused["reason"] == "nothing_to_undo"
    points = {s["id"]: s["points"] for s in admin.get(url).json()["shapes"]}
    assert points[shape["id"]] == [60.0, 60.0, 61.0, 61.0]
    assert moved["type"] == "ack"
    alice.close()
    bob.close()


def test_undo_survives_a_reconnect(
    server: LiveServer, admin: httpx.Client, room: dict[str, Any]
) -> None:
    alice = RoomClient(server.url, room["job"], room["admin"])
    created = alice.command({"type": "create", "shapes": [box(room, 70)]})
    alice.close()
    again = RoomClient(server.url, room["job"], room["admin"])
    undone = again.command({"type": "undo"})
    assert undone["type"] == "ack"
    ids = {s["id"] for s in admin.get(f"/api/jobs/{room['job']}/annotations/").json()["shapes"]}
    assert created["result"]["shapes"][0]["id"] not in ids
    again.close()


def test_presence_is_shared_and_coalesced(server: LiveServer, room: dict[str, Any]) -> None:
    alice = RoomClient(server.url, room["job"], room["admin"])
    bob = RoomClient(server.url, room["job"], room["bob"])
    for x in range(30):
        alice.send({"type": "presence", "cursor": [x, x], "frame": 2, "tool": "box"})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        bob.receive(0.2)
        mine = bob.members.get(alice.welcome["session"])
        if mine and mine["cursor"] == [29.0, 29.0]:
            break
    assert bob.members[alice.welcome["session"]]["tool"] == "box"
    presence_frames = [f for f in bob.frames if f["type"] == "presence"]
    assert len(presence_frames) < 30  # coalesced per tick, not one per cursor move

    # A field sent changes; a field left out stays; an explicit null clears it.
    def selection_seen(value: int | None) -> None:
        mark = len(bob.frames)
        alice.send({"type": "presence", "selected": value})
        bob.wait_for(
            lambda f: (
                f["type"] == "presence"
                and any(
                    m["session"] == alice.welcome["session"] and m["selected"] == value
                    for m in f["members"]
                )
            ),
            start=mark,
        )

    selection_seen(7)
    selection_seen(None)
    assert bob.members[alice.welcome["session"]]["tool"] == "box"
    alice.close()
    bob.wait_for(lambda f: f["type"] == "presence" and alice.welcome["session"] in f["left"])
    bob.close()


def test_bad_frames_get_an_error_and_the_socket_lives(
    server: LiveServer, room: dict[str, Any]
) -> None:
    alice = RoomClient(server.url, room["job"], room["admin"])
    alice.socket.send("{not json")
    assert alice.wait_for(lambda f: f["type"] == "error")
    alice.send({"type": "teleport"})
    alice.send(
        {
            "type": "create",
            "cid": "bad",
            "shapes": [
                {"type": "rectangle", "label_id": 999999, "frame": 0, "points": [0, 0, 1, 1]}
            ],
        }
    )
    rejected = alice.wait_for(lambda f: f.get("cid") == "bad")
    assert rejected["reason"] == "invalid" and "shapes[0].label_id" in rejected["fields"]
    assert alice.command({"type": "create", "shapes": [box(room, 90)]})["type"] == "ack"
    alice.close()


def test_strangers_and_unknown_jobs_are_refused(server: LiveServer, room: dict[str, Any]) -> None:
    with pytest.raises(InvalidStatus):
        RoomClient(server.url, room["job"], "not-a-token")
    with pytest.raises(InvalidStatus):
        RoomClient(server.url, 999999, room["admin"])
    register(server, "eve").close()  # signed in, but nothing to do with this job
    with pytest.raises(InvalidStatus):
        RoomClient(server.url, room["job"], token(server, "eve", "secret-pass-1"))


def test_concurrent_random_edits_converge(
    server: LiveServer, admin: httpx.Client, room: dict[str, Any]
) -> None:
    import threading

    clients = [
        RoomClient(server.url, room["job"], room[name]) for name in ("admin", "bob", "admin")
    ]
    for client in clients:
        client.wait_version(clients[0].welcome["version"])

    def work(client: RoomClient, seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(25):
            shapes = [(i, o) for i, o in client.objects.items() if client.kinds[i] == "shapes"]
            choice = rng.random()
            if choice < 0.4 or not shapes:
                client.command({"type": "create", "shapes": [box(room, rng.randint(0, 90))]})
            elif choice < 0.8:
                ident, obj = rng.choice(shapes)
                client.command({"type": "update", "kind": "shape", "id": ident, "base": client.version,
                                "changes": {"points": [rng.randint(0, 9), 1, 20, 30]}})  # fmt: skip
            else:
                ident, _ = rng.choice(shapes)
                client.command({"type": "delete", "objects": [{"kind": "shape", "id": ident}]})

    threads = [threading.Thread(target=work, args=(c, i)) for i, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rest = admin.get(f"/api/jobs/{room['job']}/annotations/").json()
    for client in clients:
        client.wait_version(rest["version"])
        assert [s["id"] for s in client.state()["shapes"]] == sorted(
            s["id"] for s in rest["shapes"]
        )
        for shape in rest["shapes"]:
            assert client.objects[shape["id"]]["points"] == shape["points"]
        client.close()
    replayed = admin.get(
        f"/api/jobs/{room['job']}/annotations/", params={"at_version": rest["version"]}
    ).json()
    assert replayed == rest
