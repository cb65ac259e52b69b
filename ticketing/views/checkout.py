"""The checkout page: buyer details, the fee breakdown, then the payment page.

The cart travels in the query string (GET) and in hidden fields (POST):
`qty_<ticket type id>=n` and `seats=1,2`. Nothing is held until the buyer
submits the form; then StartCheckout validates again, holds the inventory
and opens the payment session."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from seating.exceptions import HoldLost, SeatBlocked, SeatUnavailable
from seating.models import Seat
from ticketing.exceptions import Busy, DomainError, InvalidInput
from ticketing.forms import CheckoutForm, cart_from_query, cart_query, donation_cents_from
from ticketing.integrations import order_created_publish
from ticketing.models import Event, FunnelStep, Order, TicketType
from ticketing.rate_limits import CHECKOUT_STARTS, client_ip, rate_limit_hit
from ticketing.views.events import event_page_context, visible_event
from workflows.analytics.track_funnel_event import track_funnel_event
from workflows.checkout.cart import PricedCart, cart_price
from workflows.checkout.start import start_checkout

# Errors about particular seats: back to the seat map, keeping the rest of the selection.
SEAT_ERRORS = (SeatUnavailable.code, SeatBlocked.code, HoldLost.code)


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
    }
    return render(request, "ticketing/checkout.html", context, status=status)


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
            request, event=event, form=form, tickets=tickets, seat_ids=seat_ids, cart=cart, error=error, status=status
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
        return _cart_problem(request, event=event, exc=exc, tickets=tickets, seat_ids=seat_ids)
    order_created_publish(order=Order.objects.get(pk=started.order_id))
    quantity = sum(t["quantity"] for t in tickets) + len(seat_ids)
    track_funnel_event(
        step=FunnelStep.CHECKOUT_STARTED, event_id=event.pk, order_code=started.order_code, quantity=quantity
    )
    if seat_ids:
        track_funnel_event(
            step=FunnelStep.SEATS_HELD, event_id=event.pk, order_code=started.order_code, quantity=len(seat_ids)
        )
    if not started.payment_url:  # a free order, complete already
        return HttpResponseRedirect(reverse("ticketing:order-detail", args=[started.order_code]))
    return HttpResponseRedirect(reverse("ticketing:order-pay", args=[started.order_code]))
