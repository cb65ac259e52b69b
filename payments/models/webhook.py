from __future__ import annotations

from django.db import models
from django.utils import timezone

from ticketing.tenancy import TenantQuerySet


class WebhookOutcome(models.TextChoices):
    RECEIVED = "received", "Received"  # stored, not yet applied (only ever seen inside the transaction)
    PROCESSED = "processed", "Processed"  # it changed a payment, refund or dispute
    NO_CHANGE = "no_change", "No change"  # matched, but the state was already there (or newer)
    IGNORED = "ignored", "Ignored"  # an event type we do not act on
    REJECTED = "rejected", "Rejected"  # verified, but it does not match our records


class WebhookEvent(models.Model):
    """One provider event, as delivered to us. (provider, provider_event_id) is
    unique: that constraint is what makes a replayed webhook a no-op.

    Only correctly signed events are stored: an unsigned or forged body is
    rejected before anything is written, so nobody can fill this table from
    outside. A signed event that does not match our records is kept as
    REJECTED, for the record, and is evaluated again if the provider delivers it
    again."""

    organization = models.ForeignKey(
        "ticketing.Organization", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    provider = models.CharField(max_length=32)
    provider_event_id = models.CharField(max_length=255)
    event_type = models.CharField(max_length=100)
    payload = models.JSONField()
    signature_verified = models.BooleanField(default=False)
    session = models.ForeignKey(
        "payments.PaymentSession", null=True, blank=True, on_delete=models.PROTECT, related_name="webhook_events"
    )
    payment = models.ForeignKey(
        "payments.Payment", null=True, blank=True, on_delete=models.PROTECT, related_name="webhook_events"
    )
    refund = models.ForeignKey(
        "payments.Refund", null=True, blank=True, on_delete=models.PROTECT, related_name="webhook_events"
    )
    dispute = models.ForeignKey(
        "payments.Dispute", null=True, blank=True, on_delete=models.PROTECT, related_name="webhook_events"
    )
    outcome = models.CharField(max_length=20, choices=WebhookOutcome.choices, default=WebhookOutcome.RECEIVED)
    error = models.JSONField(null=True, blank=True)
    delivery_count = models.PositiveIntegerField(default=1)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    objects = TenantQuerySet.as_manager()
    tenant_field = "organization"

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "provider_event_id"], name="webhook_event_unique_per_provider"),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.event_type} {self.provider_event_id}"
