"""Pricing a cart: the event's own refusals, whether or not it has ticket
types (the event is read with them, or alone when it has none)."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import pytest
from django.utils import timezone

from tests.factories import EventFactory, TicketTypeFactory
from ticketing.exceptions import NotFound, NotOnSale, TicketTypeNotFound
from ticketing.models.event import EventStatus
from workflows.checkout.cart import PricedLine, cart_price

pytestmark = pytest.mark.django_db


def test_an_event_that_does_not_exist_is_not_found(ga):
    with pytest.raises(NotFound):
        cart_price(event_id=ga.event_id + 1000, tickets=[{"ticket_type": ga.pk, "quantity": 1}], now=timezone.now())


@pytest.mark.parametrize("with_ticket_types", [True, False])
def test_an_event_not_on_sale_is_refused(organization, with_ticket_types):
    event = EventFactory(organization=organization, status=EventStatus.DRAFT)
    if with_ticket_types:
        TicketTypeFactory(event=event)
    with pytest.raises(NotOnSale):
        cart_price(event_id=event.pk, tickets=[{"ticket_type": 1, "quantity": 1}], now=timezone.now())


def test_an_event_without_ticket_types_has_none_to_sell(organization):
    event = EventFactory(organization=organization)
    with pytest.raises(TicketTypeNotFound):
        cart_price(event_id=event.pk, tickets=[{"ticket_type": 1, "quantity": 1}], now=timezone.now())


def test_a_priced_cart_keeps_its_rows_out_of_its_json(ga):
    cart = cart_price(event_id=ga.event_id, tickets=[{"ticket_type": ga.pk, "quantity": 2}], now=timezone.now())

    assert cart.rows is not None
    assert cart.rows.event.pk == ga.event_id
    assert cart.rows.ticket_types[ga.pk].event.pk == ga.event_id
    assert "rows" not in cart.as_json()
    assert cart.as_json()["lines"] == [
        {"ticket_type_id": ga.pk, "quantity": 2, "unit_price_cents": 2500, "seat_ids": []}
    ]


def test_a_priced_carts_json_is_what_asdict_gives_without_its_rows(ga):
    other = TicketTypeFactory(event=ga.event, price_cents=4000)
    cart = cart_price(
        event_id=ga.event_id,
        tickets=[{"ticket_type": ga.pk, "quantity": 2}, {"ticket_type": other.pk, "quantity": 1}],
        donation_cents=300,
        now=timezone.now(),
    )
    cart = replace(
        cart, lines=[*cart.lines, PricedLine(ticket_type_id=other.pk, quantity=1, unit_price_cents=0, seat_ids=[7, 3])]
    )
    expected = asdict(replace(cart, rows=None))
    del expected["rows"]

    data = cart.as_json()

    assert data == expected
    assert json.loads(json.dumps(data)) == data
    # A copy: changing it changes nothing of the cart's.
    data["fees"]["lines"][0]["quantity"] = 99
    data["lines"][-1]["seat_ids"].append(1)
    assert cart.fees["lines"][0]["quantity"] != 99 and cart.lines[-1].seat_ids == [7, 3]
