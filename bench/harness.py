"""What the benchmarks under bench/ share: a real `palimpsest serve` and the means to measure it.

- `temp_data_dir` and `Server`: `palimpsest serve` as a child process on a fresh data dir under
  /tmp with embedded PostgreSQL and NATS, on a free port; `Server.wait_ready` polls
  /api/server/about and `Server.stop` sends SIGINT (then kills) and stops any leftover
  embedded service.
- `CpuMeter` and `cpu_seconds`: user+sys CPU seconds (psutil) of the server process, of the
  PostgreSQL cluster behind a connection (postmaster, its children in the cluster's data dir
  and its reaped children) and of the embedded NATS.
- REST helpers: `expect`, `make_images`, `create_task`, `upload_images` (the one-shot
  multipart upload) and `wait_for_request` (polling /api/requests/{rq_id}).
- `ChildProcess`: a spawned helper process driven over a pipe.
- `percentile`: nearest-rank percentile.

The benchmarks run as scripts (`.venv/bin/python bench/X.py`), so this folder is on sys.path
and they import this module as `harness`.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import quote

import cv2
import httpx
import numpy as np
import psutil
import psycopg

from infra.embedded import EmbeddedNats, EmbeddedPostgres, postgres_home
from infra.services import DATABASE_NAME, with_database

ADMIN_PASSWORD = "bench-admin-password"
AUTH = ("admin", ADMIN_PASSWORD)
BIN = Path(sys.executable).parent  # the venv's bin: palimpsest, py-spy
READY_TIMEOUT = 120.0
STOP_TIMEOUT = 60.0

Image = tuple[str, bytes, str]  # (file name, content, MIME type)


# ------------------------------------------------------------------------------------ server


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextlib.contextmanager
def temp_data_dir(prefix: str) -> Iterator[Path]:
    """A fresh directory under /tmp, removed with everything in it afterwards."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class Server:
    """`palimpsest serve` in its own process on `data_dir`, its output appended to serve.log.

    PostgreSQL is embedded unless `database_url` is given; NATS is always embedded (any
    PALIMPSEST_DATABASE_URL / PALIMPSEST_NATS_URL of this environment is dropped).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        database_url: str | None = None,
        extra_env: dict[str, str] | None = None,
        json_log: bool = False,
    ) -> None:
        self.data_dir = data_dir
        self.port = port if port is not None else free_port()
        self.log_path = data_dir / "serve.log"
        self._database_url = database_url
        env = {**os.environ}
        for name in ("PALIMPSEST_DATABASE_URL", "PALIMPSEST_NATS_URL"):
            env.pop(name, None)
        env |= {
            **(extra_env or {}),
            "PALIMPSEST_DATA_DIR": str(data_dir),
            "PALIMPSEST_PORT": str(self.port),
            "PALIMPSEST_ADMIN_PASSWORD": ADMIN_PASSWORD,
        }
        if json_log:
            env["PALIMPSEST_LOG_FORMAT"] = "json"
        if database_url:
            env["PALIMPSEST_DATABASE_URL"] = database_url
        self._log_start = self.log_size() if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(BIN / "palimpsest"), "serve"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.ps = psutil.Process(self.process.pid)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database_url(self) -> str:
        """The database the server uses: the one given, or the embedded cluster's."""
        if self._database_url:
            return self._database_url
        return with_database(EmbeddedPostgres(postgres_home(self.data_dir)).url, DATABASE_NAME)

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def log(self) -> str:
        """This run's part of the server log."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_start)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:]) or "(no server log)"

    def durations(self, offset: int, method: str, path: str) -> list[float]:
        """duration_ms of the JSON request-log lines for method+path written after offset."""
        with self.log_path.open("rb") as log:
            log.seek(offset)
            lines = log.read().splitlines()
        found = []
        for line in lines:
            if not line.startswith(b"{"):
                continue
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if entry.get("method") == method and entry.get("path") == path:
                    found.append(float(entry["duration_ms"]))
        return found

    def wait_ready(self) -> None:
        """Waits until GET /api/server/about answers 200; raises if the server exits first."""
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited:\n{self.log_tail()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/api/server/about", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(
            f"the server did not answer in {READY_TIMEOUT:.0f} s:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """SIGINT (kill after STOP_TIMEOUT), then stops embedded services it left running."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                print("server ignored SIGINT; killing it", file=sys.stderr)
                self.process.kill()
                self.process.wait()
        services: list[EmbeddedPostgres | EmbeddedNats] = [
            EmbeddedPostgres(postgres_home(self.data_dir)),
            EmbeddedNats(self.data_dir / "nats"),
        ]
        for service in services:  # idempotent: nothing to do after a clean shutdown
            try:
                service.stop()
            except Exception as error:  # cleanup must go on
                print(f"cannot stop {type(service).__name__}: {error}", file=sys.stderr)


