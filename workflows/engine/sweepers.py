"""Periodic sweepers: they re-derive pending work from the tables, so a lost
or doubled Celery message (or a flushed Redis) costs at most one beat.

Each takes its batch with SELECT ... FOR UPDATE SKIP LOCKED, so concurrent
sweepers (two beats, or beat plus `run_due_workflows`) split the work instead
of waiting on each other, and publishes after commit. Every one is
idempotent; a duplicate advance message is a no-op.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from workflows.engine.leases import is_due, lease_is_free
from workflows.engine.outbox import send_quietly
from workflows.engine.runs import ADVANCE_TASK
from workflows.models import (
    ACTIVE_STATUSES,
    FINISHED_STATUSES,
    OutboxMessage,
    RunStatus,
    WorkflowRun,
)

# A run queued by the sweeper is not queued again for this long, so a worker
# backlog does not grow by one message per due run per beat.
RENUDGE_AFTER = timedelta(seconds=60)


def _publish_after_commit(run_ids: list[int]) -> None:
    for run_id in run_ids:
        transaction.on_commit(partial(send_quietly, ADVANCE_TASK, [run_id]), robust=True)


def wake_due_runs(*, now: datetime | None = None, batch: int = 500) -> int:
    """Queue an advance for every due run (timers, retries, signal timeouts,
    deadlines, events whose message was lost). Returns how many."""
    now = now or timezone.now()
    with transaction.atomic():
        run_ids = list(
            WorkflowRun.objects.select_for_update(skip_locked=True)
            .filter(lease_is_free(now), is_due(now), status__in=ACTIVE_STATUSES)
            .filter(Q(nudged_at__isnull=True) | Q(nudged_at__lt=now - RENUDGE_AFTER))
            .order_by("wake_at", "id")
            .values_list("pk", flat=True)[:batch]
        )
        WorkflowRun.objects.filter(pk__in=run_ids).update(nudged_at=now)
        _publish_after_commit(run_ids)
    return len(run_ids)


def reap_expired_leases(*, now: datetime | None = None, batch: int = 500) -> int:
    """Free the leases of workers that died or hung, make those runs due and
    queue them. A hung worker that comes back fails its next fence. Returns
    how many were reaped."""
    now = now or timezone.now()
    with transaction.atomic():
        run_ids = list(
            WorkflowRun.objects.select_for_update(skip_locked=True)
            .filter(lease_expires_at__lt=now, status__in=ACTIVE_STATUSES)
            .order_by("lease_expires_at", "id")
            .values_list("pk", flat=True)[:batch]
        )
        WorkflowRun.objects.filter(pk__in=run_ids).update(
            lease_owner="", lease_expires_at=None, wake_at=now, nudged_at=now, updated_at=now
        )
        _publish_after_commit(run_ids)
    return len(run_ids)


def prune_finished_runs(*, now: datetime | None = None, batch: int = 500) -> int:
    """Delete top-level runs (with their steps, signals and children) that
    finished more than WORKFLOW_RETENTION_DAYS ago, and published outbox
    messages as old. Runs that gave up compensating stay until staff act.
    Returns how many runs were deleted."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=getattr(settings, "WORKFLOW_RETENTION_DAYS", 30))
    prunable = set(FINISHED_STATUSES) - {RunStatus.COMPENSATION_FAILED}
    unfinished_child = WorkflowRun.objects.filter(parent=OuterRef("pk"), status__in=ACTIVE_STATUSES)
    deleted = 0
    while True:
        with transaction.atomic():
            run_ids = list(
                WorkflowRun.objects.select_for_update(skip_locked=True)
                .filter(parent__isnull=True, status__in=prunable, finished_at__lt=cutoff)
                .filter(~Exists(unfinished_child))
                .values_list("pk", flat=True)[:batch]
            )
            WorkflowRun.objects.filter(pk__in=run_ids).delete()
        deleted += len(run_ids)
        if len(run_ids) < batch:
            break
    OutboxMessage.objects.filter(published_at__lt=cutoff).delete()
    return deleted
