"""FinalizeSeats: turn a paid checkout's holds into sold inventory.

Runs inside CompleteCheckout's transaction. A hold that lapsed is taken again
if its units or seats are still free (a late payment); if any are gone,
InventoryGone is raised and the caller's savepoint undoes the rest, then the
caller refunds. Seats are finalized before tickets are written (a ticket's
seat must be ours); GA units last, so the ticket type's row lock, the hot row
of a rush, is held only for the end of the transaction."""

from __future__ import annotations

from django.db import transaction

from seating.exceptions import HoldLost
from seating.models import SeatHold
from seating.services.holds import seat_hold_finalize
from ticketing.services.capacity import capacity_retake, capacity_sell_reference


class InventoryGone(Exception):
    """Some of a late payment's tickets were sold to someone else meanwhile."""


def finalize_seat_holds(*, order_code: str) -> list[int]:
    assert transaction.get_connection().in_atomic_block, "finalized in CompleteCheckout's transaction"
    seats: list[int] = []
    try:
        for hold_id in sorted(SeatHold.objects.filter(reference=order_code).values_list("pk", flat=True)):
            seats.extend(seat_hold_finalize(hold_id=hold_id))
    except HoldLost as exc:
        raise InventoryGone(str(exc.detail)) from exc
    return sorted(seats)


def finalize_capacity_holds(*, order_code: str) -> list[int]:
    assert transaction.get_connection().in_atomic_block, "finalized in CompleteCheckout's transaction"
    sold, lapsed = capacity_sell_reference(reference=order_code)
    for hold_id in lapsed:
        if not capacity_retake(hold_id=hold_id):
            raise InventoryGone(f"capacity hold {hold_id}")
    return sorted(sold + lapsed)
