"""Process chores shared by the embedded servers: stopping, locking, log tails, at-exit stops."""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import os
import signal
import stat
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import psutil
import structlog

log = structlog.get_logger(__name__)

log = structlog.get_logger(__name__)

Steps = Sequence[tuple[signal.Signals, float]]
PG_STOP_STEPS: Steps = ((signal.SIGINT, 30.0), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0))
NATS_STOP_STEPS: Steps = ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0))
KILL_STEPS: Steps = ((signal.SIGKILL, 5.0),)


def short_hash(path: Path) -> str:
    return hashlib.sha256(os.fsencode(path)).hexdigest()[:12]


def is_gone(pid: int) -> bool:
    """True when pid has exited (a zombie waiting to be reaped counts as exited)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not is_gone(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def stop_process(pid: int, steps: Steps) -> None:
    """Send each signal in turn until pid exits; raise if it survives them all."""
    for sig, grace in steps:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if wait_gone(pid, grace):
            return
        log.warning("process still running after signal", pid=pid, signal=sig.name)
    raise RuntimeError(f"process {pid} did not exit")


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on folder/.lock, held across processes."""
    with open(folder / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def add_mode(path: Path, bits: int) -> None:
    mode = path.stat().st_mode
    if mode & bits != bits:
        path.chmod(stat.S_IMODE(mode) | bits)


def grant_traverse(path: Path) -> None:
    """Let other users (the postgres account) pass through every parent folder of path."""
    for parent in path.parents:
        if not parent.stat().st_mode & stat.S_IXOTH:
            add_mode(parent, stat.S_IXOTH)
            log.info("granted traverse permission to others", path=str(parent))


class StopAtExit:
    """Stops the server at interpreter exit, in the process that started it only."""

    _owner_pid: int | None = None

    def stop(self) -> None:
        raise NotImplementedError

    def _arm_atexit(self) -> None:
        self._owner_pid = os.getpid()
        atexit.unregister(self._stop_at_exit)
        atexit.register(self._stop_at_exit)

    def _disarm_atexit(self) -> None:
        self._owner_pid = None
        atexit.unregister(self._stop_at_exit)

    def _stop_at_exit(self) -> None:
        if self._owner_pid == os.getpid():
            self.stop()
