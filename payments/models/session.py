from __future__ import annotations

import secrets
from typing import Any

from django.db import models
from django_fsm import FSMField, FSMModelMixin, transition

from ticketing.tenancy import TenantQuerySet


def new_session_reference() -> str:
    """Our public id for a session, sent to the provider as metadata and echoed
    back in its webhooks, so a webhook can be matched even before we stored the
    provider's own session id."""
    return f"ps_{secrets.token_urlsafe(18)}"


class PaymentSessionStatus(models.TextChoices):
    CREATED = "created", "Created"  # our row exists; the provider has not confirmed the session yet
    OPEN = "open", "Open"  # the buyer can pay at payment_url
    COMPLETE = "complete", "Complete"  # a payment succeeded
    EXPIRED = "expired", "Expired"  # closed without a successful payment


class PaymentSession(FSMModelMixin, models.Model):
    """One hosted checkout at a provider for one order: where the buyer pays."""

    organization = models.ForeignKey("ticketing.Organization", on_delete=models.PROTECT, related_name="+")
    order = models.ForeignKey("ticketing.Order", on_delete=models.PROTECT, related_name="payment_sessions")
    provider = models.CharField(max_length=32)
    reference = models.CharField(max_length=40, unique=True, default=new_session_reference, editable=False)
    provider_session_id = models.CharField(max_length=255, blank=True)
    amount_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    status = FSMField(
        max_length=20, choices=PaymentSessionStatus.choices, default=PaymentSessionStatus.CREATED, protected=True
    )
    payment_url = models.CharField(max_length=2000, blank=True)
    # Kept so a retry after a failed provider call sends the provider the very
    # same request under the same idempotency key.
    success_url = models.CharField(max_length=2000, blank=True)
    cancel_url = models.CharField(max_length=2000, blank=True)
    expires_at = models.DateTimeField()
    idempotency_key = models.CharField(max_length=255, unique=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantQuerySet.as_manager()
    tenant_field = "organization"

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "provider_session_id"],
                condition=~models.Q(provider_session_id=""),
                name="payment_session_unique_provider_id",
            ),
            models.CheckConstraint(condition=models.Q(amount_cents__gt=0), name="payment_session_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.provider} session {self.provider_session_id or self.reference}"

    # Transitions only check and change fields; services lock, call and save.
    @transition(field=status, source=PaymentSessionStatus.CREATED, target=PaymentSessionStatus.OPEN)
    def open(self, *, by: Any = None, reason: str = "") -> None:
        pass

    # A payment that lands after we expired the session still completes it:
    # money that arrived is recorded, never dropped.
    @transition(
        field=status,
        source=[PaymentSessionStatus.CREATED, PaymentSessionStatus.OPEN, PaymentSessionStatus.EXPIRED],
        target=PaymentSessionStatus.COMPLETE,
    )
    def complete(self, *, by: Any = None, reason: str = "") -> None:
        pass

    @transition(
        field=status,
        source=[PaymentSessionStatus.CREATED, PaymentSessionStatus.OPEN],
        target=PaymentSessionStatus.EXPIRED,
    )
    def expire(self, *, by: Any = None, reason: str = "") -> None:
        pass
