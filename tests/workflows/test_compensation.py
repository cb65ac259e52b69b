"""Failures compensate completed steps in reverse order; compensations are
recorded and retried; cancellation and deadlines compensate too."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from tests.factories import UserFactory
from tests.workflows.flows import reserve
from tests.workflows.helpers import fresh, rewind, steps
from ticketing.exceptions import SoldOut
from ticketing.models import AuditLogEntry
from ticketing.services.capacity import capacity_release
from workflows.engine import Context, RetryPolicy, cancel, retry_now, start, workflow
from workflows.engine.sweepers import wake_due_runs
from workflows.models import RunStatus, StepKind, StepStatus, WorkflowRun

pytestmark = pytest.mark.django_db(transaction=True)

attempts: Counter[str] = Counter()
undone: list[str] = []
switches = {"undo_broken": False}


@pytest.fixture(autouse=True)
def _reset() -> None:
    attempts.clear()
    undone.clear()
    switches["undo_broken"] = False


def _sold_out() -> None:
    raise SoldOut()


def _undo_flaky(result: str) -> None:
    attempts["undo"] += 1
    if attempts["undo"] <= 2:
        raise ConnectionError(f"undo failed #{attempts['undo']}")
    undone.append(result)


@workflow("test.flaky_undo")
def flaky_undo(ctx: Context) -> None:
    ctx.step("first", lambda: "first", compensate=lambda r: undone.append(r))
    ctx.step("second", lambda: "second", compensate=_undo_flaky, retry=RetryPolicy(max_attempts=5, initial_delay=10))
    ctx.step("third", _sold_out)


def _undo_stubborn(result: str) -> None:
    if switches["undo_broken"]:
        raise ConnectionError("still broken")
    undone.append(result)


@workflow("test.stubborn_undo")
def stubborn_undo(ctx: Context) -> None:
    ctx.step("only", lambda: "only", compensate=_undo_stubborn, retry=RetryPolicy(max_attempts=2, initial_delay=0))
    ctx.step("boom", _sold_out)


@workflow("test.cancellable")
def cancellable(ctx: Context) -> str:
    ctx.step("book", lambda: "booked", compensate=lambda r: undone.append(r))
    ctx.sleep("wait a day", timedelta(days=1))
    return ctx.step("never", lambda: "reached")


@workflow("test.awaits_confirmation")
def awaits_confirmation(ctx: Context) -> Any:
    hold = ctx.step(
        "reserve",
        lambda: reserve(ctx.input["ticket_type"], 2, ctx.business_key),
        compensate=lambda result: capacity_release(hold_id=result["hold"]),
    )
    ctx.wait_signal("payment.confirmed")
    return hold


def _transitions(run: WorkflowRun) -> list[tuple[str, str]]:
    entries = AuditLogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(WorkflowRun), object_id=run.pk, field="status"
    ).order_by("id")
    return list(entries.values_list("source_state", "target_state"))


def test_a_compensation_that_fails_twice_then_succeeds() -> None:
    # given a run whose last step is refused, and whose second undo fails twice
    run = fresh(start("test.flaky_undo", "order:undo"))

    # then the run compensates in reverse order, and the failed undo waits in the database
    assert run.status == RunStatus.COMPENSATING
    assert run.error["code"] == "sold_out" and run.error["step"] == "third"
    _first, second, _third, undo_second = steps(run)
    assert (undo_second.kind, undo_second.compensates_id) == (StepKind.COMPENSATION, second.pk)
    assert undo_second.status == StepStatus.WAITING and undo_second.attempt == 1
    assert run.wake_at == undo_second.next_attempt_at > timezone.now()
    assert undone == []

    # when the backoffs pass
    rewind(run, seconds=15)
    wake_due_runs()
    assert steps(run)[3].attempt == 2
    rewind(run, seconds=30)
    wake_due_runs()

    # then the undo succeeded on its third attempt, and the first step was undone after it
    run = fresh(run)
    assert run.status == RunStatus.COMPENSATED
    assert undone == ["second", "first"]
    rows = steps(run)
    assert [(s.name, s.kind, s.status, s.attempt) for s in rows] == [
        ("first", StepKind.ACTION, StepStatus.COMPLETED, 1),
        ("second", StepKind.ACTION, StepStatus.COMPLETED, 1),
        ("third", StepKind.ACTION, StepStatus.FAILED, 1),
        ("compensate:second", StepKind.COMPENSATION, StepStatus.COMPLETED, 3),
        ("compensate:first", StepKind.COMPENSATION, StepStatus.COMPLETED, 1),
    ]
    assert [bool(entry["error"]) for entry in rows[3].history] == [True, True, False]
    assert rows[4].compensates_id == rows[0].pk
    assert _transitions(run) == [("running", "compensating"), ("compensating", "compensated")]


def test_a_compensation_that_gives_up_is_retried_by_staff() -> None:
    switches["undo_broken"] = True
    run = fresh(start("test.stubborn_undo", "order:stubborn"))
    assert run.status == RunStatus.COMPENSATION_FAILED
    assert run.error["compensation"]["message"] == "still broken"

    # when staff fix the cause and press "retry now"
    switches["undo_broken"] = False
    staff = UserFactory()
    assert retry_now(run, by=staff) is True

    run = fresh(run)
    assert run.status == RunStatus.COMPENSATED
    assert undone == ["only"]
    first_try, second_try = [s for s in steps(run) if s.kind == StepKind.COMPENSATION]
    assert (first_try.status, first_try.attempt) == (StepStatus.FAILED, 2)
    assert (second_try.status, second_try.attempt) == (StepStatus.COMPLETED, 1)
    assert ("compensation_failed", "compensating") in _transitions(run)
    audit = AuditLogEntry.objects.get(object_id=run.pk, transition="retry_compensation")
    assert audit.actor == staff


def test_cancel_compensates_and_stops_a_waiting_run() -> None:
    run = start("test.cancellable", "order:cancel")
    assert fresh(run).status == RunStatus.WAITING

    assert cancel(run, reason="customer asked") is True

    run = fresh(run)
    assert run.status == RunStatus.CANCELLED and run.error["code"] == "cancelled"
    assert undone == ["booked"]
    assert [s.name for s in steps(run)] == ["book", "wait a day", "compensate:book"]
    assert cancel(run) is False  # already finished: nothing changes


def test_a_deadline_expires_a_waiting_run(ticket_type, check_inventory) -> None:
    # given a run waiting for a payment that never comes
    run = start(
        "test.awaits_confirmation",
        "order:deadline",
        {"ticket_type": ticket_type.pk},
        deadline=timezone.now() + timedelta(minutes=30),
    )
    run = fresh(run)
    assert run.status == RunStatus.WAITING and run.wake_at is None
    ticket_type.refresh_from_db()
    assert ticket_type.held == 2

    # when the deadline passes, the sweeper finds it
    rewind(run, seconds=31 * 60)
    assert wake_due_runs() == 1

    # then the run failed on its deadline and gave the capacity back
    run = fresh(run)
    assert run.status == RunStatus.COMPENSATED
    assert run.error["code"] == "deadline_exceeded"
    ticket_type.refresh_from_db()
    assert ticket_type.held == 0
