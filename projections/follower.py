"""Keeps a projection following the log in the background, one leader across server instances.

The leader holds a PostgreSQL advisory lock and brings the projection up to the end of the log
whenever it is nudged (after each commit of this process) and at least every `poll_interval`
(commits of other processes), but not more often than every `settle` seconds: under a stream
of commits it takes them in blocks rather than one transaction each. The runner's tracking
row makes every event apply exactly once even if two followers ran at the same time; the lock
only keeps the others from idling on it.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from projections.leader_lock import LeaderLock, LeadershipLost
from projections.runner import ProjectionRunner

log = structlog.get_logger(__name__)


class ProjectionFollower:
    def __init__(
        self,
        runner: ProjectionRunner,
        conninfo: str,
        lock_key: int,
        *,
        poll_interval: float = 0.5,
        settle: float = 0.05,
        lock_retry: float = 1.0,
        lock_check_interval: float = 2.0,
    ) -> None:
        self.runner = runner
        self._lock = LeaderLock(conninfo, lock_key)
        self._poll_interval = poll_interval
        self._settle = settle
        self._lock_retry = lock_retry
        self._lock_check_interval = lock_check_interval
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self.leading = False

    async def run(self) -> None:
        """Leads when it gets the lock, waits otherwise; returns after `stop()`."""
        self._loop = asyncio.get_running_loop()
        name = self.runner.projection.name
        try:
            while not self._stopping:
                if await self._lock.try_acquire():
                    await self._lead(name)
                else:
                    await self._sleep(self._lock_retry)
        finally:
            self.leading = False
            await self._lock.release()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    def nudge(self) -> None:
        """Catch up now rather than at the next poll (callable from any thread)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    async def _lead(self, name: str) -> None:
        log.info("projection follower leads", projection=name)
        self.leading = True
        checked = time.monotonic()
        try:
            while not self._stopping:
                if time.monotonic() - checked >= self._lock_check_interval:
                    await self._lock.check()
                    checked = time.monotonic()
                self._wake.clear()
                try:
                    await asyncio.to_thread(self.runner.catch_up)
                except Exception:  # a bad event or a lost connection: retry after a pause
                    log.exception("projection follower failed to catch up", projection=name)
                    await self._sleep(self._lock_retry)
                    continue
                await asyncio.sleep(self._settle)
                await self._sleep(self._poll_interval)
        except LeadershipLost as error:
            log.warning("projection follower lost its lock", projection=name, error=str(error))
        finally:
            self.leading = False
            await self._lock.release()

    async def _sleep(self, seconds: float) -> None:
        if self._stopping:
            return
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        except TimeoutError:
            pass
