"""The load side of bench/relay.py: websocket clients moving their shapes at a paced rate, in
a process of their own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from harness import ChildProcess, serve_calls
from websockets.asyncio.client import ClientConnection, connect

ACK_TIMEOUT = 30.0
CONNECT_AT_ONCE = 20


@dataclass(frozen=True)
class LoadPlan:
    ws_url: str  # ws://127.0.0.1:PORT
    token: str
    jobs: list[tuple[int, int, int]]  # (job id, label id, first frame); sockets spread over them
    sockets: int
    rate: float  # edits a second, all sockets together
    seconds: float


@dataclass
class LoadResult:
    acked: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0


class Mover:
    """One socket: creates a shape, then moves it, one command at a time, at its pace."""

    def __init__(self, index: int, socket: ClientConnection, label_id: int, frame: int) -> None:
        self.index = index
        self.socket = socket
        self.label_id = label_id
        self.frame = frame
        self.seq = 0
        self.base = 0
        self.shape_id = 0
        self.waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.socket:
                frame = json.loads(raw)
                for one in frame if isinstance(frame, list) else [frame]:
                    if one.get("type") not in ("ack", "reject"):
                        continue
                    waiter = self.waiting.pop(one.get("cid") or "", None)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(one)
        for waiter in self.waiting.values():
            if not waiter.done():
                waiter.set_exception(ConnectionError("the server closed the socket"))

    async def command(self, body: dict[str, Any]) -> dict[str, Any]:
        self.seq += 1
        cid = f"relay-{self.index}-{self.seq}"
        waiter = asyncio.get_running_loop().create_future()
        self.waiting[cid] = waiter
        await self.socket.send(json.dumps({"cid": cid, **body}))
        return await asyncio.wait_for(waiter, ACK_TIMEOUT)

    async def start(self) -> None:
        await self.socket.send(json.dumps({"type": "hello", "since": None}))
        answer = await self.command({"type": "create", "shapes": [self._box(0)]})
        if answer.get("type") != "ack":
            raise RuntimeError(f"socket {self.index} cannot create its shape: {answer}")
        self.shape_id = answer["result"]["shapes"][0]["id"]
        self.base = answer["version"]

    async def move(self) -> str:
        body = {
            "type": "update",
            "kind": "shape",
            "id": self.shape_id,
            "base": self.base,
            "changes": {"points": self._box(self.seq)["points"]},
        }
        answer = await self.command(body)
        if answer.get("type") == "ack":
            self.base = answer["version"]
            return "ack"
        return f"{answer.get('type')} {answer.get('reason')}"

    def _box(self, step: int) -> dict[str, Any]:
        x = 10.0 + step % 300 + self.index / 1000
        return {"type": "rectangle", "label_id": self.label_id, "frame": self.frame,
                "points": [x, 20.0, x + 30.0, 50.0]}  # fmt: skip

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.socket.close(), 5)
        self.reader.cancel()
        with contextlib.suppress(BaseException):
            await self.reader


async def run_load(plan: LoadPlan) -> LoadResult:
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)

    async def open_one(index: int) -> Mover:
        job_id, label_id, frame = plan.jobs[index % len(plan.jobs)]
        url = f"{plan.ws_url}/ws/jobs/{job_id}?token={plan.token}"
        async with gate:
            socket = await connect(url, open_timeout=60, compression=None, max_size=None)
            mover = Mover(index, socket, label_id, frame)
            await mover.start()
            return mover

    movers = await asyncio.gather(*(open_one(i) for i in range(plan.sockets)))
    result = LoadResult()
    interval = plan.sockets / plan.rate  # seconds between one socket's edits
    begin = time.perf_counter()
    end = begin + plan.seconds

    async def pace(mover: Mover) -> None:
        due = begin + interval * mover.index / plan.sockets
        while due < end and time.perf_counter() < end:  # behind schedule: stop at the end
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                outcome = await mover.move()
            except (TimeoutError, ConnectionError) as error:
                outcome = type(error).__name__
            result.outcomes[outcome] += 1
            due += interval

    await asyncio.gather(*(pace(mover) for mover in movers))
    result.seconds = time.perf_counter() - begin
    result.acked = result.outcomes["ack"]
    await asyncio.gather(*(mover.close() for mover in movers))
    return result


def load_process(connection: Connection) -> None:
    def run(name: str, argument: Any) -> Any:
        if name != "load":
            raise ValueError(name)
        return asyncio.run(run_load(argument))

    serve_calls(connection, run)


class LoadProcess(ChildProcess):
    def __init__(self) -> None:
        super().__init__(load_process)

    def load(self, plan: LoadPlan) -> LoadResult:
        self.connection.send(("load", plan))
        status, value = self.connection.recv()
        if status != "ok":
            raise RuntimeError(value)
        result: LoadResult = value
        return result
