"""The checkout page: buyer details, the fee breakdown, then the payment page.

The cart travels in the query string (GET) and in hidden fields (POST):
`qty_<ticket type id>=n` and `seats=1,2`. Seats the buyer held on the seat map
are in their session (ticketing.views.hold_session): the page shows the
hold's countdown, and StartCheckout adopts that hold for the order instead of
holding the seats again; the session forgets it once the checkout started.
Anything else is held only when the buyer submits the form; then
StartCheckout validates again, holds the inventory and opens the payment
session."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from seating.exceptions import (
    HoldLost,
    SeatBlocked,
    SeatHoldExpired,
    SeatHoldInUse,
    SeatHoldMismatch,
    SeatHoldNotFound,
    SeatUnavailable,
)
from seating.models import Seat, SeatHoldStatus
from seating.selectors import HeldSeats
from ticketing.exceptions import Busy, DomainError, InvalidInput
from ticketing.forms import CheckoutForm, cart_from_query, cart_query, donation_cents_from
from ticketing.integrations import order_created_publish
from ticketing.models import Event, FunnelStep, Order, TicketType
from ticketing.rate_limits import CHECKOUT_STARTS, client_ip, rate_limit_hit
from ticketing.views.events import event_page_context, visible_event
from ticketing.views.hold_session import session_hold, session_hold_forget, session_hold_token
from workflows.analytics.track_funnel_event import track_funnel_event
from workflows.checkout.cart import PricedCart, cart_price
from workflows.checkout.start import start_checkout

# Errors about particular seats: back to the seat map, keeping the rest of the selection.
SEAT_ERRORS = (SeatUnavailable.code, SeatBlocked.code, HoldLost.code)
# The buyer's seat hold lapsed (or vanished) before the checkout could adopt it.
HOLD_GONE = (SeatHoldExpired.code, SeatHoldNotFound.code)


def _cart_lines(cart: PricedCart) -> list[dict[str, Any]]:
    names = dict(
        TicketType.objects.filter(pk__in=[line.ticket_type_id for line in cart.lines]).values_list("id", "name")
    )
    seat_ids = [seat_id for line in cart.lines for seat_id in line.seat_ids]
    labels = dict(Seat.objects.filter(pk__in=seat_ids).values_list("id", "label")) if seat_ids else {}
    return [
        {
            "name": names.get(line.ticket_type_id, ""),
            "quantity": line.quantity,
            "unit_price_cents": line.unit_price_cents,
            "total_cents": line.quantity * line.unit_price_cents,
            "seats": [labels[seat_id] for seat_id in line.seat_ids if seat_id in labels],
        }
        for line in cart.lines
    ]


def _render_checkout(
    request: HttpRequest,
    *,
    event: Event,
    form: CheckoutForm,
    tickets: list[dict[str, int]],
    seat_ids: list[int],
    cart: PricedCart,
    held: HeldSeats | None = None,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    back = (
        reverse("ticketing:seat-map", args=[event.pk]) + "?" + urlencode({"seats": ",".join(map(str, seat_ids))})
        if seat_ids
        else reverse("ticketing:event-detail", args=[event.pk])
    )
    context = {
        "event": event,
        "form": form,
        "cart": cart_query(tickets, seat_ids),
        "lines": _cart_lines(cart),
        "fees": cart.fees,
        "currency": cart.currency,
        "error": error,
        "back_url": back,
        "held": held,
    }
    if held is not None:
        left = held.seconds_left(timezone.now())
        context.update({"seconds_left": left, "countdown": f"{left // 60}:{left % 60:02d}"})
    return render(request, "ticketing/checkout.html", context, status=status)


def _seat_map_redirect(event: Event, **query: str) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("ticketing:seat-map", args=[event.pk]) + "?" + urlencode(query))


def _hold_problem(request: HttpRequest, *, event: Event, code: str, detail: Any, seat_ids: list[int]) -> HttpResponse:
    """The buyer's seat hold could not be adopted: say why where they can act."""
    seats = ",".join(map(str, seat_ids))
    if code in HOLD_GONE:
        session_hold_forget(request, event.pk)
        return _seat_map_redirect(event, seats=seats, error=SeatHoldExpired.code)
    if code == SeatHoldInUse.code:
        # The same form sent twice: the first checkout has the seats; show it.
        session_hold_forget(request, event.pk)
        other = str((detail or {}).get("order", "")) if isinstance(detail, dict) else ""
        if other and Order.objects.filter(code=other, event_id=event.pk).exists():
            return HttpResponseRedirect(reverse("ticketing:order-detail", args=[other]))
        return _seat_map_redirect(event, error=code)
    return _seat_map_redirect(event, error=SeatHoldMismatch.code)  # the map shows the held seats


def _buyer_hold(request: HttpRequest, *, event: Event, seat_ids: list[int]) -> HeldSeats | HttpResponse | None:
    """The live hold the buyer made on the seat map for exactly these seats
    (the checkout adopts it); None when there is none (the checkout holds the
    seats itself); or the way back to the map when it lapsed or is for other
    seats. A read: the run re-checks all of it under the seats' locks."""
    held = session_hold(request, event.pk) if seat_ids else None
    if held is None:
        return None
    if not held.live:
        if held.status in (SeatHoldStatus.ACTIVE, SeatHoldStatus.EXPIRED):
            return _hold_problem(request, event=event, code=SeatHoldExpired.code, detail=None, seat_ids=seat_ids)
        session_hold_forget(request, event.pk)  # released: nothing to adopt
        return None
    if held.seat_ids != sorted(seat_ids):
        return _hold_problem(request, event=event, code=SeatHoldMismatch.code, detail=None, seat_ids=seat_ids)
    return held


