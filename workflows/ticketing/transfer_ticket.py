"""TransferTicket: a ticket changes hands.

One transaction (durable: nothing else may ride on it): lock the ticket,
give it to the new holder with a new generation (its old QR code no longer
matches the server's ticket and goes on the event's revocation list) and a
new public page code (the old holder's link stops working), audit it, and
record the new holder's e-mail, which carries only this ticket's new code
and is sent after commit through the outbox. A transfer to the ticket's
current holder changes nothing and sends nothing (a retried request)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction

from ticketing.integrations import event_publish_if_wanted, ticket_payload
from ticketing.models import EmailKind, Ticket
from ticketing.services.emails import email_delivery_record
from ticketing.services.tickets import ticket_transfer
from workflows.engine import enqueue
from workflows.ticketing.issue_tickets import SEND_EMAIL_TASK


def transfer_ticket(*, ticket_id: int, holder_name: str, holder_email: str, by: Any = None) -> Ticket:
    """Transfer a valid ticket to `holder_name` <`holder_email`>; returns it.
    Raises TicketNotFound, TicketNotValid (revoked or refunded), InvalidInput
    (name or e-mail), or Busy on a lock timeout."""
    with transaction.atomic(durable=True):
        previous_holder = Ticket.objects.filter(pk=ticket_id).values_list("holder_name", flat=True).first()
        ticket, changed = ticket_transfer(
            ticket_id=ticket_id, holder_name=holder_name, holder_email=holder_email, by=by
        )
        if changed:
            ticket = Ticket.objects.select_related("order").get(pk=ticket.pk)
            delivery = email_delivery_record(
                order=ticket.order,
                kind=EmailKind.TICKET_TRANSFERRED,
                # One e-mail per generation: a later transfer of the same ticket mails again.
                dedup_key=f"transfer:{ticket.pk}:{ticket.generation}",
                to_email=ticket.holder_email,
                context={
                    "ticket_ids": [ticket.pk],
                    "holder_name": ticket.holder_name,
                    "from_name": previous_holder or ticket.order.buyer_name,
                    "ticket_url": f"{settings.SITE_URL}/tickets/{ticket.code}/",
                },
            )
            enqueue(SEND_EMAIL_TASK, [delivery.pk], dedup_key=f"email:{delivery.pk}")
            event_publish_if_wanted(
                organization_id=ticket.organization_id, event_type="ticket.transferred", payload=ticket_payload(ticket)
            )
        return ticket
