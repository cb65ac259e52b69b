"""The order page (the unguessable link that stands in for a login), its
return-from-payment states, tickets with QR codes, calendar file and e-mail."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from payments.models import Payment, PaymentSession
from payments.models.session import PaymentSessionStatus
from ticketing.exceptions import DomainError
from ticketing.models import EmailKind, FunnelStep, Order, OrderStatus, Ticket, TicketStatus
from ticketing.rate_limits import RESEND_EMAIL, client_ip, rate_limit_hit
from ticketing.services.signing_keys import signing_key_for_event
from ticketing.ticket_codes import ticket_code_sign
from workflows.analytics.track_funnel_event import track_funnel_event
from workflows.checkout.cancel import cancel_checkout
from workflows.ticketing.issue_tickets import send_buyer_email

PAID_STATES = (OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED)
# How often the "confirming your payment" page reloads itself.
CONFIRM_REFRESH_SECONDS = 2


def _order(code: str) -> Order:
    return get_object_or_404(Order.objects.select_related("event"), code=code)


def _tickets_with_codes(order: Order) -> list[dict[str, Any]]:
    """The order's tickets with their QR payloads: the event's key is read
    once for all of them (ticket_code_for would read it per ticket)."""
    tickets = list(Ticket.objects.filter(order=order).select_related("ticket_type", "seat").order_by("id"))
    valid = [t for t in tickets if t.status == TicketStatus.VALID]
    key = signing_key_for_event(event=order.event) if valid else None
    rows = []
    for ticket in tickets:
        ticket.event = order.event  # already loaded; the code needs it
        # A ticket transferred to someone else is theirs: the buyer's page no
        # longer shows its code.
        transferred = bool(ticket.holder_email) and ticket.holder_email.lower() != order.buyer_email.lower()
        showable = ticket.status == TicketStatus.VALID and not transferred
        code = ticket_code_sign(ticket=ticket, key=key) if key is not None and showable else ""
        rows.append({"ticket": ticket, "code": code, "label": _ticket_label(ticket), "transferred": transferred})
    return rows


def _ticket_label(ticket: Ticket) -> str:
    seat = f", seat {ticket.seat.label}" if ticket.seat_id and ticket.seat else ""
    return f"Ticket {ticket.ticket_type.name}{seat}"


def _open_session(order: Order) -> PaymentSession | None:
    return (
        PaymentSession.objects.filter(
            order=order,
            status__in=[PaymentSessionStatus.CREATED, PaymentSessionStatus.OPEN],
            expires_at__gt=timezone.now(),
        )
        .exclude(payment_url="")
        .order_by("-created_at", "-id")
        .first()
    )


@require_GET
def order_detail(request: HttpRequest, code: str) -> HttpResponse:
    order = _order(code)
    now = timezone.now()
    returned = request.GET.get("status", "")
    context: dict[str, Any] = {"order": order, "event": order.event, "returned": returned}
    if order.status in PAID_STATES or order.status in (OrderStatus.REFUNDED,):
        context["tickets"] = _tickets_with_codes(order)
        return render(request, "ticketing/order_detail.html", context)
    if order.status == OrderStatus.PENDING:
        held = order.expires_at is None or order.expires_at > now
        context["lines"] = list(order.lines.select_related("ticket_type", "seat").order_by("id"))
        context["held"] = held
        context["seconds_left"] = max(int((order.expires_at - now).total_seconds()), 0) if order.expires_at else None
        if returned == "paid":
            # Back from the payment page: the webhook confirming the payment
            # may still be on its way. Reload until it has arrived.
            context["confirming"] = True
            context["refresh_seconds"] = CONFIRM_REFRESH_SECONDS
        else:
            failed = Payment.objects.filter(order=order, status="failed").order_by("-id").first()
            context["declined"] = (failed.failure_message or "The payment was declined.") if failed else ""
    return render(request, "ticketing/order_detail.html", context)


@require_GET
def order_status(request: HttpRequest, code: str) -> JsonResponse:
    """For the confirming page's polling."""
    order = get_object_or_404(Order, code=code)
    response = JsonResponse({"status": order.status, "paid": order.status in PAID_STATES})
    response["Cache-Control"] = "no-store"
    return response


