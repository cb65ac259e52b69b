"""IssueTickets: create a paid order's tickets and the e-mail that carries them.

Runs inside CompleteCheckout's transaction: tickets are rows under unique
constraints, never made by a background task; the ticket e-mail is a
delivery row in the same transaction, so it is neither lost nor sent twice.

The delivery row is the e-mail's own outbox: right after the commit the
e-mail bell is rung (ticketing.services.email_bell: a Redis SET; only the
ring that sets it publishes a drain, which sends the waiting e-mails in
batches), with no outbox message of the engine's and, in a rush, no Celery
message of the order's own. If the bell cannot ring (Redis unreachable, no
Redis, the drain not published), the delivery's own send is queued; if the
broker refuses that too, an outbox message takes over and its relay
publishes it when the broker is back. If the process dies between the commit
and the hand-off, the e-mail sweeper
(ticketing.tasks.resend_lost_email_deliveries) finds the delivery still
pending and sends it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial

from django.db import transaction

from ticketing.models import EmailKind, Order, OrderLine, Ticket
from ticketing.services.email_bell import email_bell_ring
from ticketing.services.emails import email_delivery_record
from ticketing.services.tickets import tickets_issue
from workflows.engine import enqueue
from workflows.engine.outbox import send

logger = logging.getLogger(__name__)

SEND_EMAIL_TASK = "ticketing.tasks.send_email_delivery"


def issue_tickets(
    *, order: Order, lines: Sequence[OrderLine] | None = None, unpaid_until_now: bool = False
) -> list[Ticket]:
    tickets = tickets_issue(order=order, lines=lines, unpaid_until_now=unpaid_until_now)
    send_buyer_email(order=order, kind=EmailKind.TICKETS, dedup_key=f"tickets:{order.code}")
    return tickets


def send_buyer_email(*, order: Order, kind: str, dedup_key: str, context: dict[str, object] | None = None) -> None:
    """Record an e-mail to the buyer in the caller's transaction; it is sent
    after that commits."""
    delivery = email_delivery_record(order=order, kind=kind, dedup_key=dedup_key, context=context)
    transaction.on_commit(partial(_hand_to_sender, delivery.pk), robust=True)


def _hand_to_sender(delivery_id: int) -> None:
    """After the commit: ring the e-mail bell; if it cannot ring, queue this
    delivery's own send, or leave it to the outbox's relay if the broker (or,
    in eager mode, the send itself) fails."""
    if email_bell_ring():
        return
    try:
        send(SEND_EMAIL_TASK, [delivery_id])
    except Exception:
        logger.warning("e-mail delivery %s not queued; the outbox relays it", delivery_id, exc_info=True)
        with transaction.atomic():
            enqueue(SEND_EMAIL_TASK, [delivery_id], dedup_key=f"email:{delivery_id}")
