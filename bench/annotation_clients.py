"""The client side of bench/annotations.py: HTTP clients in a process of their own."""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import httpx
from harness import (
    AUTH,
    CallError,
    ChildProcess,
    expect,
    serve_calls,
)

IMAGE_SIZE = (64, 48)  # width, height
FRAMES = 10
REQUEST_TIMEOUT = 120.0
LOG_SETTLE = 0.3  # the request log line is written just after the response is sent
IDLE_WINDOW = 0.5  # the server is idle once it spends under IDLE_SHARE of a core over this
IDLE_SHARE = 0.05
SETTLE_TIMEOUT = 300.0
MS = 1000.0


# ------------------------------------------------------------------------------------ shapes


def box_points(rng: random.Random) -> list[float]:
    width, height = IMAGE_SIZE
    x, y = rng.uniform(0, width - 12), rng.uniform(0, height - 12)
    return [
        round(x, 3),
        round(y, 3),
        round(x + rng.uniform(1, 11), 3),
        round(y + rng.uniform(1, 11), 3),
    ]


def rectangles(rng: random.Random, label_id: int, count: int) -> list[dict[str, Any]]:
    """`count` rectangles spread over the frames, with varied float points."""
    return [
        {
            "type": "rectangle",
            "label_id": label_id,
            "frame": index % FRAMES,
            "points": box_points(rng),
            "occluded": rng.random() < 0.1,
            "z_order": rng.randint(0, 3),
        }
        for index in range(count)
    ]


# ------------------------------------------------------------------------- the client process


@dataclass
class Timed:
    """Round trips of one phase's measured requests."""

    seconds: list[float] = field(default_factory=list)
    request_bytes: int = 0
    response_bytes: int = 0
    version: int | None = None
    objects: int | None = None


@dataclass
class Built:
    wall: float
    created: int
    updated: int
    deleted: int


