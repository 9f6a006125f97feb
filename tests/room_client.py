"""A small synchronous job-room client for tests: keeps a local copy of the job's state."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from websockets.sync.client import ClientConnection, connect


class RoomClient:
    def __init__(
        self,
        server_url: str,
        job_id: int,
        token: str,
        since: int | None = None,
        known: dict[str, list[dict[str, Any]]] | None = None,
    ):
        """`since` and `known`: the version and state a reconnecting client already has."""
        url = server_url.replace("http://", "ws://") + f"/ws/jobs/{job_id}?token={token}"
        self.socket: ClientConnection = connect(url, open_timeout=10).__enter__()
        self.version = 0
        self.objects: dict[int, dict[str, Any]] = {}
        self.kinds: dict[int, str] = {}
        self.frames: list[dict[str, Any]] = []
        self.acks: dict[str, dict[str, Any]] = {}
        self.members: dict[str, dict[str, Any]] = {}
        self.versions_seen: list[int] = []
        if since is not None:
            self.version = since
            for name, objects in (known or {}).items():
                for obj in objects:
                    self.objects[obj["id"]] = obj
                    self.kinds[obj["id"]] = name
        self.send({"type": "hello", "since": since})
        self.welcome = self.wait_for(lambda f: f["type"] == "welcome")

    def send(self, frame: dict[str, Any]) -> None:
        self.socket.send(json.dumps(frame))

    def command(self, frame: dict[str, Any], timeout: float = 10) -> dict[str, Any]:
        cid = frame.setdefault("cid", uuid.uuid4().hex)
        start = len(self.frames)
        self.send(frame)
        return self.wait_for(
            lambda f: f.get("cid") == cid and f["type"] in ("ack", "reject"), timeout, start
        )

    def wait_for(self, test: Any, timeout: float = 10, start: int = 0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        checked = start
        while True:
            for frame in self.frames[checked:]:
                if test(frame):
                    return frame
            checked = len(self.frames)
            if time.monotonic() > deadline:
                raise AssertionError(f"no such frame within {timeout} s; last: {self.frames[-3:]}")
            self.receive(deadline - time.monotonic())

    def wait_version(self, version: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while self.version < version:
            if time.monotonic() > deadline:
                raise AssertionError(f"stuck at version {self.version}, want {version}")
            self.receive(deadline - time.monotonic())

    def receive(self, timeout: float) -> dict[str, Any] | None:
        try:
            raw = self.socket.recv(timeout=max(timeout, 0.001))
        except TimeoutError:
            return None
        message = json.loads(raw)
        frames = message if isinstance(message, list) else [message]  # a batch is an array
        for frame in frames:
            self.frames.append(frame)
            self._apply(frame)
        return frames[-1]

    def _apply(self, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        if kind == "snapshot":
            self.objects.clear()
            for name in ("tags", "shapes", "tracks"):
                for obj in frame[name]:
                    self.objects[obj["id"]] = obj
                    self.kinds[obj["id"]] = name
            self.version = frame["version"]
        elif kind == "event":
            self.versions_seen.append(frame["version"])
            assert frame["version"] > self.version, (frame["version"], self.version)
            self._apply_event(frame)
            self.version = frame["version"]
        elif kind == "presence":
            for member in frame["members"]:
                self.members[member["session"]] = member
            for session in frame["left"]:
                self.members.pop(session, None)

    def _apply_event(self, frame: dict[str, Any]) -> None:
        data = frame["data"]
        if frame["name"] in ("AnnotationsCreated", "AnnotationsUpdated"):
            self._put(data)
        elif frame["name"] == "AnnotationsDeleted":
            self._remove(data)
        elif frame["name"] in ("EditUndone", "EditRedone"):
            self._remove(data["remove"])
            self._put(data["restore"])

    def _put(self, data: dict[str, Any]) -> None:
        for name in ("tags", "shapes", "tracks"):
            for obj in data.get(name, []):
                self.objects[obj["id"]] = obj
                self.kinds[obj["id"]] = name

    def _remove(self, ids: dict[str, Any]) -> None:
        for name in ("tags", "shapes", "tracks"):
            for ident in ids.get(name, []):
                self.objects.pop(ident, None)

    def state(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {"tags": [], "shapes": [], "tracks": []}
        for ident, obj in self.objects.items():
            out[self.kinds[ident]].append(obj)
        return {name: sorted(objs, key=lambda o: o["id"]) for name, objs in out.items()}

    def close(self) -> None:
        self.socket.close()
