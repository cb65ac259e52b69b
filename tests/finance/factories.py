"""Paid orders with their payment and fee snapshot, for the finance tests."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

from django.utils import timezone

from finance.fees import FeeRules, LineInput, calculate_fees
from payments.models import Payment, PaymentSession, PaymentStatus
from ticketing.models import Event, Order, OrderStatus

_seq = itertools.count(1)

RULES = FeeRules(
    platform_rate_bp=350,
    platform_fixed_per_ticket_cents=99,
    processor_rate_bp=290,
    processor_fixed_cents=30,
)


def snapshot(
    *,
    unit_price_cents: int = 5000,
    quantity: int = 2,
    donation_cents: int = 0,
    rules: FeeRules = RULES,
    currency: str = "EUR",
) -> dict[str, Any]:
    breakdown = calculate_fees(
        rules=rules,
        currency=currency,
        lines=[LineInput(key="t", unit_price_cents=unit_price_cents, quantity=quantity)],
        donation_cents=donation_cents,
    )
    return breakdown.as_snapshot()


def make_paid_payment(*, event: Event, fee_snapshot: dict[str, Any] | None = None) -> Payment:
    """A paid order and its succeeded payment (as CompleteCheckout leaves them)."""
    snap = fee_snapshot or snapshot(currency=event.currency)
    n = next(_seq)
    now = timezone.now()
    order = Order.objects.create(
        organization=event.organization,
        event=event,
        buyer_name="Ada Buyer",
        buyer_email="ada@example.com",
        currency=event.currency,
        subtotal_cents=snap["subtotal_cents"],
        fees_cents=snap["buyer_fees_cents"],
        donation_cents=snap["donation_cents"],
        total_cents=snap["total_cents"],
        fee_snapshot=snap,
        status=OrderStatus.PAID,
        paid_at=now,
    )
    session = PaymentSession.objects.create(
        organization=event.organization,
        order=order,
        provider="sandbox",
        amount_cents=snap["total_cents"],
        currency=event.currency,
        expires_at=now + timedelta(minutes=15),
        idempotency_key=f"fin-test-session-{n}-{order.pk}",
    )
    return Payment.objects.create(
        organization=event.organization,
        order=order,
        session=session,
        provider="sandbox",
        provider_payment_id=f"fin_pi_{n}_{order.pk}",
        amount_cents=snap["total_cents"],
        currency=event.currency,
        captured_cents=snap["total_cents"],
        status=PaymentStatus.SUCCEEDED,
        succeeded_at=now,
    )


def sale_kwargs(payment: Payment) -> dict[str, Any]:
    order = payment.order
    return {
        "order_id": order.pk,
        "payment_id": payment.pk,
        "organization_id": order.organization_id,
        "event_id": order.event_id,
        "currency": order.currency,
        "fee_snapshot": order.fee_snapshot,
        "occurred_at": payment.succeeded_at or timezone.now(),
    }
