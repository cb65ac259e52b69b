"""The data of each workload, made through the domain services (as staff
would), in the bench's own Django process against the bench database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from seating.services.plans import seating_plan_create
from ticketing.models import TicketKind, TicketType
from ticketing.services.catalog import event_create, organization_get_or_create, ticket_type_create
from ticketing.services.events import event_open_sales

PRICE_CENTS = 2500


@dataclass(frozen=True)
class GaTarget:
    event: int
    ticket_type: int
    capacity: int

    def as_json(self) -> dict[str, int]:
        return {"event": self.event, "ticket_type": self.ticket_type}


def _organization() -> Any:
    return organization_get_or_create(slug="bench-promoter", name="Bench Promoter", currency="EUR")


def ga_events_create(*, count: int, capacity: int, prefix: str) -> list[GaTarget]:
    """`count` events on sale, each with one general-admission ticket type of
    `capacity` at 25.00 EUR."""
    organization = _organization()
    starts_at = timezone.now() + timedelta(days=30)
    targets: list[GaTarget] = []
    with transaction.atomic():
        for n in range(count):
            event = event_create(
                organization=organization,
                name=f"{prefix} {n + 1}",
                slug=f"{prefix}-{n + 1}",
                venue_name="Bench Arena",
                starts_at=starts_at,
                ends_at=starts_at + timedelta(hours=3),
            )
            ticket_type = ticket_type_create(
                event=event, name="Standing", price_cents=PRICE_CENTS, capacity=capacity, max_per_order=8
            )
            event_open_sales(event_id=event.pk, reason="bench")
            targets.append(GaTarget(event=event.pk, ticket_type=ticket_type.pk, capacity=capacity))
    return targets


@dataclass(frozen=True)
class SeatedEvent:
    event: int
    ticket_type: int
    category: int
    seats: int


def seated_event_create(*, rows: int, seats_per_row: int) -> SeatedEvent:
    """A seated event: one section of `rows` x `seats_per_row` seats in one
    price category (25.00 EUR), built with seating_plan_create."""
    organization = _organization()
    starts_at = timezone.now() + timedelta(days=30)
    with transaction.atomic():
        event = event_create(
            organization=organization,
            name="Seat rush",
            slug="seat-rush",
            venue_name="Bench Hall",
            starts_at=starts_at,
            ends_at=starts_at + timedelta(hours=3),
        )
        ticket_type = ticket_type_create(
            event=event, name="Seat", price_cents=PRICE_CENTS, capacity=0, kind=TicketKind.SEATED, max_per_order=8
        )
        plan = seating_plan_create(
            event=event,
            name="Bench Hall",
            categories=[{"code": "A", "name": "Seat", "color": "#2563eb", "ticket_type": ticket_type}],
            sections=[
                {
                    "name": "Stalls",
                    "rows": [{"label": str(r + 1), "seats": seats_per_row, "category_code": "A"} for r in range(rows)],
                }
            ],
        )
        category = plan.categories.get()
        seats = category.seats.count()
        TicketType.objects.filter(pk=ticket_type.pk).update(capacity=seats)
        event_open_sales(event_id=event.pk, reason="bench")
    return SeatedEvent(event=event.pk, ticket_type=ticket_type.pk, category=category.pk, seats=seats)
