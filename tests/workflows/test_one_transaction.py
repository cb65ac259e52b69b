"""A fresh run done in one transaction (workflows.engine.one_transaction):
all of it commits, or nothing does and the recorded way takes over."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction

from tests.workflows.flows import FakeProvider
from tests.workflows.helpers import start_in_one_transaction_until_killed
from ticketing.models import AuditLogEntry, CapacityHold, TicketType
from workflows.engine import advance_claimed, start, start_claimed
from workflows.engine.one_transaction import run_in_one_transaction
from workflows.models import RunStatus, StepStatus, WorkflowRun, WorkflowStep

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("require_postgres", "check_inventory"),
]


def _held(ticket_type: TicketType) -> int:
    ticket_type.refresh_from_db()
    return ticket_type.held


def test_a_run_of_local_steps_commits_with_its_record(ticket_type: TicketType) -> None:
    # when
    run = run_in_one_transaction("test.reserve_twice", "order:one", {"ticket_type": ticket_type.pk})

    # then the run, its steps and their effects are there, as the recorded way leaves them
    assert run is not None
    run = WorkflowRun.objects.get(pk=run.pk)
    assert run.status == RunStatus.COMPLETED
    assert run.finished_at is not None and run.lease_owner == ""
    steps = list(WorkflowStep.objects.filter(run=run).order_by("sequence"))
    assert [(s.sequence, s.name, s.status, s.attempt) for s in steps] == [
        (1, "reserve", StepStatus.COMPLETED, 1),
        (2, "reserve again", StepStatus.COMPLETED, 1),
    ]
    assert [s.idempotency_key for s in steps] == [f"wf-{run.pk}-1", f"wf-{run.pk}-2"]
    assert run.output == {"holds": [s.result["hold"] for s in steps]}
    assert CapacityHold.objects.filter(pk__in=run.output["holds"]).count() == 2
    assert _held(ticket_type) == 2
    # the completion is audited like any other
    audit = AuditLogEntry.objects.get(
        content_type=ContentType.objects.get_for_model(WorkflowRun), object_id=str(run.pk)
    )
    assert (audit.source_state, audit.target_state) == (RunStatus.RUNNING, RunStatus.COMPLETED)


def test_a_failed_step_leaves_nothing_and_the_recorded_way_records_it(ticket_type: TicketType) -> None:
    data = {"ticket_type": ticket_type.pk, "then_fail": True}

    # when
    run = run_in_one_transaction("test.reserve_twice", "order:fails", data)

    # then nothing at all was written: no run, no hold
    assert run is None
    assert not WorkflowRun.objects.exists()
    assert not CapacityHold.objects.exists()
    assert _held(ticket_type) == 0

    # and the recorded way does it again, fails, and compensates what it can
    recorded, lease = start_claimed("test.reserve_twice", "order:fails", data)
    assert lease is not None
    recorded = advance_claimed(recorded, lease)
    assert recorded.status == RunStatus.FAILED
    failed = recorded.steps.get(name="fail")
    assert failed.status == StepStatus.FAILED
    assert failed.error["message"] == "asked to fail"


def test_an_external_step_hands_the_run_to_the_recorded_way(ticket_type: TicketType, provider: FakeProvider) -> None:
    data = {"ticket_type": ticket_type.pk, "quantity": 2, "amount": 2500}

    # when: its first step is local, its second calls the provider
    run = run_in_one_transaction("test.reserve_and_charge", "order:external", data)

    # then the local step was rolled back and the provider never called
    assert run is None
    assert not WorkflowRun.objects.exists()
    assert _held(ticket_type) == 0
    assert provider.charged_total() == 0


def test_an_existing_run_is_left_alone(ticket_type: TicketType, broker: Any) -> None:
    # given a run with this key, started the usual way
    broker.mode = "hold"
    existing = start("test.reserve_twice", "order:taken", {"ticket_type": ticket_type.pk})

    # when
    run = run_in_one_transaction("test.reserve_twice", "order:taken", {"ticket_type": ticket_type.pk})

    # then
    assert run is None
    assert list(WorkflowRun.objects.values_list("pk", "status")) == [(existing.pk, RunStatus.PENDING)]
    assert _held(ticket_type) == 0


def test_racing_starts_with_one_key_do_the_work_once(ticket_type: TicketType) -> None:
    # given 8 callers with the same business key at once
    barrier = threading.Barrier(8)
    results: list[WorkflowRun | None] = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            barrier.wait()
            results.append(run_in_one_transaction("test.reserve_twice", "order:race", {"ticket_type": ticket_type.pk}))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # then exactly one did it; the others were told to look for the existing run
    assert errors == []
    done = [run for run in results if run is not None]
    assert len(results) == 8 and len(done) == 1
    assert WorkflowRun.objects.count() == 1
    assert CapacityHold.objects.count() == 2
    assert _held(ticket_type) == 2


def test_a_process_killed_mid_pass_leaves_nothing(ticket_type: TicketType) -> None:
    # when the process dies after the first step's body, before the pass ends
    start_in_one_transaction_until_killed(
        "test.reserve_twice", "order:killed", {"ticket_type": ticket_type.pk}, step="reserve"
    )

    # then its transaction died with it: no run, no hold, nothing to take over
    # (the killed backend rolls back a moment after the process dies)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '10s'")
        TicketType.objects.select_for_update().get(pk=ticket_type.pk)
    assert not WorkflowRun.objects.exists()
    assert not CapacityHold.objects.exists()
    assert _held(ticket_type) == 0
