"""IssueTickets: create a paid order's tickets and the e-mail that carries them.

Runs inside CompleteCheckout's transaction: tickets are rows under unique
constraints, never made by a background task; the ticket e-mail is a
delivery row in the same transaction, and its sending is queued through the
outbox, so it is neither lost nor sent twice."""

from __future__ import annotations

from collections.abc import Sequence

from ticketing.models import EmailKind, Order, OrderLine, Ticket
from ticketing.services.emails import email_delivery_record
from ticketing.services.tickets import tickets_issue
from workflows.engine import enqueue

SEND_EMAIL_TASK = "ticketing.tasks.send_email_delivery"


def issue_tickets(*, order: Order, lines: Sequence[OrderLine] | None = None) -> list[Ticket]:
    tickets = tickets_issue(order=order, lines=lines)
    send_buyer_email(order=order, kind=EmailKind.TICKETS, dedup_key=f"tickets:{order.code}")
    return tickets


def send_buyer_email(*, order: Order, kind: str, dedup_key: str, context: dict[str, object] | None = None) -> None:
    """Record an e-mail to the buyer and queue its sending, in the caller's transaction."""
    delivery = email_delivery_record(order=order, kind=kind, dedup_key=dedup_key, context=context)
    enqueue(SEND_EMAIL_TASK, [delivery.pk], dedup_key=f"email:{delivery.pk}")
