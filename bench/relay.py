"""Relay benchmark: lag from an edit's commit to its message stored in JetStream, under load.

Starts `palimpsest serve` (embedded PostgreSQL and NATS) on a temp dir, makes a task of 20
frames cut into 10 jobs, then a separate load process (bench/relay_load.py) opens
`--sockets` job-room websockets spread over those jobs, each creating a shape and then
moving it, one command at a time, paced so that all together they send `--rate` edits a
second (default 2,000) for `--seconds` (60; 10 with --quick); a socket behind its schedule
sends its next edit at once, and all stop at the end. Every edit is one event.

Meanwhile this process follows the stream PALIMPSEST_EVENTS with an ordered push consumer
(delivering only what the stream has stored, so after JetStream's ack to the relay) and
takes, for each message, the time it arrived minus the envelope's `time` (the event's
timestamp, taken when its command ran, a little before the commit): an upper bound of the
commit-to-ack lag. Printed: the edits/s reached, events relayed, lag p50/p99/max (goal:
p99 under 1 s) over the load and by sixths of it, and the server's CPU.

    .venv/bin/python bench/relay.py --quick
    .venv/bin/python bench/relay.py --rate 2000 --seconds 60 --sockets 100
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx
import nats
import psycopg
from harness import (
    AUTH,
    CpuMeter,
    create_task,
    expect,
    make_images,
    percentile,
    running,
    temp_data_dir,
    upload_images,
    wait_for_request,
)
from nats.js.api import DeliverPolicy
from relay_load import LoadPlan, LoadProcess

from projections.envelope import SUBJECT_PREFIX, decode

FRAMES = 20
SEGMENT = 2  # 10 jobs
DRAIN_QUIET = 3.0  # after the load: stop following once no message came for this long
DRAIN_TIMEOUT = 120.0
GOAL_P99 = 1.0
SLICES = 6


class Follower:
    """Follows the stream in a thread of its own; records (arrival, lag) of each message."""

    def __init__(self, nats_url: str) -> None:
        self.nats_url = nats_url
        self.samples: list[tuple[float, float]] = []
        self.last_arrival = time.time()
        self.ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._follow()), daemon=True)
        self._thread.start()
        if not self.ready.wait(30):
            raise RuntimeError("cannot follow the stream")

    async def _follow(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        client = await nats.connect(self.nats_url)
        js = client.jetstream()

        async def take(msg: nats.aio.msg.Msg) -> None:
            now = time.time()
            stamped = datetime.fromisoformat(decode(msg.data).time.replace("Z", "+00:00"))
            self.samples.append((now, now - stamped.timestamp()))
            self.last_arrival = now

        await js.subscribe(
            f"{SUBJECT_PREFIX}.>", cb=take, ordered_consumer=True, deliver_policy=DeliverPolicy.NEW
        )
        self.ready.set()
        await self._stop.wait()
        await client.close()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def make_jobs(client: httpx.Client) -> list[tuple[int, int, int]]:
    task_id = create_task(client, "relay bench", labels=[{"name": "car"}], segment_size=SEGMENT)
    images = make_images(FRAMES, (64, 48), formats=(".png",), stamp=False)
    wait_for_request(client, upload_images(client, task_id, images))
    jobs = client.get("/api/jobs", params={"task_id": task_id, "page_size": 100}).json()
    label = client.get("/api/labels", params={"task_id": task_id}).json()["results"][0]["id"]
    return [(int(job["id"]), int(label), int(job["start_frame"])) for job in jobs["results"]]


def lag_line(lags: list[float]) -> str:
    if not lags:
        return "no messages"
    return (
        f"p50 {percentile(lags, 0.5) * 1000:.0f}  p99 {percentile(lags, 0.99) * 1000:.0f}"
        f"  max {max(lags) * 1000:.0f} ms ({len(lags)} messages)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 s of load")
    parser.add_argument("--rate", type=float, default=2000.0, help="edits a second (2000)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--sockets", type=int, default=100)
    args = parser.parse_args()
    seconds = 10.0 if args.quick else args.seconds
    with temp_data_dir("plm-relay-bench-") as data_dir, running(data_dir) as server:
        with httpx.Client(base_url=server.url, auth=AUTH, timeout=60) as client:
            jobs = make_jobs(client)
            token = expect(
                client.post("/api/auth/login", json={"username": AUTH[0], "password": AUTH[1]}),
                200,
            ).json()["key"]
        nats_port = (Path(data_dir) / "nats" / "nats.port").read_text().strip()
        follower = Follower(f"nats://127.0.0.1:{nats_port}")
        plan = LoadPlan(
            server.url.replace("http://", "ws://"), token, jobs, args.sockets, args.rate, seconds
        )
        load = LoadProcess()
        try:
            with psycopg.connect(server.database_url, autocommit=True) as db:
                meter = CpuMeter(server, db)
                cpu_before, pg_before = meter.server_cpu(), meter.postgres_cpu()
                started = time.time()
                print(
                    f"{args.sockets} sockets over {len(jobs)} jobs, {args.rate:.0f} edits/s"
                    f" for {seconds:.0f} s ...",
                    flush=True,
                )
                result = load.load(plan)
                ended = time.time()
                deadline = time.monotonic() + DRAIN_TIMEOUT
                while (
                    time.monotonic() < deadline
                    and time.time() - follower.last_arrival < DRAIN_QUIET
                ):
                    time.sleep(0.2)
                cpu, pg = meter.server_cpu() - cpu_before, meter.postgres_cpu()
                pg_text = (
                    f"{pg - pg_before:.1f} s" if pg is not None and pg_before is not None else "n/a"
                )
        finally:
            load.close()
            follower.stop()
    samples = [(at, lag) for at, lag in follower.samples if at >= started]
    lags = [lag for _, lag in samples]
    rate = result.acked / result.seconds
    print(
        f"edits acked {result.acked} in {result.seconds:.1f} s = {rate:.0f}/s"
        f" (asked {args.rate:.0f}/s); outcomes {dict(result.outcomes)}"
    )
    print(f"server cpu {cpu:.1f} s, postgres cpu {pg_text}")
    p99 = percentile(lags, 0.99) if lags else float("inf")
    verdict = "met" if p99 < GOAL_P99 else "MISSED"
    print(f"commit -> stored in JetStream: {lag_line(lags)}  goal p99 < 1 s: {verdict}")
    span = (ended - started) / SLICES
    for index in range(SLICES):
        low = started + index * span
        part = [lag for at, lag in samples if low <= at < low + span]
        print(f"    {index * span:5.0f}-{(index + 1) * span:3.0f} s: {lag_line(part)}")
    late = [lag for at, lag in samples if at >= ended]
    if late:
        print(f"    after the load: {lag_line(late)}")
    return 0 if verdict == "met" else 1


if __name__ == "__main__":
    sys.exit(main())
