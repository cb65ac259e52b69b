"""Disputes arrive by webhook, replayed and in any order, and post their
chargeback entries once."""

from __future__ import annotations

import json
import time

import pytest
from django.core.management import call_command

from finance.models import JournalTransaction
from payments.models import Dispute, DisputeStatus, SandboxWebhook, WebhookEvent
from payments.providers.base import EventKind
from payments.providers.stripe import StripeProvider
from payments.sandbox import webhooks as sandbox_webhooks
from payments.sandbox.gateway import sandbox_dispute_close, sandbox_dispute_open
from payments.sandbox.webhooks import sandbox_webhook_deliver, sandbox_webhook_replay
from tests.payments.factories import hmac_header
from tests.workflows.refunds.conftest import payment_of, tickets_of
from workflows.payments.refund_order import refund_order

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("require_postgres", "check_inventory"),
]


def _chargebacks() -> list[tuple[str, int]]:
    rows = JournalTransaction.objects.filter(kind__startswith="chargeback_").order_by("pk")
    return [(t.kind, t.data["amount_cents"]) for t in rows]


def _webhook(event_type: str) -> SandboxWebhook:
    return SandboxWebhook.objects.filter(event_type=event_type).latest("pk")


def test_dispute_webhooks_replayed_post_once_and_the_ledger_verifies(buy_ga):
    refunded, lost, won = buy_ga(2), buy_ga(1, email="b@example.com"), buy_ga(1, email="c@example.com")
    refund_order(order_code=refunded.code, ticket_ids=[tickets_of(refunded)[0].pk])

    # Lost: opened, replayed twice, then lost, replayed.
    dispute = sandbox_dispute_open(payment_id=payment_of(lost).provider_payment_id, fee_cents=1500)
    sandbox_webhook_replay(webhook_id=_webhook("dispute.opened").pk, times=2)

    ours = Dispute.objects.get()
    assert (ours.status, ours.amount_cents, ours.fee_cents) == (DisputeStatus.OPEN, lost.total_cents, 1500)
    assert _chargebacks() == [("chargeback_opened", lost.total_cents)]
    event = WebhookEvent.objects.get(event_type="dispute.opened")
    assert (event.delivery_count, event.dispute_id) == (3, ours.pk)

    sandbox_dispute_close(dispute_id=dispute.dispute_id, won=False)
    sandbox_webhook_replay(webhook_id=_webhook("dispute.lost").pk, times=2)

    ours.refresh_from_db()
    assert ours.status == DisputeStatus.LOST
    assert _chargebacks() == [("chargeback_opened", lost.total_cents), ("chargeback_lost", lost.total_cents)]

    # Won: the amount comes back; the dispute fee stays an expense.
    other = sandbox_dispute_open(payment_id=payment_of(won).provider_payment_id, fee_cents=1500)
    sandbox_dispute_close(dispute_id=other.dispute_id, won=True)
    sandbox_webhook_replay(webhook_id=_webhook("dispute.won").pk)

    assert Dispute.objects.get(provider_dispute_id=other.dispute_id).status == DisputeStatus.WON
    assert [kind for kind, _ in _chargebacks()] == [
        "chargeback_opened",
        "chargeback_lost",
        "chargeback_opened",
        "chargeback_won",
    ]
    # A disputed payment cannot be refunded on top of the chargeback.
    from ticketing.exceptions import DomainError

    with pytest.raises(DomainError):
        refund_order(order_code=lost.code)
    assert payment_of(lost).refunded_cents == 0

    # Sales, a refund and chargebacks: the ledger balances and reconciles.
    call_command("verify_ledger")


def test_a_dispute_closed_before_its_opening_arrives_books_the_same(buy_ga, monkeypatch):
    order = buy_ga(1)
    # The provider's webhooks come late and in the wrong order.
    monkeypatch.setattr(sandbox_webhooks, "_queue_delivery_on_commit", lambda webhook_id: None)
    dispute = sandbox_dispute_open(payment_id=payment_of(order).provider_payment_id, fee_cents=0)
    sandbox_dispute_close(dispute_id=dispute.dispute_id, won=False)
    opened, lost = _webhook("dispute.opened"), _webhook("dispute.lost")

    for webhook in (lost, opened, lost, opened):
        assert sandbox_webhook_deliver(webhook_id=webhook.pk, force=True).status_code == 200

    assert Dispute.objects.get().status == DisputeStatus.LOST
    assert _chargebacks() == [("chargeback_opened", order.total_cents), ("chargeback_lost", order.total_cents)]
    call_command("verify_ledger")


def test_stripe_dispute_events_are_normalized():
    secret = "whsec_stripe_disputes"
    provider = StripeProvider(api_key="sk_test", webhook_secret=secret)

    def event(event_type: str, **obj):
        body = {
            "id": "dp_1",
            "object": "dispute",
            "amount": 2500,
            "currency": "eur",
            "payment_intent": "pi_123",
            "reason": "fraudulent",
            "balance_transactions": [{"fee": 1500}],
            **obj,
        }
        raw = json.dumps(
            {"id": f"evt_{event_type}", "type": event_type, "created": int(time.time()), "data": {"object": body}}
        ).encode()
        return provider.verify_webhook(raw_body=raw, headers={"Stripe-Signature": hmac_header(body=raw, secret=secret)})

    opened = event("charge.dispute.created", status="needs_response")
    assert (opened.kind, opened.provider_dispute_id, opened.provider_payment_id) == (
        EventKind.DISPUTE_OPENED,
        "dp_1",
        "pi_123",
    )
    assert (opened.amount_cents, opened.currency, opened.fee_cents, opened.reason) == (2500, "EUR", 1500, "fraudulent")
    assert event("charge.dispute.closed", status="won").kind == EventKind.DISPUTE_WON
    assert event("charge.dispute.closed", status="lost").kind == EventKind.DISPUTE_LOST
    assert event("charge.dispute.closed", status="warning_closed").kind == EventKind.IGNORED
