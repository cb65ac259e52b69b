"""Signals (webhooks) duplicated, reordered, late, or never coming."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from tests.workflows.helpers import fresh, rewind, steps
from workflows.engine import Context, signal, start, workflow
from workflows.engine.sweepers import wake_due_runs
from workflows.exceptions import RunNotFound, SignalTimeout
from workflows.models import RunStatus, StepStatus, WorkflowSignal

pytestmark = pytest.mark.django_db(transaction=True)


@workflow("test.payment_events")
def payment_events(ctx: Context) -> dict[str, Any]:
    authorized = ctx.wait_signal("payment.authorized")
    captured = ctx.wait_signal("payment.captured")
    return {"authorized": authorized, "captured": captured}


@workflow("test.hold_expiry")
def hold_expiry(ctx: Context) -> str:
    try:
        ctx.wait_signal("payment.confirmed", timeout=timedelta(minutes=15))
    except SignalTimeout:
        ctx.step("release hold", lambda: "released")
        return "expired"
    return "paid"


def test_duplicated_and_reordered_webhooks_are_each_applied_once() -> None:
    run = start("test.payment_events", "payment:1")
    assert fresh(run).status == RunStatus.WAITING

    # the capture arrives before the authorization, then again (the provider retries)
    assert signal(run, "payment.captured", {"event": "evt_2"}, dedup_key="evt_2") is True
    assert signal(run, "payment.captured", {"event": "evt_2", "retry": 1}, dedup_key="evt_2") is False
    assert fresh(run).status == RunStatus.WAITING

    # the authorization arrives: the run consumes both, in its own order
    assert signal(run, "payment.authorized", {"event": "evt_1"}, dedup_key="evt_1") is True
    run = fresh(run)
    assert run.status == RunStatus.COMPLETED
    assert run.output == {"authorized": {"event": "evt_1"}, "captured": {"event": "evt_2"}}

    # a late duplicate changes nothing
    assert signal(run, "payment.authorized", {"event": "evt_1"}, dedup_key="evt_1") is False
    assert WorkflowSignal.objects.filter(run=run).count() == 2
    assert not WorkflowSignal.objects.filter(run=run, consumed=False).exists()


def test_a_wait_that_times_out_takes_the_timeout_path() -> None:
    run = start("test.hold_expiry", "hold:1")
    run = fresh(run)
    assert run.status == RunStatus.WAITING
    assert timedelta(minutes=14) < run.wake_at - timezone.now() <= timedelta(minutes=15)

    rewind(run, seconds=15 * 60 + 1)
    wake_due_runs()

    run = fresh(run)
    assert run.status == RunStatus.COMPLETED and run.output == "expired"
    wait, release = steps(run)
    assert wait.status == StepStatus.FAILED and wait.error["code"] == "signal_timeout"
    assert release.status == StepStatus.COMPLETED

    # a payment confirmation arriving after that is kept for the record, not consumed
    assert signal(run, "payment.confirmed", {"late": True}, dedup_key="evt_late") is True
    assert fresh(run).output == "expired"
    assert WorkflowSignal.objects.get(run=run).consumed is False


def test_a_signal_in_time_wins_over_the_timeout() -> None:
    run = start("test.hold_expiry", "hold:2")
    signal(run, "payment.confirmed", {"ok": True}, dedup_key="evt_ok")

    run = fresh(run)
    assert run.status == RunStatus.COMPLETED and run.output == "paid"
    assert [s.status for s in steps(run)] == [StepStatus.COMPLETED]


def test_a_signal_for_an_unknown_run_is_a_clear_error() -> None:
    with pytest.raises(RunNotFound):
        signal(987654, "payment.confirmed", {}, dedup_key="evt_x")
