"""A fresh run's whole forward pass in one transaction, when it can be.

A run whose steps are all local would commit each step with its record, one
transaction per step, fenced by its lease. Done by the caller that starts it
(a buyer's checkout, a webhook completing its order), such a run can instead
do every step, the run row and the step records in a single transaction:
all of it commits or none of it does. Nobody can see the run before that
commit, so there is no lease to fence and no half-done run to take over.

The run row is written once, at the end of the pass, already completed (one
INSERT, no UPDATE), followed by the audit row of its running -> completed
transition and its step rows. So the run has no id during the pass: the step
rows get their run and idempotency key (wf-<run>-<sequence>) when they are
written, and a workflow that reads `ctx.run` takes the recorded way.
Idempotency on the business key is the unique constraint that this insert
meets: if a run with the key exists (or a racing pass committed first), the
IntegrityError rolls back the whole pass, its steps' effects included, and
None is returned. A duplicate thus learns that it is one only after its
steps, which are undone with it like any pass that gives up.

It takes the success path only. At the first thing one transaction cannot
hold (an external call, a timer, a signal, a child run) or the first failed
step, everything is rolled back and None returned: the caller then starts
the run the recorded way (runs.start_claimed, runner.advance_claimed), which
does the steps one by one and records what happens, retries and
compensation included. A step must therefore be safe to do again after a
rollback, which local steps are: their effects were rolled back with them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from ticketing import rows
from ticketing.models import AuditLogEntry
from workflows import metrics
from workflows.engine import registry
from workflows.engine.attempts import body_finished, completed_fields, history_with, jsonable
from workflows.engine.context import Child, Context, Step, step_idempotency_key
from workflows.engine.leases import Lease
from workflows.engine.registry import Definition
from workflows.engine.runs import new_run
from workflows.exceptions import StepFailed, error_dict
from workflows.models import RunStatus, StepKind, StepStatus, WorkflowRun, WorkflowStep

logger = logging.getLogger(__name__)


class NeedsRecordedPass(Exception):
    """The run asked for something one transaction cannot hold."""


@dataclass(frozen=True)
class Refusal:
    """The first step of a pass failed for good: its row, what it raised, when."""

    row: WorkflowStep
    error: Exception
    started: datetime
    seconds: float


class OneTransactionContext(Context):
    """A Context whose local steps run inline in the caller's transaction and
    are recorded in memory, written together when the run completes.

    The run is not in the database before then and has no id: reading `run`
    raises NeedsRecordedPass, and the step rows are bound to the run only
    when they are written (`steps_of`); until then their `run_id` is None
    (also in the step_body_finished signal)."""

    def __init__(self, run: WorkflowRun) -> None:
        # No lease: the run is invisible to others until it has finished.
        super().__init__(run, Lease(run_id=0, token="", expires_at=timezone.now()), fresh=True)
        self.refusal: Refusal | None = None

    @property
    def run(self) -> WorkflowRun:
        raise NeedsRecordedPass("the workflow reads its run, which has no id before the pass ends")

    def new_row(self, sequence: int, name: str, kind: str, **fields: Any) -> WorkflowStep:
        """An unsaved step row with no run nor idempotency key yet (see steps_of)."""
        return WorkflowStep(sequence=sequence, name=name, kind=kind, **fields)

    def steps_of(self, run: WorkflowRun) -> list[WorkflowStep]:
        """The pass's step rows, bound to `run` (saved: it has its id)."""
        rows = list(self.steps.values())
        for row in rows:
            row.run = run
            row.idempotency_key = step_idempotency_key(run.pk, row.sequence)
        return rows

    def _step(self, spec: Step) -> Any:
        if spec.external:
            raise NeedsRecordedPass(f"external step {spec.name!r}")
        sequence, _ = self._slot(spec.name, StepKind.ACTION)
        row = self.new_row(sequence, spec.name, StepKind.ACTION)
        started, clock = timezone.now(), time.perf_counter()
        try:
            value = jsonable(spec.fn())
        except Exception as exc:
            if not self.steps and spec.retry.delay_after(1, exc) is None:
                # Refused for good before anything was done (a sold-out
                # cart): nothing to retry, nothing to compensate.
                self.refusal = Refusal(row, exc, started, time.perf_counter() - clock)
            raise
        body_finished(row)
        for name, field_value in completed_fields(row, value, 1, started, clock).items():
            setattr(row, name, field_value)
        metrics.step_attempted(self.workflow_type, row.kind, ok=True, seconds=time.perf_counter() - clock)
        return self.remember(row).result

    def sleep_until(self, name: str, when: Any) -> None:
        raise NeedsRecordedPass(f"timer {name!r}")

    def wait_signal(self, name: str, *, timeout: timedelta | None = None) -> Any:
        raise NeedsRecordedPass(f"signal {name!r}")

    def _child(self, spec: Child) -> Any:
        raise NeedsRecordedPass(f"child {spec.workflow_type!r}")

    def parallel(self, branches: Any, *, name: str = "parallel") -> list[Any]:
        raise NeedsRecordedPass(f"parallel {name!r}")


