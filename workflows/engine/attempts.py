"""Running one action or compensation: its attempts, retries and record.

Local step: the body and the step row commit in ONE transaction, fenced by
the lease, so its effect happens exactly once; a crash before commit undoes
both. External step: runs outside any transaction (no locks held during a
network call) with the step's stable idempotency key; the row is written
before the call (status running) and again with the outcome, so a crash in
between makes the replay call again with the same key, which the provider
deduplicates. Failed attempts are recorded with their error and the next
attempt's time; the run sleeps until then (a DB wake-up, not a Celery ETA).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.dispatch import Signal
from django.utils import timezone

from workflows import metrics
from workflows.engine.interrupts import Interrupt, LeaseLost, Suspend
from workflows.engine.retry import RetryPolicy
from workflows.exceptions import StepFailed, error_dict
from workflows.models import StepStatus, WorkflowStep

if TYPE_CHECKING:
    from workflows.engine.context import Context

# Sent after a step's body returned and before its record is written (for a
# local step: inside its still-open transaction). A seam for tracing and for
# the crash tests, which block here and kill the worker.
step_body_finished = Signal()

HISTORY_LIMIT = 50


def jsonable(value: Any) -> Any:
    """What replay will return: results go through JSON before the first run
    sees them too, so a datetime is a string on every pass, not only on replay."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def save_step(ctx: Context, row: WorkflowStep, *, allow_cancel: bool = False, **fields: Any) -> WorkflowStep:
    """Write `fields` to a copy of `row` in a fenced transaction; return the copy.
    The caller's row stays as it was if anything fails."""
    with transaction.atomic():
        ctx.lease.fence(allow_cancel=allow_cancel)
        return write_step(row, **fields)


def write_step(row: WorkflowStep, **fields: Any) -> WorkflowStep:
    """`save_step` for a caller already inside a fenced transaction. A row
    that another worker inserted first (same run and sequence) means we lost
    the run: abandon the pass."""
    saved = copy.copy(row)
    for name, value in fields.items():
        setattr(saved, name, value)
    if saved.pk is None:
        try:
            # No savepoint: a conflict ends the pass, and its transaction with it.
            with transaction.atomic(savepoint=False):
                saved.save(force_insert=True)
        except IntegrityError as exc:
            raise LeaseLost() from exc
    else:
        saved.save(update_fields=list(fields))
    return saved


def execute(
    ctx: Context,
    *,
    row: WorkflowStep,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    retry: RetryPolicy,
) -> WorkflowStep:
    """Attempt the step in `row` (unsaved if new) until it completes (returns
    the completed row), fails for good (raises StepFailed) or must wait for its
    next attempt (raises Suspend). A zero backoff retries at once."""
    while True:
        attempt = row.attempt + 1
        started = timezone.now()
        clock = time.perf_counter()
        base = row
        try:
            if row.external:
                base = save_step(
                    ctx,
                    row,
                    allow_cancel=True,
                    status=StepStatus.RUNNING,
                    attempt=attempt,
                    started_at=row.started_at or started,
                    next_attempt_at=None,
                )
                value = jsonable(fn(*args, base.idempotency_key))
                body_finished(base)
                with transaction.atomic():
                    # Never refuse a finished external call's record on a
                    # cancel: it must be recorded to be compensated.
                    ctx.lease.fence(allow_cancel=False)
                    done = write_step(base, **completed_fields(base, value, attempt, started, clock))
            else:
                with transaction.atomic():
                    ctx.lease.fence(allow_cancel=True)
                    value = jsonable(fn(*args))
                    body_finished(row)
                    done = write_step(row, **completed_fields(row, value, attempt, started, clock))
        except Interrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - any error of the body is a failed attempt
            failure: BaseException = exc
        else:
            metrics.step_attempted(ctx.workflow_type, row.kind, ok=True, seconds=time.perf_counter() - clock)
            return done
        seconds = time.perf_counter() - clock
        metrics.step_attempted(ctx.workflow_type, row.kind, ok=False, seconds=seconds)
        delay = retry.delay_after(attempt, failure)
        error = {**error_dict(failure), "attempt": attempt}
        now = timezone.now()
        row = save_step(
            ctx,
            base,
            status=StepStatus.FAILED if delay is None else StepStatus.WAITING,
            attempt=attempt,
            error=error,
            next_attempt_at=None if delay is None else now + timedelta(seconds=delay),
            started_at=base.started_at or started,
            finished_at=now if delay is None else None,
            duration_ms=int(seconds * 1000),
            history=history_with(base, attempt, started, seconds, error),
        )
        if delay is None:
            raise StepFailed(row.name, error)
        if delay > 0:
            raise Suspend(row.next_attempt_at)


def body_finished(row: WorkflowStep) -> None:
    step_body_finished.send(sender=WorkflowStep, run_id=row.run_id, sequence=row.sequence, name=row.name, kind=row.kind)


def completed_fields(row: WorkflowStep, value: Any, attempt: int, started: Any, clock: float) -> dict[str, Any]:
    seconds = time.perf_counter() - clock
    return {
        "status": StepStatus.COMPLETED,
        "result": value,
        "error": None,
        "attempt": attempt,
        "next_attempt_at": None,
        "started_at": row.started_at or started,
        "finished_at": timezone.now(),
        "duration_ms": int(seconds * 1000),
        "history": history_with(row, attempt, started, seconds, None),
    }


def history_with(row: WorkflowStep, attempt: int, started: Any, seconds: float, error: Any) -> list[dict[str, Any]]:
    entry = {"attempt": attempt, "at": started.isoformat(), "ms": int(seconds * 1000), "error": error}
    return [*row.history, entry][-HISTORY_LIMIT:]
