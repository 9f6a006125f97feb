"""Live job rooms of a real `palimpsest serve` process: edit latency, fan-out, committed edits/s.

What it measures: a fresh server (embedded PostgreSQL and NATS in a temp data dir under /tmp)
runs as its own process, like bench/tasks.py starts it; every websocket client runs in one
separate spawned load process (asyncio, `websockets.asyncio.client`, one task per client). All
clients sign in as admin with one token (POST /api/auth/login) and join /ws/jobs/{id}. Each
phase uses a fresh task (one image, label "car", so one job) and has a warm-up before its
measured window; figures count what happens inside the window only.

    room     N clients in one job (`--clients`, default 50 then 200). Each sends `hello`,
             gets its snapshot, creates one rectangle, then for `--seconds`: a `presence`
             cursor at 10 Hz and 2 `update`s/s that move its own rectangle (a unique cid each;
             the next edit waits for the previous ack). Per edit: send -> the sender's `ack`
             (committed, durable) and send -> the matching `event` (by cid) at every other
             client, p50/p99/max, also to the last of the peers; frames/s both ways by type;
             events written and their transactions; CPU.        goal p99 edit->peer
                                                                < 50 ms at 50, < 150 ms at 200
    hammer   `--hammer-sockets` sockets (default 20) in one job, each sending the next
             `update` of its own rectangle as soon as the previous one is acked: committed
             edits/s (acks inside the window; each ack follows the commit of its event),
             ack latency, events per transaction, and a durability check (the job's stream
             in PostgreSQL holds exactly the acked commands).    goal 5,000+ edits/s
    hammer   the same with group commit switched off: the server is restarted on the same
    (no GC)  data dir with PYTHONPATH pointing at a generated `sitecustomize.py` that sets
             `infra.writer.MAX_BATCH = 1` on start-up (there is no setting for it), so the
             writer saves every command in its own transaction. The server log confirms the
             shim ran, and "events/transaction" shows it took effect.

Send and arrival times are `time.perf_counter()` in the load process, so the latencies have
one clock; they include any queueing in the load process itself, which is why its CPU and its
event-loop lag (how late a 10 ms sleep wakes up) are printed too. CPU is user+sys seconds in
the window: the server process, PostgreSQL (the cluster's processes and reaped children),
NATS and the load process; "machine" adds the CPU of every other process on this machine
(other work there skews the figures, and the phase is flagged). "deflate" says whether
permessage-deflate was negotiated (what browsers do; `--compression none` turns it off).

Run it from the project root:

    .venv/bin/python bench/room.py --quick     # 10 s phases, 20 clients, 5 hammer sockets
    .venv/bin/python bench/room.py             # 60 s phases: 50 and 200 clients, 20 sockets
    .venv/bin/python bench/room.py --clients 50 --hammer-sockets 0 --py-spy /tmp/prof

With `--py-spy DIR`, `py-spy record --pid <server> --format raw --threads --idle` samples the
server during each measured window into DIR/<phase>.txt (collapsed stacks with sample
counts, per thread, idle samples included: wall time, e.g. where the writer thread waits).
`--clients ''` skips the room phases, `--hammer-sockets 0` the hammer phases and
`--no-gc-off` only the group-commit-off one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import time
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import cv2
import httpx
import msgspec
import numpy as np
import psutil
import psycopg
from harness import (
    ADMIN_PASSWORD,
    AUTH,
    BIN,
    READY_TIMEOUT,
    ChildProcess,
    CpuMeter,
    Server,
    create_task,
    expect,
    running,
    serve_calls,
    temp_data_dir,
    upload_images,
    wait_for_request,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from core.jobs import Job

REQUEST_TIMEOUT = 60.0
ACK_TIMEOUT = 30.0  # an edit unanswered this long is counted as unanswered
DRAIN_TIMEOUT = 10.0  # after the window: wait this long at most for acks and events in flight
CONNECT_AT_ONCE = 20  # websocket handshakes in flight while a phase connects its clients
CURSOR_HZ = 10.0
EDITS_HZ = 2.0
LAG_TICK = 0.01
OTHERS_WARNING = 0.15  # cores of CPU used by other processes that taint a phase's figures
SLICES = 6  # the window's figures over time, in this many parts
MS = 1000.0
GOAL_PEER_P99 = {50: 0.050, 200: 0.150}  # clients -> p99 edit->peer
GOAL_EDITS_PER_S = 5000.0
SHIM_MARKER = "bench/room.py shim: infra.writer.MAX_BATCH = 1 (group commit off)"
SHIM = f'''"""Generated by bench/room.py: switches the writer's group commit off."""

import sys

import infra.writer