def run_in_one_transaction(
    workflow_type: str,
    business_key: str,
    input: dict[str, Any],
    *,
    organization_id: int | None = None,
) -> WorkflowRun | None:
    """Start a run of the latest version of `workflow_type` and do its whole
    forward pass in one transaction (a savepoint inside the caller's). Returns
    the completed run; None when nothing was written and the caller must take
    the recorded way: the pass needed more than one transaction, a step
    failed, or a run with this key exists (its insert, at the end, conflicted).
    Whatever goes wrong, the savepoint (or transaction) is rolled back whole
    and the caller's transaction, if any, stays usable."""
    definition = registry.latest(workflow_type)
    started_at = timezone.now()
    ctx = OneTransactionContext(
        new_run(definition, business_key, input, organization_id, status=RunStatus.RUNNING, started_at=started_at)
    )
    try:
        # Writes nobody answers (audit rows, step records, updates of rows
        # locked already) travel with the pass's next statements.
        with transaction.atomic(), rows.deferred():
            return _whole_pass(ctx, definition, started_at)
    except NeedsRecordedPass as exc:
        logger.debug("workflow %s %s: %s; taking the recorded way", workflow_type, business_key, exc)
    except IntegrityError:  # a run with this key exists (or a step conflicted)
        logger.debug("workflow %s %s: conflicted in one transaction", workflow_type, business_key, exc_info=True)
    except Exception:  # the recorded way does it again and records the failure
        if ctx.refusal is not None:
            return _record_refusal(ctx, definition, ctx.refusal, started_at)
        logger.debug("workflow %s %s: failed in one transaction", workflow_type, business_key, exc_info=True)
    return None


def _whole_pass(ctx: OneTransactionContext, definition: Definition, started_at: datetime) -> WorkflowRun:
    """In the pass's transaction: run the workflow function to the end, then
    insert the run, completed, with its completion's audit row and its steps."""
    business_key, input, organization_id = ctx.business_key, ctx.input, ctx.organization_id
    output = jsonable(definition.fn(ctx))
    # The row that WorkflowRun.complete leaves (output, finished_at), inserted
    # as it is. The transition itself cannot run in memory first: its audit
    # row (ticketing.audit) needs the run's id, so it is written here, with
    # the same content.
    run = new_run(
        definition,
        business_key,
        input,
        organization_id,
        status=RunStatus.COMPLETED,
        output=output,
        started_at=started_at,
        finished_at=timezone.now(),
    )
    rows.insert([run])  # IntegrityError if the key is taken: the caller rolls back the pass
    AuditLogEntry.objects.record_many(
        objects=[run],
        field="status",
        source=RunStatus.RUNNING.value,
        target=RunStatus.COMPLETED.value,
        transition=WorkflowRun.complete.__name__,
        reason="workflow returned",
    )
    rows.insert_later(ctx.steps_of(run))
    assert run.finished_at is not None
    transaction.on_commit(partial(metrics.run_started, run.workflow_type))
    # Its duration counts from the start of the pass (created_at is the insert's time).
    transaction.on_commit(partial(metrics.run_finished, run.workflow_type, run.status, started_at, run.finished_at))
    return run


def _record_refusal(
    ctx: OneTransactionContext, definition: Definition, refusal: Refusal, started_at: datetime
) -> WorkflowRun | None:
    """The pass's first step was refused for good (nothing done, nothing to
    retry): record the run as the recorded way would have, in one
    transaction, instead of having it do the step again. The rows are that
    way's, field for field: the step failed at its first attempt, the run
    running -> compensating (the step's error) -> failed ("nothing to
    compensate"), with both audit rows. None (the caller takes the recorded
    way) if a run with this key exists."""
    exc, row = refusal.error, refusal.row
    metrics.step_attempted(ctx.workflow_type, row.kind, ok=False, seconds=refusal.seconds)
    step_error = {**error_dict(exc), "attempt": 1}
    run_error = error_dict(StepFailed(row.name, step_error))
    finished_at = timezone.now()
    run = new_run(
        definition,
        ctx.business_key,
        ctx.input,
        ctx.organization_id,
        status=RunStatus.FAILED,
        error=run_error,
        started_at=started_at,
        finished_at=finished_at,
    )
    row.status, row.attempt, row.error = StepStatus.FAILED, 1, step_error
    row.started_at, row.finished_at, row.duration_ms = refusal.started, finished_at, int(refusal.seconds * 1000)
    row.history = history_with(row, 1, refusal.started, refusal.seconds, step_error)
    try:
        with transaction.atomic(), rows.deferred():
            rows.insert([run])
            ctx.remember(row)
            rows.insert_later(ctx.steps_of(run))
            for source, target, transition, reason in (
                (
                    RunStatus.RUNNING,
                    RunStatus.COMPENSATING,
                    WorkflowRun.begin_compensation.__name__,
                    str(run_error.get("message", ""))[:500],
                ),
                (
                    RunStatus.COMPENSATING,
                    RunStatus.FAILED,
                    WorkflowRun.mark_failed.__name__,
                    "failed; nothing to compensate",
                ),
            ):
                AuditLogEntry.objects.record_many(
                    objects=[run],
                    field="status",
                    source=source.value,
                    target=target.value,
                    transition=transition,
                    reason=reason,
                )
    except IntegrityError:
        return None
    transaction.on_commit(partial(metrics.run_started, run.workflow_type))
    transaction.on_commit(partial(metrics.run_finished, run.workflow_type, run.status, started_at, finished_at))
    return run
