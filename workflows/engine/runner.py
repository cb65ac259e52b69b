"""Advancing a run: claim its lease, replay its function, record the outcome.

`advance(run_id)` is what the advance_run task calls. It is safe to call any
number of times from anywhere (a duplicated message, a sweeper, an early
ETA): only the caller that claims the lease does anything, and everything it
does is fenced by that lease.

A pass ends in one of four ways: the function returns (completed); it waits
(a timer, a signal, a child, a retry backoff: the lease is released with the
wake-up time); it is cancelled or fails (the run turns to compensating); or
the lease was lost to another worker (nothing more is written).

Compensation replays the function in replay-only mode to collect the
compensations of completed steps (closures may use earlier results), then
runs them in reverse order, each as its own step row, with retries; the run
ends compensated (or failed, if nothing needed undoing), cancelled, or
compensation_failed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

from django.db import transaction
from django.utils import timezone

from workflows import metrics
from workflows.engine import registry
from workflows.engine.attempts import execute, jsonable
from workflows.engine.context import Context
from workflows.engine.interrupts import Cancelled, LeaseLost, StopReplay, Suspend
from workflows.engine.leases import Lease, claim
from workflows.engine.registry import Definition
from workflows.engine.runs import wake
from workflows.exceptions import StepFailed, error_dict
from workflows.models import RunStatus, StepKind, StepStatus, WorkflowRun

logger = logging.getLogger(__name__)

# A pass that ends due again (an event arrived meanwhile) is followed by
# another, up to this many; past that the wake-up sweeper takes over.
MAX_PASSES = 20
# A worker without the run's version (a rolling deploy) leaves it for one that has it.
UNKNOWN_VERSION_RETRY = timedelta(minutes=1)

CANCELLED = {"code": "cancelled", "message": "Cancelled on request."}


def advance(run_id: int) -> bool:
    """Advance the run as far as it can go now; True if this call claimed it."""
    claimed = False
    for _ in range(MAX_PASSES):
        lease = claim(run_id)
        if lease is None:
            break
        claimed = True
        try:
            again = _pass(lease)
        except LeaseLost:
            logger.warning("workflow run %s: lease lost mid-pass; another worker has it", run_id)
            break
        if not again:
            break
    return claimed


def advance_claimed(run: WorkflowRun, lease: Lease) -> WorkflowRun:
    """The first pass of a run started with runs.start_claimed, made by its
    starter (who holds the lease); then on as `advance` would. Returns the run
    as that pass left it. Must be called outside any transaction (its steps
    commit one by one)."""
    try:
        again = _pass(lease, run=run, fresh=True)
    except LeaseLost:
        logger.warning("workflow run %s: lease lost mid-pass; another worker has it", run.pk)
        again = False
    if again:
        advance(run.pk)
    return WorkflowRun.objects.get(pk=run.pk)


def _pass(lease: Lease, *, run: WorkflowRun | None = None, fresh: bool = False) -> bool:
    """One replay. Returns True if the run is due again at once. `fresh`: the
    run was created for this pass and has no steps yet."""
    run = run or WorkflowRun.objects.get(pk=lease.run_id)
    definition = registry.get(run.workflow_type, run.version)
    if definition is None:
        logger.error("workflow %s v%s is not registered here; run %s waits", run.workflow_type, run.version, run.pk)
        return lease.suspend(timezone.now() + UNKNOWN_VERSION_RETRY)
    if run.status == RunStatus.COMPENSATING:
        return _compensate(run, definition, lease)
    error = _stop_reason(run)
    if error is None:
        try:
            output = definition.fn(Context(run, lease, fresh=fresh))
        except Suspend as suspended:
            return lease.suspend(suspended.wake_at)
        except Cancelled:
            error = CANCELLED
        except Exception as exc:  # noqa: BLE001 - whatever the workflow raised fails the run
            error = error_dict(exc)
        else:
            _finish(lease, partial(WorkflowRun.complete, output=jsonable(output), reason="workflow returned"))
            return False
    with lease.locked() as locked:
        locked.begin_compensation(error=error, reason=str(error.get("message", ""))[:500])
        locked.save(update_fields=["status", "error", "updated_at"])
    return _compensate(locked, definition, lease)


def _stop_reason(run: WorkflowRun) -> dict[str, Any] | None:
    if run.cancel_requested:
        return CANCELLED
    if run.deadline is not None and run.deadline <= timezone.now():
        return {"code": "deadline_exceeded", "message": f"Deadline {run.deadline.isoformat()} passed."}
    return None


def _compensate(run: WorkflowRun, definition: Definition, lease: Lease) -> bool:
    lease.cancellable = False
    ctx = Context(run, lease, replay_only=True)
    try:
        definition.fn(ctx)
    except StopReplay:
        pass
    except Exception:  # noqa: BLE001, S110 - the replay re-raises the original failure; it only collects
        pass
    undone_any = False
    for compensation in reversed(ctx.compensations):
        previous = [s for s in ctx.steps.values() if s.compensates_id == compensation.step.pk]
        row = max(previous, key=lambda s: s.sequence) if previous else None
        if row is not None and row.status == StepStatus.COMPLETED:
            undone_any = True
            continue
        if row is None or row.status == StepStatus.FAILED:
            # First try, or a staff retry after giving up: a fresh step row.
            step = compensation.step
            row = ctx.new_row(
                ctx.next_free_sequence(),
                f"compensate:{step.name}",
                StepKind.COMPENSATION,
                external=step.external,
                compensates=step,
            )
        elif row.next_attempt_at and row.next_attempt_at > timezone.now():
            return lease.suspend(row.next_attempt_at)
        try:
            ctx.remember(
                execute(ctx, row=row, fn=compensation.fn, args=(compensation.step.result,), retry=compensation.retry)
            )
        except Suspend as suspended:
            return lease.suspend(suspended.wake_at)
        except StepFailed as exc:
            metrics.compensation_finished(run.workflow_type, ok=False)
            _finish(
                lease, partial(WorkflowRun.mark_compensation_failed, error=exc.error, reason="compensation gave up")
            )
            return False
        metrics.compensation_finished(run.workflow_type, ok=True)
        undone_any = True
    if (run.error or {}).get("code") == CANCELLED["code"]:
        _finish(lease, partial(WorkflowRun.mark_cancelled, reason="cancelled and compensated"))
    elif undone_any:
        _finish(lease, partial(WorkflowRun.mark_compensated, reason="failed and compensated"))
    else:
        _finish(lease, partial(WorkflowRun.mark_failed, reason="failed; nothing to compensate"))
    return False


def _finish(lease: Lease, transition: Callable[[WorkflowRun], None]) -> None:
    """Apply a terminal transition and release the lease in one transaction;
    wake the parent run, if any, in the same transaction."""
    with lease.locked() as run:
        transition(run)
        run.lease_owner, run.lease_expires_at, run.wake_at = "", None, None
        run.save(
            update_fields=[
                "status",
                "output",
                "error",
                "finished_at",
                "lease_owner",
                "lease_expires_at",
                "wake_at",
                "updated_at",
            ]
        )
        if run.parent_id is not None:
            wake(run.parent_id, reason=f"child:{run.pk}")
        assert run.finished_at is not None
        transaction.on_commit(
            partial(metrics.run_finished, run.workflow_type, run.status, run.created_at, run.finished_at)
        )
