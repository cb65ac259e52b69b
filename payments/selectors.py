"""Reads of the payments domain, for the workflows layer, pages and the API."""

from __future__ import annotations

from django.db.models import QuerySet

from payments.models import Payment, PaymentSession, PaymentStatus, Refund
from ticketing.models import OrderStatus


def payment_session_for_order(*, order_id: int) -> PaymentSession | None:
    """The order's most recent payment session (with its payment)."""
    return (
        PaymentSession.objects.select_related("payment")
        .filter(order_id=order_id)
        .order_by("-created_at", "-id")
        .first()
    )


def payment_for_order(*, order_id: int) -> Payment | None:
    """The order's succeeded payment if there is one, else its most recent."""
    payments = Payment.objects.filter(order_id=order_id)
    return (
        payments.filter(status__in=[PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED])
        .order_by("-succeeded_at", "-id")
        .first()
        or payments.order_by("-created_at", "-id").first()
    )


def payment_list_succeeded_for_unpaid_orders(*, limit: int = 100) -> QuerySet[Payment]:
    """Succeeded payments whose order is not marked paid yet: the sweep that
    recovers a payment_succeeded signal lost to a crash right after commit."""
    return (
        Payment.objects.filter(
            status=PaymentStatus.SUCCEEDED,
            order__status__in=[OrderStatus.PENDING, OrderStatus.EXPIRED, OrderStatus.CANCELLED],
        )
        .select_related("order")
        .order_by("succeeded_at", "id")[:limit]
    )


def refund_list_for_payment(*, payment_id: int) -> QuerySet[Refund]:
    return Refund.objects.filter(payment_id=payment_id).order_by("created_at", "id")
