"""Starting, waking, cancelling and retrying runs: the engine's public writes.

Each function takes its row lock (if any), re-checks, writes the change and
the run's wake-up (an outbox message) in one transaction, and lets the
advance happen after commit. Each may be called inside a caller's
transaction, whose commit then carries the run with it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from ticketing.models import AuditLogEntry, Organization
from workflows import metrics
from workflows.engine import registry
from workflows.engine.leases import Lease, lease_is_free, new_token
from workflows.engine.outbox import enqueue
from workflows.exceptions import RunNotFound
from workflows.models import ACTIVE_STATUSES, RunStatus, StepKind, StepStatus, WorkflowRun, WorkflowStep

ADVANCE_TASK = "workflows.tasks.advance_run"
# The lease of a run started to be advanced by its caller (see start_claimed).
# If the caller dies mid-pass, the run is reaped after this long and a worker
# takes it on from its last recorded step.
CLAIMED_START_LEASE = timedelta(seconds=60)


def start(
    workflow_type: str,
    business_key: str,
    input: dict[str, Any] | None = None,
    *,
    organization: Organization | int | None = None,
    deadline: datetime | None = None,
    parent: WorkflowRun | None = None,
) -> WorkflowRun:
    """Start a run of the latest version of `workflow_type`.

    Idempotent on (workflow_type, business_key): if a run exists, it is
    returned unchanged, whatever its status and input. The run row and its
    first wake-up commit together (in the caller's transaction, if any); the
    run advances after commit."""
    existing = WorkflowRun.objects.filter(workflow_type=workflow_type, business_key=business_key).first()
    if existing is not None:
        return existing
    run = insert_run(
        workflow_type,
        business_key,
        input,
        organization,
        then=lambda run: enqueue(ADVANCE_TASK, [run.pk], dedup_key=f"{ADVANCE_TASK}:{run.pk}:start"),
        deadline=deadline,
        parent=parent,
        wake_at=timezone.now(),
    )
    # None: a concurrent start with the same key won; its run is the answer.
    return run or WorkflowRun.objects.get(workflow_type=workflow_type, business_key=business_key)


def start_claimed(
    workflow_type: str,
    business_key: str,
    input: dict[str, Any] | None = None,
    *,
    organization: Organization | int | None = None,
) -> tuple[WorkflowRun, Lease | None]:
    """Start a run whose first pass the caller makes itself, in this process
    (runner.advance_claimed), with no message to a worker: a buyer waiting for
    a payment page, a webhook completing its order.

    The run is created holding the caller's lease (running, no wake-up), so no
    worker touches it; if the caller dies before the pass ends, the lease
    expires after CLAIMED_START_LEASE and the reaper hands the run to a
    worker. Idempotent like `start`: an existing run is returned with no lease
    (None), and the caller leaves it to whoever holds it."""
    now = timezone.now()
    lease = Lease(run_id=0, token=new_token(), expires_at=now + CLAIMED_START_LEASE, duration=CLAIMED_START_LEASE)
    run = insert_run(
        workflow_type,
        business_key,
        input,
        organization,
        status=RunStatus.RUNNING,
        started_at=now,
        lease_owner=lease.token,
        lease_expires_at=lease.expires_at,
    )
    if run is None:
        return WorkflowRun.objects.get(workflow_type=workflow_type, business_key=business_key), None
    lease.run_id = run.pk
    return run, lease


def insert_run(
    workflow_type: str,
    business_key: str,
    input: dict[str, Any] | None,
    organization: Organization | int | None,
    *,
    then: Callable[[WorkflowRun], Any] | None = None,
    **fields: Any,
) -> WorkflowRun | None:
    """Insert a run of the latest version (and do `then` with it) in one
    transaction (a savepoint inside the caller's); None if a run with this key
    exists already. Whatever else `then` raises undoes the insert too."""
    run = new_run(registry.latest(workflow_type), business_key, input, organization, **fields)
    try:
        with transaction.atomic():
            run.save(force_insert=True)
            if then is not None:
                then(run)
            transaction.on_commit(partial(metrics.run_started, workflow_type))
    except IntegrityError:
        return None
    return run


def new_run(
    definition: registry.Definition,
    business_key: str,
    input: dict[str, Any] | None,
    organization: Organization | int | None,
    **fields: Any,
) -> WorkflowRun:
    """An unsaved run of `definition` (its type and version)."""
    return WorkflowRun(
        organization_id=organization.pk if isinstance(organization, Organization) else organization,
        workflow_type=definition.workflow_type,
        version=definition.version,
        business_key=business_key,
        input=input or {},
        **fields,
    )


def wake(run_id: int, *, reason: str) -> None:
    """In the caller's transaction: make an active run due now and queue its
    advance (deduplicated by `reason`). A run that is mid-pass sees the
    wake-up when it releases its lease, so the event is never missed."""
    now = timezone.now()
    WorkflowRun.objects.filter(
        Q(wake_at__isnull=True) | Q(wake_at__gt=now), pk=run_id, status__in=ACTIVE_STATUSES
    ).update(wake_at=now, updated_at=now)
    enqueue(ADVANCE_TASK, [run_id], dedup_key=f"{ADVANCE_TASK}:{run_id}:{reason}")


def _locked_run(run: WorkflowRun | int) -> WorkflowRun:
    run_id = run.pk if isinstance(run, WorkflowRun) else run
    locked = WorkflowRun.objects.select_for_update().filter(pk=run_id).first()
    if locked is None:
        raise RunNotFound(detail={"run": run_id})
    return locked


def _audit(run: WorkflowRun, *, field: str, source: str, target: str, transition: str, by: Any, reason: str) -> None:
    AuditLogEntry.objects.record_many(
        objects=[run], field=field, source=source, target=target, transition=transition, actor=by, reason=reason
    )


def cancel(run: WorkflowRun | int, *, by: Any = None, reason: str = "") -> bool:
    """Ask a run to stop: it compensates its completed steps in reverse order
    and ends cancelled; its unfinished child runs are cancelled too. Locks the
    run row. Idempotent; returns False if the run had already finished
    (nothing changes). A run in the middle of a step stops at its next step
    boundary."""
    with transaction.atomic():
        locked = _locked_run(run)
        if locked.is_finished:
            return False
        if not locked.cancel_requested:
            WorkflowRun.objects.filter(pk=locked.pk).update(cancel_requested=True, updated_at=timezone.now())
            _audit(
                locked, field="cancel_requested", source="no", target="yes", transition="cancel", by=by, reason=reason
            )
            wake(locked.pk, reason="cancel")
            # Children after commit, each in its own transaction: a finishing
            # child locks itself and then its parent, so locking children
            # under the parent's lock could deadlock with it.
            transaction.on_commit(partial(_cancel_children, locked.pk, by=by, reason=reason), robust=True)
    return True


def _cancel_children(run_id: int, *, by: Any, reason: str) -> None:
    children = WorkflowRun.objects.filter(parent_id=run_id, status__in=ACTIVE_STATUSES).values_list("pk", flat=True)
    for child_id in list(children):
        cancel(child_id, by=by, reason=reason or "parent run cancelled")


def retry_now(run: WorkflowRun | int, *, by: Any = None, reason: str = "") -> bool:
    """Staff's "retry now": make the run due immediately, skipping retry
    backoffs (timers keep their time). A run on an expired lease is released;
    a run whose compensation gave up goes back to compensating, and its failed
    compensation is tried again as a new step. Locks the run row; returns
    False if there is nothing to retry."""
    now = timezone.now()
    with transaction.atomic():
        locked = _locked_run(run)
        if locked.status == RunStatus.COMPENSATION_FAILED:
            locked.retry_compensation(by=by, reason=reason or "retry now")
            locked.save(update_fields=["status", "finished_at", "updated_at"])
        elif locked.status not in ACTIVE_STATUSES:
            return False
        else:
            _audit(locked, field="wake_at", source="later", target="now", transition="retry_now", by=by, reason=reason)
        WorkflowStep.objects.filter(
            run_id=locked.pk, status=StepStatus.WAITING, kind__in=[StepKind.ACTION, StepKind.COMPENSATION]
        ).update(next_attempt_at=now)
        WorkflowRun.objects.filter(lease_is_free(now), pk=locked.pk).update(lease_owner="", lease_expires_at=None)
        wake(locked.pk, reason=f"retry:{uuid.uuid4().hex}")
    return True
