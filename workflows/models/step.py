from __future__ import annotations

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from ticketing.tenancy import TenantQuerySet


class StepKind(models.TextChoices):
    ACTION = "action", "Action"
    COMPENSATION = "compensation", "Compensation"
    TIMER = "timer", "Timer"
    SIGNAL = "signal", "Signal"
    CHILD = "child", "Child run"
    PARALLEL = "parallel", "Parallel group"


class StepStatus(models.TextChoices):
    RUNNING = "running", "Running"  # an external call is (or was, if its worker died) in flight
    WAITING = "waiting", "Waiting"  # for a retry, a timer, a signal or a child run
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


class WorkflowStep(models.Model):
    """One recorded step of a run, memoized by `sequence` for replay.

    A local step's row is written in the transaction that applies its effect;
    an external step's row is written before the call (status running) and
    again with its result. `attempt` counts attempts; `history` keeps one entry
    per attempt (when, how long, which error) for the staff timeline.
    `next_attempt_at` is when the engine looks at the step again: a retry's
    next attempt, a timer's due time or a signal wait's timeout.
    `idempotency_key` is stable across attempts and is what external calls pass
    to the provider."""

    run = models.ForeignKey("workflows.WorkflowRun", on_delete=models.CASCADE, related_name="steps")
    sequence = models.PositiveIntegerField()
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=StepKind.choices)
    status = models.CharField(max_length=16, choices=StepStatus.choices)
    external = models.BooleanField(default=False)
    attempt = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=100, unique=True)
    result = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    error = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    history = models.JSONField(default=list, blank=True, encoder=DjangoJSONEncoder)
    compensates = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="compensations"
    )
    child_run = models.ForeignKey(
        "workflows.WorkflowRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)

    objects = TenantQuerySet.as_manager()
    tenant_field = "run__organization"

    class Meta:
        ordering = ["run", "sequence"]
        constraints = [
            # The backstop of exactly-once: two workers can never both record a step.
            models.UniqueConstraint(fields=["run", "sequence"], name="workflow_step_unique_sequence"),
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.name} ({self.status})"
