"""Tickets: issue, then revoke, refund or transfer.

Issuing runs inside the transaction that marks the order paid. The changes
after the sale each lock the ticket row, re-check its state (returning early
when the change is already done, so a retried workflow step is harmless),
apply the change with its audit row and save, in one transaction. Revoking,
refunding and transferring all bump `generation`, which is signed into the
ticket's QR code: the old code no longer matches the server's ticket."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from ticketing import rows
from ticketing.exceptions import InvalidInput, TicketAlreadyRefunded, TicketNotFound, TicketNotValid
from ticketing.locks import lock_timeout
from ticketing.models import AuditLogEntry, Order, OrderLine, Ticket, TicketStatus
from ticketing.models.order import new_public_code


def tickets_issue(
    *, order: Order, lines: Sequence[OrderLine] | None = None, unpaid_until_now: bool = False
) -> list[Ticket]:
    """Create the order's tickets in one INSERT. Must run inside the caller's
    transaction that holds the order's row lock (CompleteCheckout). `lines`:
    the order's lines, if the caller has read them already. Idempotent: an
    order's existing tickets are returned instead, unless the caller saw the
    order unpaid under that lock (`unpaid_until_now`): an order that was
    never paid has none."""
    assert transaction.get_connection().in_atomic_block, "tickets are issued in the payment's transaction"
    if not unpaid_until_now:
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
        for line in (order.lines.all() if lines is None else lines)
        for _ in range(line.quantity)
    ]
    return rows.insert(tickets)


def _lock_ticket(ticket_id: int) -> Ticket:
    ticket = Ticket.objects.select_for_update(no_key=True).filter(pk=ticket_id).first()
    if ticket is None:
        raise TicketNotFound(detail={"ticket": ticket_id})
    return ticket


def _end_ticket(*, ticket_id: int, done: str, apply: Callable[[Ticket], None]) -> tuple[Ticket, bool]:
    with transaction.atomic(), lock_timeout():
        ticket = _lock_ticket(ticket_id)
        if ticket.status == done:
            return ticket, False
        if ticket.status == TicketStatus.REFUNDED:
            raise TicketAlreadyRefunded(detail={"ticket": ticket.pk})
        if ticket.status != TicketStatus.VALID:
            raise TicketNotValid(detail={"ticket": ticket.pk, "status": ticket.status})
        apply(ticket)  # the transition bumps the generation and writes the audit row
        ticket.save(update_fields=["status", "generation"])
        return ticket, True


def ticket_revoke(*, ticket_id: int, by: Any = None, reason: str = "") -> tuple[Ticket, bool]:
    """Void a valid ticket (staff decision, no money back). Locks the ticket.
    Idempotent: (ticket, False) if it was revoked already. Raises
    TicketAlreadyRefunded for a refunded ticket."""
    return _end_ticket(ticket_id=ticket_id, done=TicketStatus.REVOKED, apply=lambda t: t.revoke(by=by, reason=reason))


def ticket_mark_refunded(*, ticket_id: int, by: Any = None, reason: str = "") -> tuple[Ticket, bool]:
    """A valid ticket's money went back. Locks the ticket. Idempotent:
    (ticket, False) if it was refunded already. Raises TicketNotValid for a
    revoked ticket."""
    return _end_ticket(
        ticket_id=ticket_id, done=TicketStatus.REFUNDED, apply=lambda t: t.mark_refunded(by=by, reason=reason)
    )


def ticket_holder_clean(*, name: Any, email: Any) -> tuple[str, str]:
    name = str(name or "").strip()
    email = str(email or "").strip().lower()
    problems = {}
    if not name or len(name) > 200:
        problems["holder_name"] = "Enter the new holder's name (up to 200 characters)."
    try:
        validate_email(email)
    except ValidationError:
        problems["holder_email"] = "Enter a valid e-mail address."
    if problems:
        raise InvalidInput("Please check the new holder's details.", detail=problems)
    return name, email


def ticket_transfer(
    *, ticket_id: int, holder_name: str, holder_email: str, by: Any = None, reason: str = ""
) -> tuple[Ticket, bool]:
    """Give a valid ticket to a new holder. Locks the ticket; bumps the
    generation (the old QR code stops matching) and replaces the ticket's
    public page code (the old holder's link stops working), with an audit
    row, in one transaction. Returns (ticket, False) without changing
    anything if the ticket already belongs to this holder (a retry)."""
    name, email = ticket_holder_clean(name=holder_name, email=holder_email)
    with transaction.atomic(), lock_timeout():
        ticket = _lock_ticket(ticket_id)
        if ticket.status != TicketStatus.VALID:
            raise TicketNotValid(detail={"ticket": ticket.pk, "status": ticket.status})
        if (ticket.holder_name, ticket.holder_email.lower()) == (name, email):
            return ticket, False
        previous = ticket.holder_email or ticket.holder_name
        old_generation = ticket.generation
        ticket.holder_name, ticket.holder_email = name, email
        ticket.generation += 1
        ticket.code = new_public_code()
        ticket.save(update_fields=["holder_name", "holder_email", "generation", "code"])
        AuditLogEntry.objects.record_many(
            objects=[ticket],
            field="generation",
            source=str(old_generation),
            target=str(ticket.generation),
            transition="transfer",
            actor=by,
            reason=(f"transferred from {previous} to {email}" + (f": {reason}" if reason else ""))[:500],
        )
        return ticket, True
