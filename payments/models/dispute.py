from __future__ import annotations

from typing import Any

from django.db import models
from django_fsm import FSMField, FSMModelMixin, transition

from ticketing.tenancy import TenantQuerySet


class DisputeStatus(models.TextChoices):
    OPEN = "open", "Open"  # the processor took the amount back while the card issuer decides
    WON = "won", "Won"  # the amount came back to us
    LOST = "lost", "Lost"  # the buyer keeps it: a chargeback


class Dispute(FSMModelMixin, models.Model):
    """A buyer's card dispute of one payment, as the provider reports it.

    Disputes only arrive by webhook. (provider, provider_dispute_id) is unique,
    so a replayed "opened" finds the row it made; open -> won | lost happens
    once. The ledger side (chargeback opened / won / lost) is booked by the
    workflows layer on payments.signals.dispute_changed."""

    organization = models.ForeignKey("ticketing.Organization", on_delete=models.PROTECT, related_name="+")
    payment = models.ForeignKey("payments.Payment", on_delete=models.PROTECT, related_name="disputes")
    provider = models.CharField(max_length=32)
    provider_dispute_id = models.CharField(max_length=255)
    amount_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    fee_cents = models.PositiveIntegerField(default=0, help_text="What the processor charges for the dispute.")
    reason = models.CharField(max_length=100, blank=True)
    status = FSMField(max_length=10, choices=DisputeStatus.choices, default=DisputeStatus.OPEN, protected=True)
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantQuerySet.as_manager()
    tenant_field = "organization"

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "provider_dispute_id"], name="dispute_unique_provider_id"),
            models.CheckConstraint(condition=models.Q(amount_cents__gt=0), name="dispute_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"Dispute {self.provider_dispute_id} of {self.amount_cents} {self.currency} ({self.status})"

    @property
    def is_closed(self) -> bool:
        return self.status != DisputeStatus.OPEN

    @transition(field=status, source=DisputeStatus.OPEN, target=DisputeStatus.WON)
    def win(self, *, at: Any, by: Any = None, reason: str = "") -> None:
        self.closed_at = at

    @transition(field=status, source=DisputeStatus.OPEN, target=DisputeStatus.LOST)
    def lose(self, *, at: Any, by: Any = None, reason: str = "") -> None:
        self.closed_at = at
