"""Browsing: the event list, an event's page, and its seat map."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from seating.exceptions import (
    HoldLost,
    InvalidSeatSelection,
    NoSeatsAvailable,
    OrphanSeat,
    SeatBlocked,
    SeatHoldExpired,
    SeatHoldInUse,
    SeatHoldMismatch,
    SeatUnavailable,
    SeatWrongEvent,
    UnknownCategory,
    UnknownSeat,
)
from seating.models import SeatHoldStatus
from seating.selectors import seat_map_for_event
from seating.services.best_available import seat_best_available
from seating.services.holds import MAX_SEATS_PER_HOLD
from ticketing.exceptions import Busy, InvalidInput, InvalidQuantity, NotOnSale, SalesEnded, SalesNotStarted, SoldOut
from ticketing.forms import BestAvailableForm, seat_ids_from
from ticketing.models import Event, EventStatus, FunnelStep
from ticketing.selectors import SaleState, events_listing, ticket_type_offers
from ticketing.views.hold_session import session_hold, session_hold_forget
from workflows.analytics.track_funnel_event import track_funnel_event

# Events a buyer may look at; drafts are not public.
VISIBLE = (EventStatus.ON_SALE, EventStatus.SALES_CLOSED, EventStatus.COMPLETED, EventStatus.CANCELLED)


# Messages the seat map shows for ?error=<code> (codes only, never text from the URL).
SEAT_MAP_ERRORS: dict[str, str] = {
    error.code: error.message
    for error in (
        UnknownCategory,
        OrphanSeat,
        SeatBlocked,
        SeatUnavailable,
        HoldLost,
        UnknownSeat,
        SeatWrongEvent,
        SeatHoldInUse,
        SeatHoldMismatch,
        SoldOut,
        SalesNotStarted,
        SalesEnded,
        NotOnSale,
        Busy,
    )
}
SEAT_MAP_ERRORS.update(
    {
        "invalid": "Choose a price category and a number of seats.",
        NoSeatsAvailable.code: "Not enough seats are left in this category. Try fewer seats or another category.",
        InvalidSeatSelection.code: f"Choose between 1 and {MAX_SEATS_PER_HOLD} seats.",
        InvalidQuantity.code: "That is more seats of one price category than one order may have.",
        InvalidInput.code: "Choose at least one seat.",
        "empty": "Choose at least one seat.",
        # Shown as the "hold expired" notice, with the way to start again.
        SeatHoldExpired.code: "",
    }
)


def visible_event(event_id: int) -> Event:
    return get_object_or_404(Event.objects.filter(status__in=VISIBLE), pk=event_id)


@require_GET
def event_index(request: HttpRequest) -> HttpResponse:
    return render(request, "ticketing/event_index.html", {"listings": events_listing()})


def event_page_context(event: Event) -> dict[str, Any]:
    offers = ticket_type_offers(event=event)
    return {
        "event": event,
        "offers": offers,
        "has_ga": any(o.quantity_choices for o in offers),
        "has_seats": any(o.is_seated for o in offers),
        "seats_on_sale": any(o.is_seated and o.state == SaleState.ON_SALE for o in offers),
    }


@require_GET
def event_detail(request: HttpRequest, event_id: int) -> HttpResponse:
    event = visible_event(event_id)
    track_funnel_event(step=FunnelStep.EVENT_VIEWED, event_id=event.pk)
    return render(request, "ticketing/event_detail.html", event_page_context(event))


def seat_map_or_404(event: Event) -> Any:
    seat_map = seat_map_for_event(event_id=event.pk)
    if seat_map is None:
        raise Http404("This event has no seat map.")
    return seat_map


@require_GET
def seat_map_page(request: HttpRequest, event_id: int) -> HttpResponse:
    """The plan as SVG. `?seats=` preselects seats (best available, or what is
    left of a selection after a seat was taken); `?taken=` names the seats
    that were taken meanwhile, to say so.

    While the buyer's session holds seats of this event (made through
    ticketing.views.seat_holds), the page shows them held, with the countdown
    to the hold's expiry, "release" and "continue to checkout", instead of
    the selection.
    A hold that lapsed is said so once, with its seats preselected again (if
    still free) to hold them anew."""
    event = visible_event(event_id)
    seat_map = seat_map_or_404(event)
    now = timezone.now()
    by_id = {s["id"]: s for s in seat_map.seats}
    categories = {c["id"]: c for c in seat_map.categories}
    taken_ids = [i for i in seat_ids_from(request.GET.get("taken", "")) if i in by_id]
    selected = [i for i in seat_ids_from(request.GET.get("seats", "")) if by_id.get(i, {}).get("status") == "free"]
    hold_expired = request.GET.get("error") == SeatHoldExpired.code
    held = session_hold(request, event.pk, now=now)
    if held is not None and not held.live:
        session_hold_forget(request, event.pk)
        hold_expired = hold_expired or held.status in (SeatHoldStatus.ACTIVE, SeatHoldStatus.EXPIRED)
        selected = selected or [i for i in held.seat_ids if by_id.get(i, {}).get("status") == "free"]
        held = None
    hold_context: dict[str, Any] = {"held": held, "held_ids": [], "hold_expired": hold_expired}
    if held is not None:
        held_seats = [
            {**by_id[i], "category": categories[by_id[i]["category_id"]]} for i in held.seat_ids if i in by_id
        ]
        seconds_left = held.seconds_left(now)
        selected = []
        hold_context.update(
            {
                "held_ids": held.seat_ids,
                "held_seats": held_seats,
                "held_total_cents": sum(s["category"]["price_cents"] for s in held_seats),
                "held_currency": held_seats[0]["category"]["currency"] if held_seats else event.currency,
                "seconds_left": seconds_left,
                "countdown": f"{seconds_left // 60}:{seconds_left % 60:02d}",
                "checkout_url": reverse("ticketing:checkout", args=[event.pk])
                + "?"
                + urlencode({"seats": ",".join(map(str, held.seat_ids))}),
            }
        )
    row_ends: dict[int, tuple[float, float]] = {}
    section_box: dict[int, list[float]] = {}
    for seat in seat_map.seats:
        x, y = seat["x"], seat["y"]
        row_ends[seat["row_id"]] = (min(x, row_ends.get(seat["row_id"], (x, y))[0]), y)
        box = section_box.setdefault(seat["section_id"], [x, x, y])
        box[0], box[1], box[2] = min(box[0], x), max(box[1], x), min(box[2], y)
    row_labels = [
        {"label": row["label"], "x": row_ends[row["id"]][0] - 22, "y": row_ends[row["id"]][1]}
        for section in seat_map.sections
        for row in section["rows"]
        if row["id"] in row_ends
    ]
    section_labels = [
        {
            "name": s["name"],
            "x": (section_box[s["id"]][0] + section_box[s["id"]][1]) / 2,
            "y": section_box[s["id"]][2] - 24,
        }
        for s in seat_map.sections
        if s["id"] in section_box
    ]
    return render(
        request,
        "ticketing/seat_map.html",
        {
            "event": event,
            "seat_map": seat_map,
            "seats": [{**s, "category": categories[s["category_id"]]} for s in seat_map.seats],
            "selected": selected,
            "selected_seats": [by_id[i] for i in selected],
            "row_labels": row_labels,
            "section_labels": section_labels,
            "stage": {
                "x": 40,
                "y": 14,
                "width": max(seat_map.plan["width"] - 80, 40),
                "cx": seat_map.plan["width"] / 2,
            },
            "taken_labels": [by_id[i]["label"] for i in taken_ids],
            "taken_ids": taken_ids,
            "best_form": BestAvailableForm(categories=seat_map.categories),
            "max_seats": MAX_SEATS_PER_HOLD,
            "hold_minutes": settings.SEAT_HOLD_MINUTES,
            "error": SEAT_MAP_ERRORS.get(request.GET.get("error", ""), ""),
            "on_sale": event.is_on_sale,
            "released": bool(request.GET.get("released")) and bool(selected),
            **hold_context,
        },
    )


@require_GET
def seat_map_status(request: HttpRequest, event_id: int) -> JsonResponse:
    """Live availability for the page's polling: seat id -> effective status
    (from the briefly cached map, so a rush of polls costs no queries)."""
    event = visible_event(event_id)
    seat_map = seat_map_or_404(event)
    response = JsonResponse({"seats": {str(s["id"]): s["status"] for s in seat_map.seats}})
    response["Cache-Control"] = "no-store"
    return response


@require_GET
def seat_best_available_page(request: HttpRequest, event_id: int) -> HttpResponse:
    """Best available n seats of a category, chosen but not held: the seats
    come back preselected on the map. (The map's own best-available form
    holds them at once, through ticketing.views.seat_holds.)"""
    event = visible_event(event_id)
    seat_map = seat_map_or_404(event)
    form = BestAvailableForm(request.GET, categories=seat_map.categories)
    url = reverse("ticketing:seat-map", args=[event.pk])
    if not form.is_valid():
        return HttpResponseRedirect(f"{url}?{urlencode({'error': 'invalid'})}")
    try:
        seat_ids = seat_best_available(
            event_id=event.pk, category_id=form.cleaned_data["category"], quantity=form.cleaned_data["quantity"]
        )
    except (NoSeatsAvailable, UnknownCategory, InvalidSeatSelection) as exc:
        return HttpResponseRedirect(f"{url}?{urlencode({'error': exc.code})}")
    return HttpResponseRedirect(f"{url}?{urlencode({'seats': ','.join(map(str, seat_ids)), 'best': 1})}")
