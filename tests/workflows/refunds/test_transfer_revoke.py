"""TransferTicket and RevokeTicket: the generation moves on, so old codes fail."""

from __future__ import annotations

import pytest
from django.core import mail

from tests.workflows.refunds.conftest import tickets_of
from ticketing.exceptions import DomainError, InvalidInput
from ticketing.models import AuditLogEntry, EmailDelivery, EmailKind, TicketStatus
from ticketing.services.signing_keys import event_public_keys, ticket_code_for
from ticketing.ticket_codes import ticket_code_verify
from workflows.payments.refund_order import refund_order
from workflows.ticketing.revoke_ticket import revoke_ticket
from workflows.ticketing.transfer_ticket import transfer_ticket

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("require_postgres", "check_inventory"),
]


def _code(ticket) -> str:
    ticket.refresh_from_db()
    return ticket_code_for(ticket=ticket)


def _generation_in(code: str, ticket) -> int:
    keys = event_public_keys(event_id=ticket.event_id)
    return ticket_code_verify(code, public_keys=keys, now=ticket.event.starts_at).generation


def test_a_transfer_gives_the_new_holder_a_new_code_and_the_old_one_fails(buy_ga, staff_user):
    order = buy_ga(2)
    ticket, other = tickets_of(order)
    old_code, old_page = _code(ticket), ticket.code
    mail.outbox.clear()

    moved = transfer_ticket(
        ticket_id=ticket.pk, holder_name="Grace Hopper", holder_email="Grace@Example.com", by=staff_user
    )

    assert (moved.holder_name, moved.holder_email, moved.generation) == ("Grace Hopper", "grace@example.com", 2)
    assert moved.status == TicketStatus.VALID and moved.code != old_page
    assert _generation_in(old_code, moved) != moved.generation
    assert _generation_in(_code(moved), moved) == moved.generation
    other.refresh_from_db()
    assert other.generation == 1  # the rest of the order is untouched
    # The new holder, and only they, get this ticket's new code.
    assert [m.to for m in mail.outbox] == [["grace@example.com"]]
    message = mail.outbox[0]
    assert "transferred a ticket" in message.body and moved.code in message.body
    assert order.code not in message.body  # not the buyer's order page
    images = [a for a in message.attachments if getattr(a, "get_content_type", lambda: "")() == "image/png"]
    assert len(images) == 1
    entry = AuditLogEntry.objects.get(transition="transfer", object_id=str(ticket.pk))
    assert (entry.source_state, entry.target_state, entry.actor_id) == ("1", "2", staff_user.pk)

    # Repeated (a retried request): nothing changes, no second e-mail.
    again = transfer_ticket(ticket_id=ticket.pk, holder_name="Grace Hopper", holder_email="grace@example.com")
    assert again.generation == 2 and len(mail.outbox) == 1
    assert EmailDelivery.objects.filter(kind=EmailKind.TICKET_TRANSFERRED).count() == 1

    with pytest.raises(InvalidInput):
        transfer_ticket(ticket_id=ticket.pk, holder_name="", holder_email="not-an-address")


def test_a_revoked_ticket_keeps_its_place_and_cannot_be_used_or_moved(ga, buy_ga, staff_user):
    order = buy_ga(2)
    ticket = tickets_of(order)[0]
    old_code = _code(ticket)

    revoked = revoke_ticket(ticket_id=ticket.pk, by=staff_user, reason="duplicate sent by mistake")

    assert (revoked.status, revoked.generation) == (TicketStatus.REVOKED, 2)
    assert _generation_in(old_code, revoked) != revoked.generation
    entry = AuditLogEntry.objects.get(transition="revoke", object_id=str(ticket.pk))
    assert (entry.reason, entry.actor_id) == ("duplicate sent by mistake", staff_user.pk)
    ga.refresh_from_db()
    assert ga.sold == 2  # not put back on sale (see workflows/ticketing/revoke_ticket.py)
    assert revoke_ticket(ticket_id=ticket.pk).generation == 2  # idempotent

    for attempt in (
        lambda: transfer_ticket(ticket_id=ticket.pk, holder_name="Grace", holder_email="grace@example.com"),
        lambda: refund_order(order_code=order.code, ticket_ids=[ticket.pk]),
    ):
        with pytest.raises(DomainError) as info:
            attempt()
        assert info.value.code == "ticket_not_valid"


def test_a_refunded_ticket_cannot_be_transferred_or_revoked(buy_ga):
    order = buy_ga(1)
    ticket = tickets_of(order)[0]
    refund_order(order_code=order.code)

    with pytest.raises(DomainError) as info:
        transfer_ticket(ticket_id=ticket.pk, holder_name="Grace", holder_email="grace@example.com")
    assert info.value.code == "ticket_not_valid"
    with pytest.raises(DomainError) as info:
        revoke_ticket(ticket_id=ticket.pk)
    assert info.value.code == "ticket_already_refunded"
    ticket.refresh_from_db()
    assert (ticket.status, ticket.generation) == (TicketStatus.REFUNDED, 2)
