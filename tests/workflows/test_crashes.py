"""A worker SIGKILLed between a step's body and its record leaves the run
resumable, and the step's effect happens exactly once."""

from __future__ import annotations

import pytest

from tests.workflows.flows import FakeProvider
from tests.workflows.helpers import advance_until_killed, fresh, rewind, steps, wait_for_row_release
from ticketing.models import CapacityHold, HoldStatus, TicketType
from workflows.engine import advance, start
from workflows.engine.leases import lease_duration
from workflows.engine.sweepers import reap_expired_leases
from workflows.models import RunStatus, StepStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("check_inventory")]


def _start(ticket_type: TicketType, key: str):
    return start("test.reserve_and_charge", key, {"ticket_type": ticket_type.pk, "quantity": 3, "amount": 2500})


def _resume_after_lease_expiry(run) -> None:
    # The dead worker's lease still stands: nobody may advance the run yet.
    assert advance(run.pk) is False
    # Once it expires, the reaper frees it and the run resumes (inline: eager Celery).
    rewind(run, seconds=lease_duration().total_seconds() + 1)
    assert reap_expired_leases() == 1


def test_killed_between_a_local_steps_body_and_its_record(ticket_type, provider: FakeProvider, broker) -> None:
    # given a run nobody in this process advances
    broker.mode = "hold"
    run = _start(ticket_type, "order:crash-local")

    # when a worker reserves the capacity and dies before recording the step
    advance_until_killed(run, step="reserve")
    wait_for_row_release(run)

    # then the reservation died with its record: one transaction, rolled back
    ticket_type.refresh_from_db()
    assert ticket_type.held == 0
    assert steps(run) == []
    assert fresh(run).status == RunStatus.RUNNING

    # and the resumed run reserves exactly once
    broker.mode = "deliver"
    _resume_after_lease_expiry(run)
    run = fresh(run)
    assert run.status == RunStatus.COMPLETED
    ticket_type.refresh_from_db()
    assert ticket_type.held == 3
    assert CapacityHold.objects.filter(ticket_type=ticket_type, status=HoldStatus.ACTIVE).count() == 1
    assert [(s.name, s.attempt) for s in steps(run)] == [("reserve", 1), ("charge", 1)]
    assert provider.charged_total() == 2500


def test_killed_between_an_external_call_and_its_record(ticket_type, provider: FakeProvider, broker) -> None:
    broker.mode = "hold"
    run = _start(ticket_type, "order:crash-external")

    # when a worker charges the card and dies before recording the charge
    advance_until_killed(run, step="charge")
    wait_for_row_release(run)

    # then the local step is recorded, the charge is in flight with its key
    reserve, charge = steps(run)
    assert reserve.status == StepStatus.COMPLETED
    assert charge.status == StepStatus.RUNNING and charge.attempt == 1
    assert provider.calls(charge.idempotency_key) == 1

    # and the resumed run calls again with the same key; the provider charges once
    broker.mode = "deliver"
    _resume_after_lease_expiry(run)
    run = fresh(run)
    assert run.status == RunStatus.COMPLETED
    reserve, charge = steps(run)
    assert charge.status == StepStatus.COMPLETED and charge.attempt == 2
    assert run.output["charge"] == f"ch_{charge.idempotency_key}"
    assert provider.calls(charge.idempotency_key) == 2
    assert provider.charged_total() == 2500
    ticket_type.refresh_from_db()
    assert ticket_type.held == 3
