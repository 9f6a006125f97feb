"""Annotation reads and writes of a real `palimpsest serve` process: PUT, PATCH, GET, time travel.

What it measures: a fresh server (embedded PostgreSQL and NATS in a temp data dir under /tmp,
JSON request log) is started as its own process, like bench/tasks.py does; the HTTP clients
run in a separate spawned process. One task with label "car" and 10 small images (one job)
is created through the REST API, then, each phase printed on its own line:

    PUT    10,000 rectangles into the empty job                       goal < 1 s
    PUT    10,000 different rectangles (no ids) over those 10,000     goal < 1 s
    PATCH  ?action=update x 1,000, one after another, each moving one of the 10,000 shapes:
           round-trip p50/p95/p99/max                                 goal p99 < 20 ms
    GET    the job, warm, 20 times: median/p95 round trip and the median server handler
           time (the request log's duration_ms)                       goal < 50 ms round trip
    build  a second job with a 20,000-event history (single-shape PATCH create/update/delete
           from 8 client threads; checked with GET /api/jobs/{id}/history)
    GET    ?at_version=10,000 (the middle) first, then 5 more; ?at=<time of event 10,000>
                                                                      goal < 300 ms
    GET    the first job cold: the server is stopped (SIGINT) and started again on the same
           data dir and port; first and second GET (after one warm-up request that only
           authenticates), and the time-travel GET once more on the restarted server.

Each line shows the server's own handler time, the CPU seconds (user+sys) the server process
and PostgreSQL spent in the phase, and the events the phase wrote. At the end: the size of the
events and snapshots tables. After each phase the benchmark waits until the server is idle
(under 5% of a core for 0.5 s) and says so if it kept working in the background, so phases
do not overlap. The embedded PostgreSQL restarts with the server, so "cold" also means
PostgreSQL's shared buffers are empty (the OS page cache is not). The machine should be
otherwise idle: other load on it shows directly in the latencies.

Run it from the project root:

    .venv/bin/python bench/annotations.py --quick    # everything 10x smaller, a fast check
    .venv/bin/python bench/annotations.py            # the full benchmark
    .venv/bin/python bench/annotations.py --py-spy /tmp/prof   # also record each phase

With `--py-spy DIR`, `py-spy record --pid` samples the server during every phase and writes
collapsed stacks (DIR/NN-phase.txt, one stack per line with its sample count) for
flamegraph.pl, speedscope or grep. `--server-env NAME=VALUE` (repeatable) adds to the server's
environment, e.g. `--server-env POSTGRES_ENABLE_DB_FUNCTIONS=y` makes eventsourcing insert
events through its database function instead of a psycopg pipeline.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from annotation_clients import (
    FRAMES,
    IDLE_SHARE,
    IDLE_WINDOW,
    IMAGE_SIZE,
    LOG_SETTLE,
    MS,
    REQUEST_TIMEOUT,
    SETTLE_TIMEOUT,
    Built,
    ClientProcess,
    Timed,
    annotations_path,
)
from harness import (
    AUTH,
    BIN,
    CpuMeter,
    Server,
    cpu_seconds,
    create_task,
    expect,
    free_port,
    make_images,
    percentile,
    temp_data_dir,
    upload_images,
    wait_for_request,
)


@dataclass(frozen=True)
class Scale:
    shapes: int = 10_000  # per PUT
    patches: int = 1_000
    history: int = 20_000  # events in the time-travel job's stream
    gets: int = 20  # warm GET repetitions
    travels: int = 5  # time-travel repetitions after the first
    threads: int = 8  # client threads building the history

    @property
    def middle(self) -> int:
        return self.history // 2


# --------------------------------------------------------------------------- events, py-spy


class Meter(CpuMeter):
    """CPU seconds of the server process and the PostgreSQL cluster; events in the log."""

    def __init__(self, server: Server) -> None:
        self.db = psycopg.connect(server.database_url, autocommit=True)
        super().__init__(server, self.db)

    def cpu(self) -> tuple[float, float | None]:
        return self.server_cpu(), self.postgres_cpu()

    def events(self) -> int:
        row = self.db.execute("SELECT count(*) FROM palimpsest_events").fetchone()
        return int(row[0]) if row else 0

    def table_sizes(self) -> list[tuple[str, int, int]]:
        """(table, rows, total bytes with indexes and TOAST) of the event store's tables."""
        tables = self.db.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND relname IN"
            " ('palimpsest_events', 'palimpsest_snapshots', 'job_history') ORDER BY relname"
        ).fetchall()
        sizes = []
        for (name,) in tables:
            ident = psycopg.sql.Identifier(name)
            count = self.db.execute(psycopg.sql.SQL("SELECT count(*) FROM {}").format(ident))
            size = self.db.execute("SELECT pg_total_relation_size(%s::regclass)", (name,))
            rows, total = count.fetchone(), size.fetchone()
            sizes.append((str(name), int(rows[0]) if rows else 0, int(total[0]) if total else 0))
        return sizes

    def close(self) -> None:
        self.db.close()


