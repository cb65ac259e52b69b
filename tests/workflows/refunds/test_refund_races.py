"""Two refunds at once: refunded never exceeds captured, and no ticket is
refunded twice."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from finance.models import JournalTransaction
from payments.models import PaymentStatus, Refund, RefundStatus
from payments.services import refund_create
from tests.concurrency import run_concurrently
from tests.workflows.refunds.conftest import payment_of, tickets_of
from ticketing.exceptions import DomainError
from ticketing.models import OrderStatus, TicketStatus
from workflows.payments.refund_order import refund_order

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("require_postgres", "check_inventory"),
]


def test_two_refunds_of_the_last_ticket_at_once_one_wins(ga, buy_ga):
    order = buy_ga(2)
    first, last = tickets_of(order)
    refund_order(order_code=order.code, ticket_ids=[first.pk])

    results = run_concurrently(
        [
            lambda: refund_order(order_code=order.code, ticket_ids=[last.pk], reason="buyer asked"),
            lambda: refund_order(order_code=order.code, reason="event cancelled"),
        ]
    )

    winners = [result for result, exc in results if exc is None]
    losers = [exc for _, exc in results if exc is not None]
    assert len(winners) == 1 and winners[0]["status"] == "refunded"
    assert len(losers) == 1 and isinstance(losers[0], DomainError)
    assert losers[0].code in {"refund_in_progress", "ticket_already_refunded", "order_not_paid"}
    payment = payment_of(order)
    assert (payment.status, payment.refunded_cents, payment.refund_pending_cents) == (
        PaymentStatus.REFUNDED,
        order.total_cents,
        0,
    )
    assert Refund.objects.filter(status=RefundStatus.SUCCEEDED).count() == 2
    assert {t.status for t in tickets_of(order)} == {TicketStatus.REFUNDED}
    order.refresh_from_db()
    assert order.status == OrderStatus.REFUNDED
    ga.refresh_from_db()
    assert ga.sold == 0
    assert sum(t.data["amount_cents"] for t in JournalTransaction.objects.filter(kind="refund")) == order.total_cents
    call_command("verify_ledger")


def test_two_refunds_of_different_tickets_never_exceed_what_is_left(ga, buy_ga):
    order = buy_ga(2)
    first, second = tickets_of(order)
    larger_share = (order.total_cents + 1) // 2
    # Staff gave part of the money back directly: either ticket's share is
    # still refundable, but not both.
    refund_create(payment=payment_of(order), amount_cents=order.total_cents - larger_share, idempotency_key="goodwill")

    results = run_concurrently(
        [
            lambda: refund_order(order_code=order.code, ticket_ids=[first.pk]),
            lambda: refund_order(order_code=order.code, ticket_ids=[second.pk]),
        ]
    )

    winners = [result for result, exc in results if exc is None]
    losers = [exc for _, exc in results if exc is not None]
    assert len(winners) == 1 and len(losers) == 1
    # Refused by the payment's guard: nothing left (or, if the winner already
    # finished, the payment is fully refunded).
    assert losers[0].code in {"refund_exceeds_captured", "refund_not_allowed"}
    payment = payment_of(order)
    goodwill = order.total_cents - larger_share
    assert (payment.refunded_cents, payment.refund_pending_cents) == (goodwill + winners[0]["amount_cents"], 0)
    assert payment.refunded_cents <= payment.captured_cents
    # The loser gave nothing back and kept its ticket.
    assert sorted(t.status for t in tickets_of(order)) == [TicketStatus.REFUNDED, TicketStatus.VALID]
    ga.refresh_from_db()
    assert ga.sold == 1
    call_command("verify_ledger")
