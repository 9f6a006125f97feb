"""Task-creation throughput of a real `palimpsest serve` process.

What it measures: a fresh server (embedded NATS, and embedded PostgreSQL unless
`--database-url` is given, in a temp data dir under /tmp) is started as its own process; a
separate load-generator process (multiprocessing, spawn) runs `--concurrency` threads, each
with its own httpx client and HTTP Basic admin auth, that create `--tasks` tasks of `--images`
small real images each, the way CVAT clients do:

    POST /api/tasks                      {"name": ..., "labels": [car, person]}
    POST /api/tasks/{id}/data            one-shot multipart client_files[i] -> 202 {"rq_id"}
    GET  /api/requests/{rq_id}           every 20 ms until "finished" ("failed" aborts)

Per task it records the latency from sending POST /api/tasks to seeing "finished". It prints
the wall time, tasks/s, latency percentiles (and per-phase medians), the events written to the
`palimpsest_events` table and events/s, and the CPU time (user+sys) spent during the load by
the server process, by PostgreSQL (every process of the cluster, plus the postmaster's reaped
children), by the embedded NATS and by the load generator itself. Finally it checks that
GET /api/tasks reports every task created and spot-checks that tasks have `size == --images`.

Run it from the project root:

    .venv/bin/python bench/tasks.py --quick          # 20 tasks, a fast check
    .venv/bin/python bench/tasks.py                  # 200 tasks x 20 images, 8 threads
    .venv/bin/python bench/tasks.py --concurrency 1  # serial latency
    make bench

With `--database-url postgresql://...` the server uses that (existing) database instead of the
embedded one; Postgres CPU is then reported only if its processes are visible on this machine.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import queue
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event as EventType
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
LABELS = [{"name": "car"}, {"name": "person"}]
POLL_INTERVAL = 0.02
TASK_TIMEOUT = 300.0
READY_TIMEOUT = 120.0
STOP_TIMEOUT = 60.0
SPOT_CHECKS = 10
PALIMPSEST = Path(sys.executable).parent / "palimpsest"


# ------------------------------------------------------------------------------ configuration


@dataclass(frozen=True)
class LoadConfig:
    """What the load-generator process needs; pickled to it."""

    base_url: str
    tasks: int
    concurrency: int
    images: list[tuple[str, bytes, str]]  # (file name, content, MIME type)
    run_id: str


@dataclass
class TaskTiming:
    task_id: int
    create: float  # POST /api/tasks
    upload: float  # POST /api/tasks/{id}/data (files sent, 202 received)
    total: float  # POST /api/tasks sent -> "finished" seen
    polls: int


@dataclass
class LoadResult:
    timings: list[TaskTiming] = field(default_factory=list)
    wall: float = 0.0
    cpu: float = 0.0  # the load generator's user+sys during the load
    error: str | None = None


@dataclass(frozen=True)
class CpuSample:
    server: float
    postgres: float | None
    nats: float | None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=200, help="tasks to create (default 200)")
    parser.add_argument("--images", type=int, default=20, help="images per task (default 20)")
    parser.add_argument(
        "--concurrency", type=int, default=8, help="load-generator threads (default 8)"
    )
    parser.add_argument(
        "--database-url", default=None, help="use this PostgreSQL database, not an embedded one"
    )
    parser.add_argument("--quick", action="store_true", help="a fast check: 20 tasks")
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks = 20
    if args.tasks < 1 or args.images < 1 or args.concurrency < 1:
        parser.error("--tasks, --images and --concurrency must be positive")
    return args


# ------------------------------------------------------------------------------------ images


def make_images(count: int, size: tuple[int, int] = (64, 48)) -> list[tuple[str, bytes, str]]:
    """`count` distinct small images, alternately PNG and JPEG, encoded in memory."""
    width, height = size
    rng = np.random.default_rng(20240601)
    images = []
    for index in range(count):
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        image[:, :, 2] = (index * 37) % 256
        cv2.putText(image, str(index), (4, height - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255,) * 3)
        extension, mime = (".png", "image/png") if index % 2 == 0 else (".jpg", "image/jpeg")
        ok, encoded = cv2.imencode(extension, image)
        if not ok:
            raise RuntimeError(f"cannot encode image {index} as {extension}")
        images.append((f"img_{index:04d}{extension}", encoded.tobytes(), mime))
    return images


# ------------------------------------------------------------------------------------ server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class Server:
    """`palimpsest serve` in its own process, on a fresh data dir."""

    def __init__(self, data_dir: Path, database_url: str | None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.log_path = data_dir / "serve.log"
        env = {
            **os.environ,
            "PALIMPSEST_DATA_DIR": str(data_dir),
            "PALIMPSEST_PORT": str(self.port),
            "PALIMPSEST_ADMIN_PASSWORD": ADMIN_PASSWORD,
        }
        for name in ("PALIMPSEST_DATABASE_URL", "PALIMPSEST_NATS_URL"):
            env.pop(name, None)
        if database_url:
            env["PALIMPSEST_DATABASE_URL"] = database_url
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [str(PALIMPSEST), "serve"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.ps = psutil.Process(self.process.pid)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self) -> None:
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
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                print("server ignored SIGINT; killing it", file=sys.stderr)
                self.process.kill()
                self.process.wait()
        self._stop_embedded_leftovers()

    def _stop_embedded_leftovers(self) -> None:
        """If the server died without stopping its embedded services, stop them here."""
        services: list[EmbeddedPostgres | EmbeddedNats] = [
            EmbeddedPostgres(postgres_home(self.data_dir)),
            EmbeddedNats(self.data_dir / "nats"),
        ]
        for service in services:
            try:
                service.stop()  # idempotent: nothing to do after a clean shutdown
            except Exception as error:  # cleanup must go on
                print(f"cannot stop {type(service).__name__}: {error}", file=sys.stderr)


def embedded_database_url(data_dir: Path) -> str:
    return with_database(EmbeddedPostgres(postgres_home(data_dir)).url, DATABASE_NAME)


# --------------------------------------------------------------------------- cpu and events


class CpuMeter:
    """User+sys CPU seconds of the server, of the PostgreSQL cluster and of NATS."""

    def __init__(self, server: Server, db: psycopg.Connection[Any]) -> None:
        self.server = server.ps
        self.postmaster, self.pgdata = _find_postmaster(db)
        self.nats: psutil.Process | None = None  # always embedded: no PALIMPSEST_NATS_URL
        with contextlib.suppress(OSError, ValueError, psutil.Error):
            pid = int((server.data_dir / "nats" / "nats.pid").read_text().strip())
            self.nats = psutil.Process(pid)

    def sample(self) -> CpuSample:
        return CpuSample(
            server=_cpu(self.server, with_children=False) or 0.0,
            postgres=self._postgres(),
            nats=_cpu(self.nats, with_children=False),
        )

    def _postgres(self) -> float | None:
        if self.postmaster is None or self.pgdata is None:
            return None
        total = _cpu(self.postmaster, with_children=True)
        if total is None:
            return None
        for proc in self.postmaster.children():
            with contextlib.suppress(psutil.Error):
                if proc.cwd() == self.pgdata:
                    total += _cpu(proc, with_children=False) or 0.0
        return total


def _cpu(proc: psutil.Process | None, *, with_children: bool) -> float | None:
    """user+sys of proc (all threads); with reaped children's time if asked."""
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


