"""Keeps a projection that is not updated inline (the annotation index) following the log.

One follower of a projection leads across server instances: it holds a PostgreSQL advisory
lock of its own, keyed by the projection's name, on a dedicated connection. The leader runs
the projection's `catch_up` in a worker thread whenever it is nudged (after each commit of
this process) or every `poll_interval` (commits of other processes). The runner's tracking
row lock already applies each event once; the leader lock only keeps the others idle.
"""

from __future__ import annotations

import asyncio
import time
import zlib

import structlog

from projections.jetstream_publishing import Backoff
from projections.leader_lock import LeaderLock, LeadershipLost
from projections.runner import ProjectionRunner

log = structlog.get_logger(__name__)

LOCK_KEY_BASE = 7311000  # + a hash of the projection's name; 7310001/2: schema set-up, relay


def follower_lock_key(name: str) -> int:
    return LOCK_KEY_BASE + zlib.crc32(name.encode()) % 100_000


class ProjectionFollower:
    def __init__(
        self,
        runner: ProjectionRunner,
        conninfo: str,
        *,
        poll_interval: float = 1.0,
        lock_retry: float = 2.0,
        lock_check_interval: float = 5.0,
    ) -> None:
        self.runner = runner
        self._name = runner.projection.name
        self._lock = LeaderLock(conninfo, follower_lock_key(self._name))
        self._poll_interval = poll_interval
        self._lock_retry = lock_retry
        self._lock_check_interval = lock_check_interval
        self._nudge = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested = False
        self._task: asyncio.Task[None] | None = None
        self.leading = False

    async def run(self) -> None:
        """Leads when it gets the lock, waits otherwise; returns after `stop()`."""
        self._task = asyncio.current_task()
        self._loop = asyncio.get_running_loop()
        try:
            while not self._stop_requested:
                if await self._lock.try_acquire():
                    await self._lead()
                else:
                    await self._sleep(self._lock_retry)
        finally:
            self.leading = False
            await self._lock.release()

    async def stop(self, grace: float = 5.0) -> None:
        """Asks run() to return; cancels it if it does not within `grace` seconds."""
        self._stop_requested = True
        self._nudge.set()
        task = self._task
        if task is None or task.done() or task is asyncio.current_task():
            return
        done, _ = await asyncio.wait({task}, timeout=grace)
        if not done:
            task.cancel()
            await asyncio.wait({task})

    def nudge(self) -> None:
        """Catch up now rather than at the next poll (callable from any thread)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._nudge.set)

    async def _lead(self) -> None:
        log.info("projection follower leads", projection=self._name)
        self.leading = True
        checked = time.monotonic()
        backoff = Backoff()
        try:
            while not self._stop_requested:
                if time.monotonic() - checked >= self._lock_check_interval:
                    await self._lock.check()
                    checked = time.monotonic()
                self._nudge.clear()
                try:
                    await asyncio.to_thread(self.runner.catch_up)
                except Exception as error:  # the database away: try again later
                    log.warning(
                        "projection follower failed", projection=self._name, error=repr(error)
                    )
                    await self._sleep(backoff.next())
                    continue
                backoff.reset()
                await self._sleep(self._poll_interval, clear=False)
        except LeadershipLost as error:
            log.warning(
                "projection follower lost its lock", projection=self._name, error=str(error)
            )
        finally:
            self.leading = False
            await self._lock.release()

    async def _sleep(self, seconds: float, *, clear: bool = True) -> None:
        """Sleeps, or less if nudged or stopped. Without `clear`, a nudge that came while
        catching up wakes it at once."""
        if self._stop_requested:
            return
        if clear:
            self._nudge.clear()
        try:
            await asyncio.wait_for(self._nudge.wait(), timeout=seconds)
        except TimeoutError:
            pass
