"""A fresh run done in one transaction (workflows.engine.one_transaction):
all of it commits, or nothing does and the recorded way takes over."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from tests.workflows.flows import FakeProvider, reserve
from tests.workflows.helpers import start_in_one_transaction_until_killed
from ticketing.models import AuditLogEntry, CapacityHold, TicketType
from workflows import metrics
from workflows.engine import Context, advance_claimed, start, start_claimed, workflow
from workflows.engine.attempts import step_body_finished
from workflows.engine.one_transaction import run_in_one_transaction
from workflows.models import RunStatus, StepStatus, WorkflowRun, WorkflowStep

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("require_postgres", "check_inventory"),
]


def _held(ticket_type: TicketType) -> int:
    ticket_type.refresh_from_db()
    return ticket_type.held


def _recorded_run(workflow_type: str, business_key: str, data: dict[str, Any], **kwargs: Any) -> WorkflowRun:
    """Start the run and advance it step by step, as a caller does once the
    pass in one transaction gave up."""
    run, lease = start_claimed(workflow_type, business_key, data, **kwargs)
    assert lease is not None
    return advance_claimed(run, lease)


def _audit_of(run: WorkflowRun) -> list[dict[str, Any]]:
    """The run's audit rows as a reader sees them, without what differs per row."""
    rows = AuditLogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(WorkflowRun), object_id=str(run.pk)
    ).order_by("id")
    return list(
        rows.values(
            "organization_id", "actor_id", "actor_repr", "field", "transition", "source_state", "target_state", "reason"
        )
    )


@pytest.fixture
def bodies_done() -> Iterator[list[str]]:
    """The names of the step bodies that returned, whether or not their record was kept."""
    names: list[str] = []

    def record(sender: Any, *, name: str, **kwargs: Any) -> None:
        names.append(name)

    step_body_finished.connect(record, weak=False, dispatch_uid="test_one_transaction.bodies_done")
    yield names
    step_body_finished.disconnect(dispatch_uid="test_one_transaction.bodies_done")


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
    recorded = _recorded_run("test.reserve_twice", "order:fails", data)
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


def test_the_run_row_is_inserted_once_already_completed(ticket_type: TicketType) -> None:
    table = WorkflowRun._meta.db_table

    # when
    with CaptureQueriesContext(connection) as captured:
        run = run_in_one_transaction("test.reserve_twice", "order:once", {"ticket_type": ticket_type.pk})

    # then the run table saw one INSERT and nothing else: no UPDATE, no lock, no read
    assert run is not None
    on_runs = [q["sql"] for q in captured.captured_queries if f'"{table}"' in q["sql"]]
    assert len(on_runs) == 1 and on_runs[0].startswith(f'INSERT INTO "{table}"'), on_runs
    # and the row is complete as inserted
    stored = WorkflowRun.objects.get(pk=run.pk)
    assert (stored.status, stored.output, stored.lease_owner, stored.wake_at) == (
        RunStatus.COMPLETED,
        run.output,
        "",
        None,
    )
    assert stored.started_at is not None and stored.finished_at is not None
    assert stored.started_at <= stored.finished_at and stored.updated_at is not None


def test_the_completion_audit_is_the_recorded_ways(ticket_type: TicketType) -> None:
    organization_id = ticket_type.event.organization_id
    data = {"ticket_type": ticket_type.pk}

    # when the same workflow completes in one transaction and the recorded way
    one = run_in_one_transaction("test.reserve_twice", "order:audit-one", data, organization_id=organization_id)
    recorded = _recorded_run("test.reserve_twice", "order:audit-recorded", data, organization=organization_id)
    assert one is not None

    # then both leave one audit row, the same but for the run it names
    assert recorded.status == RunStatus.COMPLETED
    expected = {
        "organization_id": organization_id,
        "actor_id": None,
        "actor_repr": "system",
        "field": "status",
        "transition": "complete",
        "source_state": RunStatus.RUNNING,
        "target_state": RunStatus.COMPLETED,
        "reason": "workflow returned",
    }
    assert _audit_of(one) == _audit_of(recorded) == [expected]


def test_a_taken_key_undoes_the_whole_pass(ticket_type: TicketType, broker: Any, bodies_done: list[str]) -> None:
    # given a run with this key, not yet done (its wake-up held)
    broker.mode = "hold"
    existing = start("test.reserve_twice", "order:taken-late", {"ticket_type": ticket_type.pk})

    # when the pass meets the key only at its end, after both steps' bodies
    run = run_in_one_transaction("test.reserve_twice", "order:taken-late", {"ticket_type": ticket_type.pk})

    # then the steps ran and everything they wrote was undone with the run's insert
    assert run is None
    assert bodies_done == ["reserve", "reserve again"]
    assert not CapacityHold.objects.exists()
    assert _held(ticket_type) == 0
    assert list(WorkflowRun.objects.values_list("pk", "status")) == [(existing.pk, RunStatus.PENDING)]
    assert not WorkflowStep.objects.exists()
    assert _audit_of(existing) == []


def test_a_taken_key_inside_a_caller_transaction_undoes_only_the_pass(
    ticket_type: TicketType, broker: Any, bodies_done: list[str]
) -> None:
    # given a run with this key
    broker.mode = "hold"
    start("test.reserve_twice", "order:taken-nested", {"ticket_type": ticket_type.pk})

    # when the pass runs inside a caller's transaction, between two writes of its own
    with transaction.atomic():
        before = reserve(ticket_type.pk, 1, "caller:before")
        run = run_in_one_transaction("test.reserve_twice", "order:taken-nested", {"ticket_type": ticket_type.pk})
        after = reserve(ticket_type.pk, 1, "caller:after")

    # then the pass was undone (its savepoint) and the caller's writes committed
    assert run is None
    assert bodies_done == ["reserve", "reserve again"]
    assert set(CapacityHold.objects.values_list("pk", flat=True)) == {before["hold"], after["hold"]}
    assert _held(ticket_type) == 2
    assert WorkflowRun.objects.count() == 1


