from __future__ import annotations

import secrets
from typing import Any

from django.db import models
from django_fsm import FSMField, FSMModelMixin, transition

from ticketing.tenancy import TenantQuerySet


def new_public_code() -> str:
    """An unguessable code for links that stand in for a login (order and ticket pages)."""
    return secrets.token_urlsafe(16)


class OrderStatus(models.TextChoices):
    PENDING = "pending", "Pending payment"
    PAID = "paid", "Paid"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired"
    PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"
    REFUNDED = "refunded", "Refunded"


class Order(FSMModelMixin, models.Model):
    organization = models.ForeignKey("ticketing.Organization", on_delete=models.PROTECT, related_name="orders")
    event = models.ForeignKey("ticketing.Event", on_delete=models.PROTECT, related_name="orders")
    code = models.CharField(max_length=32, unique=True, default=new_public_code, editable=False)
    buyer_name = models.CharField(max_length=200)
    buyer_email = models.EmailField()
    currency = models.CharField(max_length=3)
    subtotal_cents = models.PositiveIntegerField(default=0)
    fees_cents = models.PositiveIntegerField(default=0)
    donation_cents = models.PositiveIntegerField(default=0)
    total_cents = models.PositiveIntegerField(default=0)
    fee_snapshot = models.JSONField(default=dict, blank=True, editable=False)
    status = FSMField(max_length=20, choices=OrderStatus.choices, default=OrderStatus.PENDING, protected=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantQuerySet.as_manager()
    tenant_field = "organization"

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["event", "status"]), models.Index(fields=["buyer_email"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(
                    total_cents=models.F("subtotal_cents") + models.F("fees_cents") + models.F("donation_cents")
                ),
                name="order_total_adds_up",
            ),
        ]

    def __str__(self) -> str:
        return f"Order {self.code}"

    # From expired or cancelled too: a payment that arrives late is honoured
    # when its tickets can still be had (CompleteCheckout decides).
    @transition(
        field=status,
        source=[OrderStatus.PENDING, OrderStatus.EXPIRED, OrderStatus.CANCELLED],
        target=OrderStatus.PAID,
    )
    def mark_paid(self, *, paid_at: Any, by: Any = None, reason: str = "") -> None:
        self.paid_at = paid_at

    @transition(field=status, source=OrderStatus.PENDING, target=OrderStatus.CANCELLED)
    def cancel(self, *, by: Any = None, reason: str = "") -> None:
        pass

    @transition(field=status, source=OrderStatus.PENDING, target=OrderStatus.EXPIRED)
    def expire(self, *, by: Any = None, reason: str = "") -> None:
        pass

    @transition(
        field=status,
        source=[OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED],
        target=OrderStatus.PARTIALLY_REFUNDED,
    )
    def refund_partially(self, *, by: Any = None, reason: str = "") -> None:
        pass

    @transition(field=status, source=[OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED], target=OrderStatus.REFUNDED)
    def refund(self, *, by: Any = None, reason: str = "") -> None:
        pass


class OrderLine(models.Model):
    organization = models.ForeignKey("ticketing.Organization", on_delete=models.PROTECT, related_name="+")
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    ticket_type = models.ForeignKey("ticketing.TicketType", on_delete=models.PROTECT, related_name="+")
    quantity = models.PositiveIntegerField()
    unit_price_cents = models.PositiveIntegerField()
    seat = models.ForeignKey("seating.Seat", null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    objects = TenantQuerySet.as_manager()
    tenant_field = "organization"

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(quantity__gte=1), name="order_line_quantity_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.ticket_type_id}"

    @property
    def total_cents(self) -> int:
        return self.quantity * self.unit_price_cents


class TicketStatus(models.TextChoices):
    VALID = "valid", "Valid"
    REVOKED = "revoked", "Revoked"
    REFUNDED = "refunded", "Refunded"


class Ticket(FSMModelMixin, models.Model):
    """One admission. Issued inside the transaction that marks the order paid.

    `generation` is part of the signed QR payload: transfer, refund or a seat
    change bumps it so the old code stops working."""

    organization = models.ForeignKey("ticketing.Organization", on_delete=models.PROTECT, related_name="+")
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="tickets")
    order_line = models.ForeignKey(OrderLine, on_delete=models.PROTECT, related_name="tickets")
    event = models.ForeignKey("ticketing.Event", on_delete=models.PROTECT, related_name="+")
    ticket_type = models.ForeignKey("ticketing.TicketType", on_delete=models.PROTECT, related_name="+")
    seat = models.ForeignKey("seating.Seat", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    code = models.CharField(max_length=32, unique=True, default=new_public_code, editable=False)
    holder_name = models.CharField(max_length=200, blank=True)
    holder_email = models.EmailField(blank=True)
    generation = models.PositiveIntegerField(default=1)
    status = FSMField(max_length=20, choices=TicketStatus.choices, default=TicketStatus.VALID, protected=True)
    issued_at = models.DateTimeField(auto_now_add=True)

    objects = TenantQuerySet.as_manager()
    tenant_field = "organization"

    class Meta:
        ordering = ["id"]
        constraints = [
            # The backstop against double sale: one valid ticket per seat.
            models.UniqueConstraint(
                fields=["seat"], condition=models.Q(status="valid"), name="ticket_one_valid_per_seat"
            ),
        ]

    def __str__(self) -> str:
        return f"Ticket {self.code}"

    @transition(field=status, source=TicketStatus.VALID, target=TicketStatus.REVOKED)
    def revoke(self, *, by: Any = None, reason: str = "") -> None:
        self.generation += 1

    @transition(field=status, source=TicketStatus.VALID, target=TicketStatus.REFUNDED)
    def mark_refunded(self, *, by: Any = None, reason: str = "") -> None:
        self.generation += 1
