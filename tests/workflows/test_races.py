"""Concurrent workers and concurrent starts on real PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connections

from tests.concurrency import run_concurrently
from tests.workflows.helpers import fresh, steps, wait_until
from workflows.engine import Context, advance, start, workflow
from workflows.engine.leases import claim
from workflows.engine.runs import wake
from workflows.models import RunStatus, WorkflowRun

pytestmark = pytest.mark.django_db(transaction=True)

gate = threading.Event()
calls: Counter[str] = Counter()


@workflow("test.slow_call")
def slow_call(ctx: Context) -> str:
    def call(key: str) -> str:
        calls["slow"] += 1
        gate.wait(timeout=20)
        return "done"

    return ctx.step("slow call", call, external=True)


@workflow("test.quick")
def quick(ctx: Context) -> int:
    return ctx.step("one", lambda: 1)


def test_workers_racing_to_advance_one_run_only_one_claims_it(broker) -> None:
    # given a pending run, and four workers that got its message at once
    broker.mode = "hold"
    run = start("test.slow_call", "race:advance")
    gate.clear()
    calls.clear()
    barrier = threading.Barrier(4)
    results: list[bool] = []

    def worker() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(advance(run.pk))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()

    # then three find the lease taken and return while the winner is still in the step
    assert wait_until(lambda: len(results) == 3, timeout=20)
    assert results == [False, False, False]
    assert fresh(run).status == RunStatus.RUNNING
    gate.set()
    for thread in threads:
        thread.join(timeout=20)
    assert sorted(results) == [False, False, False, True]
    assert calls["slow"] == 1
    run = fresh(run)
    assert run.status == RunStatus.COMPLETED
    assert [(s.name, s.attempt) for s in steps(run)] == [("slow call", 1)]


def test_concurrent_starts_with_one_business_key_make_one_run() -> None:
    outcomes = run_concurrently([lambda: start("test.quick", "race:start").pk for _ in range(8)])

    assert all(error is None for _, error in outcomes)
    assert len({run_id for run_id, _ in outcomes}) == 1
    assert WorkflowRun.objects.filter(business_key="race:start").count() == 1


def test_an_event_during_a_pass_is_not_lost_when_the_run_suspends(broker) -> None:
    # given a worker in the middle of a pass
    broker.mode = "hold"
    run = start("test.quick", "race:wakeup")
    lease = claim(run.pk)
    assert lease is not None

    # when a signal's wake-up lands while it holds the lease (its message is a no-op now)
    from django.db import transaction

    with transaction.atomic():
        wake(run.pk, reason="signal:test")
    assert advance(run.pk) is False

    # then releasing the lease keeps the run due, and the worker goes round again
    assert lease.suspend(None) is True
    assert fresh(run).wake_at is not None