def test_a_pass_inside_a_caller_transaction_goes_with_its_rollback(ticket_type: TicketType) -> None:
    # when the caller's transaction fails after the pass completed
    with pytest.raises(RuntimeError), transaction.atomic():
        run = run_in_one_transaction("test.reserve_twice", "order:outer-fails", {"ticket_type": ticket_type.pk})
        assert run is not None
        raise RuntimeError("the caller fails")

    # then nothing of the run is left
    assert not WorkflowRun.objects.exists()
    assert not WorkflowStep.objects.exists()
    assert not CapacityHold.objects.exists()
    assert _held(ticket_type) == 0


def test_the_run_metrics_fire_on_commit(ticket_type: TicketType, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(metrics, "run_started", lambda *args: calls.append(("started", *args)))
    monkeypatch.setattr(metrics, "run_finished", lambda *args: calls.append(("finished", *args)))

    # when
    with transaction.atomic():
        run = run_in_one_transaction("test.reserve_twice", "order:metrics", {"ticket_type": ticket_type.pk})
        assert calls == []  # not before the commit

    # then
    assert run is not None
    assert calls == [
        ("started", "test.reserve_twice"),
        ("finished", "test.reserve_twice", RunStatus.COMPLETED, run.started_at, run.finished_at),
    ]


def test_a_workflow_that_reads_its_run_takes_the_recorded_way(ticket_type: TicketType) -> None:
    # given a workflow whose step needs its run's id, which a pass in one
    # transaction does not have before its end
    @workflow("test.reads_its_run")
    def reads_its_run(ctx: Context) -> dict[str, Any]:
        hold = ctx.step("reserve", lambda: reserve(ctx.input["ticket_type"], 1, ctx.business_key))
        noted = ctx.step("note the run", partial(dict, run=ctx.run.pk))
        return {**hold, **noted}

    data = {"ticket_type": ticket_type.pk}

    # when
    run = run_in_one_transaction("test.reads_its_run", "order:reads", data)

    # then nothing was written, and the recorded way does it with the run's id
    assert run is None
    assert not WorkflowRun.objects.exists()
    assert _held(ticket_type) == 0
    recorded = _recorded_run("test.reads_its_run", "order:reads", data)
    assert recorded.status == RunStatus.COMPLETED
    assert recorded.output["run"] == recorded.pk


def test_a_first_step_refused_for_good_is_recorded_as_the_recorded_way_would(
    ticket_type: TicketType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: nothing left to sell, so the first step is refused (sold out: not retryable)
    TicketType.objects.filter(pk=ticket_type.pk).update(capacity=0)
    data = {"ticket_type": ticket_type.pk}
    finished: list[str] = []
    monkeypatch.setattr(metrics, "run_finished", lambda workflow_type, status, *args: finished.append(status))

    # when: once in one transaction, once the recorded way (another key)
    with CaptureQueriesContext(connection) as fast_queries:
        fast = run_in_one_transaction("test.reserve_twice", "order:refused", data)
    recorded = _recorded_run("test.reserve_twice", "order:refused-recorded", data)

    # then: the pass recorded the refusal itself, in one more transaction, not by doing the step again
    assert fast is not None
    assert sum(1 for q in fast_queries.captured_queries if q["sql"] == "COMMIT") == 1
    fast = WorkflowRun.objects.get(pk=fast.pk)
    assert fast.status == RunStatus.FAILED == recorded.status
    run_fields = ("organization_id", "workflow_type", "version", "status", "input", "output", "error", "parent_id")
    run_fields += ("wake_at", "deadline", "cancel_requested", "lease_owner", "lease_expires_at")
    assert {f: getattr(fast, f) for f in run_fields} == {f: getattr(recorded, f) for f in run_fields}
    assert fast.error["code"] == "sold_out" and fast.error["step"] == "reserve"
    assert fast.started_at <= fast.finished_at
    step_fields = ("sequence", "name", "kind", "status", "external", "attempt", "next_attempt_at", "result", "error")
    step_fields += ("compensates_id", "child_run_id")
    fast_steps, recorded_steps = (list(run.steps.order_by("sequence").values(*step_fields)) for run in (fast, recorded))
    assert fast_steps == recorded_steps
    (step,) = fast.steps.all()
    assert step.idempotency_key == f"wf-{fast.pk}-1"
    assert [h["error"] for h in step.history] == [step.error] and step.finished_at is not None
    assert _audit_of(fast) == _audit_of(recorded)
    assert [a["transition"] for a in _audit_of(fast)] == ["begin_compensation", "mark_failed"]
    assert finished == [RunStatus.FAILED, RunStatus.FAILED]
    assert not CapacityHold.objects.exists() and _held(ticket_type) == 0


def test_a_refusal_recorded_for_a_taken_key_is_left_to_the_recorded_way(ticket_type: TicketType) -> None:
    # given: a run with the key exists
    TicketType.objects.filter(pk=ticket_type.pk).update(capacity=0)
    data = {"ticket_type": ticket_type.pk}
    first = _recorded_run("test.reserve_twice", "order:twice-refused", data)

    # when: the same key in one transaction, refused again
    again = run_in_one_transaction("test.reserve_twice", "order:twice-refused", data)

    # then: nothing new; the caller finds the first run the recorded way
    assert again is None
    assert list(WorkflowRun.objects.values_list("pk", flat=True)) == [first.pk]
