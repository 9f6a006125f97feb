"""`palimpsest serve` end to end: embedded services, first-run admin, restart, taken port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.live_server import free_port

PALIMPSEST = str(Path(sys.executable).parent / "palimpsest")


class ServeProcess:
    def __init__(self, data_dir: Path, port: int, **env: str) -> None:
        self.port = port
        self.log = data_dir / f"serve-{port}-{time.monotonic_ns()}.log"
        environment = {
            **os.environ,
            "PALIMPSEST_DATA_DIR": str(data_dir),
            "PALIMPSEST_PORT": str(port),
            **env,
        }
        for name in ("PALIMPSEST_DATABASE_URL", "PALIMPSEST_NATS_URL"):
            environment.pop(name, None)
        self.process = subprocess.Popen(
            [PALIMPSEST, "serve"],
            env=environment,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def printed(self) -> str:
        return self.log.read_text()

    def wait_ready(self) -> str:
        """Waits until the server answers; returns what it printed so far."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError("serve exited:\n" + self.printed())
            try:
                if httpx.get(f"{self.url}/api/server/about", timeout=1).status_code == 200:
                    return self.printed()
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("serve did not answer:\n" + self.printed())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="plm-serve-", dir="/tmp"))
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=False)


def test_data_survives_a_restart_and_generated_admin_password_is_printed_once(
    data_dir: Path,
) -> None:
    port = free_port()
    first = ServeProcess(data_dir, port)
    try:
        printed = first.wait_ready()
        assert f"http://127.0.0.1:{port}" in printed
        password = printed.split("Sign in as admin with password: ")[1].split()[0]
        with httpx.Client(base_url=first.url, auth=("admin", password)) as admin:
            project = admin.post("/api/projects", json={"name": "kept", "labels": [{"name": "a"}]})
            assert project.status_code == 201
            task = admin.post(
                "/api/tasks", json={"name": "kept task", "project_id": project.json()["id"]}
            )
            assert task.status_code == 201
    finally:
        first.stop()
    assert first.process.returncode == 0

    second = ServeProcess(data_dir, port)
    try:
        printed = second.wait_ready()
        assert "password:" not in printed
        with httpx.Client(base_url=second.url, auth=("admin", password)) as admin:
            tasks = admin.get("/api/tasks").json()["results"]
            assert [t["name"] for t in tasks] == ["kept task"]
            assert tasks[0]["project_name"] == "kept"
            labels = admin.get("/api/labels", params={"task_id": tasks[0]["id"]}).json()
            assert [label["name"] for label in labels["results"]] == ["a"]
            again = admin.post("/api/tasks", json={"name": "after", "labels": [{"name": "b"}]})
            assert again.json()["id"] > tasks[0]["id"]
    finally:
        second.stop()


def test_a_taken_port_is_a_clear_error(data_dir: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        serve = ServeProcess(data_dir, port)
        serve.process.wait(timeout=30)
    output = serve.printed()
    assert serve.process.returncode == 2
    assert f"port {port}" in output and "PALIMPSEST_PORT" in output


def test_a_bad_setting_names_the_variable(data_dir: Path) -> None:
    serve = ServeProcess(data_dir, free_port(), PALIMPSEST_ALLOW_SIGNUP="maybe")
    serve.process.wait(timeout=30)
    output = serve.printed()
    assert serve.process.returncode == 2
    assert "PALIMPSEST_ALLOW_SIGNUP='maybe'" in output


def test_serve_relays_every_event_to_jetstream(data_dir: Path) -> None:
    import asyncio

    import nats
    import psycopg

    from projections.envelope import decode

    serve = ServeProcess(data_dir, free_port(), PALIMPSEST_ADMIN_PASSWORD="relay-pass-1")
    try:
        serve.wait_ready()
        with httpx.Client(base_url=serve.url, auth=("admin", "relay-pass-1")) as admin:
            assert admin.post("/api/projects", json={"name": "relayed"}).status_code == 201
        port = int((data_dir / "nats" / "nats.port").read_text())
        socket_dir = next((data_dir / "pg").glob(".s.PGSQL.*")).parent

        async def stream_ids() -> list[int]:
            client = await nats.connect(f"nats://127.0.0.1:{port}")
            js = client.jetstream()
            sub = await js.pull_subscribe("palimpsest.events.>", stream="PALIMPSEST_EVENTS")
            ids: list[int] = []
            try:
                while True:
                    for message in await sub.fetch(100, timeout=1):
                        ids.append(decode(message.data).notification_id)
                        await message.ack()
            except TimeoutError:  # nats raises its own or asyncio's, both TimeoutErrors
                pass
            await client.close()
            return ids

        url = f"postgresql://postgres@/palimpsest?host={socket_dir}"
        with psycopg.connect(url) as conn:
            logged = [
                r[0]
                for r in conn.execute(
                    "SELECT notification_id FROM palimpsest_events ORDER BY notification_id"
                )
            ]
        deadline = time.monotonic() + 10
        while (ids := asyncio.run(stream_ids())) != logged and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ids == logged
    finally:
        serve.stop()
