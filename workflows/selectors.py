"""Reads of workflow runs shared by the admin and the metrics."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone

from workflows.models import RunStatus, WorkflowRun

# How late a run may be before staff should look at it: the sweepers run every
# few seconds, so a minute or two late already means something is wrong.
STUCK_MARGIN = timedelta(minutes=2)


def stuck_runs(*, now: datetime | None = None, margin: timedelta = STUCK_MARGIN) -> QuerySet[WorkflowRun]:
    """Active runs nobody is advancing: running on an expired lease, or due
    (wake-up or deadline) for longer than `margin`."""
    now = now or timezone.now()
    late = now - margin
    return WorkflowRun.objects.filter(
        Q(status__in=[RunStatus.RUNNING, RunStatus.COMPENSATING], lease_expires_at__lt=now)
        | Q(
            status__in=[RunStatus.PENDING, RunStatus.WAITING, RunStatus.COMPENSATING],
            lease_expires_at__isnull=True,
            wake_at__lt=late,
        )
        | Q(status__in=[RunStatus.PENDING, RunStatus.WAITING], deadline__lt=late)
    )
