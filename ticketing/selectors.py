"""Reads of the ticketing domain."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Max, Min, QuerySet, Sum
from django.utils import timezone

from ticketing.models import CapacityHold, Event, EventStatus, HoldStatus, TicketType


def events_on_sale() -> QuerySet[Event]:
    """Upcoming on-sale events with their price range, soonest first."""
    return (
        Event.objects.filter(status=EventStatus.ON_SALE, ends_at__gte=timezone.now())
        .select_related("organization")
        .annotate(min_price_cents=Min("ticket_types__price_cents"), max_price_cents=Max("ticket_types__price_cents"))
        .order_by("starts_at", "id")
    )


@dataclass(frozen=True)
class Availability:
    ticket_type_id: int
    capacity: int
    sold: int
    held: int
    available: int


def ticket_type_availability(*, ticket_type: TicketType, at: datetime | None = None) -> Availability:
    """What a buyer can still get: holds already past their expiry count as
    free even before the sweeper has released them."""
    at = at or timezone.now()
    expired = (
        CapacityHold.objects.filter(ticket_type=ticket_type, status=HoldStatus.ACTIVE, expires_at__lte=at).aggregate(
            n=Sum("quantity")
        )["n"]
        or 0
    )
    held = max(ticket_type.held - expired, 0)
    return Availability(
        ticket_type_id=ticket_type.pk,
        capacity=ticket_type.capacity,
        sold=ticket_type.sold,
        held=held,
        available=max(ticket_type.capacity - ticket_type.sold - held, 0),
    )
