from __future__ import annotations

from typing import Any

from django.db import models
from django_fsm import FSMField, FSMModelMixin, transition

from ticketing.tenancy import TenantQuerySet


class SettlementStatus(models.TextChoices):
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    POSTED = "posted", "Posted"


class Settlement(FSMModelMixin, models.Model):
    """One (organization, event, cutoff) settlement and its statement.

    Everything the event's pending account received up to `cutoff` and not
    yet settled moves to the organizer's available balance, minus the rolling
    reserve (held until `reserve_release_at`) and minus what the organizer
    still owed (receivable, from refunds or chargebacks after an earlier
    payout). The statement adds up:
        gross - platform fees - processor fees - refunds - chargebacks
            = pending = reserve + receivable recovered + net
    A negative pending amount (the organizer owes) moves to the receivable.
    """

    organization = models.ForeignKey("ticketing.Organization", on_delete=models.PROTECT, related_name="+")
    event = models.ForeignKey("ticketing.Event", on_delete=models.PROTECT, related_name="+")
    currency = models.CharField(max_length=3)
    cutoff = models.DateTimeField()
    status = FSMField(
        max_length=20, choices=SettlementStatus.choices, default=SettlementStatus.AWAITING_APPROVAL, protected=True
    )
    gross_cents = models.BigIntegerField(default=0)
    platform_fees_cents = models.BigIntegerField(default=0)
    processor_fees_cents = models.BigIntegerField(default=0)
    refunds_cents = models.BigIntegerField(default=0)
    chargebacks_cents = models.BigIntegerField(default=0)
    pending_cents = models.BigIntegerField(default=0, help_text="What leaves the event's pending account.")
    reserve_cents = models.BigIntegerField(default=0)
    receivable_recovered_cents = models.BigIntegerField(default=0)
    net_cents = models.BigIntegerField(default=0, help_text="What becomes available for payout.")
    reserve_release_at = models.DateTimeField(null=True, blank=True)
    reserve_released_at = models.DateTimeField(null=True, blank=True)
    journal_transaction = models.OneToOneField(
        "finance.JournalTransaction", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    posted_at = models.DateTimeField(null=True, blank=True)

    objects = TenantQuerySet.as_manager()
    tenant_field = "organization"

    class Meta:
        ordering = ["-cutoff", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "event", "cutoff"], name="settlement_unique_cutoff"),
        ]

    def __str__(self) -> str:
        return f"Settlement of {self.event_id} at {self.cutoff:%Y-%m-%d}"

    STATEMENT_FIELDS = (
        "gross_cents",
        "platform_fees_cents",
        "processor_fees_cents",
        "refunds_cents",
        "chargebacks_cents",
        "pending_cents",
        "reserve_cents",
        "receivable_recovered_cents",
        "net_cents",
    )

    @transition(field=status, source=SettlementStatus.AWAITING_APPROVAL, target=SettlementStatus.POSTED)
    def post(self, *, at: Any, by: Any = None, reason: str = "") -> None:
        self.posted_at = at
