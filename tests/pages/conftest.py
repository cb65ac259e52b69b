from __future__ import annotations

from urllib.parse import urlparse

import pytest
from django.core.cache import cache

from payments.sandbox.gateway import sandbox_charge
from seating.models import Seat
from seating.services.plans import seating_plan_create
from tests.factories import EventFactory, TicketTypeFactory
from ticketing.models import TicketKind
from workflows.checkout.start import CheckoutStarted, start_checkout

PAY = "4242424242424242"
DECLINE = "4000000000000002"


@pytest.fixture(autouse=True)
def _pages_settings(settings):
    settings.PAYMENT_PROVIDERS = ("sandbox",)
    settings.SITE_URL = "http://testserver"
    cache.clear()  # rate-limit counters and the cached seat maps of earlier tests
    yield
    cache.clear()


@pytest.fixture
def ga(organization):
    event = EventFactory(organization=organization, name="Jazz night", description="An evening of jazz.")
    return TicketTypeFactory(event=event, name="Standing", capacity=100, price_cents=2500, max_per_order=6)


@pytest.fixture
def hall(organization):
    """A seated event: one section, rows A-B of 10 seats, one category."""
    event = EventFactory(organization=organization, name="String quartet")
    ticket_type = TicketTypeFactory(event=event, name="Stalls", kind=TicketKind.SEATED, capacity=20, price_cents=4000)
    seating_plan_create(
        event=event,
        name="Hall",
        categories=[{"code": "S", "name": "Stalls", "color": "#2563eb", "ticket_type": ticket_type}],
        sections=[
            {
                "name": "Stalls",
                "rows": [{"label": label, "seats": 10, "category_code": "S", "accessible": [1]} for label in "AB"],
            }
        ],
    )
    return event


def seat_ids(event, labels):
    return [Seat.objects.get(event=event, label=f"Stalls {label}").pk for label in labels]


def buy(event_id: int, **cart) -> CheckoutStarted:
    return start_checkout(event_id=event_id, buyer_name="Ada Lovelace", buyer_email="ada@example.com", **cart)


def pay(started: CheckoutStarted, card: str = PAY):
    token = urlparse(started.payment_url).path.rstrip("/").split("/")[-1]
    return sandbox_charge(token=token, card_number=card)
