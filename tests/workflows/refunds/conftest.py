"""Fixtures for the refund, transfer, revocation and dispute tests: paid
orders made the real way (StartCheckout, the sandbox pay page, its webhook,
CompleteCheckout)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from payments.models import Payment
from tests.factories import TicketTypeFactory
from tests.workflows.checkout.conftest import _checkout_settings, ga, hall, pay  # noqa: F401 - shared fixtures
from ticketing.models import Order, OrderStatus, Ticket
from workflows.checkout.start import start_checkout


def buy(event_id: int, *, email: str = "ada@example.com", **cart) -> Order:
    """Check out and pay with the sandbox's good card; returns the paid order."""
    started = start_checkout(event_id=event_id, buyer_name="Ada Lovelace", buyer_email=email, **cart)
    if started.payment_url:  # a free order is complete already
        pay(started)
    order = Order.objects.get(code=started.order_code)
    assert order.status == OrderStatus.PAID
    return order


def tickets_of(order: Order) -> list[Ticket]:
    return list(Ticket.objects.filter(order=order).order_by("pk"))


def payment_of(order: Order) -> Payment:
    return Payment.objects.get(order=order)


@pytest.fixture
def buy_ga(ga) -> Callable[..., Order]:  # noqa: F811 - the fixture above, by name
    def buy_tickets(quantity: int = 2, **kwargs) -> Order:
        return buy(ga.event_id, tickets=[{"ticket_type": ga.pk, "quantity": quantity}], **kwargs)

    return buy_tickets


@pytest.fixture
def free_type(organization):
    from tests.factories import EventFactory

    return TicketTypeFactory(event=EventFactory(organization=organization), price_cents=0, capacity=10)