def _find_postmaster(db: psycopg.Connection[Any]) -> tuple[psutil.Process | None, str | None]:
    """The postmaster of the cluster behind db, if it runs on this machine and we may see it."""
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


@dataclass(frozen=True)
class EventCount:
    rows: int
    last_id: int


def count_events(db: psycopg.Connection[Any]) -> EventCount:
    row = db.execute(
        "SELECT count(*), coalesce(max(notification_id), 0) FROM palimpsest_events"
    ).fetchone()
    assert row is not None
    return EventCount(rows=int(row[0]), last_id=int(row[1]))


# ----------------------------------------------------------------------------- load process


def run_load(
    config: LoadConfig, results: mp.Queue[LoadResult], ready: EventType, go: EventType
) -> None:
    """The load-generator process: warm up, wait for `go`, create the tasks, report."""
    clients = [
        httpx.Client(base_url=config.base_url, auth=("admin", ADMIN_PASSWORD), timeout=60.0)
        for _ in range(config.concurrency)
    ]
    try:
        for client in clients:  # one authenticated request each: connections and auth cache
            client.get("/api/users/self").raise_for_status()
        ready.set()
        go.wait()
        results.put(_create_tasks(config, clients))
    except BaseException as error:
        results.put(LoadResult(error=f"{type(error).__name__}: {error}"))
        ready.set()
    finally:
        for client in clients:
            client.close()


