"""The load side of bench/room.py: the plans, the websocket clients and the phases they run,
in a process of their own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import msgspec
import numpy as np
from harness import (
    READY_TIMEOUT,
    ChildProcess,
    serve_calls,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

REQUEST_TIMEOUT = 60.0
ACK_TIMEOUT = 30.0  # an edit unanswered this long is counted as unanswered
DRAIN_TIMEOUT = 10.0  # after the window: wait this long at most for acks and events in flight
CONNECT_AT_ONCE = 20  # websocket handshakes in flight while a phase connects its clients
CURSOR_HZ = 10.0
EDITS_HZ = 2.0
SLICES = 6  # the window's figures over time, in this many parts
MS = 1000.0
LAG_TICK = 0.01

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