infra.writer.MAX_BATCH = 1
print({SHIM_MARKER!r}, file=sys.stderr, flush=True)
'''


# ------------------------------------------------------------------------------ configuration


@dataclass(frozen=True)
class Target:
    """Where the clients of a phase connect: a job room of one server."""

    ws_url: str  # ws://127.0.0.1:PORT
    job_id: int
    label_id: int
    token: str
    compression: str | None  # "deflate" or None

    def room_url(self) -> str:
        return f"{self.ws_url}/ws/jobs/{self.job_id}?token={self.token}"


@dataclass(frozen=True)
class RoomPlan:
    target: Target
    clients: int
    seconds: float
    warmup: float
    cursor_hz: float = CURSOR_HZ
    edits_hz: float = EDITS_HZ


@dataclass(frozen=True)
class HammerPlan:
    target: Target
    sockets: int
    seconds: float
    warmup: float


@dataclass(frozen=True)
class Summary:
    """Latency percentiles (nearest rank), in seconds."""

    count: int = 0
    p50: float = float("nan")
    p99: float = float("nan")
    max: float = float("nan")

    @classmethod
    def of(cls, values: array[float]) -> Summary:
        if not values:
            return cls()
        data = np.frombuffer(values, dtype=np.float64)
        p50, p99 = np.percentile(data, [50, 99], method="inverted_cdf")
        return cls(len(data), float(p50), float(p99), float(data.max()))

    @classmethod
    def slices(
        cls, sent: array[float], values: array[float], begin: float, seconds: float
    ) -> list[Summary]:
        """`values` split by when their edit was sent, in SLICES equal parts of the window."""
        at = np.frombuffer(sent, dtype=np.float64)
        data = np.frombuffer(values, dtype=np.float64)
        index = np.clip(((at - begin) / seconds * SLICES).astype(int), 0, SLICES - 1)
        return [cls.of(array("d", data[index == part].tobytes())) for part in range(SLICES)]

    def line(self) -> str:
        if not self.count:
            return "no samples"
        return (
            f"p50 {self.p50 * MS:7.1f} ms   p99 {self.p99 * MS:7.1f} ms   "
            f"max {self.max * MS:7.1f} ms   (n={self.count:,})"
        )


@dataclass
class PhaseResult:
    """What the load process saw in one phase's window (and the counts around it)."""

    members: int  # clients (room) or sockets (hammer) asked for
    connected: int
    seconds: float
    deflate: bool
    edits_sent: int = 0
    acked: int = 0
    rejected: int = 0
    unanswered: int = 0
    late_sends: int = 0  # room: an edit sent late because the previous ack came after its slot
    ack: Summary = field(default_factory=Summary)
    peer: Summary = field(default_factory=Summary)
    all_peers: Summary = field(default_factory=Summary)
    deliveries: int = 0
    missing: int = 0  # peer deliveries of acked in-window edits that never arrived
    closed: int = 0  # sockets the server closed during the phase
    frames_in: dict[str, int] = field(default_factory=dict)
    frames_out: dict[str, int] = field(default_factory=dict)
    load_cpu: float = 0.0
    lag: Summary = field(default_factory=Summary)
    ack_slices: list[Summary] = field(default_factory=list)  # by when the edit was sent
    peer_slices: list[Summary] = field(default_factory=list)  # edit -> all peers, likewise
    acked_total: int = 0  # commands acked over the whole phase (creates included)
    reasons: dict[str, int] = field(default_factory=dict)


# ------------------------------------------------------------------------- the load process


class Frame(msgspec.Struct):
    """The few fields of a server frame the clients look at; the rest is skipped."""

    type: str
    cid: str | None = None
    version: int | None = None
    reason: str | None = None
    result: msgspec.Raw = msgspec.Raw()


FRAMES = msgspec.json.Decoder(Frame | list[Frame])  # the server batches frames in an array


class Sent:
    __slots__ = ("at", "sender", "counted", "acked", "peers", "last")

    def __init__(self, at: float, sender: int, counted: bool) -> None:
        self.at = at
        self.sender = sender
        self.counted = counted  # sent inside the measured window
        self.acked = False
        self.peers = 0
        self.last = at


class Recorder:
    """Shared by the clients of one phase: every edit sent, every frame counted."""

    def __init__(self, begin: float, end: float) -> None:
        self.begin = begin
        self.end = end
        self.counting = False
        self.edits: dict[str, Sent] = {}
        self.ack = array("d")
        self.ack_sent = array("d")  # when each edit of `ack` was sent
        self.peer = array("d")
        self.frames_in: Counter[str] = Counter()
        self.frames_out: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.acked_total = 0
        self.acked_in_window = 0
        self.closed = 0

    def sending(self, cid: str, sender: int, at: float, kind: str) -> Sent:
        sent = Sent(at, sender, self.begin <= at < self.end)
        self.edits[cid] = sent
        if self.counting:
            self.frames_out[kind] += 1
        return sent

    def arrived(self, cid: str, receiver: int, at: float) -> None:
        sent = self.edits.get(cid)
        if sent is None or sent.sender == receiver or not sent.counted:
            return
        self.peer.append(at - sent.at)
        sent.peers += 1
        sent.last = max(sent.last, at)


class Client:
    """One websocket in the room: reads every frame, answers its own commands' waiters."""

    def __init__(self, index: int, socket: ClientConnection, recorder: Recorder) -> None:
        self.index = index
        self.socket = socket
        self.recorder = recorder
        self.version = 0
        self.shape_id = 0
        self.seq = 0
        self.prefix = f"b{os.getpid()}-{index}-"
        self.snapshot = asyncio.Event()
        self.waiting: dict[str, asyncio.Future[tuple[Frame, float]]] = {}
        self.reader = asyncio.create_task(self._read())
        self.deflate = any(
            getattr(extension, "name", "") == "permessage-deflate"
            for extension in socket.protocol.extensions
        )

    async def _read(self) -> None:
        recorder = self.recorder
        try:
            async for raw in self.socket:
                now = time.perf_counter()
                message = FRAMES.decode(raw)
                for frame in message if isinstance(message, list) else [message]:
                    self._take(frame, now)
        except ConnectionClosed:
            pass
        finally:
            recorder.closed += 1
            for waiter in self.waiting.values():
                if not waiter.done():
                    waiter.set_exception(ConnectionError("the server closed the socket"))

    def _take(self, frame: Frame, now: float) -> None:
        recorder = self.recorder
        if recorder.counting:
            recorder.frames_in[frame.type] += 1
        if frame.version is not None and frame.version > self.version:
            self.version = frame.version
        if frame.type == "event":
            if frame.cid is not None:
                recorder.arrived(frame.cid, self.index, now)
        elif frame.type in ("ack", "reject"):
            waiter = self.waiting.pop(frame.cid or "", None)
            if waiter is not None and not waiter.done():
                waiter.set_result((frame, now))
        elif frame.type == "snapshot":
            self.snapshot.set()

    async def join(self) -> None:
        await self.socket.send(json.dumps({"type": "hello", "since": None}))
        await asyncio.wait_for(self.snapshot.wait(), READY_TIMEOUT)

    async def command(self, body: dict[str, Any], kind: str) -> tuple[Frame, Sent, float] | None:
        """Sends a command and waits for its ack or reject; None if none came in time."""
        self.seq += 1
        cid = f"{self.prefix}{self.seq}"
        waiter: asyncio.Future[tuple[Frame, float]] = asyncio.get_running_loop().create_future()
        self.waiting[cid] = waiter
        text = json.dumps({"type": kind, "cid": cid, **body})
        sent = self.recorder.sending(cid, self.index, time.perf_counter(), kind)
        await self.socket.send(text)
        try:
            frame, at = await asyncio.wait_for(waiter, ACK_TIMEOUT)
        except TimeoutError:
            self.waiting.pop(cid, None)
            self.recorder.outcomes["unanswered"] += 1
            return None
        if frame.type == "ack":
            sent.acked = True
            self.recorder.acked_total += 1
            if self.recorder.begin <= at < self.recorder.end:
                self.recorder.acked_in_window += 1
            if sent.counted:
                self.recorder.ack.append(at - sent.at)
                self.recorder.ack_sent.append(sent.at)
        else:
            self.recorder.outcomes[f"{frame.type} {frame.reason}"] += 1
        return frame, sent, at

    async def create_shape(self, label_id: int) -> None:
        rectangle = self._rectangle(label_id, 0)
        answer = await self.command({"shapes": [rectangle]}, "create")
        if answer is None or answer[0].type != "ack":
            raise RuntimeError(f"client {self.index} cannot create its shape: {answer}")
        self.shape_id = int(msgspec.json.decode(answer[0].result)["shapes"][0]["id"])

    async def move_shape(self) -> tuple[Frame, Sent, float] | None:
        x = 10.0 + (self.seq % 300) + self.index / 1000
        changes = {"points": [x, 20.0, x + 30.0, 50.0]}
        body = {"kind": "shape", "id": self.shape_id, "base": self.version, "changes": changes}
        return await self.command(body, "update")

    async def send_cursor(self, rng: random.Random) -> None:
        frame = {
            "type": "presence",
            "frame": 0,
            "cursor": [rng.uniform(0, 640), rng.uniform(0, 480)],
        }
        await self.socket.send(json.dumps(frame))
        if self.recorder.counting:
            self.recorder.frames_out["presence"] += 1

    def _rectangle(self, label_id: int, seq: int) -> dict[str, Any]:
        x = 10.0 + seq + self.index / 1000
        return {
            "type": "rectangle",
            "label_id": label_id,
            "frame": 0,
            "points": [x, 20, x + 30, 50],
        }

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.socket.close(), 5)
        self.reader.cancel()
        with contextlib.suppress(BaseException):
            await self.reader


Mark = Callable[[str], None]


async def open_clients(target: Target, count: int, recorder: Recorder) -> list[Client]:
    """Connects `count` clients, each joined (snapshot received) with its own shape created."""
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)

    async def one(index: int) -> Client:
        async with gate:
            socket = await connect(
                target.room_url(),
                compression=target.compression,
                max_size=None,
                ping_interval=None,
                open_timeout=READY_TIMEOUT,
            )
            client = Client(index, socket, recorder)
            await client.join()
            await client.create_shape(target.label_id)
            return client

    return list(await asyncio.gather(*(one(index) for index in range(count))))


async def sleep_until(moment: float) -> None:
    delay = moment - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)


async def run_window(recorder: Recorder, mark: Mark, lag: array[float]) -> float:
    """Counts frames between `begin` and `end`, tells the parent; returns the load's CPU."""
    await sleep_until(recorder.begin)
    recorder.counting = True
    cpu = time.process_time()
    mark("start")
    monitor = asyncio.create_task(watch_lag(recorder.end, lag))
    await sleep_until(recorder.end)
    recorder.counting = False
    cpu = time.process_time() - cpu
    mark("end")
    await monitor
    return cpu


async def watch_lag(until: float, lag: array[float]) -> None:
    """How late the load's event loop wakes up from a short sleep: is the load saturated?"""
    while time.perf_counter() < until:
        asked = time.perf_counter()
        await asyncio.sleep(LAG_TICK)
        lag.append(max(0.0, time.perf_counter() - asked - LAG_TICK))


async def drain(recorder: Recorder, peers: Callable[[], int]) -> None:
    """After the window: waits for the acks and events still on their way (bounded)."""
    deadline = time.perf_counter() + DRAIN_TIMEOUT
    while time.perf_counter() < deadline:
        expected = peers()
        if all(s.peers >= expected for s in recorder.edits.values() if s.counted and s.acked):
            return
        await asyncio.sleep(0.05)


async def room_phase(plan: RoomPlan, mark: Mark) -> PhaseResult:
    recorder = Recorder(float("inf"), float("inf"))
    clients = await open_clients(plan.target, plan.clients, recorder)
    recorder.begin = time.perf_counter() + plan.warmup
    recorder.end = recorder.begin + plan.seconds
    late = Counter[str]()

    async def edits(client: Client) -> None:
        rng = random.Random(client.index)
        period = 1.0 / plan.edits_hz
        slot = time.perf_counter() + rng.uniform(0, period)
        while slot < recorder.end:
            await sleep_until(slot)
            if await client.move_shape() is None and client.socket.state.name != "OPEN":
                return
            slot += period
            now = time.perf_counter()
            if slot < now:  # the ack came after the next slot: send at once, no catch-up burst
                if recorder.begin <= slot < recorder.end:
                    late["late"] += 1
                slot = now

    async def cursors(client: Client) -> None:
        rng = random.Random(-client.index)
        period = 1.0 / plan.cursor_hz
        slot = time.perf_counter() + rng.uniform(0, period)
        with contextlib.suppress(ConnectionClosed):
            while slot < recorder.end:
                await sleep_until(slot)
                await client.send_cursor(rng)
                slot = max(slot + period, time.perf_counter() - period)

    lag = array("d")
    loops = [asyncio.create_task(edits(c)) for c in clients]
    loops += [asyncio.create_task(cursors(c)) for c in clients]
    load_cpu = await run_window(recorder, mark, lag)
    await asyncio.gather(*loops, return_exceptions=True)
    closed_in_phase = recorder.closed
    open_clients_now = len(clients) - closed_in_phase
    await drain(recorder, lambda: max(len(clients) - recorder.closed - 1, 0))
    counted = [s for s in recorder.edits.values() if s.counted]
    acked = [s for s in counted if s.acked]
    expected = max(open_clients_now - 1, 0)
    everyone = [s for s in acked if s.peers >= expected]
    result = PhaseResult(
        members=plan.clients,
        connected=len(clients),
        seconds=plan.seconds,
        deflate=all(c.deflate for c in clients),
        edits_sent=len(counted),
        acked=len(acked),
        rejected=sum(n for k, n in recorder.outcomes.items() if k.startswith("reject")),
        unanswered=recorder.outcomes["unanswered"],
        late_sends=late["late"],
        ack=Summary.of(recorder.ack),
        ack_slices=Summary.slices(recorder.ack_sent, recorder.ack, recorder.begin, plan.seconds),
        peer=Summary.of(recorder.peer),
        all_peers=Summary.of(array("d", (s.last - s.at for s in everyone))),
        deliveries=len(recorder.peer),
        missing=sum(max(expected - s.peers, 0) for s in acked),
        closed=closed_in_phase,
        frames_in=dict(recorder.frames_in),
        frames_out=dict(recorder.frames_out),
        load_cpu=load_cpu,
        lag=Summary.of(lag),
        acked_total=recorder.acked_total,
        reasons=dict(recorder.outcomes),
        peer_slices=Summary.slices(
            array("d", (s.at for s in everyone)),
            array("d", (s.last - s.at for s in everyone)),
            recorder.begin,
            plan.seconds,
        ),
    )
    await asyncio.gather(*(c.close() for c in clients))
    return result


async def hammer_phase(plan: HammerPlan, mark: Mark) -> PhaseResult:
    recorder = Recorder(float("inf"), float("inf"))
    sockets = await open_clients(plan.target, plan.sockets, recorder)
    recorder.begin = time.perf_counter() + plan.warmup
    recorder.end = recorder.begin + plan.seconds

    async def hammer(client: Client) -> None:
        while time.perf_counter() < recorder.end:
            if await client.move_shape() is None and client.socket.state.name != "OPEN":
                return

    lag = array("d")
    loops = [asyncio.create_task(hammer(s)) for s in sockets]
    load_cpu = await run_window(recorder, mark, lag)
    results = await asyncio.gather(*loops, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    closed_in_phase = recorder.closed
    result = PhaseResult(
        members=plan.sockets,
        connected=len(sockets),
        seconds=plan.seconds,
        deflate=all(s.deflate for s in sockets),
        edits_sent=sum(1 for s in recorder.edits.values() if s.counted),
        acked=recorder.acked_in_window,
        rejected=sum(n for k, n in recorder.outcomes.items() if k.startswith("reject")),
        unanswered=recorder.outcomes["unanswered"],
        ack=Summary.of(recorder.ack),
        ack_slices=Summary.slices(recorder.ack_sent, recorder.ack, recorder.begin, plan.seconds),
        closed=closed_in_phase,
        frames_in=dict(recorder.frames_in),
        frames_out=dict(recorder.frames_out),
        load_cpu=load_cpu,
        lag=Summary.of(lag),
        acked_total=recorder.acked_total,
        reasons={**recorder.outcomes, **({"errors": len(errors)} if errors else {})},
    )
    await asyncio.gather(*(s.close() for s in sockets))
    return result


def load_process(connection: Connection) -> None:
    """The spawned load process: runs the phases the benchmark sends, one at a time."""

    def mark(name: str) -> None:
        connection.send(("mark", name))

    def run(name: str, plan: RoomPlan | HammerPlan) -> PhaseResult:
        if isinstance(plan, RoomPlan):
            return asyncio.run(room_phase(plan, mark))
        return asyncio.run(hammer_phase(plan, mark))

    serve_calls(connection, run)


class LoadProcess(ChildProcess):
    """The benchmark's handle on the load process."""

    def __init__(self) -> None:
        super().__init__(load_process)

    def run(self, name: str, plan: RoomPlan | HammerPlan, on_mark: Callable[[str], None]) -> Any:
        self.connection.send((name, plan))
        while True:
            status, value = self.connection.recv()
            if status == "mark":
                on_mark(value)
            elif status == "ok":
                return value
            else:
                raise RuntimeError(value)


# ----------------------------------------------------------------------------- group commit


def write_shim(folder: Path) -> dict[str, str]:
    """A sitecustomize.py that sets MAX_BATCH = 1; the environment that loads it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(SHIM)
    paths = [str(folder), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(paths)}


# ---------------------------------------------------------------------------- REST set-up


def png() -> bytes:
    image = np.full((480, 640, 3), 90, dtype=np.uint8)
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError("cannot encode a PNG")
    return encoded.tobytes()


def new_target(server: Server, name: str, compression: str | None) -> Target:
    """A fresh task with one image (one job, label "car") and a token to join its room."""
    with httpx.Client(base_url=server.url, auth=AUTH, timeout=REQUEST_TIMEOUT) as admin:
        task_id = create_task(admin, name, labels=[{"name": "car"}])
        rq_id = upload_images(admin, task_id, [("frame.png", png(), "image/png")])
        wait_for_request(admin, rq_id, REQUEST_TIMEOUT)
        jobs = expect(admin.get("/api/jobs", params={"task_id": task_id}), 200).json()
        labels = expect(admin.get("/api/labels", params={"task_id": task_id}), 200).json()
        login = admin.post(
            "/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        )
        token = str(expect(login, 200).json()["key"])
    return Target(
        ws_url=server.url.replace("http://", "ws://"),
        job_id=int(jobs["results"][0]["id"]),
        label_id=int(labels["results"][0]["id"]),
        token=token,
        compression=compression,
    )


# ----------------------------------------------------------------------- cpu and database


@dataclass(frozen=True)
class Sample:
    server: float
    postgres: float | None
    nats: float | None
    last_event: int
    at: float
    busy: float  # user+sys CPU seconds of every process on this machine (all cores)
    kernel: float  # irq and softirq CPU seconds (loopback networking, mostly)
    steal: float  # CPU seconds the hypervisor gave to other guests
    bench: float  # this benchmark's own process
    foreign: dict[int, tuple[str, float]]  # pid -> (name, user+sys) of processes not ours


class Meter(CpuMeter):
    """CPU of the server, PostgreSQL and NATS; the position of the event log."""

    def __init__(self, server: Server, db: psycopg.Connection[Any]) -> None:
        super().__init__(server, db)
        self.db = db

    def sample(self) -> Sample:
        row = self.db.execute(
            "SELECT coalesce(max(notification_id), 0) FROM palimpsest_events"
        ).fetchone()
        machine = psutil.cpu_times()
        kernel = getattr(machine, "irq", 0.0) + getattr(machine, "softirq", 0.0)
        return Sample(
            server=self.server_cpu(),
            postgres=self.postgres_cpu(),
            nats=self.nats_cpu(),
            last_event=int(row[0]) if row else 0,
            at=time.perf_counter(),
            busy=machine.user + machine.nice + machine.system,
            kernel=kernel,
            steal=getattr(machine, "steal", 0.0),
            bench=time.process_time(),
            foreign=self._foreign(),
        )

    def _foreign(self) -> dict[int, tuple[str, float]]:
        """Every process that is neither this benchmark's (or its children) nor PostgreSQL's."""
        ours = {os.getpid()}
        with contextlib.suppress(psutil.Error):
            ours |= {child.pid for child in psutil.Process().children(recursive=True)}
        if self.postmaster is not None:
            ours.add(self.postmaster.pid)
            with contextlib.suppress(psutil.Error):
                ours |= {child.pid for child in self.postmaster.children()}
        found: dict[int, tuple[str, float]] = {}
        for proc in psutil.process_iter(["name", "cpu_times"]):
            times = proc.info["cpu_times"]
            if proc.pid not in ours and times is not None:
                found[proc.pid] = (str(proc.info["name"]), times.user + times.system)
        return found

    def written(self, after: int, until: int) -> tuple[int, int]:
        """Events in (after, until] of the log and the transactions that wrote them."""
        row = self.db.execute(
            "SELECT count(*), count(DISTINCT xmin::text) FROM palimpsest_events"
            " WHERE notification_id > %s AND notification_id <= %s",
            (after, until),
        ).fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def stream(self, job_id: int) -> tuple[int, int]:
        """Events in the job's stream and its last version."""
        row = self.db.execute(
            "SELECT count(*), coalesce(max(originator_version), 0) FROM palimpsest_events"
            " WHERE originator_id = %s",
            (Job.stream_id(job_id),),
        ).fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)


class Profiler:
    """py-spy on the server during one window, if asked for."""

    def __init__(self, folder: Path | None, pid: int, name: str, seconds: float) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.output = folder / f"{name}.txt" if folder else None
        self.args = [
            str(BIN / "py-spy"), "record", "--pid", str(pid), "--format", "raw", "--threads",
            "--idle", "--rate", "100", "--duration", str(max(1, round(seconds))),
            "-o", str(self.output),
        ]  # fmt: skip

    def start(self) -> None:
        if self.output is not None:
            self.output.parent.mkdir(parents=True, exist_ok=True)
            self.process = subprocess.Popen(
                self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )

    def wait(self) -> None:
        if self.process is not None:
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# ------------------------------------------------------------------------------------ phases


@dataclass
class Measured:
    result: PhaseResult
    before: Sample
    after: Sample
    events: int
    transactions: int


def measure(
    load: LoadProcess,
    meter: Meter,
    name: str,
    plan: RoomPlan | HammerPlan,
    profiler: Profiler,
) -> Measured:
    samples: dict[str, Sample] = {}

    def on_mark(mark: str) -> None:
        samples[mark] = meter.sample()
        if mark == "start":
            profiler.start()

    result: PhaseResult = load.run(name, plan, on_mark)
    profiler.wait()
    before, after = samples["start"], samples["end"]
    events, transactions = meter.written(before.last_event, after.last_event)
    return Measured(result, before, after, events, transactions)


def rate_line(counts: dict[str, int], seconds: float) -> str:
    total = sum(counts.values())
    parts = ", ".join(f"{kind} {n / seconds:,.0f}" for kind, n in sorted(counts.items()))
    return f"{total / seconds:10,.0f}/s  ({parts})"


def cpu_line(m: Measured, wall: float) -> str:
    def part(name: str, spent: float | None) -> str:
        if spent is None:
            return f"{name} n/a"
        return f"{name} {spent:.1f} s ({spent / wall:.2f} cores)"

    def diff(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else b - a

    return "   ".join(
        [
            part("server", m.after.server - m.before.server),
            part("postgres", diff(m.before.postgres, m.after.postgres)),
            part("nats", diff(m.before.nats, m.after.nats)),
            part("load", m.result.load_cpu),
        ]
    )


def machine_line(m: Measured, wall: float) -> str:
    """How busy the machine was, and how much of that was not this benchmark's."""
    ours = (m.after.server - m.before.server) + m.result.load_cpu + m.after.bench - m.before.bench
    for before, after in ((m.before.postgres, m.after.postgres), (m.before.nats, m.after.nats)):
        if before is not None and after is not None:
            ours += after - before
    busy = m.after.busy - m.before.busy
    kernel = (m.after.kernel - m.before.kernel) / wall
    others = max(busy - ours, 0.0) / wall
    steal = (m.after.steal - m.before.steal) / wall
    spent: Counter[str] = Counter()
    for pid, (name, cpu) in m.after.foreign.items():
        before = m.before.foreign.get(pid)
        spent[name] += cpu - (before[1] if before and before[0] == name else 0.0)
    top = ", ".join(
        f"{name} {cpu / wall:.2f}" for name, cpu in spent.most_common(3) if cpu >= 0.01 * wall
    )
    line = (
        f"busy {busy / wall + kernel:.2f} of {psutil.cpu_count()} cores; irq+softirq "
        f"{kernel:.2f}, steal {steal:.2f}, other processes {others:.2f} cores"
        + (f" (seen: {top})" if top else "")
    )
    if others > OTHERS_WARNING:
        line += "  WARNING: other work on this machine skewed this phase"
    return line


def print_slices(r: PhaseResult) -> None:
    """How the window's figures moved over time (by when each edit was sent)."""
    step = r.seconds / SLICES

    def row(name: str, values: list[str]) -> None:
        print(f"    {name:<21}" + "".join(f"{value:>9}" for value in values))

    print(f"  over the window, {SLICES} slices of {step:.0f} s:")
    row("edits acked/s", [f"{s.count / step:,.0f}" for s in r.ack_slices])
    row("edit -> ack p50 ms", [f"{s.p50 * MS:,.0f}" for s in r.ack_slices])
    row("edit -> ack p99 ms", [f"{s.p99 * MS:,.0f}" for s in r.ack_slices])
    if r.peer_slices:
        row("-> all peers p99 ms", [f"{s.p99 * MS:,.0f}" for s in r.peer_slices])


def print_common(m: Measured) -> None:
    r = m.result
    print_slices(r)
    wall = m.after.at - m.before.at
    per_tx = m.events / m.transactions if m.transactions else float("nan")
    print(f"  frames server->clients {rate_line(r.frames_in, wall)}")
    print(f"  frames clients->server {rate_line(r.frames_out, wall)}")
    print(
        f"  events written         {m.events:,} ({m.events / wall:,.0f}/s) in "
        f"{m.transactions:,} transactions ({per_tx:.2f} events/transaction)"
    )
    print(f"  cpu (user+sys)         {cpu_line(m, wall)}")
    print(f"  machine                {machine_line(m, wall)}")
    print(f"  load event-loop lag    {r.lag.line()}")


def report_room(m: Measured) -> bool | None:
    r = m.result
    wall = r.seconds
    print(
        f"\n== room: {r.members} clients in one job, {wall:.0f} s "
        f"(cursor {CURSOR_HZ:.0f} Hz + {EDITS_HZ:.0f} edits/s each) =="
    )
    print(
        f"  connected              {r.connected}/{r.members}, deflate "
        f"{'on' if r.deflate else 'off'}, closed by the server during the phase: {r.closed}"
    )
    print(
        f"  edits                  sent {r.edits_sent:,} ({r.edits_sent / wall:,.1f}/s, asked "
        f"{r.members * EDITS_HZ:,.0f}/s), acked {r.acked:,}, rejected {r.rejected}, "
        f"unanswered {r.unanswered}, sent late {r.late_sends:,}"
    )
    print(f"  edit -> ack            {r.ack.line()}")
    print(f"  edit -> peer           {r.peer.line()}")
    print(f"  edit -> all peers      {r.all_peers.line()}")
    print(f"  peer deliveries        {r.deliveries:,} (missing {r.missing:,})")
    if r.reasons:
        print(f"  outcomes               {r.reasons}")
    print_common(m)
    goal = GOAL_PEER_P99.get(r.members)
    if goal is None:
        return None
    met = r.peer.count > 0 and r.peer.p99 < goal and r.missing == 0
    print(
        f"  GOAL p99 edit->peer < {goal * MS:.0f} ms at {r.members} clients: "
        f"{'MET' if met else 'MISSED'} ({r.peer.p99 * MS:.1f} ms, missing {r.missing})"
    )
    return met


def report_hammer(m: Measured, label: str, stream: tuple[int, int], base: int) -> bool:
    r = m.result
    wall = r.seconds
    print(f"\n== hammer: {r.members} sockets, one job, {label}, {wall:.0f} s ==")
    print(
        f"  connected              {r.connected}/{r.members}, deflate "
        f"{'on' if r.deflate else 'off'}, closed by the server during the phase: {r.closed}"
    )
    rate = r.acked / wall
    print(
        f"  committed edits        {r.acked:,} acked in the window = {rate:,.0f} edits/s "
        f"(rejected {r.rejected}, unanswered {r.unanswered})"
    )
    print(f"  edit -> ack            {r.ack.line()}")
    events, version = stream
    durable = events == version == base + r.acked_total
    print(
        f"  durability check       job stream holds {events:,} events, version {version:,}; "
        f"{base} before + {r.acked_total:,} acked commands: {'ok' if durable else 'MISMATCH'}"
    )
    if r.reasons:
        print(f"  outcomes               {r.reasons}")
    print_common(m)
    met = rate >= GOAL_EDITS_PER_S
    print(
        f"  GOAL {GOAL_EDITS_PER_S:,.0f}+ committed edits/s in one job: "
        f"{'MET' if met else 'MISSED'} ({rate:,.0f}/s)"
    )
    return met


# -------------------------------------------------------------------------------------- main


def parse_clients(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",") if part.strip()]
    if any(count < 2 for count in counts):
        raise argparse.ArgumentTypeError("a room needs at least 2 clients")
    return counts


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="window per phase (60)")
    parser.add_argument(
        "--clients", type=parse_clients, default=[50, 200], help="room sizes, e.g. 50,200"
    )
    parser.add_argument("--hammer-sockets", type=int, default=20, help="hammer sockets (20)")
    parser.add_argument("--no-gc-off", action="store_true", help="skip the group-commit-off run")
    parser.add_argument(
        "--compression", choices=["deflate", "none"], default="deflate",
        help="offer permessage-deflate like browsers do (default) or not",
    )  # fmt: skip
    parser.add_argument("--warmup", type=float, default=None, help="seconds before each window")
    parser.add_argument("--py-spy", type=Path, default=None, metavar="DIR", help="profile to DIR")
    parser.add_argument("--quick", action="store_true", help="10 s, 20 clients, 5 sockets")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.clients, args.hammer_sockets = 10.0, [20], 5
    if args.warmup is None:
        args.warmup = min(5.0, max(1.0, args.seconds / 10))
    if args.seconds <= 0 or args.hammer_sockets < 0:
        parser.error("--seconds must be positive and --hammer-sockets not negative")
    return args


def hammer(
    args: argparse.Namespace, server: Server, load: LoadProcess, name: str, label: str
) -> bool:
    compression = None if args.compression == "none" else "deflate"
    target = new_target(server, f"bench room {name}", compression)
    plan = HammerPlan(target, args.hammer_sockets, args.seconds, args.warmup)
    with psycopg.connect(server.database_url, autocommit=True) as db:
        meter = Meter(server, db)
        base = meter.stream(target.job_id)[1]
        profiler = Profiler(args.py_spy, server.process.pid, name, args.seconds)
        measured = measure(load, meter, "hammer", plan, profiler)
        stream = meter.stream(target.job_id)
    return report_hammer(measured, label, stream, base)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    compression = None if args.compression == "none" else "deflate"
    goals: list[tuple[str, bool | None]] = []
    load = LoadProcess()
    try:
        with temp_data_dir("plmr-") as data_dir:
            with running(data_dir) as server:
                print(f"server pid {server.process.pid} at {server.url}, data dir {data_dir}")
                print(
                    f"load process: spawned, one asyncio task per client; warm-up {args.warmup} s"
                )
                with psycopg.connect(server.database_url, autocommit=True) as db:
                    meter = Meter(server, db)
                    for clients in args.clients:
                        target = new_target(server, f"bench room {clients}", compression)
                        plan = RoomPlan(target, clients, args.seconds, args.warmup)
                        name = f"room-{clients}"
                        profiler = Profiler(args.py_spy, server.process.pid, name, args.seconds)
                        met = report_room(measure(load, meter, "room", plan, profiler))
                        goals.append((f"p99 edit->peer at {clients} clients", met))
                if args.hammer_sockets:
                    label = f"group commit on (MAX_BATCH=256, {args.hammer_sockets} in flight)"
                    met = hammer(args, server, load, "hammer-gc-on", label)
                    goals.append(("5,000+ edits/s, group commit on", met))
            if args.hammer_sockets and not args.no_gc_off:
                env = write_shim(data_dir / "shim")
                print(
                    f"\nrestarting the server with PYTHONPATH={env['PYTHONPATH']} whose "
                    "sitecustomize.py sets infra.writer.MAX_BATCH = 1 (group commit off)"
                )
                with running(data_dir, extra_env=env) as server:
                    if SHIM_MARKER not in server.log():
                        raise RuntimeError(f"the shim did not run:\n{server.log_tail()}")
                    print(f"server pid {server.process.pid}: log says {SHIM_MARKER!r}")
                    label = "group commit OFF (MAX_BATCH=1 via sitecustomize shim)"
                    met = hammer(args, server, load, "hammer-gc-off", label)
                    goals.append(("5,000+ edits/s, group commit off (for comparison)", met))
    finally:
        load.close()
    print("\n== goals ==")
    for goal, met in goals:
        verdict = "n/a (no goal for this size)" if met is None else ("MET" if met else "MISSED")
        print(f"  {goal:<52} {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
