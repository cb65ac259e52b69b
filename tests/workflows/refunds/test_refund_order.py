"""RefundOrder: full and per-ticket refunds, what they give back, and the
errors that stop them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from finance.models import JournalTransaction
from payments.models import PaymentStatus, Refund, RefundStatus, SandboxWebhook
from payments.sandbox.webhooks import sandbox_webhook_replay, sandbox_webhooks_deliver_due
from seating.models import Seat, SeatStatus
from tests.workflows.checkout.conftest import seat_ids
from tests.workflows.refunds.conftest import buy, payment_of, tickets_of
from ticketing.exceptions import DomainError
from ticketing.models import EmailDelivery, EmailKind, OrderStatus, Ticket, TicketStatus
from ticketing.services.signing_keys import event_public_keys, ticket_code_for
from ticketing.ticket_codes import ticket_code_verify
from workflows.models import RunStatus, WorkflowRun
from workflows.payments.refund_order import WORKFLOW, refund_order

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("require_postgres", "check_inventory"),
]


def _refund_mails() -> list:
    return [m for m in mail.outbox if m.subject.startswith("Your refund")]


def _booked_refunds() -> dict[int, int]:
    return {int(t.source_id): t.data["amount_cents"] for t in JournalTransaction.objects.filter(kind="refund")}


def _verify_ledger() -> None:
    call_command("verify_ledger")  # exits 1 (SystemExit) on any difference


def test_a_full_refund_returns_everything_once(ga, buy_ga):
    order = buy_ga(2)
    ga.refresh_from_db()
    assert ga.sold == 2

    result = refund_order(order_code=order.code, reason="event moved")

    order.refresh_from_db()
    payment = payment_of(order)
    refund = Refund.objects.get()
    assert result["status"] == "refunded"
    assert (result["refund_id"], result["amount_cents"]) == (refund.pk, order.total_cents)
    assert sorted(result["tickets"]) == [t.pk for t in tickets_of(order)]
    assert order.status == OrderStatus.REFUNDED
    assert (payment.status, payment.refunded_cents) == (PaymentStatus.REFUNDED, order.total_cents)
    assert [(t.status, t.generation) for t in tickets_of(order)] == [(TicketStatus.REFUNDED, 2)] * 2
    ga.refresh_from_db()
    assert (ga.sold, ga.held) == (0, 0)
    assert _booked_refunds() == {refund.pk: order.total_cents}
    assert EmailDelivery.objects.filter(order=order, kind=EmailKind.REFUND, status="sent").count() == 1
    assert len(_refund_mails()) == 1
    assert "55.65" in _refund_mails()[0].body  # 2 x 25.00 with fees (see the checkout tests)

    # Asked again (a retried request): the same run, the same answer, nothing more.
    again = refund_order(order_code=order.code, reason="event moved")
    assert again == result
    assert Refund.objects.count() == 1
    assert len(_refund_mails()) == 1
    assert WorkflowRun.objects.filter(workflow_type=WORKFLOW).count() == 1
    _verify_ledger()


def test_a_ticket_is_refunded_with_its_fees_and_then_the_rest(ga, buy_ga):
    order = buy_ga(3)
    first, second, third = tickets_of(order)
    lines = order.fee_snapshot["lines"]
    assert len(lines) == 1 and lines[0]["charged_cents"] == order.total_cents

    one = refund_order(order_code=order.code, ticket_ids=[first.pk])

    # A third of the total, the odd cent to the first ticket (largest remainder).
    share = order.total_cents // 3 + (1 if order.total_cents % 3 else 0)
    assert one["status"] == "refunded" and one["amount_cents"] == share and one["tickets"] == [first.pk]
    order.refresh_from_db()
    assert order.status == OrderStatus.PARTIALLY_REFUNDED
    assert [t.status for t in tickets_of(order)] == [TicketStatus.REFUNDED, TicketStatus.VALID, TicketStatus.VALID]
    ga.refresh_from_db()
    assert ga.sold == 2

    with pytest.raises(DomainError) as info:
        refund_order(order_code=order.code, ticket_ids=[first.pk, second.pk])
    assert info.value.code == "ticket_already_refunded"

    rest = refund_order(order_code=order.code)

    assert rest["amount_cents"] == order.total_cents - share
    assert sorted(rest["tickets"]) == [second.pk, third.pk]
    order.refresh_from_db()
    assert order.status == OrderStatus.REFUNDED
    assert payment_of(order).refunded_cents == order.total_cents
    ga.refresh_from_db()
    assert ga.sold == 0
    assert sorted(_booked_refunds().values()) == sorted([share, order.total_cents - share])
    assert len(_refund_mails()) == 2
    _verify_ledger()


def test_the_refund_errors_have_stable_codes(ga, buy_ga, free_type):
    order, other = buy_ga(1), buy_ga(1)

    with pytest.raises(DomainError) as info:
        refund_order(order_code=order.code, ticket_ids=[tickets_of(other)[0].pk])
    assert (info.value.code, info.value.status) == ("ticket_not_in_order", 400)

    free = buy(free_type.event_id, tickets=[{"ticket_type": free_type.pk, "quantity": 1}])
    with pytest.raises(DomainError) as info:
        refund_order(order_code=free.code)
    assert info.value.code == "nothing_to_refund"

    refund_order(order_code=order.code)
    with pytest.raises(DomainError) as info:
        refund_order(order_code=order.code, ticket_ids=[tickets_of(order)[0].pk])
    assert info.value.code == "order_not_paid"

    from workflows.checkout.start import start_checkout

    unpaid = start_checkout(
        event_id=ga.event_id,
        buyer_name="B",
        buyer_email="b@example.com",
        tickets=[{"ticket_type": ga.pk, "quantity": 1}],
    )
    with pytest.raises(DomainError) as info:
        refund_order(order_code=unpaid.order_code)
    assert (info.value.code, info.value.status) == ("order_not_paid", 409)
    # Failed validations refund nothing and change nothing.
    assert Refund.objects.count() == 1
    assert payment_of(other).refunded_cents == 0
    from workflows.checkout.cancel import cancel_checkout

    cancel_checkout(order_code=unpaid.order_code)  # give its units back


def test_a_refunded_tickets_old_code_no_longer_matches(buy_ga):
    order = buy_ga(1)
    ticket = tickets_of(order)[0]
    ticket.event = order.event
    old_code = ticket_code_for(ticket=ticket)

    refund_order(order_code=order.code)

    ticket.refresh_from_db()
    claims = ticket_code_verify(
        old_code, public_keys=event_public_keys(event_id=order.event_id), now=order.event.starts_at
    )
    assert claims.ticket_id == ticket.pk
    # The signature still holds, but the code is of a generation the server no longer has.
    assert (claims.generation, ticket.generation, ticket.status) == (1, 2, TicketStatus.REFUNDED)
    from ticketing.exceptions import InvalidState

    with pytest.raises(InvalidState):
        ticket_code_for(ticket=ticket)


def test_refunded_seats_go_back_on_sale_and_sell_again(hall):
    chosen = seat_ids(hall, ["A 4", "A 5"])
    order = buy(hall.pk, seat_ids=chosen)
    refunded, kept = tickets_of(order)

    refund_order(order_code=order.code, ticket_ids=[refunded.pk])

    assert Seat.objects.get(pk=refunded.seat_id).status == SeatStatus.FREE
    assert Seat.objects.get(pk=kept.seat_id).status == SeatStatus.SOLD
    order.refresh_from_db()
    assert order.status == OrderStatus.PARTIALLY_REFUNDED

    resold = buy(hall.pk, seat_ids=[refunded.seat_id], email="grace@example.com")

    assert Seat.objects.get(pk=refunded.seat_id).status == SeatStatus.SOLD
    assert Ticket.objects.get(order=resold).seat_id == refunded.seat_id
    assert Ticket.objects.filter(seat_id=refunded.seat_id, status=TicketStatus.VALID).count() == 1
    _verify_ledger()


def test_refunded_units_go_back_on_sale_and_sell_again(ga, buy_ga):
    ga.capacity = 2
    ga.save(update_fields=["capacity"])
    order = buy_ga(2)
    from workflows.checkout.start import CheckoutFailed

    with pytest.raises(CheckoutFailed) as info:
        buy_ga(1)
    assert info.value.code == "sold_out"

    refund_order(order_code=order.code, ticket_ids=[tickets_of(order)[1].pk])

    again = buy_ga(1, email="grace@example.com")
    assert again.status == OrderStatus.PAID
    ga.refresh_from_db()
    assert (ga.sold, ga.held) == (2, 0)


def test_a_refund_confirmed_later_by_webhook_is_booked_once(settings, buy_ga):
    settings.SANDBOX_REFUND_DELAY_SECONDS = 60
    order = buy_ga(2)

    result = refund_order(order_code=order.code)

    refund = Refund.objects.get()
    assert result["status"] == "pending" and result["refund_id"] == refund.pk
    assert refund.status == RefundStatus.PENDING and refund.provider_refund_id
    # Nothing is given back before the provider confirms.
    assert {t.status for t in tickets_of(order)} == {TicketStatus.VALID}
    assert _booked_refunds() == {}
    assert WorkflowRun.objects.get(pk=result["run_id"]).status == RunStatus.WAITING

    delivered = sandbox_webhooks_deliver_due(now=timezone.now() + timedelta(seconds=120))

    assert [d.status_code for d in delivered] == [200]
    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    assert WorkflowRun.objects.get(pk=result["run_id"]).status == RunStatus.COMPLETED
    assert {t.status for t in tickets_of(order)} == {TicketStatus.REFUNDED}
    order.refresh_from_db()
    assert order.status == OrderStatus.REFUNDED
    assert _booked_refunds() == {refund.pk: order.total_cents}

    webhook = SandboxWebhook.objects.get(event_type="refund.succeeded")
    sandbox_webhook_replay(webhook_id=webhook.pk, times=2)

    assert _booked_refunds() == {refund.pk: order.total_cents}
    assert JournalTransaction.objects.filter(kind="refund").count() == 1
    assert len(_refund_mails()) == 1
    assert refund_order(order_code=order.code)["status"] == "refunded"
    _verify_ledger()


def test_a_refund_the_provider_declines_gives_nothing_back(buy_ga):
    from payments.models import SandboxSession

    order = buy_ga(1)
    # Someone refunded it at the provider's dashboard already: the provider says no.
    SandboxSession.objects.filter(order_reference=order.code).update(refunded_cents=order.total_cents)

    with pytest.raises(DomainError) as info:
        refund_order(order_code=order.code)

    assert info.value.code == "refund_declined"
    assert Refund.objects.get().status == RefundStatus.FAILED
    assert tickets_of(order)[0].status == TicketStatus.VALID
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    assert payment_of(order).refundable_cents == order.total_cents
    assert _refund_mails() == []
