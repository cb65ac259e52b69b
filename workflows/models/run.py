from __future__ import annotations

from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone
from django_fsm import FSMField, FSMModelMixin, transition

from ticketing.tenancy import TenantQuerySet


class RunStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    WAITING = "waiting", "Waiting"
    COMPENSATING = "compensating", "Compensating"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    COMPENSATED = "compensated", "Compensated"
    COMPENSATION_FAILED = "compensation_failed", "Compensation failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATUSES: frozenset[str] = frozenset(
    {RunStatus.PENDING, RunStatus.RUNNING, RunStatus.WAITING, RunStatus.COMPENSATING}
)
FINISHED_STATUSES: frozenset[str] = frozenset(
    {
        RunStatus.COMPLETED,
        RunStatus.FAILED,
        RunStatus.COMPENSATED,
        RunStatus.COMPENSATION_FAILED,
        RunStatus.CANCELLED,
    }
)


class WorkflowRun(FSMModelMixin, models.Model):
    """One execution of a workflow definition: the durable truth about a saga.

    State machine. The engine's hot path moves a run between pending/waiting
    and running with conditional UPDATEs (the lease claim and the suspension in
    workflows.engine.leases): those happen on every wake-up, and the step rows
    already record why the run waited. Every other change is a transition
    below, applied inside the transaction that saves it, so it leaves an audit
    row (ticketing.audit):

        pending|waiting -> running            (claim, conditional UPDATE)
        running -> waiting                    (suspend, conditional UPDATE)
        running -> completed                  complete()
        running -> compensating               begin_compensation()
        compensating -> compensated | failed | cancelled | compensation_failed
        compensation_failed -> compensating   retry_compensation() (staff)

    `wake_at` is when the engine should next look at the run (a timer, a retry,
    a signal timeout, or "now" after an event); NULL means it waits for an
    event. The lease (`lease_owner`, `lease_expires_at`) is the only permission
    to advance the run; see workflows.engine.leases.
    """

    organization = models.ForeignKey(
        "ticketing.Organization", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    workflow_type = models.CharField(max_length=100)
    version = models.PositiveIntegerField()
    business_key = models.CharField(max_length=200)
    status = FSMField(max_length=24, choices=RunStatus.choices, default=RunStatus.PENDING, protected=True)
    input = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    output = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    error = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    wake_at = models.DateTimeField(null=True, blank=True)
    deadline = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    lease_owner = models.CharField(max_length=100, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # When the wake-up sweeper last queued this run: keeps a backlog from being
    # queued again every beat while its first message is still waiting.
    nudged_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = TenantQuerySet.as_manager()
    tenant_field = "organization"

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["workflow_type", "business_key"], name="workflow_run_unique_business_key"),
        ]
        indexes = [
            # The sweepers' scans: due runs and expired leases among active runs.
            models.Index(fields=["wake_at"], condition=models.Q(wake_at__isnull=False), name="workflow_run_wake_idx"),
            models.Index(
                fields=["lease_expires_at"],
                condition=models.Q(lease_expires_at__isnull=False),
                name="workflow_run_lease_idx",
            ),
            models.Index(fields=["status", "workflow_type"], name="workflow_run_status_idx"),
            models.Index(fields=["finished_at"], name="workflow_run_finished_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.workflow_type} v{self.version} {self.business_key}"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @transition(field=status, source=RunStatus.RUNNING, target=RunStatus.COMPLETED)
    def complete(self, *, output: Any, by: Any = None, reason: str = "") -> None:
        self.output = output
        self.finished_at = timezone.now()

    @transition(field=status, source=RunStatus.RUNNING, target=RunStatus.COMPENSATING)
    def begin_compensation(self, *, error: dict[str, Any], by: Any = None, reason: str = "") -> None:
        self.error = error

    @transition(field=status, source=RunStatus.COMPENSATING, target=RunStatus.COMPENSATED)
    def mark_compensated(self, *, by: Any = None, reason: str = "") -> None:
        self.finished_at = timezone.now()

    @transition(field=status, source=RunStatus.COMPENSATING, target=RunStatus.FAILED)
    def mark_failed(self, *, by: Any = None, reason: str = "") -> None:
        self.finished_at = timezone.now()

    @transition(field=status, source=RunStatus.COMPENSATING, target=RunStatus.CANCELLED)
    def mark_cancelled(self, *, by: Any = None, reason: str = "") -> None:
        self.finished_at = timezone.now()

    @transition(field=status, source=RunStatus.COMPENSATING, target=RunStatus.COMPENSATION_FAILED)
    def mark_compensation_failed(self, *, error: dict[str, Any], by: Any = None, reason: str = "") -> None:
        self.error = {**(self.error or {}), "compensation": error}
        self.finished_at = timezone.now()

    @transition(field=status, source=RunStatus.COMPENSATION_FAILED, target=RunStatus.COMPENSATING)
    def retry_compensation(self, *, by: Any = None, reason: str = "") -> None:
        self.finished_at = None
