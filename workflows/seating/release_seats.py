"""ReleaseSeats: give a checkout's holds back (cancel, expiry, compensation).

Idempotent: releasing a hold that is already released, expired or sold does
nothing, so a retried compensation is harmless."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from seating.services.holds import seat_hold_release
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
