"""Starting runs, recording steps, retrying with backoff, replaying history."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.utils import timezone

from tests.workflows.helpers import fresh, rewind, steps
from ticketing.exceptions import SoldOut
from ticketing.models import AuditLogEntry
from workflows.engine import Context, RetryPolicy, advance, start, workflow
from workflows.engine.sweepers import wake_due_runs
from workflows.exceptions import StepFailed, UnknownWorkflow
from workflows.models import OutboxMessage, RunStatus, StepKind, StepStatus, WorkflowRun

pytestmark = pytest.mark.django_db(transaction=True)

calls: Counter[str] = Counter()
keys_seen: list[str] = []


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()
    keys_seen.clear()


@workflow("test.two_steps")
def two_steps(ctx: Context) -> dict[str, Any]:
    doubled = ctx.step("double", lambda: ctx.input["n"] * 2)
    called = ctx.step("call", lambda key: {"key": key, "n": doubled + 1}, external=True)
    return {"doubled": doubled, "called": called}


def _flaky_call(key: str) -> str:
    keys_seen.append(key)
    calls["flaky"] += 1
    if calls["flaky"] < 3:
        raise ConnectionError(f"provider timeout #{calls['flaky']}")
    return "accepted"


@workflow("test.flaky_external")
def flaky_external(ctx: Context) -> str:
    return ctx.step("call", _flaky_call, external=True, retry=RetryPolicy(max_attempts=3, initial_delay=30))


@workflow("test.sold_out")
def sold_out(ctx: Context) -> None:
    def reserve() -> None:
        calls["reserve"] += 1
        raise SoldOut()

    ctx.step("reserve", reserve)


@workflow("test.fallback")
def fallback(ctx: Context) -> str:
    try:
        ctx.step("primary", lambda: (_ for _ in ()).throw(SoldOut()))
    except StepFailed:
        ctx.sleep("back off", timedelta(hours=1))
        return ctx.step("secondary", lambda: "secondary")
    return "primary"


def test_a_run_completes_and_records_every_step() -> None:
    run = fresh(start("test.two_steps", "order:1", {"n": 2}))

    assert run.status == RunStatus.COMPLETED
    assert run.version == 1
    assert run.output == {"doubled": 4, "called": {"key": f"wf-{run.pk}-2", "n": 5}}
    recorded = steps(run)
    assert [(s.sequence, s.name, s.kind, s.status, s.attempt, s.external) for s in recorded] == [
        (1, "double", StepKind.ACTION, StepStatus.COMPLETED, 1, False),
        (2, "call", StepKind.ACTION, StepStatus.COMPLETED, 1, True),
    ]
    assert all(s.started_at and s.finished_at and s.duration_ms is not None for s in recorded)
    assert [len(s.history) for s in recorded] == [1, 1]
    assert run.started_at and run.finished_at and run.lease_owner == "" and run.wake_at is None
    audit = AuditLogEntry.objects.filter(content_type=ContentType.objects.get_for_model(WorkflowRun), object_id=run.pk)
    assert list(audit.values_list("source_state", "target_state")) == [("running", "completed")]


def test_start_is_idempotent_on_the_business_key() -> None:
    first = start("test.two_steps", "order:2", {"n": 1})
    again = start("test.two_steps", "order:2", {"n": 99})

    assert again.pk == first.pk
    assert WorkflowRun.objects.filter(business_key="order:2").count() == 1
    assert fresh(first).output["doubled"] == 2


def test_starting_an_unknown_workflow_is_a_clear_error() -> None:
    with pytest.raises(UnknownWorkflow):
        start("test.nope", "x")


def test_a_start_rolled_back_with_its_callers_transaction_leaves_nothing(broker) -> None:
    broker.mode = "hold"
    with pytest.raises(RuntimeError), transaction.atomic():
        start("test.two_steps", "order:3", {"n": 1})
        raise RuntimeError("the caller failed after starting the run")

    assert not WorkflowRun.objects.exists()
    assert not OutboxMessage.objects.exists()
    assert broker.held == []


def test_external_retries_back_off_in_the_database_with_a_stable_key() -> None:
    # given a provider that times out twice
    run = start("test.flaky_external", "order:4")

    # then the first failure is recorded and the run sleeps in the database
    run = fresh(run)
    (step,) = steps(run)
    assert run.status == RunStatus.WAITING
    assert step.status == StepStatus.WAITING and step.attempt == 1
    assert step.error["message"] == "provider timeout #1"
    assert run.wake_at == step.next_attempt_at
    assert timedelta(seconds=23) < step.next_attempt_at - timezone.now() < timedelta(seconds=37)

    # an early wake-up (a duplicate or early message) does nothing
    assert advance(run.pk) is False
    assert calls["flaky"] == 1

    # when the backoff passes, the sweeper fires the retry; the next backoff doubles
    rewind(run, seconds=40)
    assert wake_due_runs() == 1
    (step,) = steps(run)
    assert step.attempt == 2 and step.status == StepStatus.WAITING
    assert timedelta(seconds=47) < step.next_attempt_at - timezone.now() < timedelta(seconds=73)

    rewind(run, seconds=80)
    wake_due_runs()
    run = fresh(run)
    (step,) = steps(run)
    assert run.status == RunStatus.COMPLETED and run.output == "accepted"
    assert step.attempt == 3 and step.status == StepStatus.COMPLETED
    assert [entry["error"] is None for entry in step.history] == [False, False, True]
    assert keys_seen == [f"wf-{run.pk}-1"] * 3


def test_a_domain_refusal_is_not_retried_and_fails_the_run() -> None:
    run = fresh(start("test.sold_out", "order:5"))

    assert run.status == RunStatus.FAILED
    assert run.error["code"] == "sold_out" and run.error["step"] == "reserve"
    assert calls["reserve"] == 1
    (step,) = steps(run)
    assert step.status == StepStatus.FAILED and step.attempt == 1


def test_a_caught_failure_replays_deterministically() -> None:
    run = fresh(start("test.fallback", "order:6"))
    assert run.status == RunStatus.WAITING

    rewind(run, seconds=3601)
    wake_due_runs()

    run = fresh(run)
    assert run.status == RunStatus.COMPLETED and run.output == "secondary"
    assert [(s.name, s.status) for s in steps(run)] == [
        ("primary", StepStatus.FAILED),
        ("back off", StepStatus.COMPLETED),
        ("secondary", StepStatus.COMPLETED),
    ]