def _create_tasks(config: LoadConfig, clients: list[httpx.Client]) -> LoadResult:
    todo: queue.SimpleQueue[int] = queue.SimpleQueue()
    for index in range(config.tasks):
        todo.put(index)
    timings: list[TaskTiming] = []
    errors: list[str] = []
    lock = threading.Lock()
    failed = threading.Event()

    def worker(client: httpx.Client) -> None:
        while not failed.is_set():
            try:
                index = todo.get_nowait()
            except queue.Empty:
                return
            try:
                timing = _create_one(client, config, index)
            except Exception as error:
                with lock:
                    errors.append(f"task #{index}: {type(error).__name__}: {error}")
                failed.set()
                return
            with lock:
                timings.append(timing)

    threads = [threading.Thread(target=worker, args=(client,)) for client in clients]
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall, cpu = time.perf_counter() - wall_start, time.process_time() - cpu_start
    return LoadResult(timings, wall, cpu, "; ".join(errors[:3]) or None)


def _create_one(client: httpx.Client, config: LoadConfig, index: int) -> TaskTiming:
    started = time.perf_counter()
    created = client.post(
        "/api/tasks", json={"name": f"bench {config.run_id} #{index}", "labels": LABELS}
    )
    if created.status_code != 201:
        raise RuntimeError(f"POST /api/tasks -> {created.status_code}: {created.text[:300]}")
    task_id = int(created.json()["id"])
    after_create = time.perf_counter()
    files = [
        (f"client_files[{i}]", (name, content, mime))
        for i, (name, content, mime) in enumerate(config.images)
    ]
    sent = client.post(f"/api/tasks/{task_id}/data", files=files, data={"image_quality": "70"})
    if sent.status_code != 202:
        raise RuntimeError(f"POST data of task {task_id} -> {sent.status_code}: {sent.text[:300]}")
    after_upload = time.perf_counter()
    path = f"/api/requests/{quote(sent.json()['rq_id'], safe='')}"
    polls = 0
    deadline = started + TASK_TIMEOUT
    while True:
        polls += 1
        response = client.get(path)
        response.raise_for_status()
        status = response.json()
        if status["status"] == "finished":
            break
        if status["status"] == "failed":
            raise RuntimeError(f"task {task_id} failed: {status.get('message')!r}")
        if time.perf_counter() > deadline:
            raise TimeoutError(f"task {task_id} not finished after {TASK_TIMEOUT:.0f} s: {status}")
        time.sleep(POLL_INTERVAL)
    finished = time.perf_counter()
    if status.get("result_id") != task_id:
        raise RuntimeError(f"request of task {task_id} finished with {status}")
    return TaskTiming(
        task_id=task_id,
        create=after_create - started,
        upload=after_upload - after_create,
        total=finished - started,
        polls=polls,
    )


def load_in_subprocess(config: LoadConfig, before_go: Any) -> LoadResult:
    """Runs `run_load` in a spawned process; calls before_go() once it is warmed up."""
    context = mp.get_context("spawn")
    results: mp.Queue[LoadResult] = context.Queue()
    ready, go = context.Event(), context.Event()
    process = context.Process(target=run_load, args=(config, results, ready, go), daemon=True)
    process.start()
    try:
        if not ready.wait(timeout=READY_TIMEOUT):
            raise RuntimeError("the load generator did not start")
        before_go()
        go.set()
        return results.get()
    finally:
        process.join(timeout=30)
        if process.is_alive():
            process.terminate()
            process.join()


# ------------------------------------------------------------------------------------ report


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(np.ceil(fraction * len(ordered)))))
    return ordered[rank - 1]


def verify(server: Server, result: LoadResult, tasks_before: int, images: int) -> list[str]:
    problems = []
    with httpx.Client(base_url=server.url, auth=("admin", ADMIN_PASSWORD), timeout=60) as admin:
        count = admin.get("/api/tasks", params={"page_size": 1}).json()["count"]
        if count != tasks_before + len(result.timings):
            problems.append(
                f"GET /api/tasks count={count}, expected {tasks_before + len(result.timings)}"
            )
        ids = [timing.task_id for timing in result.timings]
        for task_id in random.Random(7).sample(ids, min(SPOT_CHECKS, len(ids))):
            task = admin.get(f"/api/tasks/{task_id}").json()
            if task.get("size") != images:
                problems.append(f"task {task_id} has size {task.get('size')}, expected {images}")
    return problems


