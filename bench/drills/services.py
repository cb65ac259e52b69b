"""The drill's own PostgreSQL cluster and Redis server.

A drill stops and restarts them, so it never uses the machine's shared
PostgreSQL (5432) or Redis (6379), which other people's tests and benchmarks
use meanwhile: each drill run initialises a throw-away PostgreSQL cluster
(initdb, a free loopback port, no Unix socket) and starts a redis-server on a
free port, both under its run directory, and removes them at the end.

PostgreSQL refuses to run as root: when the drill runs as root, the cluster's
programs run as the `postgres` user (runuser) and its directory is given to
that user.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import IO

import psycopg
import redis

from bench.stack import free_port


class ServiceError(RuntimeError):
    pass


def postgres_bindir() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin with initdb, else pg_config's, else None."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if candidates:
        return candidates[-1].parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        bindir = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True).stdout.strip()
        if bindir and (Path(bindir) / "initdb").is_file():
            return Path(bindir)
    if shutil.which("initdb"):
        return Path(str(shutil.which("initdb"))).parent
    return None


def missing_programs() -> list[str]:
    """What a drill needs that this machine lacks (empty when a drill can run)."""
    missing = []
    if postgres_bindir() is None:
        missing.append("PostgreSQL server programs (initdb, pg_ctl)")
    if shutil.which("redis-server") is None:
        missing.append("redis-server")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        missing.append("runuser (to run PostgreSQL as the postgres user)")
    return missing


class OwnPostgres:
    """A PostgreSQL cluster of the drill's own: init, start, stop, restart, remove."""

    def __init__(self, base_dir: Path, port: int | None = None) -> None:
        bindir = postgres_bindir()
        if bindir is None:
            raise ServiceError("PostgreSQL server programs (initdb, pg_ctl) not found")
        self.bindir = bindir
        self.base_dir = base_dir
        self.data_dir = base_dir / "data"
        self.log_path = base_dir / "postgres.log"
        self.port = port or free_port()
        self.as_root = os.geteuid() == 0

    def _run(self, argv: list[str], *, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", "postgres", "--"] if self.as_root else []
        result = subprocess.run(prefix + argv, capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise ServiceError(f"{' '.join(argv[:2])} failed ({result.returncode}): {result.stderr.strip()[-800:]}")
        return result

    @property
    def admin_url(self) -> str:
        return self.url("postgres")

    def url(self, db_name: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{db_name}"

    def init(self) -> None:
        if self.base_dir.exists():
            shutil.rmtree(self.base_dir)
        self.base_dir.mkdir(parents=True)
        if self.as_root:
            shutil.chown(self.base_dir, user="postgres", group="postgres")
        self._run(
            [
                str(self.bindir / "initdb"),
                *("-D", str(self.data_dir), "-U", "postgres", "-A", "trust"),
                *("-E", "UTF8", "--no-sync", "--locale", "C.UTF-8"),
            ]
        )
        settings = {
            "port": str(self.port),
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": "''",
            "max_connections": "100",
            "shared_buffers": "128MB",
            "log_min_messages": "warning",
            "log_line_prefix": "'%m [%p] '",
        }
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# bench.drills\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def start(self, timeout: float = 60) -> None:
        self._run(
            [
                str(self.bindir / "pg_ctl"),
                *("-D", str(self.data_dir), "-l", str(self.log_path), "-w", "-t", str(int(timeout)), "start"),
            ],
            timeout=timeout + 10,
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: `fast` (roll back open transactions, disconnect
        everyone, checkpoint) or `immediate` (like a crash: recovery at start)."""
        self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"], check=False)

    def running(self) -> bool:
        return self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "status"], check=False).returncode == 0

    def ready(self) -> bool:
        try:
            with psycopg.connect(self.admin_url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def remove(self) -> None:
        if self.data_dir.exists() and self.running():
            self.stop("immediate")
        shutil.rmtree(self.base_dir, ignore_errors=True)


class OwnRedis:
    """A redis-server of the drill's own, in its own process group, keeping
    nothing on disk (like the machine's Redis): a stop loses what it held."""

    def __init__(self, base_dir: Path, port: int | None = None, *, persist: bool = False) -> None:
        self.base_dir = base_dir
        self.port = port or free_port()
        self.persist = persist
        self.popen: subprocess.Popen[bytes] | None = None
        self.log: IO[bytes] | None = None
        self.starts = 0

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self, timeout: float = 20) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        if self.log is None:
            self.log = (self.base_dir / "redis.log").open("ab")
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "everysec"]
            if self.persist
            else ["--save", "", "--appendonly", "no"]
        )
        argv = [str(shutil.which("redis-server") or "redis-server"), "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--dir", str(self.base_dir), "--daemonize", "no", *persistence]
        self.popen = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise ServiceError(f"redis-server exited with {self.popen.returncode}; see {self.base_dir}/redis.log")
            if self.ready():
                return
            time.sleep(0.1)
        raise ServiceError(f"redis-server on port {self.port} did not answer in {timeout:.0f} s")

    def ready(self) -> bool:
        try:
            return bool(redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1).ping())
        except redis.RedisError:
            return False

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM (a clean shutdown; without persistence it saves nothing) or
        SIGKILL (a crash); waits for the process to end."""
        if self.popen is None or self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=5)

    def remove(self) -> None:
        self.stop(kill=True)
        if self.log is not None:
            self.log.close()
            self.log = None
