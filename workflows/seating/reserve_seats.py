"""ReserveSeats: hold a checkout's inventory (GA units and chosen seats).

Runs as a local step of the checkout saga: its holds and its step record
commit together. Seats are one all-or-nothing hold on exactly the chosen
seats, or, when the buyer already holds them from the seat map page (the cart
carries that hold's token), that hold adopted by the order instead of a second
one. GA units are one conditional UPDATE per ticket type. Everything expires
with the order, and an expired hold never blocks another buyer.

Seats before ticket types: the lock order of ticketing.locks, which keeps the
ticket type (the hot row of a rush) locked only for the end of the step."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from seating.services.holds import seat_hold_adopt, seat_hold_create
from ticketing.models import TicketType
from ticketing.services.capacity import capacity_reserve


def reserve_inventory(
    *,
    event_id: int,
    order_code: str,
    lines: Sequence[Mapping[str, Any]],
    expires_at: datetime,
    seat_hold_token: str = "",
    ticket_types: Mapping[int, TicketType] | None = None,
) -> dict[str, Any]:
    """Hold every line's inventory; returns the hold ids (for release/finalize).

    With `seat_hold_token`, the seats must be exactly that live hold's: it is
    adopted (SeatHoldExpired, SeatHoldMismatch, ... otherwise, and the step
    fails). A token without seats in the cart is ignored. `ticket_types`: the
    lines' ticket types by id (with `event` loaded) if the caller has read them
    already; capacity_reserve checks them again either way."""
    seat_ids = [seat_id for line in lines for seat_id in line["seat_ids"]]
    seat_hold = None
    if seat_ids and seat_hold_token:
        seat_hold = seat_hold_adopt(
            token=seat_hold_token,
            event_id=event_id,
            order_code=order_code,
            seat_ids=seat_ids,
            expires_at=expires_at,
        ).pk
    elif seat_ids:
        seat_hold = seat_hold_create(
            event_id=event_id, seat_ids=seat_ids, expires_at=expires_at, reference=order_code
        ).pk

    capacity_holds: list[int] = []
    ga_lines = [line for line in lines if not line["seat_ids"]]
    types = dict(ticket_types or {})
    missing = [line["ticket_type_id"] for line in ga_lines if line["ticket_type_id"] not in types]
    if missing:
        # Unordered: TicketType.Meta.ordering would sort by the event's columns too.
        types.update((t.pk, t) for t in TicketType.objects.select_related("event").filter(pk__in=missing).order_by())
    # Ticket types in id order: the documented lock order.
    for line in sorted(ga_lines, key=lambda line: line["ticket_type_id"]):
        hold = capacity_reserve(
            ticket_type=types[line["ticket_type_id"]],
            quantity=line["quantity"],
            expires_at=expires_at,
            reference=order_code,
        )
        capacity_holds.append(hold.pk)
    return {"capacity_holds": capacity_holds, "seat_hold": seat_hold}
