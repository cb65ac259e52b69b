"""A buyer in a real browser: GA tickets, seats held on the map, a declined card."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from playwright.sync_api import expect

from seating.models import SeatHold, SeatHoldStatus
from tests.pages.conftest import DECLINE, PAY
from ticketing.models import Order, OrderStatus

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _fill_details(page) -> None:
    page.get_by_label("Full name").fill("Ada Lovelace")
    page.get_by_label("E-mail address").fill("ada@example.com")


def _pay(page, card: str) -> None:
    expect(page.get_by_role("heading", name=re.compile(r"^Pay "))).to_be_visible()
    page.get_by_label("Card number").fill(card)
    page.get_by_role("button", name=re.compile(r"^Pay ")).click()


# A phone-sized screen: the pages must work there.
@pytest.mark.parametrize("page", [{"width": 390, "height": 844}], indirect=True)
def test_buy_two_ga_tickets_and_see_two_qr_codes(site, page, ga):
    page.goto(site + "/")
    page.shot("event-list")
    page.get_by_role("link", name="Jazz night").click()
    expect(page.get_by_role("heading", name="Jazz night")).to_be_visible()
    page.get_by_label("Quantity of Standing").select_option("2")
    page.shot("event-page")
    page.get_by_role("button", name="Continue").click()

    expect(page.get_by_role("heading", name="Checkout")).to_be_visible()
    _fill_details(page)
    expect(page.locator('[data-fee="subtotal"]')).to_have_text("EUR 50.00")
    page.shot("checkout")
    page.get_by_role("button", name=re.compile("Continue to payment")).click()

    _pay(page, PAY)
    page.shot("sandbox-pay-submitted")
    expect(page.locator('[data-order-status="paid"]')).to_be_visible()
    expect(page.locator("svg.ticket-qr")).to_have_count(2)
    page.shot("order-with-two-qr-codes")
    assert Order.objects.get().status == OrderStatus.PAID


def test_pick_two_seats_pay_and_see_the_seat_labels(site, page, hall):
    page.goto(f"{site}/events/{hall.pk}/seats/")
    expect(page.get_by_role("heading", name="Choose your seats")).to_be_visible()
    page.shot("seat-map")
    # One seat by pointer, one by keyboard (focus, arrow right, Space).
    page.locator('g.seat[data-label="Stalls A 4"]').click()
    page.locator('g.seat[data-label="Stalls A 4"]').focus()
    page.keyboard.press("ArrowRight")
    expect(page.locator('g.seat[data-label="Stalls A 5"]')).to_be_focused()
    page.keyboard.press("Space")
    expect(page.locator('g.seat[aria-checked="true"]')).to_have_count(2)
    expect(page.locator("#selection-list li")).to_have_count(2)
    page.shot("two-seats-selected")
    page.get_by_role("button", name="Hold these seats").click()

    # Held: the seats, a live countdown from 15 minutes, release or continue.
    expect(page.get_by_role("heading", name="Your seats are held")).to_be_visible()
    expect(page.locator("#held-list li")).to_have_count(2)
    countdown = page.get_by_role("timer")
    expect(countdown).to_be_visible()
    expect(countdown).to_have_text(re.compile(r"^1[45]:\d\d$"))
    first = countdown.text_content()
    expect(countdown).not_to_have_text(first, timeout=3_000)  # it ticks
    expect(page.locator('g.seat.mine[aria-checked="true"]')).to_have_count(2)
    expect(page.get_by_role("button", name="Release these seats")).to_be_visible()
    page.shot("seats-held-with-countdown")
    page.get_by_role("link", name="Continue to checkout").click()

    expect(page.get_by_text("Seats: Stalls A 4, Stalls A 5")).to_be_visible()
    expect(page.get_by_role("timer")).to_have_text(re.compile(r"^1[45]:\d\d$"))
    _fill_details(page)
    page.shot("checkout-seats")
    page.get_by_role("button", name=re.compile("Continue to payment")).click()
    _pay(page, PAY)

    expect(page.locator('[data-order-status="paid"]')).to_be_visible()
    expect(page.locator(".seat-label")).to_have_text(["Seat Stalls A 4", "Seat Stalls A 5"])
    expect(page.locator("svg.ticket-qr")).to_have_count(2)
    page.shot("order-with-seat-labels")
    hold = SeatHold.objects.get()  # the hold made on the map is the one that sold
    assert (hold.status, hold.reference) == (SeatHoldStatus.CONVERTED, Order.objects.get().code)


def test_a_declined_card_shows_the_retry_message(site, page, ga):
    page.goto(f"{site}/events/{ga.event_id}/")
    page.get_by_label("Quantity of Standing").select_option("1")
    page.get_by_role("button", name="Continue").click()
    _fill_details(page)
    page.get_by_role("button", name=re.compile("Continue to payment")).click()

    _pay(page, DECLINE)
    expect(page.locator("strong.error")).to_be_visible()
    page.shot("sandbox-declined")
    page.get_by_role("button", name="Cancel and go back").click()

    expect(page.get_by_text("Your payment was not completed.")).to_be_visible()
    expect(page.locator("[data-countdown]")).to_have_text(re.compile(r"^1[45]:\d\d$"))
    page.shot("order-retry-message")
    page.get_by_role("link", name="Try paying again").click()
    _pay(page, PAY)
    expect(page.locator("svg.ticket-qr")).to_have_count(1)
    page.shot("paid-after-retry")


def test_a_hold_that_lapses_on_the_page_says_so_and_offers_to_start_again(site, page, hall):
    page.goto(f"{site}/events/{hall.pk}/seats/")
    page.get_by_label("Number of seats").select_option("2")
    page.get_by_role("button", name="Hold the best seats").click()
    expect(page.get_by_role("heading", name="Your seats are held")).to_be_visible()
    # Let the hold run out in a few seconds instead of fifteen minutes.
    hold = SeatHold.objects.get()
    SeatHold.objects.filter(pk=hold.pk).update(expires_at=timezone.now() + timedelta(seconds=3))
    cache.clear()  # the seat map's cached copy has the old expiry
    page.reload()
    expect(page.get_by_role("timer")).to_have_text(re.compile(r"^0:0[0-3]$"))

    expect(page.locator("#hold-timer")).to_contain_text("Your hold expired.", timeout=6_000)
    page.shot("hold-lapsing")
    expect(page.locator('[data-message="hold_expired"]')).to_be_visible(timeout=8_000)
    expect(page.locator('g.seat[aria-checked="true"]')).to_have_count(2)  # the same seats, to hold again
    page.shot("hold-expired-start-again")
    page.get_by_role("button", name="Hold these seats").click()

    expect(page.get_by_role("heading", name="Your seats are held")).to_be_visible()
    assert sorted(SeatHold.objects.exclude(pk=hold.pk).get().seat_ids) == sorted(hold.seat_ids)
