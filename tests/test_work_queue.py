"""Task data made by workers fed from the JetStream work queue: a separate `palimpsest
worker` process, a worker killed mid-ingest (its job delivered again, or given up on), and
`palimpsest serve` with its inline worker."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import nats
import pytest

from tests.images import write_images
from tests.live_server import LiveServer, free_port
from tests.task_setup import wait_for_request
from tests.test_serve import ServeProcess

PALIMPSEST = str(Path(sys.executable).parent / "palimpsest")
PREFIX = "palimpsest.test.work"
ATTEMPTS = 2
LABELS = [{"name": "car"}]


@pytest.fixture(scope="module")
def server(
    database_url: str, nats_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    options = {"work_prefix": PREFIX, "inline_worker": False, "work_attempts": ATTEMPTS}
    live = LiveServer(
        database_url, tmp_path_factory.mktemp("data"), nats_url=nats_url, options=options
    ).start()
    yield live
    live.stop()
    asyncio.run(_delete_streams(nats_url, "PALIMPSEST_TEST_WORK", "PALIMPSEST_EVENTS"))


async def _delete_streams(url: str, *names: str) -> None:
    client = await nats.connect(url)
    try:
        for name in names:
            try:
                await client.jetstream().delete_stream(name)
            except Exception:
                pass
    finally:
        await client.close()


class Worker:
    """A `palimpsest worker` process on the test server's database, NATS and data folder."""

    def __init__(self, server: LiveServer, nats_url: str) -> None:
        self.log = server.data_dir / f"worker-{time.monotonic_ns()}.log"
        environment = {
            **os.environ,
            "PALIMPSEST_DATA_DIR": str(server.data_dir),
            "PALIMPSEST_DATABASE_URL": server.database_url,
            "PALIMPSEST_NATS_URL": nats_url,
            "PALIMPSEST_WORK_SUBJECT": PREFIX,
            "PALIMPSEST_WORK_ACK_WAIT": "2",
            "PALIMPSEST_WORK_ATTEMPTS": str(ATTEMPTS),
        }
        self.process = subprocess.Popen(
            [PALIMPSEST, "worker"], env=environment, stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while "taking jobs" not in self.log.read_text():
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "the worker did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
            assert self.process.returncode == 0, self.log.read_text()


@pytest.fixture()
def workers(server: LiveServer, nats_url: str) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop()


def start_upload(
    client: httpx.Client, folder: Path, count: int, size: tuple[int, int] = (64, 48)
) -> tuple[int, str]:
    task_id = client.post("/api/tasks", json={"name": "queued", "labels": LABELS}).json()["id"]
    files = [
        (f"client_files[{i}]", (path.name, path.read_bytes(), "image/png"))
        for i, path in enumerate(write_images(folder, [f"{i:04}.png" for i in range(count)], size))
    ]
    response = client.post(f"/api/tasks/{task_id}/data", files=files, data={"image_quality": "95"})
    assert response.status_code == 202, response.text
    return task_id, response.json()["rq_id"]


def status_of(client: httpx.Client, rq_id: str) -> dict[str, Any]:
    return client.get(f"/api/requests/{quote(rq_id, safe='')}").json()


def wait_until_midway(client: httpx.Client, rq_id: str) -> None:
    deadline = time.monotonic() + 120
    while not status_of(client, rq_id)["message"].startswith("Processed"):
        assert time.monotonic() < deadline, status_of(client, rq_id)
        time.sleep(0.02)


def test_a_separate_worker_process_makes_the_task_data(
    server: LiveServer, admin: httpx.Client, nats_url: str, workers: list[Worker], tmp_path: Path
) -> None:
    task_id, rq_id = start_upload(admin, tmp_path, 3)
    time.sleep(1)
    assert status_of(admin, rq_id)["status"] == "queued"  # no worker yet: it waits
    workers.append(Worker(server, nats_url))
    status = wait_for_request(admin, rq_id)
    assert status["status"] == "finished", status
    assert status["result_id"] == task_id
    assert admin.get(f"/api/tasks/{task_id}").json()["size"] == 3


def test_a_failed_ingest_says_why_and_leaves_no_data(
    server: LiveServer, admin: httpx.Client, nats_url: str, workers: list[Worker]
) -> None:
    workers.append(Worker(server, nats_url))
    task_id = admin.post("/api/tasks", json={"name": "bad", "labels": LABELS}).json()["id"]
    files = {"client_files[0]": ("broken.png", b"not a png at all", "image/png")}
    response = admin.post(f"/api/tasks/{task_id}/data", files=files)
    status = wait_for_request(admin, response.json()["rq_id"])
    assert status["status"] == "failed"
    assert "broken.png" in status["message"]
    assert admin.get(f"/api/tasks/{task_id}/data/meta").status_code == 404
    assert not list((server.data_dir / "media" / "tasks").glob(f".{task_id}-*"))


def test_a_worker_killed_mid_ingest_has_its_job_done_by_another(
    server: LiveServer, admin: httpx.Client, nats_url: str, workers: list[Worker], tmp_path: Path
) -> None:
    first = Worker(server, nats_url)
    workers.append(first)
    task_id, rq_id = start_upload(admin, tmp_path, 150, size=(1280, 960))
    wait_until_midway(admin, rq_id)
    first.kill()
    assert status_of(admin, rq_id)["status"] == "started"
    workers.append(Worker(server, nats_url))
    status = wait_for_request_long(admin, rq_id)
    assert status["status"] == "finished", status
    meta = admin.get(f"/api/tasks/{task_id}/data/meta").json()
    assert [f["name"] for f in meta["frames"]] == [f"{i:04}.png" for i in range(150)]
    media = server.data_dir / "media" / "tasks"
    assert not list(media.glob(f".{task_id}-*"))  # the killed run's staging was cleared


def test_a_job_whose_worker_dies_every_time_is_marked_failed(
    server: LiveServer, admin: httpx.Client, nats_url: str, workers: list[Worker], tmp_path: Path
) -> None:
    task_id, rq_id = start_upload(admin, tmp_path, 150, size=(1280, 960))
    for _ in range(ATTEMPTS):
        worker = Worker(server, nats_url)
        workers.append(worker)
        wait_until_midway(admin, rq_id)
        worker.kill()
        admin_sees = status_of(admin, rq_id)
        assert admin_sees["status"] == "started"
        _reset_message(server, rq_id)
    workers.append(Worker(server, nats_url))
    status = wait_for_request_long(admin, rq_id)
    assert status["status"] == "failed"
    assert "Gave up after 2 attempt(s)" in status["message"]
    assert admin.get(f"/api/tasks/{task_id}/data/meta").status_code == 404
    assert not list((server.data_dir / "media" / "tasks").glob(f".{task_id}-*"))


def _reset_message(server: LiveServer, rq_id: str) -> None:
    """Forgets the killed run's progress, so the next "Processed" is the next run's."""
    assert server.runtime is not None
    with server.runtime.pool.connection() as conn:
        conn.execute("UPDATE background_requests SET message = '' WHERE id = %s", (rq_id,))


def wait_for_request_long(client: httpx.Client, rq_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        status = status_of(client, rq_id)
        if status["status"] in ("finished", "failed"):
            return status
        time.sleep(0.1)
    raise AssertionError("the request did not finish")


def test_serve_runs_an_inline_worker_fed_by_the_queue(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="plm-queue-", dir="/tmp"))
    serve = ServeProcess(data_dir, free_port(), PALIMPSEST_ADMIN_PASSWORD="queue-pass-1")
    try:
        serve.wait_ready()
        with httpx.Client(base_url=serve.url, auth=("admin", "queue-pass-1"), timeout=30) as admin:
            folder = tmp_path_factory.mktemp("inline")
            task_id, rq_id = start_upload(admin, folder, 2)
            status = wait_for_request(admin, rq_id)
            assert status["status"] == "finished", status
            assert admin.get(f"/api/tasks/{task_id}").json()["size"] == 2
        port = int((data_dir / "nats" / "nats.port").read_text())
        delivered = asyncio.run(_delivered(f"nats://127.0.0.1:{port}"))
        assert delivered == 1  # the job went through the queue
    finally:
        serve.stop()
        subprocess.run(["rm", "-rf", str(data_dir)], check=False)


async def _delivered(url: str) -> int:
    client = await nats.connect(url)
    try:
        info = await client.jetstream().consumer_info("PALIMPSEST_WORK", "ingest-workers")
        return info.delivered.stream_seq
    finally:
        await client.close()
