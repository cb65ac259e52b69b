"""RevokeTicket: staff void a ticket without a refund.

One transaction (durable): lock the ticket, move it to revoked with a new
generation (its QR code no longer matches the server's ticket) and an audit
row naming who and why. Idempotent: revoking a revoked ticket changes nothing.

The seat or unit is deliberately NOT put back on sale. A revocation is a
staff decision about a ticket that was paid for and not refunded (fraud,
a ban, a duplicate sent by mistake); selling its place again would let the
event sell more admissions than it has been paid for, and a mistaken
revocation could no longer be answered with the same seat. If the buyer is
to get money back, RefundOrder is the process: it returns the seat or unit
along with the money."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from ticketing.integrations import event_publish_if_wanted, ticket_payload
from ticketing.models import Ticket
from ticketing.services.tickets import ticket_revoke


def revoke_ticket(*, ticket_id: int, by: Any = None, reason: str = "") -> Ticket:
    """Revoke a valid ticket; returns it. Raises TicketNotFound,
    TicketAlreadyRefunded (a refunded ticket is void already), or Busy."""
    with transaction.atomic(durable=True):
        ticket, changed = ticket_revoke(ticket_id=ticket_id, by=by, reason=reason or "revoked by staff")
        if changed:
            event_publish_if_wanted(
                organization_id=ticket.organization_id, event_type="ticket.revoked", payload=ticket_payload(ticket)
            )
        return ticket
