"""A Palimpsest server on a free port in a thread, for tests and benchmarks."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from infra.cli import ensure_admin
from infra.logs import configure_logging
from infra.runtime import Runtime
from infra.settings import Settings
from web.app import create_app

ADMIN_PASSWORD = "admin-password-1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class ServerThread:
    """A uvicorn server running in a daemon thread of the test process."""

    server: uvicorn.Server
    thread: threading.Thread

    @classmethod
    def start(cls, config: uvicorn.Config, what: str) -> ServerThread:
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError(f"{what} did not start")
            time.sleep(0.02)
        return cls(server, thread)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


@dataclass
class LiveServer:
    database_url: str
    data_dir: Path
    port: int = field(default_factory=free_port)
    share_dir: Path | None = None
    nats_url: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # more Settings fields
    runtime: Runtime | None = None
    _serving: ServerThread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        configure_logging("console")
        settings = Settings(
            data_dir=self.data_dir,
            port=self.port,
            admin_password=ADMIN_PASSWORD,
            share_dir=self.share_dir,
            **self.options,
        )
        self.runtime = Runtime.open(settings, self.database_url, self.nats_url)
        ensure_admin(self.runtime, ADMIN_PASSWORD)
        config = uvicorn.Config(
            create_app(self.runtime),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            # Longer than any pause in a test: a test's client reusing a kept-alive connection
            # must not race the server closing it (httpx: RemoteProtocolError).
            timeout_keep_alive=120,
        )
        self._serving = ServerThread.start(config, "the test server")
        return self

    def stop(self) -> None:
        if self._serving is not None:
            self._serving.stop()
        if self.runtime is not None:
            self.runtime.close()
