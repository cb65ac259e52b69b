"""The event list, the event page and the seat map."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from seating.models import Seat, SeatStatus
from seating.services.holds import seat_hold_create
from tests.factories import EventFactory, TicketTypeFactory
from tests.pages.conftest import seat_ids
from ticketing.models import FunnelEvent, TicketKind, TicketType

pytestmark = pytest.mark.django_db


def _sell(ticket_type: TicketType, n: int) -> None:
    TicketType.objects.filter(pk=ticket_type.pk).update(sold=n)


def test_index_lists_upcoming_events_with_date_venue_price_range_and_badges(client, organization):
    # given: a normal event with two prices, a nearly sold out one, a sold out one, a draft
    jazz = EventFactory(organization=organization, name="Jazz night", venue_name="Blue Room")
    TicketTypeFactory(event=jazz, price_cents=2000)
    TicketTypeFactory(event=jazz, price_cents=4550)
    few = EventFactory(organization=organization, name="Almost gone")
    _sell(TicketTypeFactory(event=few, capacity=100), 96)
    gone = EventFactory(organization=organization, name="All gone")
    _sell(TicketTypeFactory(event=gone, capacity=50), 50)
    EventFactory(organization=organization, name="Secret draft", status="draft")

    page = client.get(reverse("ticketing:event-index")).content.decode()

    jazz_card = page[page.index("Jazz night") : page.index("</li>", page.index("Jazz night"))]
    assert "Blue Room" in jazz_card
    assert "EUR 20.00 \u2013 EUR 45.50" in jazz_card
    assert "Sold out" not in jazz_card and "Few left" not in jazz_card
    few_card = page[page.index("Almost gone") : page.index("</li>", page.index("Almost gone"))]
    assert "Few left" in few_card
    gone_card = page[page.index("All gone") : page.index("</li>", page.index("All gone"))]
    assert "Sold out" in gone_card
    assert "Secret draft" not in page


def test_index_counts_free_seats_for_seated_events(client, hall):
    Seat.objects.filter(event=hall).exclude(label="Stalls A 1").update(status=SeatStatus.BLOCKED)

    page = client.get("/").content.decode()

    card = page[page.index("String quartet") :]
    assert "Few left" in card.split("</li>")[0]


def test_event_page_shows_ticket_types_prices_availability_and_quantities(client, ga, django_assert_max_num_queries):
    TicketTypeFactory(event=ga.event, name="Balcony", price_cents=3900, capacity=3, max_per_order=10)

    with django_assert_max_num_queries(5):
        response = client.get(reverse("ticketing:event-detail", args=[ga.event_id]))

    page = response.content.decode()
    assert response.status_code == 200
    assert "An evening of jazz." in page
    assert "Standing" in page and "EUR 25.00" in page and "100 available" in page
    assert "Balcony" in page and "EUR 39.00" in page and "Only 3 left" in page
    # The quantities stop at the per-order limit (6) and at what is left (3).
    assert '<option value="6">6</option>' in page.split(f'name="qty_{ga.pk}"')[1].split("</select>")[0]
    balcony = TicketType.objects.get(name="Balcony")
    balcony_select = page.split(f'name="qty_{balcony.pk}"')[1].split("</select>")[0]
    assert '<option value="3">3</option>' in balcony_select and '<option value="4">' not in balcony_select
    assert 'action="/events/' in page


def test_event_page_query_count_does_not_grow_with_ticket_types(client, ga, hall, django_assert_max_num_queries):
    # The event, the funnel insert (3 in a test: savepoint, insert, release),
    # the ticket types, then one grouped read each for lapsed GA holds and for seats.
    for n in range(8):
        TicketType.objects.filter(pk=TicketTypeFactory(event=ga.event, name=f"Extra {n}").pk).update(held=1)
    for n in range(3):
        TicketTypeFactory(event=hall, name=f"Seated extra {n}", kind=TicketKind.SEATED)
    with django_assert_max_num_queries(6):
        client.get(reverse("ticketing:event-detail", args=[ga.event_id]))
    with django_assert_max_num_queries(6):
        client.get(reverse("ticketing:event-detail", args=[hall.pk]))


def test_event_page_records_a_funnel_view(client, ga):
    client.get(reverse("ticketing:event-detail", args=[ga.event_id]))
    client.get(reverse("ticketing:event-detail", args=[ga.event_id]))

    assert FunnelEvent.objects.filter(event_id=ga.event_id, step="event_viewed").count() == 2


def test_event_page_says_when_sales_open_end_or_are_sold_out(client, organization):
    event = EventFactory(organization=organization)
    now = timezone.now()
    TicketTypeFactory(event=event, name="Early", sales_end=now - timedelta(days=1))
    TicketTypeFactory(event=event, name="Late", sales_start=now + timedelta(days=2))
    _sell(TicketTypeFactory(event=event, name="Gone", capacity=5), 5)

    page = client.get(reverse("ticketing:event-detail", args=[event.pk])).content.decode()

    assert 'data-state="ended"' in page and "Sales ended" in page
    assert 'data-state="not_started"' in page and "Sales start" in page
    assert 'data-state="sold_out"' in page and "Sold out" in page
    assert "<select" not in page  # nothing can be bought now


def test_event_page_of_a_closed_or_cancelled_event_says_so(client, organization):
    closed = EventFactory(organization=organization, status="sales_closed")
    cancelled = EventFactory(organization=organization, status="cancelled")

    assert "Ticket sales for this event are closed" in client.get(f"/events/{closed.pk}/").content.decode()
    assert "This event has been cancelled" in client.get(f"/events/{cancelled.pk}/").content.decode()


def test_draft_events_are_not_public(client, organization):
    draft = EventFactory(organization=organization, status="draft")
    assert client.get(f"/events/{draft.pk}/").status_code == 404


def test_seated_event_page_links_to_the_seat_map(client, hall):
    page = client.get(f"/events/{hall.pk}/").content.decode()
    assert f'href="/events/{hall.pk}/seats/"' in page
    assert "20 available" in page


def test_seat_map_draws_every_seat_as_an_accessible_checkbox_with_a_legend(client, hall):
    response = client.get(f"/events/{hall.pk}/seats/")

    page = response.content.decode()
    assert response.status_code == 200
    assert page.count('<g class="seat') == 20
    assert page.count('role="checkbox"') == 20
    assert 'aria-label="Stalls A 1, Stalls, EUR 40.00, wheelchair space"' in page
    assert "Stalls · EUR 40.00" in page and "(20 free)" in page  # the legend
    assert "Taken" in page and "Not for sale" in page
    assert "ticketing/seat_map.js" in page


def test_seat_map_shows_live_availability(client, hall):
    taken = seat_ids(hall, ["A 5"])
    seat_hold_create(event_id=hall.pk, seat_ids=taken, expires_at=timezone.now() + timedelta(minutes=5))

    page = client.get(f"/events/{hall.pk}/seats/").content.decode()
    status = client.get(f"/events/{hall.pk}/seats/status.json").json()

    assert f'data-id="{taken[0]}" data-status="held"' in page
    assert status["seats"][str(taken[0])] == "held"
    assert status["seats"][str(seat_ids(hall, ["A 6"])[0])] == "free"


def test_seat_map_names_seats_taken_meanwhile_and_keeps_the_rest(client, hall):
    kept, gone = seat_ids(hall, ["B 3", "B 4"])
    seat_hold_create(event_id=hall.pk, seat_ids=[gone], expires_at=timezone.now() + timedelta(minutes=5))

    page = client.get(f"/events/{hall.pk}/seats/?seats={kept},{gone}&taken={gone}").content.decode()

    assert "Sorry, seat Stalls B 4 was just taken by someone else." in page
    assert "We kept the rest of your selection." in page
    assert f'id="seats-input" value="{kept}"' in page
    assert f'<li data-id="{kept}">Stalls B 3</li>' in page


def test_best_available_preselects_adjacent_seats(client, hall):
    category = hall.seating_plan.categories.get()

    response = client.get(f"/events/{hall.pk}/seats/best/?category={category.pk}&quantity=3")

    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert "We picked the best seats available" in page
    chosen = page.split('id="seats-input" value="')[1].split('"')[0].split(",")
    labels = sorted(Seat.objects.filter(pk__in=chosen).values_list("label", flat=True))
    assert labels == ["Stalls A 4", "Stalls A 5", "Stalls A 6"]


def test_best_available_says_when_too_few_seats_are_left(client, hall):
    category = hall.seating_plan.categories.get()
    Seat.objects.filter(event=hall).exclude(label__in=["Stalls A 1", "Stalls A 2"]).update(status=SeatStatus.SOLD)

    response = client.get(f"/events/{hall.pk}/seats/best/?category={category.pk}&quantity=3", follow=True)

    assert "Not enough seats are left in this category" in response.content.decode()


def test_seat_map_is_404_for_an_event_without_seats(client, ga):
    assert client.get(f"/events/{ga.event_id}/seats/").status_code == 404


def test_seated_ticket_types_count_seats_not_counters(client, organization):
    event = EventFactory(organization=organization)
    TicketTypeFactory(event=event, kind=TicketKind.SEATED, capacity=10)
    page = client.get(f"/events/{event.pk}/").content.decode()
    assert "Sold out" in page  # a seated type without seats has nothing to sell
