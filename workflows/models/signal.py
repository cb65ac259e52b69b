from __future__ import annotations

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from ticketing.tenancy import TenantQuerySet


class WorkflowSignal(models.Model):
    """An event delivered to a run (a webhook, a staff decision).

    Stored as soon as it arrives, even before the run waits for it, and
    consumed in arrival order by `ctx.wait_signal(name)`. `dedup_key` (e.g. the
    provider's event id) makes a repeated delivery a no-op."""

    run = models.ForeignKey("workflows.WorkflowRun", on_delete=models.CASCADE, related_name="signals")
    name = models.CharField(max_length=100)
    payload = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    dedup_key = models.CharField(max_length=200)
    consumed = models.BooleanField(default=False)
    consumed_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    objects = TenantQuerySet.as_manager()
    tenant_field = "run__organization"

    class Meta:
        ordering = ["received_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "name", "dedup_key"], name="workflow_signal_unique_dedup"),
        ]
        indexes = [models.Index(fields=["run", "name", "consumed"], name="workflow_signal_pending_idx")]

    def __str__(self) -> str:
        return f"{self.name} [{self.dedup_key}]"
