"""A fresh run's whole forward pass in one transaction, when it can be.

A run whose steps are all local would commit each step with its record, one
transaction per step, fenced by its lease. Done by the caller that starts it
(a buyer's checkout, a webhook completing its order), such a run can instead
do every step, the run row and the step records in a single transaction:
all of it commits or none of it does. Nobody can see the run before that
commit, so there is no lease to fence and no half-done run to take over.

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
from datetime import timedelta
from functools import partial
from typing import Any

from django.db import transaction
from django.utils import timezone

from workflows import metrics
from workflows.engine import registry
from workflows.engine.attempts import body_finished, completed_fields, jsonable
from workflows.engine.context import Child, Context, Step
from workflows.engine.leases import Lease
from workflows.engine.runs import insert_run
from workflows.models import RunStatus, StepKind, WorkflowRun, WorkflowStep

logger = logging.getLogger(__name__)


class NeedsRecordedPass(Exception):
    """The run asked for something one transaction cannot hold."""


class OneTransactionContext(Context):
    """A Context whose local steps run inline in the caller's transaction and
    are recorded in memory, written together when the run completes."""

    def __init__(self, run: WorkflowRun) -> None:
        # No lease: the run is invisible to others until it has finished.
        super().__init__(run, Lease(run_id=run.pk, token="", expires_at=timezone.now()), fresh=True)

    def _step(self, spec: Step) -> Any:
        if spec.external:
            raise NeedsRecordedPass(f"external step {spec.name!r}")
        sequence, _ = self._slot(spec.name, StepKind.ACTION)
        row = self.new_row(sequence, spec.name, StepKind.ACTION)
        started, clock = timezone.now(), time.perf_counter()
        value = jsonable(spec.fn())
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
    failed, or a run with this key exists (its insert conflicted)."""
    try:
        return insert_run(
            workflow_type,
            business_key,
            input,
            organization_id,
            then=_whole_pass,
            status=RunStatus.RUNNING,
            started_at=timezone.now(),
        )
    except NeedsRecordedPass as exc:
        logger.debug("workflow %s %s: %s; taking the recorded way", workflow_type, business_key, exc)
    except Exception:  # the recorded way does it again and records the failure
        logger.debug("workflow %s %s: failed in one transaction", workflow_type, business_key, exc_info=True)
    return None


def _whole_pass(run: WorkflowRun) -> None:
    """In the transaction that inserted `run`: run its function to the end,
    complete it and write its steps."""
    definition = registry.get(run.workflow_type, run.version)
    assert definition is not None, "insert_run took the latest version, which is registered"
    ctx = OneTransactionContext(run)
    output = definition.fn(ctx)
    run.complete(output=jsonable(output), reason="workflow returned")
    run.save(update_fields=["status", "output", "finished_at", "updated_at"])
    WorkflowStep.objects.bulk_create(ctx.steps.values())
    assert run.finished_at is not None
    transaction.on_commit(partial(metrics.run_finished, run.workflow_type, run.status, run.created_at, run.finished_at))
