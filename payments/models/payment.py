from __future__ import annotations

from typing import Any

from django.db import models
from django_fsm import FSMField, FSMModelMixin, transition

from ticketing.tenancy import TenantQuerySet


class PaymentStatus(models.TextChoices):
    CREATED = "created", "Created"
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"
    REFUNDED = "refunded", "Refunded"


#: States in which the provider holds our money (refunds are possible).
CAPTURED_STATES = frozenset({PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED})


class Payment(FSMModelMixin, models.Model):
    """The money for one payment session, as the provider reports it.

    created -> pending -> succeeded | failed | cancelled, then
    succeeded -> partially_refunded -> refunded. Success is also reachable from
    failed (the buyer retried with another card on the same hosted page) and
    from cancelled (the buyer paid just as we gave up on the session): money the
    provider took is always recorded, and the workflows layer decides whether
    to keep or refund it. Nothing ever leaves succeeded except by a refund.

    Amounts are integer minor units. `refund_pending_cents` reserves refunds
    that are on their way to the provider, so that confirmed + in-flight
    refunds can never exceed what was captured (a CHECK constraint backs it).
    """

    organization = models.ForeignKey("ticketing.Organization", on_delete=models.PROTECT, related_name="+")
    order = models.ForeignKey("ticketing.Order", on_delete=models.PROTECT, related_name="payments")
    session = models.OneToOneField("payments.PaymentSession", on_delete=models.PROTECT, related_name="payment")
    provider = models.CharField(max_length=32)
    provider_payment_id = models.CharField(max_length=255, blank=True)
    amount_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    captured_cents = models.PositiveIntegerField(default=0)
    refunded_cents = models.PositiveIntegerField(default=0)
    refund_pending_cents = models.PositiveIntegerField(default=0)
    status = FSMField(max_length=20, choices=PaymentStatus.choices, default=PaymentStatus.CREATED, protected=True)
    failure_code = models.CharField(max_length=64, blank=True)
    failure_message = models.CharField(max_length=300, blank=True)
    succeeded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantQuerySet.as_manager()
    tenant_field = "organization"

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "updated_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "provider_payment_id"],
                condition=~models.Q(provider_payment_id=""),
                name="payment_unique_provider_id",
            ),
            models.CheckConstraint(
                condition=models.Q(captured_cents__lte=models.F("amount_cents")),
                name="payment_captured_within_amount",
            ),
            models.CheckConstraint(
                condition=models.Q(captured_cents__gte=models.F("refunded_cents") + models.F("refund_pending_cents")),
                name="payment_refunds_within_captured",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider} payment {self.provider_payment_id or self.pk}"

    @property
    def refundable_cents(self) -> int:
        return self.captured_cents - self.refunded_cents - self.refund_pending_cents

    # Transitions only check and change fields; services lock, call and save.
    @transition(field=status, source=PaymentStatus.CREATED, target=PaymentStatus.PENDING)
    def mark_pending(self, *, by: Any = None, reason: str = "") -> None:
        pass

    @transition(
        field=status,
        source=[PaymentStatus.CREATED, PaymentStatus.PENDING, PaymentStatus.FAILED, PaymentStatus.CANCELLED],
        target=PaymentStatus.SUCCEEDED,
    )
    def mark_succeeded(self, *, captured_cents: int, at: Any, by: Any = None, reason: str = "") -> None:
        self.captured_cents = captured_cents
        self.succeeded_at = at
        self.failure_code = ""
        self.failure_message = ""

    @transition(field=status, source=[PaymentStatus.CREATED, PaymentStatus.PENDING], target=PaymentStatus.FAILED)
    def mark_failed(self, *, failure_code: str, failure_message: str, by: Any = None, reason: str = "") -> None:
        self.failure_code = failure_code[:64]
        self.failure_message = failure_message[:300]

    @transition(
        field=status,
        source=[PaymentStatus.CREATED, PaymentStatus.PENDING, PaymentStatus.FAILED],
        target=PaymentStatus.CANCELLED,
    )
    def mark_cancelled(self, *, by: Any = None, reason: str = "") -> None:
        pass

    @transition(
        field=status,
        source=[PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED],
        target=PaymentStatus.PARTIALLY_REFUNDED,
    )
    def refund_partially(self, *, by: Any = None, reason: str = "") -> None:
        pass

    @transition(
        field=status,
        source=[PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED],
        target=PaymentStatus.REFUNDED,
    )
    def refund_fully(self, *, by: Any = None, reason: str = "") -> None:
        pass
