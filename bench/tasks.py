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
import multiprocessing as mp
import os
import queue
import random
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event as EventType
from typing import Any

import httpx
import psycopg
from harness import (
    ADMIN_PASSWORD,
    READY_TIMEOUT,
    CpuMeter,
    Image,
    Server,
    create_task,
    make_images,
    percentile,
    temp_data_dir,
    upload_images,
    wait_for_request,
)

LABELS = [{"name": "car"}, {"name": "person"}]
POLL_INTERVAL = 0.02
TASK_TIMEOUT = 300.0
SPOT_CHECKS = 10


# ------------------------------------------------------------------------------ configuration


@dataclass(frozen=True)
class LoadConfig:
    """What the load-generator process needs; pickled to it."""

    base_url: str
    tasks: int
    concurrency: int
    images: list[Image]
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


# --------------------------------------------------------------------------- cpu and events


def sample_cpu(meter: CpuMeter) -> CpuSample:
    return CpuSample(
        server=meter.server_cpu(), postgres=meter.postgres_cpu(), nats=meter.nats_cpu()
    )


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
    task_id = create_task(client, f"bench {config.run_id} #{index}", labels=LABELS)
    after_create = time.perf_counter()
    rq_id = upload_images(client, task_id, config.images, image_quality="70")
    after_upload = time.perf_counter()
    timeout = TASK_TIMEOUT - (after_upload - started)
    status, polls = wait_for_request(client, rq_id, timeout, POLL_INTERVAL)
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


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    images = make_images(args.images)
    with temp_data_dir("plmb-") as data_dir:
        server = Server(data_dir, database_url=args.database_url)
        try:
            server.wait_ready()
            print(f"server pid {server.process.pid} at {server.url}, data dir {data_dir}")
            return run_benchmark(args, server, images)
        finally:
            server.stop()


def run_benchmark(args: argparse.Namespace, server: Server, images: list[Image]) -> int:
    config = LoadConfig(
        base_url=server.url,
        tasks=args.tasks,
        concurrency=args.concurrency,
        images=images,
        run_id=f"{os.getpid()}-{int(time.time())}",
    )
    tasks_before = task_count(server)
    with psycopg.connect(server.database_url, autocommit=True) as db:
        meter = CpuMeter(server, db)
        marks: dict[str, Any] = {}

        def before_go() -> None:
            marks["events"], marks["cpu"] = count_events(db), sample_cpu(meter)

        result = load_in_subprocess(config, before_go)
        events_after, cpu_after = count_events(db), sample_cpu(meter)
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
