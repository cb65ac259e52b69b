from __future__ import annotations

from typing import Any

from django.db import models
from django_fsm import FSMField, FSMModelMixin, transition

from ticketing.tenancy import TenantQuerySet


class RefundStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # reserved on the payment; at or on its way to the provider
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class Refund(FSMModelMixin, models.Model):
    """Money going back for one payment. Recorded (pending) before the provider
    is called, so a crash between the two never forgets a refund; the same
    idempotency key is passed to the provider, so a retry never pays twice."""

    organization = models.ForeignKey("ticketing.Organization", on_delete=models.PROTECT, related_name="+")
    payment = models.ForeignKey("payments.Payment", on_delete=models.PROTECT, related_name="refunds")
    provider = models.CharField(max_length=32)
    amount_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    provider_refund_id = models.CharField(max_length=255, blank=True)
    idempotency_key = models.CharField(max_length=255, unique=True)
    reason = models.CharField(max_length=300, blank=True)
    status = FSMField(max_length=20, choices=RefundStatus.choices, default=RefundStatus.PENDING, protected=True)
    failure_code = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    objects = TenantQuerySet.as_manager()
    tenant_field = "organization"

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "provider_refund_id"],
                condition=~models.Q(provider_refund_id=""),
                name="refund_unique_provider_id",
            ),
            models.CheckConstraint(condition=models.Q(amount_cents__gt=0), name="refund_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"Refund {self.provider_refund_id or self.pk} of {self.amount_cents} {self.currency}"

    @transition(field=status, source=RefundStatus.PENDING, target=RefundStatus.SUCCEEDED)
    def succeed(self, *, at: Any, by: Any = None, reason: str = "") -> None:
        self.completed_at = at

    @transition(field=status, source=RefundStatus.PENDING, target=RefundStatus.FAILED)
    def fail(self, *, at: Any, failure_code: str, by: Any = None, reason: str = "") -> None:
        self.completed_at = at
        self.failure_code = failure_code[:64]
