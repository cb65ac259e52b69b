"""The checkout page: fee breakdown, starting the checkout, and every message."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from seating.services.holds import seat_hold_create
from tests.factories import TicketTypeFactory
from tests.pages.conftest import seat_ids
from ticketing.exceptions import Busy
from ticketing.models import FunnelEvent, Order, OrderStatus, TicketType
from ticketing.rate_limits import RateLimit
from workflows.checkout.cart import cart_price

pytestmark = pytest.mark.django_db(transaction=True)

BUYER = {"buyer_name": "Ada Lovelace", "buyer_email": "ada@example.com", "action": "pay"}


def _steps(event_id: int) -> list[str]:
    return sorted(FunnelEvent.objects.filter(event_id=event_id).values_list("step", flat=True))


def test_checkout_page_shows_the_fee_breakdown_before_paying(client, ga):
    expected = cart_price(
        event_id=ga.event_id, tickets=[{"ticket_type": ga.pk, "quantity": 2}], donation_cents=500, now=timezone.now()
    ).fees

    response = client.get(f"/events/{ga.event_id}/checkout/?qty_{ga.pk}=2&donation=5")

    page = response.content.decode()
    assert response.status_code == 200
    assert "2 \u00d7 Standing" in page
    for key, name in [
        ("subtotal_cents", "subtotal"),
        ("platform_fee_cents", "platform"),
        ("processor_fee_cents", "processor"),
        ("donation_cents", "donation"),
        ("total_cents", "total"),
    ]:
        amount = expected[key]
        assert f'data-fee="{name}">EUR {amount // 100}.{amount % 100:02d}</td>' in page
    assert expected["donation_cents"] == 500
    assert 'name="csrfmiddlewaretoken"' in page
    assert Order.objects.count() == 0  # nothing is held before the buyer submits


def test_update_the_total_reprices_with_the_donation_without_starting(client, ga):
    response = client.post(
        f"/events/{ga.event_id}/checkout/", {f"qty_{ga.pk}": "1", **BUYER, "donation": "3.50", "action": "review"}
    )

    assert response.status_code == 200
    assert 'data-fee="donation">EUR 3.50</td>' in response.content.decode()
    assert Order.objects.count() == 0


def test_submitting_starts_the_checkout_and_goes_to_the_payment_page(client, ga):
    response = client.post(f"/events/{ga.event_id}/checkout/", {f"qty_{ga.pk}": "2", **BUYER, "donation": "2"})

    order = Order.objects.get()
    assert order.status == OrderStatus.PENDING and order.donation_cents == 200
    assert response.status_code == 302 and response["Location"] == f"/orders/{order.code}/pay/"
    to_pay = client.get(response["Location"])
    assert to_pay.status_code == 302 and to_pay["Location"].startswith("http://testserver/pay/sandbox/")
    assert _steps(ga.event_id) == ["checkout_started", "payment_started"]
    ga.refresh_from_db()
    assert ga.held == 2


def test_invalid_details_are_form_errors_and_start_nothing(client, ga):
    response = client.post(
        f"/events/{ga.event_id}/checkout/",
        {f"qty_{ga.pk}": "1", "buyer_name": "", "buyer_email": "not-an-email", "donation": "-1", "action": "pay"},
    )

    page = response.content.decode()
    assert response.status_code == 400
    assert "Please check the highlighted fields." in page
    assert "This field is required." in page
    assert "Enter a valid email address." in page
    assert "greater than or equal to 0" in page
    assert Order.objects.count() == 0


def test_sold_out_is_a_message_on_the_event_page(client, ga):
    TicketType.objects.filter(pk=ga.pk).update(sold=99)

    response = client.post(f"/events/{ga.event_id}/checkout/", {f"qty_{ga.pk}": "2", **BUYER})

    page = response.content.decode()
    assert response.status_code == 409
    assert 'data-message="sold_out"' in page and "Not enough tickets are left." in page
    assert "Try a smaller number of tickets" in page
    assert Order.objects.filter(status=OrderStatus.PENDING).count() == 0


@pytest.mark.parametrize(
    ("window", "code", "text"),
    [
        ({"sales_start": timedelta(days=1)}, "sales_not_started", "Sales for these tickets have not started yet."),
        ({"sales_end": timedelta(days=-1)}, "sales_ended", "Sales for these tickets have ended."),
    ],
)
def test_sales_window_is_a_message_not_an_error_page(client, organization, window, code, text):
    from tests.factories import EventFactory

    event = EventFactory(organization=organization)
    tt = TicketTypeFactory(event=event, **{k: timezone.now() + v for k, v in window.items()})

    response = client.get(f"/events/{event.pk}/checkout/?qty_{tt.pk}=1")

    page = response.content.decode()
    assert response.status_code == 409
    assert f'data-message="{code}"' in page and text in page
    assert "Tickets</h2>" in page  # the event page, with its tickets


def test_an_empty_cart_says_so(client, ga):
    response = client.get(f"/events/{ga.event_id}/checkout/")
    assert response.status_code == 400
    assert "Choose at least one ticket or seat." in response.content.decode()


def test_a_seat_taken_meanwhile_returns_to_the_map_keeping_the_rest(client, hall):
    kept, gone = seat_ids(hall, ["A 3", "A 4"])
    seat_hold_create(event_id=hall.pk, seat_ids=[gone], expires_at=timezone.now() + timedelta(minutes=5))

    response = client.post(f"/events/{hall.pk}/checkout/", {"seats": f"{kept},{gone}", **BUYER})

    assert response.status_code == 302
    assert response["Location"] == f"/events/{hall.pk}/seats/?seats={kept}&taken={gone}"
    page = client.get(response["Location"]).content.decode()
    assert "Sorry, seat Stalls A 4 was just taken by someone else." in page
    assert f'id="seats-input" value="{kept}"' in page


def test_seats_are_held_by_the_checkout_and_counted_in_the_funnel(client, hall):
    chosen = seat_ids(hall, ["B 5", "B 6"])

    page = client.get(f"/events/{hall.pk}/checkout/?seats={chosen[0]},{chosen[1]}").content.decode()
    assert "Seats: Stalls B 5, Stalls B 6" in page
    response = client.post(f"/events/{hall.pk}/checkout/", {"seats": f"{chosen[0]},{chosen[1]}", **BUYER})

    assert response.status_code == 302
    assert _steps(hall.pk) == ["checkout_started", "seats_held"]


def test_checkout_starts_are_rate_limited_per_ip(client, ga, monkeypatch):
    monkeypatch.setattr("ticketing.views.checkout.CHECKOUT_STARTS", RateLimit("checkout-start-test", 1, 60))
    data = {f"qty_{ga.pk}": "1", **BUYER}

    first = client.post(f"/events/{ga.event_id}/checkout/", data, REMOTE_ADDR="10.0.0.1")
    second = client.post(f"/events/{ga.event_id}/checkout/", data, REMOTE_ADDR="10.0.0.1")
    other_ip = client.post(f"/events/{ga.event_id}/checkout/", data, REMOTE_ADDR="10.0.0.2")

    assert first.status_code == 302
    assert second.status_code == 429
    assert int(second["Retry-After"]) >= 1
    assert "Too many checkout attempts" in second.content.decode()
    assert other_ip.status_code == 302
    assert Order.objects.count() == 2


def test_busy_is_a_try_again_message(client, ga, monkeypatch):
    def busy(**kwargs):
        raise Busy

    monkeypatch.setattr("ticketing.views.checkout.start_checkout", busy)

    response = client.post(f"/events/{ga.event_id}/checkout/", {f"qty_{ga.pk}": "1", **BUYER})

    assert response.status_code == 429
    assert response["Retry-After"] == "1"
    assert "please try again in a moment" in response.content.decode()


def test_the_checkout_form_needs_the_csrf_token(ga):
    strict = Client(enforce_csrf_checks=True)

    response = strict.post(f"/events/{ga.event_id}/checkout/", {f"qty_{ga.pk}": "1", **BUYER})

    assert response.status_code == 403
    assert Order.objects.count() == 0
