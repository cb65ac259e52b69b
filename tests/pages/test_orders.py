"""The order page in each state, the ticket page, calendar file and resend."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.urls import reverse

from tests.pages.conftest import DECLINE, buy, pay, seat_ids
from tests.workflows.checkout.conftest import expire_checkout
from ticketing.models import FunnelEvent, Order, OrderStatus, Ticket, TicketType
from ticketing.rate_limits import RESEND_EMAIL

pytestmark = pytest.mark.django_db(transaction=True)


def _paid_ga(ga, quantity=2) -> Order:
    started = buy(ga.event_id, tickets=[{"ticket_type": ga.pk, "quantity": quantity}])
    pay(started)
    return Order.objects.get(code=started.order_code)


def test_paid_order_shows_one_qr_code_per_ticket(client, ga, django_assert_max_num_queries):
    order = _paid_ga(ga, quantity=2)
    client.get(f"/orders/{order.code}/")  # the event's signing key exists from the e-mail already

    with django_assert_max_num_queries(3):
        response = client.get(f"/orders/{order.code}/")

    page = response.content.decode()
    assert response.status_code == 200
    assert 'data-order-status="paid"' in page
    assert page.count('<svg role="img" aria-label="Ticket Standing"') == 2
    assert "ada@example.com" in page
    for ticket in Ticket.objects.filter(order=order):
        assert f'href="/tickets/{ticket.code}/"' in page


def test_order_page_queries_do_not_grow_with_tickets(client, ga, django_assert_max_num_queries):
    order = _paid_ga(ga, quantity=6)
    with django_assert_max_num_queries(3):
        page = client.get(f"/orders/{order.code}/").content.decode()
    assert page.count('class="ticket-qr"') == 6


def test_paid_seated_order_shows_the_seat_labels(client, hall):
    started = buy(hall.pk, seat_ids=seat_ids(hall, ["A 4", "A 5"]))
    pay(started)

    page = client.get(f"/orders/{started.order_code}/").content.decode()

    assert "Seat Stalls A 4" in page and "Seat Stalls A 5" in page
    assert page.count('class="ticket-qr"') == 2


def test_returning_before_the_payment_is_confirmed_shows_confirming(client, ga):
    started = buy(ga.event_id, tickets=[{"ticket_type": ga.pk, "quantity": 1}])

    page = client.get(f"/orders/{started.order_code}/?status=paid").content.decode()
    status = client.get(f"/orders/{started.order_code}/status.json").json()

    assert "Confirming your payment" in page
    assert '<meta http-equiv="refresh" content="2">' in page
    assert status == {"status": "pending", "paid": False}

    pay(started)

    assert client.get(f"/orders/{started.order_code}/status.json").json() == {"status": "paid", "paid": True}
    assert "Your tickets" in client.get(f"/orders/{started.order_code}/?status=paid").content.decode()


def test_a_declined_card_offers_a_retry_with_the_hold_countdown(client, ga):
    started = buy(ga.event_id, tickets=[{"ticket_type": ga.pk, "quantity": 1}])
    pay(started, card=DECLINE)

    response = client.get(f"/orders/{started.order_code}/?status=cancelled")

    page = response.content.decode()
    assert 'data-message="payment_not_completed"' in page
    assert "Your payment was not completed." in page
    assert "declined" in page.lower()
    assert f'href="/orders/{started.order_code}/pay/">Try paying again</a>' in page
    seconds = int(re.search(r'data-countdown="(\d+)"', page).group(1))
    assert 800 < seconds <= 900
    # Retrying goes back to the same payment page.
    assert client.get(f"/orders/{started.order_code}/pay/")["Location"] == started.payment_url


def test_an_expired_hold_says_so_with_a_way_to_start_again(client, ga):
    started = buy(ga.event_id, tickets=[{"ticket_type": ga.pk, "quantity": 1}])
    expire_checkout(started.order_code)

    page = client.get(f"/orders/{started.order_code}/").content.decode()

    assert 'data-message="hold_expired"' in page
    assert "The time to pay for this order ran out" in page
    assert f'href="/events/{ga.event_id}/">Start again</a>' in page
    # The payment link no longer leads to a payment page.
    assert client.get(f"/orders/{started.order_code}/pay/")["Location"] == f"/orders/{started.order_code}/"


def test_the_buyer_can_cancel_a_pending_order(client, ga):
    started = buy(ga.event_id, tickets=[{"ticket_type": ga.pk, "quantity": 3}])

    response = client.post(f"/orders/{started.order_code}/cancel/", follow=True)

    assert "Your order was cancelled" in response.content.decode()
    assert Order.objects.get(code=started.order_code).status == OrderStatus.CANCELLED
    ga.refresh_from_db()
    assert ga.held == 0


def test_calendar_file(client, ga):
    order = _paid_ga(ga, quantity=1)

    response = client.get(f"/orders/{order.code}/calendar.ics")

    body = response.content.decode()
    assert response["Content-Type"].startswith("text/calendar")
    assert "attachment;" in response["Content-Disposition"]
    assert body.startswith("BEGIN:VCALENDAR\r\n") and body.endswith("END:VCALENDAR\r\n")
    assert "SUMMARY:Jazz night\r\n" in body
    assert f"DTSTART:{ga.event.starts_at.strftime('%Y%m%dT%H%M%SZ')}" in body
    assert all(len(line.encode()) <= 75 for line in body.split("\r\n"))


def test_resend_email_sends_the_tickets_again_and_is_rate_limited(client, ga):
    order = _paid_ga(ga, quantity=2)
    assert len(mail.outbox) == 1

    response = client.post(f"/orders/{order.code}/resend/", follow=True)

    assert "We have sent the tickets to ada@example.com again." in response.content.decode()
    assert len(mail.outbox) == 2
    for _ in range(RESEND_EMAIL.limit - 1):
        client.post(f"/orders/{order.code}/resend/")
    limited = client.post(f"/orders/{order.code}/resend/", follow=True)
    assert "Please wait an hour" in limited.content.decode()
    assert len(mail.outbox) == 1 + RESEND_EMAIL.limit


def test_resend_needs_post_and_csrf(ga):
    from django.test import Client

    order = _paid_ga(ga, quantity=1)
    strict = Client(enforce_csrf_checks=True)
    assert strict.get(f"/orders/{order.code}/resend/").status_code == 405
    assert strict.post(f"/orders/{order.code}/resend/").status_code == 403


def test_ticket_page_shows_the_qr_code_and_seat(client, hall):
    started = buy(hall.pk, seat_ids=seat_ids(hall, ["B 2"]))
    pay(started)
    ticket = Ticket.objects.get(order__code=started.order_code)

    page = client.get(f"/tickets/{ticket.code}/").content.decode()

    assert "Seat Stalls B 2" in page
    assert page.count('class="ticket-qr"') == 1
    assert f'href="/orders/{started.order_code}/"' in page


def test_unknown_codes_are_404(client, db):
    assert client.get("/orders/not-a-real-code/").status_code == 404
    assert client.get("/tickets/not-a-real-code/").status_code == 404


def test_the_whole_funnel_is_recorded_once_per_order(client, ga):
    client.get(reverse("ticketing:event-detail", args=[ga.event_id]))
    response = client.post(
        f"/events/{ga.event_id}/checkout/",
        {f"qty_{ga.pk}": "2", "buyer_name": "Ada", "buyer_email": "ada@example.com", "action": "pay"},
    )
    payment_url = client.get(response["Location"])["Location"]
    client.get(response["Location"])  # a second visit to the payment page counts once
    from payments.sandbox.gateway import sandbox_charge

    sandbox_charge(token=payment_url.rstrip("/").split("/")[-1], card_number="4242424242424242")

    steps = list(FunnelEvent.objects.filter(event_id=ga.event_id).order_by("id").values_list("step", "quantity"))
    assert steps == [("event_viewed", 0), ("checkout_started", 2), ("payment_started", 0), ("paid", 2)]
    assert TicketType.objects.get(pk=ga.pk).sold == 2


def test_a_transferred_ticket_is_no_longer_shown_to_the_buyer(client, ga):
    from workflows.ticketing.transfer_ticket import transfer_ticket

    order = _paid_ga(ga, quantity=2)
    given, kept = Ticket.objects.filter(order=order).order_by("id")
    transfer_ticket(ticket_id=given.pk, holder_name="Grace Hopper", holder_email="grace@example.com")
    given.refresh_from_db()

    page = client.get(f"/orders/{order.code}/").content.decode()

    assert page.count('<svg role="img" aria-label="Ticket Standing"') == 1
    assert "Transferred to Grace Hopper" in page
    assert f'href="/tickets/{given.code}/"' not in page
    assert f'href="/tickets/{kept.code}/"' in page
