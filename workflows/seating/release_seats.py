"""ReleaseSeats: give a checkout's holds back (cancel, expiry, compensation).

Idempotent: releasing a hold that is already released, expired or sold does
nothing, so a retried compensation is harmless."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from seating.models import SeatHold, SeatHoldStatus
from seating.services.holds import seat_hold_release
from ticketing.models import CapacityHold, HoldStatus
from ticketing.services.capacity import capacity_release


def release_inventory(reservation: Mapping[str, Any] | None) -> dict[str, Any]:
    if not reservation:
        return {"released": 0}
    released = 0
    # Seats before ticket types: the lock order of ticketing.locks.
    if reservation.get("seat_hold"):
        released += seat_hold_release(hold_id=reservation["seat_hold"], reason="checkout ended unpaid")
    released += sum(capacity_release(hold_id=hold_id) for hold_id in reservation.get("capacity_holds", []))
    return {"released": released}


def release_inventory_of(*, order_code: str) -> dict[str, Any]:
    """Release every hold still active for the order `order_code` (its holds
    carry the order code as their reference)."""
    return release_inventory(
        {
            "seat_hold": SeatHold.objects.filter(reference=order_code, status=SeatHoldStatus.ACTIVE)
            .values_list("pk", flat=True)
            .first(),
            "capacity_holds": sorted(
                CapacityHold.objects.filter(reference=order_code, status=HoldStatus.ACTIVE).values_list("pk", flat=True)
            ),
        }
    )