def task_count(server: Server) -> int:
    with httpx.Client(base_url=server.url, auth=("admin", ADMIN_PASSWORD), timeout=60) as admin:
        response = admin.get("/api/tasks", params={"page_size": 1})
        response.raise_for_status()
        return int(response.json()["count"])


def cpu_line(name: str, before: float | None, after: float | None, wall: float) -> str:
    if before is None or after is None:
        return f"  {name:<16} n/a"
    spent = after - before
    return f"  {name:<16} {spent:8.2f} s  ({spent / wall:5.2f} cores)"


def report(
    args: argparse.Namespace,
    result: LoadResult,
    events: tuple[EventCount, EventCount],
    cpu: tuple[CpuSample, CpuSample],
) -> None:
    done = len(result.timings)
    wall = result.wall
    totals = [t.total for t in result.timings]
    ms = 1000.0
    written = events[1].rows - events[0].rows
    print(f"tasks            {done} x {args.images} images, concurrency {args.concurrency}")
    print(f"wall time        {wall:.2f} s")
    print(f"throughput       {done / wall:.2f} tasks/s  ({done * args.images / wall:.1f} images/s)")
    print(
        "create->finished "
        f"p50 {percentile(totals, 0.50) * ms:.0f} ms  p95 {percentile(totals, 0.95) * ms:.0f} ms  "
        f"p99 {percentile(totals, 0.99) * ms:.0f} ms  max {max(totals) * ms:.0f} ms"
    )
    print(
        "phase medians    "
        f"POST /api/tasks {percentile([t.create for t in result.timings], 0.5) * ms:.0f} ms, "
        f"POST data {percentile([t.upload for t in result.timings], 0.5) * ms:.0f} ms, "
        f"polls/task {percentile([float(t.polls) for t in result.timings], 0.5):.0f}"
    )
    print(
        f"events written   {written}  ({written / wall:.1f} events/s, "
        f"{written / max(done, 1):.1f} per task; notification id "
        f"{events[0].last_id} -> {events[1].last_id})"
    )
    print("cpu (user+sys) during the load")
    print(cpu_line("server process", cpu[0].server, cpu[1].server, wall))
    print(cpu_line("postgres", cpu[0].postgres, cpu[1].postgres, wall))
    print(cpu_line("nats", cpu[0].nats, cpu[1].nats, wall))
    print(cpu_line("load generator", 0.0, result.cpu, wall))


# -------------------------------------------------------------------------------------- main


@contextlib.contextmanager
def temp_data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="plmb-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    images = make_images(args.images)
    with temp_data_dir() as data_dir:
        server = Server(data_dir, args.database_url)
        try:
            server.wait_ready()
            print(f"server pid {server.process.pid} at {server.url}, data dir {data_dir}")
            return run_benchmark(args, server, images)
        finally:
            server.stop()


def run_benchmark(
    args: argparse.Namespace, server: Server, images: list[tuple[str, bytes, str]]
) -> int:
    database_url = args.database_url or embedded_database_url(server.data_dir)
    config = LoadConfig(
        base_url=server.url,
        tasks=args.tasks,
        concurrency=args.concurrency,
        images=images,
        run_id=f"{os.getpid()}-{int(time.time())}",
    )
    tasks_before = task_count(server)
    with psycopg.connect(database_url, autocommit=True) as db:
        meter = CpuMeter(server, db)
        marks: dict[str, Any] = {}

        def before_go() -> None:
            marks["events"], marks["cpu"] = count_events(db), meter.sample()

        result = load_in_subprocess(config, before_go)
        events_after, cpu_after = count_events(db), meter.sample()
    if result.error:
        print(f"LOAD FAILED: {result.error}\n--- server log ---\n{server.log_tail()}")
        return 1
    report(args, result, (marks["events"], events_after), (marks["cpu"], cpu_after))
    problems = verify(server, result, tasks_before, args.images)
    for problem in problems:
        print(f"CHECK FAILED: {problem}")
    if not problems:
        print(f"checks           ok (task count, size of {SPOT_CHECKS} tasks == {args.images})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
