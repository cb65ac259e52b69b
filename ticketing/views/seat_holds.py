"""Holding seats from the seat map page, and letting them go.

"Hold these seats" (the seats clicked on the map) and "best available" (n
seats of a category) are form POSTs that work without JavaScript. The hold is
made by the seating services, all or nothing, for settings.SEAT_HOLD_MINUTES;
its token goes into the buyer's session (ticketing.views.hold_session) and the
page then shows the held seats with a countdown. The checkout adopts that very
hold for the order instead of holding again (workflows.seating.reserve_seats).

Every outcome redirects back to the seat map (post/redirect/get): a seat taken
meanwhile holds nothing, names the taken seats and keeps the rest selected."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from seating.exceptions import NoSeatsAvailable, SeatBlocked, SeatUnavailable
from seating.models import SeatHold
from seating.services.best_available import seat_hold_best_available
from seating.services.holds import seat_hold_create, seat_hold_release
from ticketing.exceptions import DomainError, NotOnSale
from ticketing.forms import BestAvailableForm, seat_ids_from
from ticketing.models import Event, FunnelStep, TicketType
from ticketing.views.events import seat_map_or_404, visible_event
from ticketing.views.hold_session import session_hold, session_hold_forget, session_hold_remember
from workflows.analytics.track_funnel_event import track_funnel_event
from workflows.checkout.cart import cart_price

# Errors that name particular seats: those are shown as taken, the rest stay selected.
SEAT_TAKEN_ERRORS = (SeatUnavailable, SeatBlocked)


def seat_map_url(event: Event, **query: str) -> str:
    url = reverse("ticketing:seat-map", args=[event.pk])
    query = {key: value for key, value in query.items() if value}
    return f"{url}?{urlencode(query)}" if query else url


def _ids(seat_ids: list[int]) -> str:
    return ",".join(map(str, seat_ids))


def _problem(event: Event, exc: DomainError, seat_ids: list[int]) -> HttpResponseRedirect:
    """Back to the map: taken seats named and highlighted, the rest kept."""
    detail = exc.detail if isinstance(exc.detail, dict) else {}
    if isinstance(exc, SEAT_TAKEN_ERRORS) and detail.get("seat_ids"):
        gone = {int(i) for i in detail["seat_ids"] if str(i).isdigit()}
        kept = [i for i in seat_ids if i not in gone]
        return HttpResponseRedirect(seat_map_url(event, seats=_ids(kept), taken=_ids(sorted(gone))))
    return HttpResponseRedirect(seat_map_url(event, seats=_ids(seat_ids), error=exc.code))


def _release_previous(request: HttpRequest, event: Event) -> None:
    """A new hold replaces the buyer's current one (a stale page, a second
    tab): their own seats must not stand in their way."""
    held = session_hold(request, event.pk)
    if held is not None:
        seat_hold_release(hold_id=held.hold_id, reason="replaced by a new hold on the seat map")
        session_hold_forget(request, event.pk)


def _hold_best_available(request: HttpRequest, event: Event) -> SeatHold | HttpResponseRedirect:
    seat_map = seat_map_or_404(event)
    form = BestAvailableForm(request.POST, categories=seat_map.categories)
    if not form.is_valid():
        return HttpResponseRedirect(seat_map_url(event, error="invalid"))
    category_id, quantity = form.cleaned_data["category"], form.cleaned_data["quantity"]
    ticket_type_id = next(c["ticket_type_id"] for c in seat_map.categories if c["id"] == category_id)
    now = timezone.now()
    try:
        # What the checkout would refuse (sales window, per-order limit) is refused before holding.
        TicketType.objects.select_related("event").get(pk=ticket_type_id).check_orderable(quantity=quantity, at=now)
        _release_previous(request, event)
        return seat_hold_best_available(
            event_id=event.pk,
            category_id=category_id,
            quantity=quantity,
            expires_at=now + timedelta(minutes=settings.SEAT_HOLD_MINUTES),
            now=now,
        )
    except NoSeatsAvailable as exc:
        return HttpResponseRedirect(seat_map_url(event, error=exc.code))
    except DomainError as exc:
        return _problem(event, exc, [])


def _hold_chosen(request: HttpRequest, event: Event) -> SeatHold | HttpResponseRedirect:
    seat_ids = seat_ids_from(request.POST.get("seats", ""))
    if not seat_ids:
        return HttpResponseRedirect(seat_map_url(event, error="empty"))
    now = timezone.now()
    try:
        # The checkout's own validation (seats of this event, sales window,
        # per-order limit), so a hold is never made for seats that cannot be bought.
        cart_price(event_id=event.pk, seat_ids=seat_ids, now=now)
        _release_previous(request, event)
        return seat_hold_create(
            event_id=event.pk,
            seat_ids=seat_ids,
            expires_at=now + timedelta(minutes=settings.SEAT_HOLD_MINUTES),
            now=now,
        )
    except DomainError as exc:
        return _problem(event, exc, seat_ids)


@require_POST
def seat_hold_page(request: HttpRequest, event_id: int) -> HttpResponse:
    """Hold the chosen seats (`seats=1,2`) or, with `category` and
    `quantity`, the best available ones; then show them held on the map."""
    event = visible_event(event_id)
    if not event.is_on_sale:
        return HttpResponseRedirect(seat_map_url(event, error=NotOnSale.code))
    outcome = _hold_best_available(request, event) if "category" in request.POST else _hold_chosen(request, event)
    if isinstance(outcome, HttpResponseRedirect):
        return outcome
    session_hold_remember(request, event.pk, outcome.token)
    track_funnel_event(step=FunnelStep.SEATS_HELD, event_id=event.pk, quantity=len(outcome.seat_ids))
    return HttpResponseRedirect(seat_map_url(event))


@require_POST
def seat_release_page(request: HttpRequest, event_id: int) -> HttpResponse:
    """Give the held seats back; they stay selected on the map, to change
    the selection and hold again. Safe to repeat."""
    event = visible_event(event_id)
    held = session_hold(request, event.pk)
    if held is None:
        return HttpResponseRedirect(seat_map_url(event))
    seat_hold_release(hold_id=held.hold_id, reason="released by the buyer on the seat map")
    session_hold_forget(request, event.pk)
    return HttpResponseRedirect(seat_map_url(event, seats=_ids(held.seat_ids), released="1"))
