"""A buyer in a real browser: GA tickets, seats on the map, a declined card."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

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
    page.get_by_role("button", name="Continue").click()

    expect(page.get_by_text("Seats: Stalls A 4, Stalls A 5")).to_be_visible()
    _fill_details(page)
    page.shot("checkout-seats")
    page.get_by_role("button", name=re.compile("Continue to payment")).click()
    _pay(page, PAY)

    expect(page.locator('[data-order-status="paid"]')).to_be_visible()
    expect(page.locator(".seat-label")).to_have_text(["Seat Stalls A 4", "Seat Stalls A 5"])
    expect(page.locator("svg.ticket-qr")).to_have_count(2)
    page.shot("order-with-seat-labels")


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
