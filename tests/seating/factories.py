"""Seating test data: seated ticket types and plans built through the service."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from django.utils import timezone

from seating.models import PriceCategory, Seat, SeatingPlan
from seating.services.holds import MAX_SEATS_PER_HOLD, seat_hold_create, seat_hold_finalize
from seating.services.plans import seating_plan_create
from tests.factories import TicketTypeFactory
from ticketing.models import Event, TicketKind


class SeatedTicketTypeFactory(TicketTypeFactory):
    kind = TicketKind.SEATED
    name = "Seated"
    capacity = 1000


@dataclass
class Hall:
    """A plan and quick access to its seats by (section, row label, number)."""

    plan: SeatingPlan
    event: Event
    categories: dict[str, PriceCategory]
    ids: dict[tuple[str, str, int], int] = field(default_factory=dict)

    def seat(self, row: str, number: int, section: str = "Main") -> int:
        return self.ids[(section, row, number)]

    def seats(self, row: str, numbers: Iterable[int], section: str = "Main") -> list[int]:
        return [self.seat(row, n, section) for n in numbers]

    def row(self, row: str, section: str = "Main") -> list[int]:
        return [seat_id for (s, r, _), seat_id in sorted(self.ids.items()) if (s, r) == (section, row)]


def make_hall(
    event: Event,
    rows: Sequence[tuple[str, int] | tuple[str, int, str]] = (("A", 10), ("B", 10)),
    *,
    sections: Sequence[str] = ("Main",),
    category_codes: Sequence[str] = ("std",),
    forbid_orphans: bool = False,
) -> Hall:
    """Every section gets the same `rows`: (label, seats) or (label, seats, category code)."""
    categories = [
        {"code": code, "name": code.title(), "ticket_type": SeatedTicketTypeFactory(event=event, name=code)}
        for code in category_codes
    ]
    plan = seating_plan_create(
        event=event,
        name="Hall",
        forbid_orphans=forbid_orphans,
        categories=categories,
        sections=[
            {
                "name": name,
                "rows": [
                    {"label": r[0], "seats": r[1], "category_code": r[2] if len(r) > 2 else category_codes[0]}
                    for r in rows
                ],
            }
            for name in sections
        ],
    )
    hall = Hall(plan=plan, event=event, categories={c.code: c for c in plan.categories.all()})
    for seat_id, section, row, number in Seat.objects.filter(event=event).values_list(
        "id", "row__section__name", "row__label", "number"
    ):
        hall.ids[(section, row, number)] = seat_id
    return hall


def sell(event: Event, seat_ids: Sequence[int]) -> None:
    """Make seats sold the way production does: hold, then finalize (in
    chunks, as one hold takes at most MAX_SEATS_PER_HOLD seats)."""
    ids = list(seat_ids)
    for start in range(0, len(ids), MAX_SEATS_PER_HOLD):
        hold = seat_hold_create(
            event_id=event.pk,
            seat_ids=ids[start : start + MAX_SEATS_PER_HOLD],
            expires_at=timezone.now() + timedelta(minutes=15),
            enforce_orphan_rule=False,
        )
        seat_hold_finalize(hold_id=hold.pk)
