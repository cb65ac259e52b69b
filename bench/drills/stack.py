"""bench.stack's production-style stack (gunicorn, Celery worker, beat), run
against the drill's own PostgreSQL cluster and Redis server, with what a
drill needs on top: kill a worker, start another in its place."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from pathlib import Path

import psycopg
import redis

from bench.drills.services import OwnPostgres, OwnRedis
from bench.stack import VENV_BIN, Proc, Stack, StackConfig


class DrillStack(Stack):
    def __init__(self, config: StackConfig, run_dir: Path, pg: OwnPostgres, rds: OwnRedis) -> None:
        self.pg = pg
        self.rds = rds
        self.worker_generation = 0
        super().__init__(config, run_dir)

    def prepare_database(self) -> None:
        with psycopg.connect(self.pg.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.config.db_name}"')
            conn.execute(f'CREATE DATABASE "{self.config.db_name}"')
        redis.Redis.from_url(self.rds.url(self.config.redis_db)).flushdb()
        subprocess.run(
            [str(VENV_BIN / "python"), "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=self.config.source_dir,
            env=self.env,
            check=True,
        )
        self.deadlocks_before = self.deadlocks()

    def deadlocks(self) -> int:
        with psycopg.connect(self.pg.admin_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT deadlocks FROM pg_stat_database WHERE datname = %s", [self.config.db_name]
            ).fetchone()
        return int(row[0]) if row else 0

    def cleanup(self) -> None:
        """The drill removes its own PostgreSQL and Redis (bench.drills.run)."""

    # --- workers -------------------------------------------------------------------------

    def workers(self) -> list[Proc]:
        return [p for p in self.procs if p.name.startswith("celery-worker") and p.popen.poll() is None]

    def dead_workers(self) -> list[Proc]:
        """Workers that exited and were not replaced yet."""
        live = {p.name.split("-gen")[0] for p in self.workers()}
        return [
            p
            for p in self.procs
            if p.name.startswith("celery-worker") and p.popen.poll() is not None and p.name.split("-gen")[0] not in live
        ]

    def respawn_worker(self, proc: Proc) -> Proc:
        """A new worker in the place of `proc` (celery-worker-<n>[-gen<g>])."""
        match = re.match(r"celery-worker-(\d+)", proc.name)
        assert match is not None, f"not a worker: {proc.name}"
        return self.spawn_worker(int(match.group(1)))

    def spawn_worker(self, n: int) -> Proc:
        """A Celery worker like the ones Stack.start() starts (a process group of its own)."""
        self.worker_generation += 1
        return self._spawn(
            f"celery-worker-{n}-gen{self.worker_generation}",
            self.worker_argv(f"bench{n}g{self.worker_generation}@%h"),
        )

    def pool_children(self, proc: Proc) -> list[int]:
        """The prefork pool processes of a worker (its children)."""
        path = Path(f"/proc/{proc.popen.pid}/task/{proc.popen.pid}/children")
        with contextlib.suppress(OSError):
            return [int(pid) for pid in path.read_text().split()]
        return []

    def kill_group(self, proc: Proc) -> None:
        """SIGKILL the worker's whole process group (main process and pool): a
        machine or container losing the worker, no warm shutdown, no acks."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(timeout=10)