@contextlib.contextmanager
def running(data_dir: Path, **options: Any) -> Iterator[Server]:
    """A ready `Server(data_dir, **options)`, stopped afterwards."""
    server = Server(data_dir, **options)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------- cpu


def cpu_seconds(proc: psutil.Process | None, *, with_children: bool = False) -> float | None:
    """user+sys of proc (all threads), with its reaped children's if asked; None if unknown."""
    if proc is None:
        return None
    try:
        times = proc.cpu_times()
    except psutil.Error:
        return None
    total = times.user + times.system
    if with_children:
        total += times.children_user + times.children_system
    return total


def find_postmaster(db: psycopg.Connection[Any]) -> tuple[psutil.Process | None, str | None]:
    """The postmaster of the cluster behind db and its data dir, if it runs visibly here."""
    try:
        row = db.execute("SHOW data_directory").fetchone()
    except psycopg.Error:
        return None, None
    if row is None:
        return None, None
    pgdata = os.path.realpath(str(row[0]))
    try:
        pid = int((Path(pgdata) / "postmaster.pid").read_text().split()[0])
        postmaster = psutil.Process(pid)
        if postmaster.cwd() != pgdata:
            return None, None
    except (OSError, ValueError, IndexError, psutil.Error):
        return None, None
    return postmaster, pgdata


class CpuMeter:
    """User+sys CPU seconds of the server process, of its PostgreSQL cluster and of NATS."""

    def __init__(self, server: Server, db: psycopg.Connection[Any]) -> None:
        self.server = server.ps
        self.postmaster, self.pgdata = find_postmaster(db)
        self.nats: psutil.Process | None = None  # always embedded: no PALIMPSEST_NATS_URL
        with contextlib.suppress(OSError, ValueError, psutil.Error):
            pid = int((server.data_dir / "nats" / "nats.pid").read_text().strip())
            self.nats = psutil.Process(pid)

    def server_cpu(self) -> float:
        return cpu_seconds(self.server) or 0.0

    def nats_cpu(self) -> float | None:
        return cpu_seconds(self.nats)

    def postgres_cpu(self) -> float | None:
        """The postmaster with its reaped children, plus its live children of this cluster."""
        if self.postmaster is None or self.pgdata is None:
            return None
        total = cpu_seconds(self.postmaster, with_children=True)
        if total is None:
            return None
        with contextlib.suppress(psutil.Error):
            for proc in self.postmaster.children():
                with contextlib.suppress(psutil.Error):
                    if proc.cwd() == self.pgdata:
                        total += cpu_seconds(proc) or 0.0
        return total


# --------------------------------------------------------------------------------------- REST


def expect(response: httpx.Response, status: int) -> httpx.Response:
    """response, if its status is `status`; else RuntimeError naming the request."""
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.request.url} -> {response.status_code}: "
            f"{response.text[:300]}"
        )
    return response


