"""The embedded Postgres and NATS launchers, with real processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import psutil
import psycopg
import pytest
from nats.js.api import StreamConfig

from infra.embedded import EmbeddedNats, EmbeddedPostgres, postgres_home


@pytest.fixture
def servers() -> Iterator[list[EmbeddedPostgres | EmbeddedNats]]:
    """Servers a test started; stopped at the end even if the test failed."""
    started: list[EmbeddedPostgres | EmbeddedNats] = []
    yield started
    for server in started:
        server.stop()


def _wait_gone(pid: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.02)
    raise AssertionError(f"process {pid} still running")


def _postmaster_pid(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        return psutil.Process(row[0]).ppid()  # while the backend still lives


def _insert(url: str, value: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS notes (body text)")
        conn.execute("INSERT INTO notes VALUES (%s)", (value,))


def _read(url: str) -> list[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        return [row[0] for row in conn.execute("SELECT body FROM notes ORDER BY body")]


def _start_in_child_then_kill(kind: str, folder: Path) -> str:
    """Start a server from another Python process, SIGKILL that process, return the URL."""
    code = (
        "import sys, time; from pathlib import Path; import infra.embedded as e; "
        f"print('URL', e.{kind}(Path(sys.argv[1])).start(), flush=True); time.sleep(60)"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    url = ""
    for line in child.stdout:  # structlog also writes to stdout
        if line.startswith("URL "):
            url = line.split()[1]
            break
    child.kill()
    child.wait()
    child.stdout.close()
    assert url, f"{kind} did not start in the child process"
    return url


def test_postgres_keeps_data_across_restarts(tmp_path: Path, servers: list) -> None:
    first = EmbeddedPostgres(tmp_path / "pg")
    servers.append(first)
    url = first.start()
    assert url.startswith("postgresql://postgres@/postgres?host=")
    assert first.socket_dir == tmp_path / "pg" and first.port == 5432
    assert (first.socket_dir / f".s.PGSQL.{first.port}").is_socket()
    _insert(url, "kept")
    postmaster = _postmaster_pid(url)
    first.stop()
    _wait_gone(postmaster, timeout=0.5)  # stop() waits for the exit
    first.stop()  # idempotent

    second = EmbeddedPostgres(tmp_path / "pg")
    servers.append(second)
    assert _read(second.start()) == ["kept"]


def test_postgres_recovers_after_sigkill_of_postmaster(tmp_path: Path, servers: list) -> None:
    first = EmbeddedPostgres(tmp_path / "pg")
    servers.append(first)
    url = first.start()
    _insert(url, "committed")
    postmaster = _postmaster_pid(url)
    os.kill(postmaster, signal.SIGKILL)
    _wait_gone(postmaster)

    second = EmbeddedPostgres(tmp_path / "pg")
    servers.append(second)
    url = second.start()
    assert _postmaster_pid(url) != postmaster
    assert _read(url) == ["committed"]


def test_postgres_adopts_server_of_killed_process(tmp_path: Path, servers: list) -> None:
    orphan_url = _start_in_child_then_kill("EmbeddedPostgres", tmp_path / "pg")
    _insert(orphan_url, "from the orphan")
    orphan = _postmaster_pid(orphan_url)

    pg = EmbeddedPostgres(tmp_path / "pg")
    servers.append(pg)
    url = pg.start()
    assert _postmaster_pid(url) == orphan
    assert _read(url) == ["from the orphan"]
    pg.stop()
    _wait_gone(orphan, timeout=0.5)


def test_postgres_long_data_dir_gets_short_socket_dir(tmp_path: Path, servers: list) -> None:
    data_dir = tmp_path / ("d" * 60) / ("e" * 60)
    pg = EmbeddedPostgres(data_dir)
    servers.append(pg)
    url = pg.start()
    socket_path = pg.socket_dir / f".s.PGSQL.{pg.port}"
    assert pg.socket_dir != data_dir and len(str(socket_path)) < 100
    assert socket_path.is_socket()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_postgres_home_outside_home_folders(tmp_path: Path) -> None:
    assert postgres_home(tmp_path / "data") == tmp_path / "data" / "pg"
    under_home = postgres_home(Path.home() / "some-project" / ".palimpsest")
    if os.geteuid() == 0:
        assert not under_home.is_relative_to(Path.home()) and under_home.name == "pg"
        assert postgres_home(Path.home() / "x") != under_home  # one folder per data dir


async def _publish(url: str) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="EVENTS", subjects=["events.>"]))
        ack = await js.publish("events.one", b"hello")
        assert ack.seq == 1
    finally:
        await nc.close()


async def _read_first(url: str) -> bytes:
    nc = await nats.connect(url)
    try:
        msg = await nc.jetstream().get_msg("EVENTS", 1)
        return msg.data or b""
    finally:
        await nc.close()


def test_nats_jetstream_keeps_messages_across_restarts(tmp_path: Path, servers: list) -> None:
    first = EmbeddedNats(tmp_path / "nats")
    servers.append(first)
    url = first.start()
    assert url.startswith("nats://127.0.0.1:")
    pid = first.pid
    assert pid is not None
    asyncio.run(_publish(url))
    first.stop()
    _wait_gone(pid, timeout=0.5)
    assert not first.pid_file.exists()
    first.stop()  # idempotent

    second = EmbeddedNats(tmp_path / "nats")
    servers.append(second)
    assert asyncio.run(_read_first(second.start())) == b"hello"


def test_nats_ignores_stale_pid_file(tmp_path: Path, servers: list) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    store = tmp_path / "nats"
    store.mkdir()
    server = EmbeddedNats(store)
    servers.append(server)
    server.pid_file.write_text(f"{dead.pid}\n")
    server.port_file.write_text("1\n")
    url = server.start()
    assert server.pid != dead.pid
    assert server.port_file.read_text().strip() == url.rsplit(":", 1)[1]
    asyncio.run(_publish(url))


def test_nats_adopts_server_of_killed_process(tmp_path: Path, servers: list) -> None:
    orphan_url = _start_in_child_then_kill("EmbeddedNats", tmp_path / "nats")
    server = EmbeddedNats(tmp_path / "nats")
    servers.append(server)
    assert server.start() == orphan_url
    asyncio.run(_publish(orphan_url))
    pid = server.pid
    assert pid is not None
    server.stop()
    _wait_gone(pid, timeout=0.5)


def test_two_nats_servers_get_different_ports(tmp_path: Path, servers: list) -> None:
    one, two = EmbeddedNats(tmp_path / "one"), EmbeddedNats(tmp_path / "two")
    servers.extend([one, two])
    assert one.start() != two.start()


def test_nats_restarts_on_its_previous_port(tmp_path: Path, servers: list) -> None:
    first = EmbeddedNats(tmp_path / "nats")
    servers.append(first)
    url = first.start()
    first.stop()
    second = EmbeddedNats(tmp_path / "nats")
    servers.append(second)
    assert second.start() == url
