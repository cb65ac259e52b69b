"""Fixtures for the workflow tests: a clean registry and Redis, a broker that
can be held or broken, and a real Celery worker process."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings

import tests.workflows.flows  # noqa: F401 - registers the shared workflows
from tests.workflows.flows import FakeProvider
from tests.workflows.helpers import ROOT, WorkerProcess, process_env, wait_until
from workflows.engine import outbox, registry


@pytest.fixture(autouse=True)
def _isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A version registered by a test is gone after it."""
    monkeypatch.setattr(registry, "_definitions", dict(registry._definitions))


@pytest.fixture
def test_redis() -> redis.Redis:
    """The test Redis database (the broker, the cache and the fake provider), emptied."""
    if not settings.REDIS_URL:
        pytest.fail("the workflow tests need Redis: run them with REDIS_URL=redis://127.0.0.1:6379/2")
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    return client


@pytest.fixture
def provider(test_redis: redis.Redis) -> FakeProvider:
    return FakeProvider()


@dataclass
class Broker:
    """Stands between the engine and Celery: deliver (default), hold messages
    without sending them, or fail every publish like a broker that is down."""

    mode: str = "deliver"
    held: list[tuple[str, list[Any]]] = field(default_factory=list)
    failures: int = 0

    def send(self, real: Any, task_name: str, args: list[Any], kwargs: dict[str, Any] | None = None) -> None:
        if self.mode == "hold":
            self.held.append((task_name, list(args)))
        elif self.mode == "fail":
            self.failures += 1
            raise ConnectionError("broker unreachable")
        else:
            real(task_name, args, kwargs)


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Broker:
    controller = Broker()
    real = outbox.send
    monkeypatch.setattr(outbox, "send", lambda *a, **kw: controller.send(real, *a, **kw))
    return controller


@pytest.fixture
def celery_worker(transactional_db: None, test_redis: redis.Redis, tmp_path: Path) -> Iterator[WorkerProcess]:
    """A real `celery -A config worker -P solo` on the test database and the
    test Redis. Waits until it reports ready; always stopped afterwards (TERM,
    then KILL), before the test database is flushed."""
    log = tmp_path / "celery-worker.log"
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        "-P",
        "solo",
        "-l",
        "info",
        "-n",
        f"wftest-{uuid.uuid4().hex[:8]}@%h",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--include",
        "tests.workflows.flows",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env=process_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    worker = WorkerProcess(process, log)
    try:
        wait_until(lambda: " ready." in worker.output() or process.poll() is not None, timeout=60, interval=0.1)
        if " ready." not in worker.output():
            pytest.fail("the Celery worker did not start:\n" + worker.output()[-4000:])
        yield worker
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