class Clients:
    """The state of the client process: one httpx client per thread."""

    def __init__(self, base_url: str, threads: int) -> None:
        self.base_url = base_url
        self.threads = threads
        self.pool: list[httpx.Client] = []
        self.connect()

    def connect(self) -> None:
        self.close()
        self.pool = [
            httpx.Client(base_url=self.base_url, auth=AUTH, timeout=REQUEST_TIMEOUT)
            for _ in range(self.threads)
        ]
        for client in self.pool:  # a connection each, and the server's Basic-auth cache
            client.get("/api/users/self").raise_for_status()

    def close(self) -> None:
        for client in self.pool:
            client.close()
        self.pool = []

    @property
    def main(self) -> httpx.Client:
        return self.pool[0]

    def run(self, name: str, kwargs: dict[str, Any]) -> Any:
        """The operation `name` with kwargs (for `serve_calls`)."""
        try:
            return getattr(self, name)(**kwargs)
        except httpx.TimeoutException as error:
            message = f"{name}: no answer from the server in {REQUEST_TIMEOUT:.0f} s"
            raise CallError(f"{message} ({type(error).__name__})") from error

    def put(self, job_id: int, label_id: int, count: int, seed: int) -> Timed:
        body = json.dumps({"shapes": rectangles(random.Random(seed), label_id, count)}).encode()
        started = time.perf_counter()
        response = self.main.put(
            annotations_path(job_id),
            content=body,
            headers={"content-type": "application/json"},
        )
        elapsed = time.perf_counter() - started
        expect(response, 200)
        data = response.json()
        if len(data["shapes"]) != count:
            raise RuntimeError(f"PUT answered {len(data['shapes'])} shapes, expected {count}")
        return Timed([elapsed], len(body), len(response.content), data["version"], count)

    def patch_moves(self, job_id: int, count: int, seed: int) -> Timed:
        """`count` sequential PATCH ?action=update, each moving one existing shape."""
        rng = random.Random(seed)
        shapes = self.main.get(annotations_path(job_id)).json()["shapes"]
        timed = Timed()
        for _ in range(count):
            index = rng.randrange(len(shapes))
            moved = {**shapes[index], "points": box_points(rng)}
            body = json.dumps({"shapes": [moved]}).encode()
            started = time.perf_counter()
            response = self.main.patch(
                annotations_path(job_id),
                params={"action": "update"},
                content=body,
                headers={"content-type": "application/json"},
            )
            timed.seconds.append(time.perf_counter() - started)
            expect(response, 200)
            shapes[index] = moved
            timed.request_bytes += len(body)
            timed.response_bytes += len(response.content)
        timed.version = int(self.main.get(annotations_path(job_id)).json()["version"])
        return timed

    def gets(self, job_id: int, repeats: int, params: dict[str, str]) -> Timed:
        timed = Timed()
        for _ in range(repeats):
            started = time.perf_counter()
            response = self.main.get(annotations_path(job_id), params=params)
            timed.seconds.append(time.perf_counter() - started)
            expect(response, 200)
            timed.response_bytes = len(response.content)
        data = response.json()
        timed.version = int(data["version"])
        timed.objects = len(data["shapes"]) + len(data["tags"]) + len(data["tracks"])
        return timed

    def build_history(self, job_id: int, label_id: int, edits: int, seed: int) -> Built:
        """`edits` single-event PATCHes from every thread: create 1-3 shapes, move, delete."""
        remaining = [edits]
        counts = {"create": 0, "update": 0, "delete": 0}
        lock = threading.Lock()
        errors: list[str] = []

        def take() -> bool:
            with lock:
                if remaining[0] <= 0 or errors:
                    return False
                remaining[0] -= 1
                return True

        def worker(client: httpx.Client, rng: random.Random) -> None:
            own: list[dict[str, Any]] = []  # the shapes this thread created: no conflicts
            path = annotations_path(job_id)
            while take():
                choice = rng.random()
                if not own or choice < 0.3:
                    action = "create"
                    body: dict[str, Any] = {
                        "shapes": rectangles(rng, label_id, rng.randint(1, 3)),
                    }
                elif choice < 0.95:
                    action = "update"
                    index = rng.randrange(len(own))
                    own[index] = {**own[index], "points": box_points(rng)}
                    body = {"shapes": [own[index]]}
                else:
                    action = "delete"
                    body = {"shapes": [own.pop(rng.randrange(len(own)))]}
                try:
                    response = client.patch(path, params={"action": action}, json=body)
                    expect(response, 200)
                except Exception as error:
                    with lock:
                        errors.append(f"{action}: {type(error).__name__}: {error}")
                    return
                if action == "create":
                    own.extend(response.json()["shapes"])
                with lock:
                    counts[action] += 1

        threads = [
            threading.Thread(target=worker, args=(client, random.Random(seed + index)))
            for index, client in enumerate(self.pool)
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise RuntimeError("; ".join(errors[:3]))
        return Built(
            time.perf_counter() - started, counts["create"], counts["update"], counts["delete"]
        )


def annotations_path(job_id: int) -> str:
    return f"/api/jobs/{job_id}/annotations/"


def client_process(connection: Connection, base_url: str, threads: int) -> None:
    """The spawned client process: runs the operations the benchmark sends, one at a time."""
    clients: Clients | None = None
    try:
        clients = Clients(base_url, threads)
        connection.send(("ok", None))
        serve_calls(connection, clients.run)
    except Exception as error:
        connection.send(("error", f"client process: {type(error).__name__}: {error}"))
    finally:
        if clients is not None:
            clients.close()


class ClientProcess(ChildProcess):
    """The benchmark's handle on the client process."""

    def __init__(self, base_url: str, threads: int) -> None:
        super().__init__(client_process, base_url, threads)
        self._wait()

    def call(self, name: str, **kwargs: Any) -> Any:
        self.connection.send((name, kwargs))
        return self._wait()

    def _wait(self) -> Any:
        status, value = self.connection.recv()
        if status != "ok":
            raise RuntimeError(value)
        return value
