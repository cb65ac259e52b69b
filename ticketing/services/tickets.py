"""Issuing tickets: one row per admission, inside the transaction that marks
the order paid. Idempotent: an order that has tickets gets no more."""

from __future__ import annotations

from django.db import transaction

from ticketing.models import Order, Ticket


def tickets_issue(*, order: Order) -> list[Ticket]:
    """Create the order's tickets in one INSERT. Must run inside the caller's
    transaction that holds the order's row lock (CompleteCheckout)."""
    assert transaction.get_connection().in_atomic_block, "tickets are issued in the payment's transaction"
    existing = list(Ticket.objects.filter(order_id=order.pk))
    if existing:
        return existing
    tickets = [
        Ticket(
            organization_id=order.organization_id,
            order_id=order.pk,
            order_line=line,
            event_id=order.event_id,
            ticket_type_id=line.ticket_type_id,
            seat_id=line.seat_id,
            holder_name=order.buyer_name,
            holder_email=order.buyer_email,
        )
        for line in order.lines.all()
        for _ in range(line.quantity)
    ]
    return Ticket.objects.bulk_create(tickets)
