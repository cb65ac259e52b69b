"""The buyer's seat hold, remembered in their Django session.

The seat map page holds seats (ticketing.views.seat_holds) and keeps the
hold's token here, one per event; the checkout page hands it to StartCheckout,
which adopts the hold for the order, and then forgets it. The token is the
only proof of ownership: a hold is never looked up by anything the browser
sends but this session entry. The database stays the source of truth: every
read here re-checks the hold (seating.selectors.seat_hold_for_token)."""

from __future__ import annotations

from datetime import datetime

from django.http import HttpRequest

from seating.selectors import HeldSeats, seat_hold_for_token

SESSION_KEY = "seat_holds"


def session_hold_token(request: HttpRequest, event_id: int) -> str:
    holds = request.session.get(SESSION_KEY) or {}
    return str(holds.get(str(event_id), "")) if isinstance(holds, dict) else ""


def session_hold_remember(request: HttpRequest, event_id: int, token: str) -> None:
    holds = request.session.get(SESSION_KEY)
    holds = dict(holds) if isinstance(holds, dict) else {}
    holds[str(event_id)] = token
    request.session[SESSION_KEY] = holds


def session_hold_forget(request: HttpRequest, event_id: int) -> None:
    holds = request.session.get(SESSION_KEY)
    if isinstance(holds, dict) and str(event_id) in holds:
        holds = {k: v for k, v in holds.items() if k != str(event_id)}
        request.session[SESSION_KEY] = holds


def session_hold(request: HttpRequest, event_id: int, *, now: datetime | None = None) -> HeldSeats | None:
    """The buyer's own hold for this event, as the database has it now, or
    None. A hold an order has adopted (its reference is the order's code) is
    no longer the page's to show or release: it is forgotten."""
    token = session_hold_token(request, event_id)
    if not token:
        return None
    held = seat_hold_for_token(token=token, event_id=event_id, now=now)
    if held is None or held.reference:
        session_hold_forget(request, event_id)
        return None
    return held
