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
    released = sum(capacity_release(hold_id=hold_id) for hold_id in reservation.get("capacity_holds", []))
    if reservation.get("seat_hold"):
        released += seat_hold_release(hold_id=reservation["seat_hold"], reason="checkout ended unpaid")
    return {"released": released}