class Profiler:
    """`py-spy record --pid` of the server during one phase (collapsed stacks)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.count = 0
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def record(self, pid: int, name: str) -> Iterator[None]:
        if self.directory is None:
            yield
            return
        self.count += 1
        slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
        output = self.directory / f"{self.count:02d}-{slug}.txt"
        command = [str(BIN / "py-spy"), "record", "--pid", str(pid), "--rate", "250"]
        command += ["--format", "raw", "--nonblocking", "--output", str(output)]
        spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)  # attached
        try:
            yield
        finally:
            spy.send_signal(signal.SIGINT)
            try:
                spy.wait(timeout=60)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()


# ------------------------------------------------------------------------------------ report


def goal(value_ms: float, limit_ms: float) -> str:
    verdict = "met" if value_ms < limit_ms else "MISSED"
    return f"goal < {limit_ms:.0f} ms: {verdict}"


def size(count: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024  # type: ignore[assignment]
    return str(count)


@dataclass
class Cost:
    """What the server spent in one phase."""

    handler_ms: list[float] = field(default_factory=list)
    server_cpu: float = 0.0
    postgres_cpu: float | None = None
    events: int = 0
    busy_after: tuple[float, float] = (0.0, 0.0)  # the server working on after the phase

    def line(self) -> str:
        postgres = "n/a" if self.postgres_cpu is None else f"{self.postgres_cpu:.2f} s"
        text = (
            f"    server cpu {self.server_cpu:.2f} s, postgres cpu {postgres}, "
            f"events written {self.events}"
        )
        return text + busy_text(self.busy_after)


def busy_text(busy: tuple[float, float]) -> str:
    seconds, cpu = busy
    if seconds < IDLE_WINDOW:
        return ""
    return f"; then busy in the background for {seconds:.1f} s ({cpu:.2f} s server cpu)"


def ms(seconds: float) -> str:
    return f"{seconds * MS:.1f} ms"


def spread(values: Sequence[float], scale: float = 1.0) -> str:
    """p50/p95/p99/max of values (seconds * scale = ms)."""
    return (
        f"p50 {percentile(values, 0.5) * scale:.1f}  p95 {percentile(values, 0.95) * scale:.1f}"
        f"  p99 {percentile(values, 0.99) * scale:.1f}  max {max(values) * scale:.1f} ms"
    )


# ------------------------------------------------------------------------------------ phases


class Benchmark:
    def __init__(
        self, scale: Scale, data_dir: Path, profiler: Profiler, server_env: dict[str, str]
    ) -> None:
        self.scale = scale
        self.data_dir = data_dir
        self.profiler = profiler
        self.server_env = server_env
        self.port = free_port()
        self.server, self.meter, self.clients = self._start()

    def _start(self) -> tuple[Server, Meter, ClientProcess]:
        """A server on the data dir and port, its meter and a client process; all or none."""
        server = Server(self.data_dir, port=self.port, extra_env=self.server_env, json_log=True)
        meter: Meter | None = None
        try:
            server.wait_ready()
            meter = Meter(server)
            return server, meter, ClientProcess(server.url, self.scale.threads)
        except BaseException:
            if meter is not None:
                meter.close()
            server.stop()
            raise

    def close(self) -> None:
        self.clients.close()
        self.meter.close()
        self.server.stop()

    @contextlib.contextmanager
    def phase(self, name: str, method: str, job_id: int) -> Iterator[Cost]:
        cost = Cost()
        offset = self.server.log_size()
        events = self.meter.events()
        with self.profiler.record(self.server.process.pid, name):
            server_cpu, postgres_cpu = self.meter.cpu()
            yield cost
            time.sleep(LOG_SETTLE)
            server_after, postgres_after = self.meter.cpu()
        cost.server_cpu = server_after - server_cpu
        if postgres_cpu is not None and postgres_after is not None:
            cost.postgres_cpu = postgres_after - postgres_cpu
        cost.events = self.meter.events() - events
        cost.handler_ms = self.server.durations(offset, method, annotations_path(job_id))
        cost.busy_after = self.settle()

    def settle(self) -> tuple[float, float]:
        """Waits until the server is idle, so the next phase is measured alone.

        Returns how long it stayed busy (not counting the idle window that ended the wait)
        and the CPU seconds it spent meanwhile.
        """
        started = time.perf_counter()
        first = previous = cpu_seconds(self.server.ps) or 0.0
        while time.perf_counter() - started < SETTLE_TIMEOUT:
            time.sleep(IDLE_WINDOW)
            now = cpu_seconds(self.server.ps) or 0.0
            if now - previous < IDLE_WINDOW * IDLE_SHARE:
                break
            previous = now
        return max(0.0, time.perf_counter() - started - IDLE_WINDOW), previous - first

    def restart(self) -> tuple[float, float]:
        """Stops the server, starts it on the same data dir and port; returns settle()."""
        self.close()
        self.server, self.meter, self.clients = self._start()
        return self.settle()

    # set-up

    def make_job(self, name: str) -> tuple[int, int]:
        """A task with label car and FRAMES images in one job: (job id, label id)."""
        with httpx.Client(base_url=self.server.url, auth=AUTH, timeout=REQUEST_TIMEOUT) as admin:
            task_id = create_task(admin, name, labels=[{"name": "car"}], segment_size=0)
            images = make_images(
                FRAMES, IMAGE_SIZE, formats=(".png",), stamp=False, name="frame_{index:03d}"
            )
            wait_for_request(admin, upload_images(admin, task_id, images, image_quality=70))
            jobs = admin.get("/api/jobs", params={"task_id": task_id}).json()["results"]
            labels = admin.get("/api/labels", params={"task_id": task_id}).json()["results"]
        if len(jobs) != 1:
            raise RuntimeError(f"task {task_id} has {len(jobs)} jobs, expected one")
        return int(jobs[0]["id"]), int(labels[0]["id"])

    def history(self, job_id: int, page: int = 1) -> dict[str, Any]:
        with httpx.Client(base_url=self.server.url, auth=AUTH, timeout=REQUEST_TIMEOUT) as admin:
            response = admin.get(
                f"/api/jobs/{job_id}/history", params={"page_size": 1, "page": page}
            )
            expect(response, 200)
            result: dict[str, Any] = response.json()
        return result

    # the benchmark

    def run(self) -> int:
        scale = self.scale
        job_id, label_id = self.make_job("annotations bench")
        print(f"job {job_id} (label {label_id}, {FRAMES} frames), {scale.shapes} shapes per PUT")

        for title, seed in (("into an empty job", 1), ("replacing the existing ones", 2)):
            name = f"PUT {scale.shapes} shapes {title}"
            with self.phase(name, "PUT", job_id) as cost:
                timed: Timed = self.clients.call(
                    "put", job_id=job_id, label_id=label_id, count=scale.shapes, seed=seed
                )
            rtt = timed.seconds[0]
            print(
                f"{name}: round trip {ms(rtt)}, handler {handler(cost)}"
                f"  ({size(timed.request_bytes)} sent, {size(timed.response_bytes)} back)"
                f"  {goal(rtt * MS, 1000)}"
            )
            print(cost.line())

        name = f"PATCH ?action=update x {scale.patches}, sequential, job of {scale.shapes}"
        with self.phase(name, "PATCH", job_id) as cost:
            timed = self.clients.call("patch_moves", job_id=job_id, count=scale.patches, seed=3)
        print(f"{name}:")
        print(f"    round trip  {spread(timed.seconds, MS)}  {goal(p99(timed.seconds), 20)}")
        if cost.handler_ms:
            print(f"    handler     {spread(cost.handler_ms)}")
        print(cost.line())

        name = f"GET warm x {scale.gets}, job of {scale.shapes}"
        with self.phase(name, "GET", job_id) as cost:
            timed = self.clients.call("gets", job_id=job_id, repeats=scale.gets, params={})
        median = statistics.median(timed.seconds)
        print(
            f"{name}: round trip median {ms(median)}, "
            f"p95 {ms(percentile(timed.seconds, 0.95))}; handler median {handler(cost)}"
            f"  ({size(timed.response_bytes)}, {timed.objects} objects, "
            f"version {timed.version})  {goal(median * MS, 50)}"
        )
        print(cost.line())
        warm_job = job_id

        travel_job, travel_label = self.make_job("time travel bench")
        edits = scale.history - int(self.history(travel_job)["count"])
        name = f"build a {scale.history}-event history ({scale.threads} threads)"
        with self.phase(name, "PATCH", travel_job) as cost:
            built: Built = self.clients.call(
                "build_history", job_id=travel_job, label_id=travel_label, edits=edits, seed=4
            )
        count = int(self.history(travel_job)["count"])
        requests = built.created + built.updated + built.deleted
        print(
            f"{name}: {requests} PATCHes ({built.created} create, {built.updated} update, "
            f"{built.deleted} delete) in {built.wall:.1f} s = {requests / built.wall:.0f}/s;"
            f" history count {count}"
        )
        if cost.handler_ms:
            print(f"    handler     {spread(cost.handler_ms)}")
        print(cost.line())
        if count != scale.history:
            print(f"CHECK FAILED: the history holds {count} events, not {scale.history}")
            return 1

        middle = self.history(travel_job, page=scale.middle)["results"][0]
        if middle["version"] != scale.middle:
            raise RuntimeError(f"history page {scale.middle} is version {middle['version']}")
        self.time_travel(travel_job, {"at_version": str(scale.middle)}, "first", 1)
        self.time_travel(travel_job, {"at_version": str(scale.middle)}, "repeated", scale.travels)
        self.time_travel(travel_job, {"at": middle["timestamp"]}, "first", 1)
        self.time_travel(travel_job, {"at": middle["timestamp"]}, "repeated", scale.travels)

        busy = self.restart()
        print(
            "server restarted on the same data dir (one authenticating request per client)"
            + busy_text(busy)
        )
        name = f"GET cold after the restart, job of {scale.shapes}"
        with self.phase(name, "GET", warm_job) as cost:
            first: Timed = self.clients.call("gets", job_id=warm_job, repeats=1, params={})
            second: Timed = self.clients.call("gets", job_id=warm_job, repeats=1, params={})
        handlers = cost.handler_ms + [float("nan")] * 2
        print(
            f"{name}: first round trip {ms(first.seconds[0])} (handler {handlers[0]:.1f} ms),"
            f" second {ms(second.seconds[0])} (handler {handlers[1]:.1f} ms)"
        )
        print(cost.line())
        self.time_travel(
            travel_job, {"at_version": str(scale.middle)}, "first after the restart", 1
        )

        print("tables (rows, size with indexes and TOAST):")
        for table, rows, total in self.meter.table_sizes():
            print(f"    {table:<22} {rows:>8} rows  {size(total):>10}")
        return 0

    def time_travel(self, job_id: int, params: dict[str, str], label: str, repeats: int) -> None:
        key, value = next(iter(params.items()))
        name = f"GET ?{key}={value} {label}" + (f" x {repeats}" if repeats > 1 else "")
        with self.phase(name, "GET", job_id) as cost:
            timed: Timed = self.clients.call("gets", job_id=job_id, repeats=repeats, params=params)
        median = statistics.median(timed.seconds)
        what = "round trip" if repeats == 1 else "round trip median"
        print(
            f"{name}: {what} {ms(median)}, handler {handler(cost)}"
            f"  (version {timed.version}, {timed.objects} objects, {size(timed.response_bytes)})"
            f"  {goal(median * MS, 300)}"
        )
        print(cost.line())


def handler(cost: Cost) -> str:
    if not cost.handler_ms:
        return "n/a"
    return f"{statistics.median(cost.handler_ms):.1f} ms"


def p99(seconds: Sequence[float]) -> float:
    return percentile(seconds, 0.99) * MS


# -------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="everything 10x smaller")
    parser.add_argument(
        "--py-spy",
        type=Path,
        default=None,
        metavar="DIR",
        help="record the server with py-spy during every phase, into DIR",
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extra environment variable for the server (repeatable)",
    )
    args = parser.parse_args(argv)
    for item in args.server_env:
        if "=" not in item:
            parser.error(f"--server-env {item!r}: give NAME=VALUE")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    scale = Scale()
    if args.quick:
        scale = Scale(shapes=1_000, patches=100, history=2_000)
    with temp_data_dir("plmb-ann-") as data_dir:
        bench: Benchmark | None = None
        try:
            server_env = dict(item.split("=", 1) for item in args.server_env)
            for name, value in server_env.items():
                print(f"server environment: {name}={value}")
            bench = Benchmark(scale, data_dir, Profiler(args.py_spy), server_env)
            print(f"server pid {bench.server.process.pid} at {bench.server.url}, dir {data_dir}")
            return run_guarded(bench.run, bench)
        finally:
            if bench is not None:
                bench.close()


def run_guarded(run: Callable[[], int], bench: Benchmark) -> int:
    try:
        return run()
    except Exception as error:
        print(f"BENCHMARK FAILED: {type(error).__name__}: {error}")
        print(f"--- server log ---\n{bench.server.log_tail()}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
