"""Helpers for the workflow tests: moving a run's clock, waiting, other processes."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F

from workflows.models import OutboxMessage, WorkflowRun, WorkflowStep

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class WorkerProcess:
    """A Celery worker started by the `celery_worker` fixture."""

    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def rewind(run: WorkflowRun, *, seconds: float) -> None:
    """Let `seconds` pass for one run: every time it waits for (wake-up,
    deadline, lease expiry, step retries and timers) moves that far back."""
    delta = timedelta(seconds=seconds)
    WorkflowRun.objects.filter(pk=run.pk).update(
        wake_at=F("wake_at") - delta,
        deadline=F("deadline") - delta,
        lease_expires_at=F("lease_expires_at") - delta,
        nudged_at=F("nudged_at") - delta,
    )
    WorkflowStep.objects.filter(run_id=run.pk).update(next_attempt_at=F("next_attempt_at") - delta)


def rewind_outbox(*, seconds: float) -> None:
    OutboxMessage.objects.update(available_at=F("available_at") - timedelta(seconds=seconds))


def fresh(run: WorkflowRun) -> WorkflowRun:
    return WorkflowRun.objects.get(pk=run.pk)


def steps(run: WorkflowRun) -> list[WorkflowStep]:
    return list(WorkflowStep.objects.filter(run_id=run.pk).order_by("sequence"))


def wait_until(predicate: Callable[[], bool], *, timeout: float = 20, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def wait_for_row_release(run: WorkflowRun) -> None:
    """Block until no other session holds the run's row lock (a killed
    worker's backend rolls back a moment after the process dies)."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '10s'")
        WorkflowRun.objects.select_for_update().get(pk=run.pk)


def process_env() -> dict[str, str]:
    """Environment for another process on the test database and test Redis."""
    db = connection.settings_dict
    url = (
        f"postgres://{quote(db['USER'] or '')}:{quote(db['PASSWORD'] or '')}"
        f"@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": url,
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_TASK_ALWAYS_EAGER": "0",
    }


def advance_until_killed(run: WorkflowRun, *, step: str, timeout: float = 30) -> None:
    """Advance `run` in a child process that stops right after `step`'s body
    (before its record), then SIGKILL it there: a worker dying at the worst
    moment."""
    _run_until_killed([str(run.pk), step], timeout=timeout)


def start_in_one_transaction_until_killed(
    workflow_type: str, business_key: str, data: dict[str, Any], *, step: str, timeout: float = 30
) -> None:
    """Start a run in one transaction (workflows.engine.one_transaction) in a
    child process that stops right after `step`'s body, then SIGKILL it there."""
    _run_until_killed(["one-transaction", workflow_type, business_key, json.dumps(data), step], timeout=timeout)


def _run_until_killed(arguments: list[str], *, timeout: float) -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.workflows.crash_child", *arguments],
        cwd=ROOT,
        env=process_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output: list[str] = []
    try:
        deadline = time.monotonic() + timeout
        assert child.stdout is not None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([child.stdout], [], [], 0.5)
            if ready:
                line = child.stdout.readline()
                if not line and child.poll() is not None:
                    break
                output.append(line)
                if line.strip() == "BODY_DONE":
                    return
        raise AssertionError("the child never reached the step's body:\n" + "".join(output))
    finally:
        child.kill()
        child.wait(timeout=10)
        if child.stdout:
            child.stdout.close()