@require_GET
def order_pay(request: HttpRequest, code: str) -> HttpResponse:
    """To the payment page of a pending order (after StartCheckout, and to
    retry after a decline). Recorded as the funnel's "payment started"."""
    order = _order(code)
    session = _open_session(order) if order.status == OrderStatus.PENDING else None
    if session is None:
        return HttpResponseRedirect(reverse("ticketing:order-detail", args=[order.code]))
    track_funnel_event(step=FunnelStep.PAYMENT_STARTED, event_id=order.event_id, order_code=order.code)
    return HttpResponseRedirect(session.payment_url)


@require_POST
def order_cancel(request: HttpRequest, code: str) -> HttpResponse:
    """The buyer gives up before paying: release the hold, back to the event."""
    order = _order(code)
    if order.status == OrderStatus.PENDING:
        try:
            cancel_checkout(order_code=order.code)
        except DomainError:
            pass  # no open checkout any more: it already ended
        messages.info(request, "Your order was cancelled and its tickets released. You can start again below.")
    return HttpResponseRedirect(reverse("ticketing:event-detail", args=[order.event_id]))


@require_POST
def order_resend_email(request: HttpRequest, code: str) -> HttpResponse:
    order = _order(code)
    url = reverse("ticketing:order-detail", args=[order.code])
    if order.status not in PAID_STATES:
        messages.error(request, "The tickets are e-mailed once the order is paid.")
        return HttpResponseRedirect(url)
    if (
        rate_limit_hit(rule=RESEND_EMAIL, key=order.code) is not None
        or rate_limit_hit(rule=RESEND_EMAIL, key=f"ip:{client_ip(request)}") is not None
    ):
        messages.error(request, "We have sent the tickets several times already. Please wait an hour and try again.")
        return HttpResponseRedirect(url)
    with transaction.atomic():
        send_buyer_email(order=order, kind=EmailKind.TICKETS, dedup_key=f"tickets-resend:{order.code}:{uuid.uuid4()}")
    messages.success(request, f"We have sent the tickets to {order.buyer_email} again.")
    return HttpResponseRedirect(url)


def _ics_text(value: str) -> str:
    return value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def _ics_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _ics_fold(line: str) -> str:
    """RFC 5545 lines are at most 75 octets; longer ones continue after CRLF + space."""
    out, current = [], ""
    for char in line:
        if len((current + char).encode()) > 75:
            out.append(current)
            current = " "
        current += char
    out.append(current)
    return "\r\n".join(out)


@require_GET
def order_calendar(request: HttpRequest, code: str) -> HttpResponse:
    order = _order(code)
    event = order.event
    order_url = request.build_absolute_uri(reverse("ticketing:order-detail", args=[order.code]))
    location = ", ".join(part for part in (event.venue_name, event.venue_address) if part)
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Tickets//Order calendar//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        "BEGIN:VEVENT",
        f"UID:order-{order.code}@{settings.SITE_URL.split('://')[-1]}",
        f"DTSTAMP:{_ics_time(timezone.now())}",
        f"DTSTART:{_ics_time(event.starts_at)}",
        f"DTEND:{_ics_time(event.ends_at)}",
        f"SUMMARY:{_ics_text(event.name)}",
        f"LOCATION:{_ics_text(location)}",
        f"DESCRIPTION:{_ics_text('Your tickets: ' + order_url)}",
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    body = "\r\n".join(_ics_fold(line) for line in lines) + "\r\n"
    response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{event.slug or "event"}.ics"'
    return response


@require_GET
def ticket_detail(request: HttpRequest, code: str) -> HttpResponse:
    ticket = get_object_or_404(Ticket.objects.select_related("order", "event", "ticket_type", "seat"), code=code)
    token = ""
    if ticket.status == TicketStatus.VALID:
        token = ticket_code_sign(ticket=ticket, key=signing_key_for_event(event=ticket.event))
    return render(
        request,
        "ticketing/ticket_detail.html",
        {"ticket": ticket, "event": ticket.event, "order": ticket.order, "code": token, "label": _ticket_label(ticket)},
    )