def make_images(
    count: int,
    size: tuple[int, int] = (64, 48),
    *,
    formats: Sequence[str] = (".png", ".jpg"),
    stamp: bool = True,
    name: str = "img_{index:04d}",
) -> list[Image]:
    """`count` distinct small random images, encoded in memory, cycling through `formats`.

    With `stamp`, each image also gets its own blue level and its index written on it.
    """
    width, height = size
    rng = np.random.default_rng(20240601)
    images = []
    for index in range(count):
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        if stamp:
            image[:, :, 2] = (index * 37) % 256
            font = cv2.FONT_HERSHEY_SIMPLEX
            cv2.putText(image, str(index), (4, height - 8), font, 0.6, (255,) * 3)
        extension = formats[index % len(formats)]
        mime = "image/png" if extension == ".png" else "image/jpeg"
        ok, encoded = cv2.imencode(extension, image)
        if not ok:
            raise RuntimeError(f"cannot encode image {index} as {extension}")
        images.append((name.format(index=index) + extension, encoded.tobytes(), mime))
    return images


def create_task(client: httpx.Client, name: str, **fields: Any) -> int:
    """POST /api/tasks with labels car and person unless `fields` says otherwise; the id."""
    body = {"name": name, "labels": [{"name": "car"}, {"name": "person"}], **fields}
    return int(expect(client.post("/api/tasks", json=body), 201).json()["id"])


def upload_images(client: httpx.Client, task_id: int, images: Sequence[Image], **data: Any) -> str:
    """The one-shot upload (multipart client_files[i]) of a task's data; the request's id."""
    files = [
        (f"client_files[{i}]", (name, content, mime))
        for i, (name, content, mime) in enumerate(images)
    ]
    sent = client.post(f"/api/tasks/{task_id}/data", files=files, data=data or None)
    return str(expect(sent, 202).json()["rq_id"])


def wait_for_request(
    client: httpx.Client, rq_id: str, timeout: float = 120.0, interval: float = 0.05
) -> tuple[dict[str, Any], int]:
    """Polls GET /api/requests/{rq_id} until "finished": (its last status, how many polls).

    Raises RuntimeError if the request failed, TimeoutError after `timeout` seconds.
    """
    path = f"/api/requests/{quote(rq_id, safe='')}"
    deadline = time.monotonic() + timeout
    polls = 0
    while True:
        polls += 1
        status: dict[str, Any] = expect(client.get(path), 200).json()
        if status["status"] == "finished":
            return status, polls
        if status["status"] == "failed":
            raise RuntimeError(f"request {rq_id} failed: {status.get('message')!r}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"request {rq_id} not finished after {timeout:.0f} s: {status}")
        time.sleep(interval)


# ------------------------------------------------------------------------------- processes


class ChildProcess:
    """A spawned process running `target(connection, *args)`, driven over a pipe.

    `close` sends None (the child's cue to return), then waits for it (terminating it after
    30 s).
    """

    def __init__(self, target: Callable[..., None], *args: Any) -> None:
        context = mp.get_context("spawn")
        self.connection, child = context.Pipe()
        self.process = context.Process(target=target, args=(child, *args), daemon=True)
        self.process.start()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.send(None)
        self.process.join(timeout=30)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join()


class CallError(Exception):
    """Raised by a `serve_calls` handler: its text is the whole error sent to the parent."""


def serve_calls(connection: Connection, run: Callable[[str, Any], Any]) -> None:
    """The child's side of `ChildProcess`: answers (name, argument) messages until None.

    Each answer is ("ok", run(name, argument)) or ("error", text); `run` may send other
    messages of its own meanwhile.
    """
    while True:
        message = connection.recv()
        if message is None:
            return
        name, argument = message
        try:
            connection.send(("ok", run(name, argument)))
        except CallError as error:
            connection.send(("error", str(error)))
        except Exception as error:
            connection.send(("error", f"{name}: {type(error).__name__}: {error}"))


# ------------------------------------------------------------------------------------ report


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(np.ceil(fraction * len(ordered)))))
    return ordered[rank - 1]
