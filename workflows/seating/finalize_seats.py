"""FinalizeSeats: turn a paid checkout's holds into sold inventory.

Runs inside CompleteCheckout's transaction. A hold that lapsed is taken again
if its units or seats are still free (a late payment); if any are gone the
whole finalization is rolled back (a savepoint) and the caller refunds."""

from __future__ import annotations

from django.db import transaction

from seating.exceptions import HoldLost
from seating.models import SeatHold
from seating.services.holds import seat_hold_finalize
from ticketing.models import CapacityHold
from ticketing.services.capacity import capacity_retake


class InventoryGone(Exception):
    """Some of a late payment's tickets were sold to someone else meanwhile."""


def finalize_inventory(*, order_code: str) -> dict[str, list[int]]:
    """Sell every hold made for `order_code`; raise InventoryGone (and change
    nothing) if any of them cannot be sold any more."""
    assert transaction.get_connection().in_atomic_block, "finalized in CompleteCheckout's transaction"
    capacity_hold_ids = sorted(CapacityHold.objects.filter(reference=order_code).values_list("pk", flat=True))
    seat_hold_ids = sorted(SeatHold.objects.filter(reference=order_code).values_list("pk", flat=True))
    seats: list[int] = []
    try:
        with transaction.atomic():
            for hold_id in capacity_hold_ids:
                if not capacity_retake(hold_id=hold_id):
                    raise InventoryGone(f"capacity hold {hold_id}")
            for hold_id in seat_hold_ids:
                seats.extend(seat_hold_finalize(hold_id=hold_id))
    except HoldLost as exc:
        raise InventoryGone(str(exc.detail)) from exc
    return {"capacity_holds": capacity_hold_ids, "seats": sorted(seats)}
