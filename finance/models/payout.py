from __future__ import annotations

from typing import Any

from django.db import models
from django_fsm import FSMField, FSMModelMixin, transition

from ticketing.tenancy import TenantQuerySet


class PayoutStatus(models.TextChoices):
    REQUESTED = "requested", "Requested"  # money moved from available to in transit; provider not yet told
    IN_TRANSIT = "in_transit", "In transit"  # the provider accepted it
    PAID = "paid", "Paid"
    FAILED = "failed", "Failed"  # the money is back in available (also a payout returned after it was paid)


class Payout(FSMModelMixin, models.Model):
    """Money sent to an organizer: requested -> in_transit -> paid | failed
    (and paid -> failed when the bank returns it).

    Requesting it moves the amount from available to in transit in the same
    transaction (a guarded balance, so never more than available); a failure
    moves it back."""

    organization = models.ForeignKey("ticketing.Organization", on_delete=models.PROTECT, related_name="+")
    currency = models.CharField(max_length=3)
    amount_cents = models.BigIntegerField()
    status = FSMField(max_length=20, choices=PayoutStatus.choices, default=PayoutStatus.REQUESTED, protected=True)
    provider = models.CharField(max_length=32)
    destination = models.CharField(max_length=255, blank=True)
    idempotency_key = models.CharField(max_length=255, unique=True)
    provider_payout_id = models.CharField(max_length=255, blank=True)
    failure_code = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    in_transit_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)

    objects = TenantQuerySet.as_manager()
    tenant_field = "organization"

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount_cents__gt=0), name="payout_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"Payout {self.pk} of {self.amount_cents} {self.currency}"

    @transition(field=status, source=PayoutStatus.REQUESTED, target=PayoutStatus.IN_TRANSIT)
    def mark_in_transit(self, *, provider_payout_id: str, at: Any, by: Any = None, reason: str = "") -> None:
        self.provider_payout_id = provider_payout_id
        self.in_transit_at = at

    @transition(field=status, source=[PayoutStatus.REQUESTED, PayoutStatus.IN_TRANSIT], target=PayoutStatus.PAID)
    def mark_paid(self, *, at: Any, by: Any = None, reason: str = "") -> None:
        self.paid_at = at

    # From PAID too: a bank may return a payout days after it arrived (the
    # provider then reports it failed); the money comes back to available.
    @transition(
        field=status,
        source=[PayoutStatus.REQUESTED, PayoutStatus.IN_TRANSIT, PayoutStatus.PAID],
        target=PayoutStatus.FAILED,
    )
    def mark_failed(self, *, failure_code: str, at: Any, by: Any = None, reason: str = "") -> None:
        self.failure_code = failure_code[:64]
        self.failed_at = at
