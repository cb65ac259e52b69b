"""Holding seats on the seat map page, and the checkout adopting that hold."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlparse

import pytest
from django.test import Client
from django.utils import timezone

from payments.sandbox.gateway import sandbox_charge
from seating.models import Seat, SeatHold, SeatHoldStatus, SeatStatus
from seating.selectors import seat_hold_for_token
from seating.services.holds import seat_hold_create
from tests.invariants import assert_inventory_consistent
from tests.pages.conftest import PAY, seat_ids
from ticketing.models import FunnelEvent, Order, OrderStatus, TicketType
from ticketing.views.hold_session import SESSION_KEY

pytestmark = pytest.mark.django_db(transaction=True)

BUYER = {"buyer_name": "Ada Lovelace", "buyer_email": "ada@example.com", "action": "pay"}


def _hold(client, event, labels):
    return client.post(f"/events/{event.pk}/seats/hold/", {"seats": ",".join(map(str, seat_ids(event, labels)))})


def _session_token(client, event) -> str:
    return (client.session.get(SESSION_KEY) or {}).get(str(event.pk), "")


def _lapse(hold: SeatHold) -> None:
    SeatHold.objects.filter(pk=hold.pk).update(expires_at=timezone.now() - timedelta(seconds=1))


def _funnel(event_id: int) -> list[tuple[str, str, int]]:
    return list(
        FunnelEvent.objects.filter(event_id=event_id).order_by("id").values_list("step", "order_code", "quantity")
    )


def _countdown_seconds(page: str) -> int:
    return int(re.search(r'data-hold-countdown="(\d+)"', page).group(1))


# --- holding on the seat map -------------------------------------------------------------


def test_holding_chosen_seats_shows_them_held_with_a_countdown(client, hall):
    chosen = seat_ids(hall, ["A 4", "A 5"])

    response = _hold(client, hall, ["A 4", "A 5"])

    assert response.status_code == 302 and response["Location"] == f"/events/{hall.pk}/seats/"
    hold = SeatHold.objects.get()
    assert (hold.seat_ids, hold.status, hold.reference) == (chosen, SeatHoldStatus.ACTIVE, "")
    assert 14 * 60 < (hold.expires_at - timezone.now()).total_seconds() <= 15 * 60
    assert _session_token(client, hall) == hold.token
    assert set(Seat.objects.filter(hold=hold).values_list("status", flat=True)) == {SeatStatus.HELD}
    assert _funnel(hall.pk) == [("seats_held", "", 2)]

    page = client.get(response["Location"]).content.decode()
    assert "Your seats are held" in page
    assert f'<li data-id="{chosen[0]}">Stalls A 4 · EUR 40.00</li>' in page
    assert "2 seats, EUR 80.00 before fees" in page
    assert 14 * 60 < _countdown_seconds(page) <= 15 * 60
    assert 'role="timer"' in page and 'aria-live="polite"' in page  # the timer, and what is announced
    assert re.search(r'<time datetime="[^"]+">\d\d:\d\d UTC</time>', page)  # the text without JavaScript
    assert f'href="/events/{hall.pk}/checkout/?seats={chosen[0]}%2C{chosen[1]}">Continue to checkout</a>' in page
    assert f'action="/events/{hall.pk}/seats/release/"' in page
    assert 'aria-label="Stalls A 4, Stalls, EUR 40.00, held for you"' in page
    assert page.count('class="seat mine"') == 2
    assert "Hold these seats" not in page and "Hold the best seats" not in page  # release first to change


def test_best_available_holds_the_best_block_at_once(client, hall):
    category = hall.seating_plan.categories.get()

    response = client.post(f"/events/{hall.pk}/seats/hold/", {"category": category.pk, "quantity": 3})

    assert response.status_code == 302
    hold = SeatHold.objects.get()
    assert sorted(Seat.objects.filter(pk__in=hold.seat_ids).values_list("label", flat=True)) == [
        "Stalls A 4",
        "Stalls A 5",
        "Stalls A 6",
    ]
    assert _session_token(client, hall) == hold.token
    assert _funnel(hall.pk) == [("seats_held", "", 3)]
    page = client.get(response["Location"]).content.decode()
    assert "Your seats are held" in page and "3 seats, EUR 120.00 before fees" in page


def test_best_available_says_when_too_few_seats_are_left_and_holds_nothing(client, hall):
    category = hall.seating_plan.categories.get()
    Seat.objects.filter(event=hall).exclude(label__in=["Stalls A 1", "Stalls A 2"]).update(status=SeatStatus.SOLD)

    response = client.post(f"/events/{hall.pk}/seats/hold/", {"category": category.pk, "quantity": 3}, follow=True)

    assert "Not enough seats are left in this category" in response.content.decode()
    assert SeatHold.objects.count() == 0 and _session_token(client, hall) == ""


def test_a_seat_taken_meanwhile_holds_none_names_it_and_keeps_the_rest(client, hall):
    kept, gone = seat_ids(hall, ["B 3", "B 4"])
    theirs = seat_hold_create(event_id=hall.pk, seat_ids=[gone], expires_at=timezone.now() + timedelta(minutes=5))

    response = _hold(client, hall, ["B 3", "B 4"])

    assert response["Location"] == f"/events/{hall.pk}/seats/?seats={kept}&taken={gone}"
    assert list(SeatHold.objects.values_list("pk", flat=True)) == [theirs.pk]  # all or nothing: B 3 not held
    assert Seat.objects.get(pk=kept).status == SeatStatus.FREE
    assert _session_token(client, hall) == "" and _funnel(hall.pk) == []
    page = client.get(response["Location"]).content.decode()
    assert "Sorry, seat Stalls B 4 was just taken by someone else." in page
    assert f'<g class="seat taken-now" data-id="{gone}"' in page  # highlighted on the map
    assert f'id="seats-input" value="{kept}"' in page  # the rest still selected, to hold again
    assert "Hold these seats</button>" in page


def test_a_seat_rule_or_sales_window_problem_holds_nothing(client, hall):
    TicketType.objects.filter(event=hall).update(sales_end=timezone.now() - timedelta(minutes=1))

    response = _hold(client, hall, ["A 4"])

    assert response["Location"].endswith("error=sales_ended")
    assert "Sales for these tickets have ended." in client.get(response["Location"]).content.decode()
    assert SeatHold.objects.count() == 0


def test_releasing_frees_the_seats_and_keeps_them_selected(client, hall):
    chosen = seat_ids(hall, ["A 7", "A 8"])
    _hold(client, hall, ["A 7", "A 8"])
    hold = SeatHold.objects.get()

    response = client.post(f"/events/{hall.pk}/seats/release/")

    assert response.status_code == 302
    hold.refresh_from_db()
    assert hold.status == SeatHoldStatus.RELEASED
    assert set(Seat.objects.filter(pk__in=chosen).values_list("status", flat=True)) == {SeatStatus.FREE}
    assert _session_token(client, hall) == ""
    page = client.get(response["Location"]).content.decode()
    assert "Your seats were released." in page
    assert f'id="seats-input" value="{chosen[0]},{chosen[1]}"' in page
    assert "Your seats are held" not in page
    assert client.post(f"/events/{hall.pk}/seats/release/").status_code == 302  # again: nothing to do


def test_holding_again_replaces_the_buyers_own_hold(client, hall):
    _hold(client, hall, ["A 4", "A 5"])
    first = SeatHold.objects.get()

    _hold(client, hall, ["A 5", "A 6"])  # e.g. from a second tab: A 5 is their own, not taken

    first.refresh_from_db()
    second = SeatHold.objects.exclude(pk=first.pk).get()
    assert first.status == SeatHoldStatus.RELEASED
    assert second.seat_ids == seat_ids(hall, ["A 5", "A 6"]) and _session_token(client, hall) == second.token
    assert Seat.objects.get(pk=seat_ids(hall, ["A 4"])[0]).status == SeatStatus.FREE


def test_an_expired_hold_says_so_and_offers_to_hold_the_seats_again(client, hall):
    chosen = seat_ids(hall, ["A 2", "A 3"])
    _hold(client, hall, ["A 2", "A 3"])
    _lapse(SeatHold.objects.get())

    page = client.get(f"/events/{hall.pk}/seats/").content.decode()

    assert 'data-message="hold_expired"' in page and "Your hold expired." in page
    assert f'href="/events/{hall.pk}/seats/">start again</a>' in page
    assert f'id="seats-input" value="{chosen[0]},{chosen[1]}"' in page  # hold them again in one click
    assert "Your seats are held" not in page
    assert _session_token(client, hall) == ""
    assert "Your hold expired." not in client.get(f"/events/{hall.pk}/seats/").content.decode()  # said once


def test_the_hold_form_needs_the_csrf_token(hall):
    strict = Client(enforce_csrf_checks=True)

    response = strict.post(f"/events/{hall.pk}/seats/hold/", {"seats": str(seat_ids(hall, ["A 1"])[0])})

    assert response.status_code == 403
    assert SeatHold.objects.count() == 0


def test_the_seat_map_page_carries_the_csrf_token_for_its_forms(client, hall):
    page = client.get(f"/events/{hall.pk}/seats/").content.decode()
    assert page.count('name="csrfmiddlewaretoken"') == 2  # hold these seats, best available


# --- the checkout adopts the hold ----------------------------------------------------------


def _pay_order(client, order: Order) -> None:
    to_pay = client.get(f"/orders/{order.code}/pay/")
    token = urlparse(to_pay["Location"]).path.rstrip("/").split("/")[-1]
    sandbox_charge(token=token, card_number=PAY)


def test_checkout_adopts_the_hold_instead_of_holding_again(client, hall):
    chosen = seat_ids(hall, ["B 5", "B 6"])
    _hold(client, hall, ["B 5", "B 6"])
    hold = SeatHold.objects.get()

    page = client.get(f"/events/{hall.pk}/checkout/?seats={chosen[0]},{chosen[1]}").content.decode()
    assert "Seats: Stalls B 5, Stalls B 6" in page
    assert 'data-message="seats_held"' in page and 14 * 60 < _countdown_seconds(page) <= 15 * 60
    response = client.post(f"/events/{hall.pk}/checkout/", {"seats": f"{chosen[0]},{chosen[1]}", **BUYER})

    order = Order.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/orders/{order.code}/pay/"
    assert sorted(order.lines.values_list("seat_id", flat=True)) == chosen
    assert SeatHold.objects.count() == 1  # no second hold
    hold.refresh_from_db()
    assert (hold.reference, hold.expires_at, hold.status) == (order.code, order.expires_at, SeatHoldStatus.ACTIVE)
    assert set(Seat.objects.filter(pk__in=chosen).values_list("status", "hold_id")) == {(SeatStatus.HELD, hold.pk)}
    assert _session_token(client, hall) == ""  # the order has it now
    # Seats held once (on the map), not again at the checkout.
    assert _funnel(hall.pk) == [("seats_held", "", 2), ("checkout_started", order.code, 2)]
    assert client.get(f"/events/{hall.pk}/seats/").content.decode().count('class="seat mine"') == 0

    _pay_order(client, order)

    order.refresh_from_db()
    hold.refresh_from_db()
    assert order.status == OrderStatus.PAID
    assert hold.status == SeatHoldStatus.CONVERTED
    assert set(Seat.objects.filter(pk__in=chosen).values_list("status", "hold_id")) == {(SeatStatus.SOLD, hold.pk)}
    assert sorted(order.tickets.values_list("seat_id", flat=True)) == chosen
    assert_inventory_consistent()


def test_an_expired_hold_at_checkout_is_a_clear_message_and_starts_nothing(client, hall):
    chosen = seat_ids(hall, ["A 9", "A 10"])
    _hold(client, hall, ["A 9", "A 10"])
    _lapse(SeatHold.objects.get())

    response = client.post(f"/events/{hall.pk}/checkout/", {"seats": f"{chosen[0]},{chosen[1]}", **BUYER})

    assert response.status_code == 302
    assert response["Location"] == f"/events/{hall.pk}/seats/?seats={chosen[0]}%2C{chosen[1]}&error=seat_hold_expired"
    assert Order.objects.count() == 0
    assert _session_token(client, hall) == ""
    page = client.get(response["Location"]).content.decode()
    assert "Your hold expired." in page
    assert f'id="seats-input" value="{chosen[0]},{chosen[1]}"' in page


def test_a_hold_lapsing_while_the_checkout_starts_is_the_same_clear_message(client, hall, monkeypatch):
    """The page saw the hold live; by the time the run adopts it, it lapsed."""
    import ticketing.views.checkout as checkout_view

    chosen = seat_ids(hall, ["A 9", "A 10"])
    _hold(client, hall, ["A 9", "A 10"])
    hold = SeatHold.objects.get()
    seen_live = checkout_view.session_hold

    def lapsing(request, event_id):
        held = seen_live(request, event_id)
        _lapse(hold)
        return held

    monkeypatch.setattr(checkout_view, "session_hold", lapsing)

    response = client.post(f"/events/{hall.pk}/checkout/", {"seats": f"{chosen[0]},{chosen[1]}", **BUYER})

    assert response["Location"].endswith("error=seat_hold_expired")
    assert not Order.objects.exclude(status=OrderStatus.CANCELLED).exists()  # the run undid its order
    hold.refresh_from_db()
    assert hold.reference == "" and SeatHold.objects.count() == 1  # not adopted, no fresh hold
    assert _session_token(client, hall) == ""
    assert "Your hold expired." in client.get(response["Location"]).content.decode()
    assert_inventory_consistent()


def test_a_checkout_for_other_seats_than_the_held_ones_goes_back_to_the_map(client, hall):
    chosen = seat_ids(hall, ["A 4", "A 5"])
    _hold(client, hall, ["A 4", "A 5"])

    response = client.get(f"/events/{hall.pk}/checkout/?seats={chosen[0]}")

    assert response["Location"] == f"/events/{hall.pk}/seats/?error=seat_hold_mismatch"
    page = client.get(response["Location"]).content.decode()
    assert "Your held seats differ from the seats in your order." in page
    assert "Your seats are held" in page  # still held, to continue with or release
    assert Order.objects.count() == 0


def test_a_second_submit_of_the_checkout_form_shows_the_first_order(client, hall, monkeypatch):
    """The same form sent twice at once: both requests read the session before
    either dropped the token. The first order adopts the hold; the second is
    refused it and shows the buyer that first order."""
    import ticketing.views.checkout as checkout_view

    chosen = seat_ids(hall, ["A 4", "A 5"])
    _hold(client, hall, ["A 4", "A 5"])
    token = _session_token(client, hall)
    as_read_before = seat_hold_for_token(token=token, event_id=hall.pk)
    data = {"seats": f"{chosen[0]},{chosen[1]}", **BUYER}
    first = client.post(f"/events/{hall.pk}/checkout/", data)
    monkeypatch.setattr(checkout_view, "session_hold", lambda request, event_id: as_read_before)
    monkeypatch.setattr(checkout_view, "session_hold_token", lambda request, event_id: token)

    second = client.post(f"/events/{hall.pk}/checkout/", data)

    order = Order.objects.get(status=OrderStatus.PENDING)
    assert first["Location"] == f"/orders/{order.code}/pay/"
    assert second.status_code == 302 and second["Location"] == f"/orders/{order.code}/"
    assert SeatHold.objects.get().reference == order.code
    # The second run left no order of its own behind (none, or one it cancelled).
    assert not Order.objects.exclude(pk=order.pk).exclude(status=OrderStatus.CANCELLED).exists()
    assert_inventory_consistent()


def test_without_a_hold_the_checkout_still_holds_the_seats_itself(client, hall):
    chosen = seat_ids(hall, ["B 1"])

    client.post(f"/events/{hall.pk}/checkout/", {"seats": str(chosen[0]), **BUYER})

    order = Order.objects.get()
    assert SeatHold.objects.get().reference == order.code
    assert [step for step, _, _ in _funnel(hall.pk)] == ["checkout_started", "seats_held"]
