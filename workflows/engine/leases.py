"""The lease: the only permission to advance a run.

A worker claims a run with one conditional UPDATE; duplicate, early or late
messages find nothing to claim and do nothing. Every write the holder makes
afterwards runs `fence()` first, inside its transaction: it locks the run row
and checks the token, so a worker whose lease was reaped (it hung past the
expiry) and taken over can no longer record anything. Together with the
unique (run, sequence) constraint on steps this makes local steps exactly-once.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Case, CharField, F, Q, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from workflows.engine.interrupts import Cancelled, LeaseLost
from workflows.models import RunStatus, WorkflowRun


def lease_duration() -> timedelta:
    return timedelta(seconds=getattr(settings, "WORKFLOW_LEASE_SECONDS", 300))


def lease_is_free(now: datetime) -> Q:
    return Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)


def is_due(now: datetime) -> Q:
    """Runs with work to do now: a due wake-up, a passed deadline (forward
    runs only: compensation ignores deadlines), or a pass that was cut short
    (running/compensating with no wake-up, left behind by a dead worker)."""
    return (
        Q(wake_at__lte=now)
        | Q(deadline__lte=now, status__in=[RunStatus.PENDING, RunStatus.WAITING])
        | Q(wake_at__isnull=True, status__in=[RunStatus.RUNNING, RunStatus.COMPENSATING])
    )


CLAIMABLE = [RunStatus.PENDING, RunStatus.WAITING, RunStatus.RUNNING, RunStatus.COMPENSATING]


def new_token() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


@dataclass
class Lease:
    run_id: int
    token: str
    expires_at: datetime
    # False while compensating: cancellation cannot interrupt an undo.
    cancellable: bool = True
    # How long the lease lasts when taken or extended (lease_duration() if None).
    duration: timedelta | None = None

    def fence(self, *, allow_cancel: bool = False) -> None:
        """Inside the caller's transaction: lock the run row and prove we still
        own it (else LeaseLost). Where `allow_cancel` (before new work starts),
        a requested cancellation raises Cancelled. Extends the lease once half
        of it is used, so long runs keep it."""
        assert transaction.get_connection().in_atomic_block, "fence() guards a transaction"
        row = (
            WorkflowRun.objects.select_for_update()
            .filter(pk=self.run_id)
            .values_list("lease_owner", "cancel_requested")
            .first()
        )
        if row is None or row[0] != self.token:
            raise LeaseLost()
        if allow_cancel and self.cancellable and row[1]:
            raise Cancelled()
        now = timezone.now()
        duration = self.duration or lease_duration()
        if self.expires_at - now < duration / 2:
            self.expires_at = now + duration
            WorkflowRun.objects.filter(pk=self.run_id).update(lease_expires_at=self.expires_at)

    @contextmanager
    def locked(self) -> Iterator[WorkflowRun]:
        """A transaction holding the run row, for FSM transitions by the holder."""
        with transaction.atomic():
            run = WorkflowRun.objects.select_for_update().get(pk=self.run_id)
            if run.lease_owner != self.token:
                raise LeaseLost()
            yield run

    def suspend(self, wake_at: datetime | None) -> bool:
        """Release the lease and sleep until `wake_at` (None: until an event).

        An event that arrived during the pass (a signal, a finished child) set
        `wake_at` on the row, which the claim had cleared; keep the earlier of
        the two so that wake-up is not lost. Returns True if the run is due
        again right away (the caller claims it again)."""
        now = timezone.now()
        with transaction.atomic():
            row = (
                WorkflowRun.objects.select_for_update()
                .filter(pk=self.run_id)
                .values("lease_owner", "wake_at", "cancel_requested", "status")
                .first()
            )
            if row is None or row["lease_owner"] != self.token:
                return False
            if row["wake_at"] is not None:
                wake_at = min(row["wake_at"], wake_at) if wake_at else row["wake_at"]
            if self.cancellable and row["cancel_requested"]:
                wake_at = now
            status = RunStatus.WAITING if row["status"] == RunStatus.RUNNING else row["status"]
            WorkflowRun.objects.filter(pk=self.run_id).update(
                status=status, lease_owner="", lease_expires_at=None, wake_at=wake_at, updated_at=now
            )
        return wake_at is not None and wake_at <= now


def claim(run_id: int) -> Lease | None:
    """Take the run's lease if it is free and the run is due: one conditional
    UPDATE, so of any number of racing workers exactly one gets it. Moves
    pending/waiting runs to running and clears the wake-up it consumes."""
    now = timezone.now()
    lease = Lease(run_id=run_id, token=new_token(), expires_at=now + lease_duration())
    claimed = WorkflowRun.objects.filter(lease_is_free(now), is_due(now), pk=run_id, status__in=CLAIMABLE).update(
        lease_owner=lease.token,
        lease_expires_at=lease.expires_at,
        wake_at=None,
        nudged_at=None,
        status=Case(
            When(status__in=[RunStatus.PENDING, RunStatus.WAITING], then=Value(RunStatus.RUNNING)),
            default=F("status"),
            output_field=CharField(),
        ),
        started_at=Coalesce(F("started_at"), Value(now)),
        updated_at=now,
    )
    return lease if claimed else None