def _cart_problem(
    request: HttpRequest, *, event: Event, exc: DomainError, tickets: list[dict[str, int]], seat_ids: list[int]
) -> HttpResponse:
    """Say what is wrong with the cart where the buyer can fix it: on the seat
    map (selection kept, taken seats named) or on the event page."""
    if seat_ids:
        query = {"seats": ",".join(map(str, seat_ids)), "error": exc.code}
        detail = exc.detail if isinstance(exc.detail, dict) else {}
        if exc.code in SEAT_ERRORS and detail.get("seat_ids"):
            gone = {int(i) for i in detail["seat_ids"] if str(i).isdigit()}
            query = {"seats": ",".join(str(i) for i in seat_ids if i not in gone), "taken": ",".join(map(str, gone))}
        return HttpResponseRedirect(reverse("ticketing:seat-map", args=[event.pk]) + "?" + urlencode(query))
    context = event_page_context(event)
    context.update(
        {"error": exc.message, "error_code": exc.code, "chosen": {t["ticket_type"]: t["quantity"] for t in tickets}}
    )
    response = render(request, "ticketing/event_detail.html", context, status=exc.status)
    if isinstance(exc, Busy):
        response["Retry-After"] = str(exc.retry_after_seconds)
    return response


@require_http_methods(["GET", "POST"])
def checkout_page(request: HttpRequest, event_id: int) -> HttpResponse:
    event = visible_event(event_id)
    data = request.POST if request.method == "POST" else request.GET
    tickets, seat_ids = cart_from_query(data)
    held = _buyer_hold(request, event=event, seat_ids=seat_ids)
    if isinstance(held, HttpResponse):
        return held
    form = CheckoutForm(request.POST) if request.method == "POST" else CheckoutForm()
    try:
        cart = cart_price(
            event_id=event.pk,
            tickets=tickets,
            seat_ids=seat_ids,
            donation_cents=donation_cents_from(data),
            now=timezone.now(),
        )
    except DomainError as exc:
        return _cart_problem(request, event=event, exc=exc, tickets=tickets, seat_ids=seat_ids)

    def again(error: str = "", status: int = 200) -> HttpResponse:
        return _render_checkout(
            request,
            event=event,
            form=form,
            tickets=tickets,
            seat_ids=seat_ids,
            cart=cart,
            held=held,
            error=error,
            status=status,
        )

    if request.method == "GET" or request.POST.get("action") == "review":
        return again()
    if not form.is_valid():
        return again("Please check the highlighted fields.", status=400)
    retry_after = rate_limit_hit(rule=CHECKOUT_STARTS, key=client_ip(request))
    if retry_after is not None:
        response = again("Too many checkout attempts from your connection. Please wait a minute and try again.", 429)
        response["Retry-After"] = str(retry_after)
        return response
    try:
        started = start_checkout(
            event_id=event.pk,
            buyer_name=form.cleaned_data["buyer_name"],
            buyer_email=form.cleaned_data["buyer_email"],
            tickets=tickets,
            seat_ids=seat_ids,
            donation_cents=form.donation_cents,
            seat_hold_token=session_hold_token(request, event.pk) if held is not None else "",
        )
    except InvalidInput as exc:
        detail = exc.detail if isinstance(exc.detail, dict) else {}
        for field in ("buyer_name", "buyer_email"):
            if field in detail:
                form.add_error(field, str(detail[field]))
        return again(exc.message, status=400)
    except Busy as exc:
        response = again(exc.message, status=429)
        response["Retry-After"] = str(exc.retry_after_seconds)
        return response
    except DomainError as exc:  # sold out, a seat taken meanwhile, sales closed, ...
        if held is not None and exc.code in (*HOLD_GONE, SeatHoldInUse.code, SeatHoldMismatch.code):
            return _hold_problem(request, event=event, code=exc.code, detail=exc.detail, seat_ids=seat_ids)
        return _cart_problem(request, event=event, exc=exc, tickets=tickets, seat_ids=seat_ids)
    if held is not None:
        session_hold_forget(request, event.pk)  # the order has the hold now
    order_created_publish(
        order_id=started.order_id, organization_id=event.organization_id, subscribed=started.subscribed
    )
    quantity = sum(t["quantity"] for t in tickets) + len(seat_ids)
    track_funnel_event(
        step=FunnelStep.CHECKOUT_STARTED, event_id=event.pk, order_code=started.order_code, quantity=quantity
    )
    if seat_ids and held is None:  # seats held on the seat map were counted there
        track_funnel_event(
            step=FunnelStep.SEATS_HELD, event_id=event.pk, order_code=started.order_code, quantity=len(seat_ids)
        )
    if not started.payment_url:  # a free order, complete already
        return HttpResponseRedirect(reverse("ticketing:order-detail", args=[started.order_code]))
    return HttpResponseRedirect(reverse("ticketing:order-pay", args=[started.order_code]))
