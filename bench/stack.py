"""The production-style stack on this machine, started and stopped by the bench.

gunicorn (sync workers) on a free loopback port, a Celery worker for the
default queue, one for the `email` queue at a lower CPU priority, and Celery
beat, against a dedicated PostgreSQL database (`bench_ticketing`, dropped and
created with `migrate`) and a dedicated Redis database number. Every process
is started in its own session (process group) and stopped by its id, always:
on success, on failure and on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent

PG_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
DEFAULT_DB_NAME = "bench_ticketing"
DEFAULT_REDIS_DB = 14
# Written into the bench's Redis database so a database that holds someone
# else's keys is never flushed.
REDIS_OWNER_KEY = "bench:owner"
# Written into a source snapshot: the commit it was taken from.
SOURCE_NOTE = ".bench-source"
# The Celery queues (config/settings.py: CELERY_TASK_QUEUES, CELERY_TASK_ROUTES).
DEFAULT_QUEUE = "celery"
EMAIL_QUEUE = "email"
EMAIL_WORKER_NICE = 10


@dataclass
class StackConfig:
    web_workers: int = 3
    celery_workers: int = 1  # worker processes (`celery worker` instances)
    celery_concurrency: int = 2  # prefork children per worker
    # One more worker, for the `email` queue alone, niced (EMAIL_WORKER_NICE)
    # with one child: in a rush the web and the payment confirmations get the
    # CPU first and the e-mails catch up after. False: the workers above
    # consume the `email` queue too.
    email_worker: bool = True
    # The e-mail worker's pool: "prefork" (one child) or "solo" (the tasks run
    # in the worker process itself, with no hand-off to a child per task).
    email_pool: str = "prefork"
    db_name: str = DEFAULT_DB_NAME
    redis_db: int = DEFAULT_REDIS_DB
    keep_db: bool = False
    shim: bool = False  # serve bench.shim's stand-in for the public checkout API
    email_backend: str = "django.core.mail.backends.dummy.EmailBackend"
    # The code the stack runs: the repository itself, or a frozen copy of it
    # (see source_snapshot) so that edits made meanwhile cannot change a run.
    source_dir: Path = ROOT
    extra_env: dict[str, str] = field(default_factory=dict)


def source_dir_for(choice: str, run_dir: Path) -> Path:
    """The code a run uses: `tree` (the repository in place), `snapshot` (a
    copy of the working tree in run_dir/src) or an earlier snapshot's folder."""
    if choice == "tree":
        return ROOT
    if choice == "snapshot":
        return source_snapshot(run_dir / "src")
    source_dir = Path(choice).resolve()
    if not (source_dir / "manage.py").is_file():
        raise SystemExit(f"--source {choice}: no manage.py there")
    return source_dir


def source_snapshot(target: Path) -> Path:
    """Copy the working tree's files (tracked and untracked, not ignored) to
    `target`: the repository is shared and edited while a run goes on."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in listed:
        if not raw:
            continue
        relative = raw.decode()
        source = ROOT / relative
        if not source.is_file():
            continue  # deleted in the tree but not yet in the index
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)
    (target / SOURCE_NOTE).write_text(git_describe())
    return target


def git_describe(cwd: Path = ROOT) -> str:
    """The commit of the working tree, "+dirty" if it has changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=cwd, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty.strip() else "")


def source_commit(source_dir: Path) -> str:
    """What code a run ran: the snapshot's note, or the repository's state now."""
    note = source_dir / SOURCE_NOTE
    return note.read_text().strip() if note.is_file() else git_describe()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_url(db_name: str) -> str:
    return f"postgres://postgres@127.0.0.1:5432/{db_name}"


def redis_url(db: int) -> str:
    return f"redis://127.0.0.1:6379/{db}"


