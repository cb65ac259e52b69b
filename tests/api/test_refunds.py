"""Refunds through the API: whole orders and single tickets, on a real
sandbox payment, and the refund workflow's errors in the error format."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.api.conftest import World, client_for, token_for
from tests.workflows.checkout.conftest import pay
from ticketing.models import Order, OrderStatus, Ticket, TicketStatus
from workflows.checkout.start import CheckoutStarted

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _checkout_settings(settings: Any) -> None:
    settings.PAYMENT_PROVIDERS = ("sandbox",)
    settings.SITE_URL = "https://tickets.example"


def _paid_order(w: World, quantity: int = 2) -> Order:
    started = (
        APIClient()
        .post(
            "/api/v1/public/checkouts/",
            {
                "event": w.event.pk,
                "tickets": [{"ticket_type": w.ticket_type.pk, "quantity": quantity}],
                "buyer_name": "Ada Lovelace",
                "buyer_email": "ada@example.com",
            },
            format="json",
        )
        .json()
    )
    pay(CheckoutStarted(started["order_code"], started["order_id"], started["payment_url"], None, 0, "EUR", 0))
    order = Order.objects.get(pk=started["order_id"])
    assert order.status == OrderStatus.PAID
    return order


def test_refund_one_ticket_then_the_rest(world_a: World) -> None:
    order = _paid_order(world_a)
    first, second = Ticket.objects.filter(order=order).order_by("id")
    client = client_for(token_for(world_a.organization, "finance"))
    url = f"/api/v1/orders/{order.pk}/refunds/"

    partial = client.post(url, {"tickets": [first.pk], "reason": "cannot come"}, format="json")

    assert partial.status_code == 200, partial.json()
    body = partial.json()
    assert body["status"] == "refunded" and body["tickets"] == [first.pk]
    assert 0 < body["amount_cents"] < order.total_cents
    assert body["order"]["status"] == OrderStatus.PARTIALLY_REFUNDED
    assert Ticket.objects.get(pk=first.pk).status == TicketStatus.REFUNDED

    # The same refund asked again (no key): the same run answers, no money moves twice.
    again = client.post(url, {"tickets": [first.pk]}, format="json")
    assert again.status_code == 200 and again.json()["refund_id"] == body["refund_id"]
    # The ticket within another set: refused.
    mixed = client.post(url, {"tickets": [first.pk, second.pk]}, format="json")
    assert mixed.status_code == 409 and mixed.json()["code"] == "ticket_already_refunded"

    rest = client.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="r-2")
    assert rest.status_code == 200, rest.json()
    assert rest.json()["tickets"] == [second.pk] and rest.json()["order"]["status"] == OrderStatus.REFUNDED
    assert body["amount_cents"] + rest.json()["amount_cents"] == order.total_cents
    replay = client.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="r-2")
    assert replay.json() == rest.json() and replay["Idempotent-Replayed"] == "true"


def test_refund_errors_name_the_problem(world_a: World, world_b: World) -> None:
    order = _paid_order(world_a, quantity=1)
    client = client_for(token_for(world_a.organization, "owner"))
    url = f"/api/v1/orders/{order.pk}/refunds/"
    foreign = client.post(url, {"tickets": [world_b.ticket.pk]}, format="json")
    assert foreign.status_code == 400 and foreign.json()["code"] == "ticket_not_in_order"
    empty = client.post(url, {"tickets": []}, format="json")
    assert empty.status_code == 400 and "tickets" in empty.json()["detail"]
    pending = client.post(f"/api/v1/orders/{world_a.pending.pk}/refunds/", {}, format="json")
    assert pending.status_code == 409 and pending.json()["code"] == "order_not_paid"
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID
