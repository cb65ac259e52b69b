"""Integrators subscribed to the after-sale events get them with the change."""

from __future__ import annotations

import pytest

from tests.workflows.refunds.conftest import tickets_of
from ticketing.models import WebhookDelivery, WebhookSubscription
from workflows.payments.refund_order import refund_order
from workflows.ticketing.revoke_ticket import revoke_ticket
from workflows.ticketing.transfer_ticket import transfer_ticket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("require_postgres")]

EVENTS = ["order.refunded", "ticket.transferred", "ticket.revoked"]


def test_refund_transfer_and_revoke_are_announced_once_each(buy_ga, monkeypatch):
    # Deliveries are recorded with the change; sending them is not this test's business.
    monkeypatch.setattr("ticketing.tasks.deliver_webhook.run", lambda delivery_id: "skipped")
    order = buy_ga(3)
    WebhookSubscription.objects.create(
        organization_id=order.organization_id, url="http://127.0.0.1:9/hooks", event_types=EVENTS
    )
    refunded, moved, revoked = tickets_of(order)

    refund_order(order_code=order.code, ticket_ids=[refunded.pk])
    transfer_ticket(ticket_id=moved.pk, holder_name="Grace Hopper", holder_email="grace@example.com")
    revoke_ticket(ticket_id=revoked.pk, reason="duplicate")
    revoke_ticket(ticket_id=revoked.pk, reason="duplicate")  # nothing changes, nothing announced

    sent = sorted(WebhookDelivery.objects.values_list("event_type", flat=True))
    assert sent == sorted(EVENTS)
    payload = WebhookDelivery.objects.get(event_type="order.refunded").payload
    assert payload["tickets"] == [refunded.pk]
    assert payload["refund"]["amount_cents"] > 0