def stack_env(config: StackConfig, port: int) -> dict[str, str]:
    """The environment of every process of the stack (and of the bench's own
    Django, which prepares the data and audits the result)."""
    env = {
        "DATABASE_URL": database_url(config.db_name),
        "REDIS_URL": redis_url(config.redis_db),
        "CACHE_KEY_PREFIX": "bench",
        "SECRET_KEY": "bench-secret-key-not-for-production-0123456789abcdef",
        "DEBUG": "0",
        "SITE_URL": f"http://127.0.0.1:{port}",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "CONN_MAX_AGE": "600",
        "PAYMENT_PROVIDERS": "sandbox",
        "EMAIL_BACKEND": config.email_backend,
        # Every simulated buyer comes from its own loopback address, but a
        # rush from one machine still trips a per-IP limit meant for bots.
        "API_ANON_RATE": "1000000/min",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    if config.shim:
        env["DJANGO_SETTINGS_MODULE"] = "bench.shim_settings"
    env.update(config.extra_env)
    return env


# --- database and redis ------------------------------------------------------------


def _pg_admin() -> psycopg.Connection[Any]:
    return psycopg.connect(PG_ADMIN_URL, autocommit=True)


def database_drop(db_name: str) -> None:
    assert db_name.startswith("bench"), "the bench only drops its own databases"
    with _pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


def database_create(db_name: str) -> None:
    database_drop(db_name)
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{db_name}"')


def database_deadlocks(db_name: str) -> int:
    """PostgreSQL's own count of deadlocks detected in the database."""
    with _pg_admin() as conn:
        row = conn.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = %s", [db_name]).fetchone()
    return int(row[0]) if row else 0


def redis_reset(db: int) -> None:
    client = redis.Redis.from_url(redis_url(db))
    if client.dbsize() and not client.exists(REDIS_OWNER_KEY):
        raise RuntimeError(f"Redis database {db} holds keys that are not the bench's; pick another one with --redis-db")
    client.flushdb()
    client.set(REDIS_OWNER_KEY, "bench")


@contextlib.contextmanager
def django_in_process(db_name: str, env: dict[str, str], *, keep_db: bool = False) -> Iterator[None]:
    """A fresh database `db_name`, migrated, and Django set up in this process
    on it with `env` (the in-process profiles); afterwards the connections
    are closed and the database dropped (unless `keep_db`)."""
    database_create(db_name)
    try:
        subprocess.run(
            [str(VENV_BIN / "python"), "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env={**os.environ, **env},
            check=True,
        )
        os.environ.update(env)
        import django

        django.setup()
        yield
        from django.db import connections

        connections.close_all()
    finally:
        if not keep_db:
            database_drop(db_name)


# --- processes -----------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]


class Stack:
    """Start with `start()`, stop with `stop()` (idempotent); or use `running()`."""

    def __init__(self, config: StackConfig, run_dir: Path) -> None:
        self.config = config
        self.run_dir = run_dir
        self.port = free_port()
        self.env = {**os.environ, **stack_env(config, self.port)}
        self.procs: list[Proc] = []
        self.deadlocks_before = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, name: str, argv: list[str]) -> Proc:
        log_path = self.run_dir / f"{name}.log"
        log = log_path.open("wb")
        popen = subprocess.Popen(
            argv, cwd=self.config.source_dir, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        proc = Proc(name, popen, log_path, log)
        self.procs.append(proc)
        return proc

    def prepare_database(self) -> None:
        database_create(self.config.db_name)
        redis_reset(self.config.redis_db)
        subprocess.run(
            [str(VENV_BIN / "python"), "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=self.config.source_dir,
            env=self.env,
            check=True,
        )
        self.deadlocks_before = database_deadlocks(self.config.db_name)

    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.prepare_database()
        self._spawn(
            "gunicorn",
            [
                str(VENV_BIN / "gunicorn"),
                # (Older snapshots, compared with --source, have no config file.)
                *(
                    ["--config", "config/gunicorn.py"]
                    if (self.config.source_dir / "config/gunicorn.py").exists()
                    else []
                ),
                "config.wsgi:application",
                "--workers",
                str(self.config.web_workers),
                "--worker-class",
                "sync",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--backlog",
                "2048",
                "--log-level",
                "warning",
            ],
        )
        for n in range(self.config.celery_workers):
            self._spawn(f"celery-worker-{n}", self.worker_argv(f"bench{n}@%h"))
        if self.config.email_worker:
            # `nice` execs the worker: same pid, so the same process group.
            self._spawn(
                "celery-email",
                [
                    "nice",
                    "-n",
                    str(EMAIL_WORKER_NICE),
                    *self.worker_argv("bench-email@%h", queues=[EMAIL_QUEUE], concurrency=1),
                    "--pool",
                    self.config.email_pool,
                ],
            )
        self._spawn(
            "celery-beat",
            [
                str(VENV_BIN / "celery"),
                "-A",
                "config",
                "beat",
                "--loglevel",
                "WARNING",
                "--schedule",
                str(self.run_dir / "celerybeat-schedule"),
            ],
        )
        self.wait_healthy()

    def worker_queues(self) -> list[str]:
        """What the general workers consume: the default queue, and `email`
        too unless a worker of its own does."""
        return [DEFAULT_QUEUE] if self.config.email_worker else [DEFAULT_QUEUE, EMAIL_QUEUE]

    def worker_argv(
        self, hostname: str, *, queues: list[str] | None = None, concurrency: int | None = None
    ) -> list[str]:
        """A `celery worker` command line: the general workers' by default."""
        return [
            str(VENV_BIN / "celery"),
            "-A",
            "config",
            "worker",
            "--hostname",
            hostname,
            "--queues",
            ",".join(queues or self.worker_queues()),
            "--concurrency",
            str(concurrency or self.config.celery_concurrency),
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
        ]

    def wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for proc in self.procs:
                if proc.popen.poll() is not None:
                    raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}; see {proc.log_path}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/healthz")
                response = conn.getresponse()
                last = f"{response.status} {response.read()[:200]!r}"
                conn.close()
                if response.status == 200:
                    return
            except OSError as exc:
                last = str(exc)
            time.sleep(0.3)
        raise RuntimeError(f"the stack did not become healthy in {timeout:.0f} s: {last}")

    def check_alive(self) -> list[str]:
        return [f"{p.name} exited with {p.popen.returncode}" for p in self.procs if p.popen.poll() is not None]

    def stop(self) -> None:
        """SIGTERM each process group we started, then SIGKILL what is left."""
        for proc in self.procs:
            if proc.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=max(deadline - time.monotonic(), 0.1))
        for proc in self.procs:
            # Also the process group's children (prefork pool) if the parent died first.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.popen.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=5)
            proc.log.close()
        self.procs.clear()

    def cleanup(self) -> None:
        if not self.config.keep_db:
            with contextlib.suppress(psycopg.Error):
                database_drop(self.config.db_name)
            with contextlib.suppress(redis.RedisError):
                redis.Redis.from_url(redis_url(self.config.redis_db)).flushdb()

    def log_grep(self, needle: str) -> dict[str, int]:
        """Lines containing `needle` in each process's log (e.g. "deadlock detected")."""
        counts: dict[str, int] = {}
        for path in sorted(self.run_dir.glob("*.log")):
            with path.open("rb") as f:
                n = sum(1 for line in f if needle.encode() in line)
            if n:
                counts[path.stem] = n
        return counts


@contextlib.contextmanager
def running(stack: Stack) -> Iterator[Stack]:
    """The stack, started, and stopped whatever happens; SIGTERM (and SIGINT)
    to the bench stops it too. The caller drops the database (cleanup)."""

    def _terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, _terminate)
    # Also when started from a script in the background, which ignores SIGINT.
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
