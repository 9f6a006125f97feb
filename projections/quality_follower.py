"""Runs the quality projection after every commit, in one server process at a time."""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog

from infra import lock_keys
from projections.leader_lock import LeaderLock, LeadershipLost
from projections.runner import ProjectionRunner

log = structlog.get_logger(__name__)

QUALITY_LOCK_KEY = lock_keys.QUALITY


class QualityFollower:
    """Catches the quality projection up with the log whenever nudged (and every `poll`
    seconds), while it holds the advisory lock; the other processes wait for the lock."""

    def __init__(
        self,
        runner: ProjectionRunner,
        conninfo: str,
        *,
        lock_key: int = QUALITY_LOCK_KEY,
        poll: float = 1.0,
        lock_retry: float = 1.0,
        lock_check_interval: float = 2.0,
    ) -> None:
        self.runner = runner
        self._lock = LeaderLock(conninfo, lock_key)
        self._poll = poll
        self._lock_retry = lock_retry
        self._lock_check_interval = lock_check_interval
        self._nudge = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self.leading = False

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            while not self._stopping:
                if await self._lock.try_acquire():
                    await self._lead()
                else:
                    await self._wait(self._lock_retry)
        finally:
            self.leading = False
            await self._lock.release()

    async def _lead(self) -> None:
        self.leading = True
        checked = time.monotonic()
        try:
            while not self._stopping:
                if time.monotonic() - checked >= self._lock_check_interval:
                    await self._lock.check()
                    checked = time.monotonic()
                self._nudge.clear()
                try:
                    await asyncio.to_thread(self.runner.catch_up)
                except Exception:  # a bad task must not stop the reports of the others
                    log.exception("quality projection failed")
                    await self._wait(self._lock_retry)
                    continue
                await self._wait(self._poll)
        except LeadershipLost as error:
            log.warning("quality projection lost its lock", error=str(error))
        finally:
            self.leading = False
            await self._lock.release()

    async def _wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._nudge.wait(), timeout=seconds)

    def nudge(self) -> None:
        """Look at the log now (callable from any thread)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._nudge.set)

    async def stop(self) -> None:
        self._stopping = True
        self._nudge.set()
