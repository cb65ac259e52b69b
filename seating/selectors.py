"""Reads of the seating domain.

A seat's *effective* status is what a buyer should see: a seat held by a hold
that is past its expiry (or already closed) counts as free, even before the
sweeper has released it (lazy expiry). Holding uses the same rule under lock
(seating.services.holds), so what these reads show as free can be taken.

The seat map is cached briefly with the hold expiries in it, and its effective
statuses are derived at read time, so a cached map never shows a lapsed hold as
taken. Services drop the cached map after commit of any seat change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.db.models import Max, Min, Q
from django.utils import timezone

from seating.models import PriceCategory, Row, Seat, SeatHold, SeatHoldStatus, SeatingPlan, SeatStatus, Section

SEAT_MAP_CACHE_SECONDS = 5


def hold_is_live(*, hold_status: str | None, expires_at: datetime | None, now: datetime) -> bool:
    """Whether a hold still protects its seats: active and not yet expired."""
    return hold_status == SeatHoldStatus.ACTIVE and expires_at is not None and expires_at > now


def seat_effective_status(
    *, status: str, hold_status: str | None, hold_expires_at: datetime | None, now: datetime
) -> str:
    """The status a buyer sees: a held seat whose hold lapsed is free."""
    if status == SeatStatus.HELD and not hold_is_live(hold_status=hold_status, expires_at=hold_expires_at, now=now):
        return SeatStatus.FREE
    return status


def seats_effectively_free_q(now: datetime) -> Q:
    """Seats that can be taken at `now`: free, or held by a lapsed or closed hold."""
    lapsed = Q(hold__expires_at__lte=now) | ~Q(hold__status=SeatHoldStatus.ACTIVE)
    return Q(status=SeatStatus.FREE) | (Q(status=SeatStatus.HELD) & lapsed)


@dataclass(frozen=True)
class HeldSeats:
    """A hold as its buyer sees it (the seat map page's "your seats are held")."""

    hold_id: int
    seat_ids: list[int]
    status: str
    reference: str
    expires_at: datetime
    live: bool  # still protects its seats (active and not yet expired)

    def seconds_left(self, now: datetime) -> int:
        return max(0, int((self.expires_at - now).total_seconds())) if self.live else 0


def seat_hold_for_token(*, token: str, event_id: int, now: datetime | None = None) -> HeldSeats | None:
    """The event's hold with this token, or None. One query, no locks: a page
    read; the services re-check everything under lock."""
    if not token:
        return None
    now = now or timezone.now()
    row = (
        SeatHold.objects.filter(token=token, event_id=event_id)
        .values("id", "seat_ids", "status", "reference", "expires_at")
        .first()
    )
    if row is None:
        return None
    return HeldSeats(
        hold_id=row["id"],
        seat_ids=sorted(row["seat_ids"]),
        status=row["status"],
        reference=row["reference"],
        expires_at=row["expires_at"],
        live=hold_is_live(hold_status=row["status"], expires_at=row["expires_at"], now=now),
    )


# --- best available input ---------------------------------------------------------


@dataclass(frozen=True)
class RowSeat:
    seat_id: int
    number: int
    free: bool


@dataclass(frozen=True)
class RowAvailability:
    """One row's seats of one category, in number order, with what best
    available needs to rank the row: its distance from the stage and its centre."""

    row_id: int
    rank: tuple[int, int, int, int]  # (row position, section position, section id, row id)
    centre: float  # the middle seat number of the whole physical row
    seats: tuple[RowSeat, ...]


def seat_rows_for_category(*, event_id: int, category_id: int, now: datetime) -> list[RowAvailability]:
    """The event's rows that have seats of `category_id`, closest to the stage
    first (Row.position, then the section's position), with each seat's
    effective availability at `now`. Two queries, no locks."""
    seats = (
        Seat.objects.filter(event_id=event_id, category_id=category_id)
        .order_by("row_id", "number")
        .values_list(
            "id",
            "row_id",
            "number",
            "status",
            "hold__status",
            "hold__expires_at",
            "row__position",
            "row__section__position",
            "row__section_id",
        )
    )
    by_row: dict[int, list[RowSeat]] = {}
    ranks: dict[int, tuple[int, int, int, int]] = {}
    for seat_id, row_id, number, status, hold_status, hold_expires_at, row_pos, section_pos, section_id in seats:
        effective = seat_effective_status(
            status=status, hold_status=hold_status, hold_expires_at=hold_expires_at, now=now
        )
        by_row.setdefault(row_id, []).append(RowSeat(seat_id, number, effective == SeatStatus.FREE))
        ranks[row_id] = (row_pos, section_pos, section_id, row_id)
    if not by_row:
        return []
    # The centre is that of the whole row, whatever the categories of its seats.
    bounds = {
        row_id: (lo + hi) / 2
        for row_id, lo, hi in Seat.objects.filter(row_id__in=list(by_row))
        .values("row_id")
        .annotate(lo=Min("number"), hi=Max("number"))
        .values_list("row_id", "lo", "hi")
    }
    rows = [
        RowAvailability(row_id=row_id, rank=ranks[row_id], centre=bounds[row_id], seats=tuple(row_seats))
        for row_id, row_seats in by_row.items()
    ]
    rows.sort(key=lambda r: r.rank)
    return rows


# --- the seat map -------------------------------------------------------------------


@dataclass(frozen=True)
class SeatMap:
    """Everything the seat map page draws. `seats` carry the effective status."""

    plan: dict[str, Any]
    categories: list[dict[str, Any]]
    sections: list[dict[str, Any]]
    seats: list[dict[str, Any]]
    legend: list[dict[str, Any]] = field(default_factory=list)


def seat_map_cache_key(event_id: int) -> str:
    return f"seating:map:{event_id}"


def seat_map_invalidate(*, event_id: int) -> None:
    """Drop the cached map once the current transaction commits (at once
    outside one), so no reader caches state that may still roll back."""
    transaction.on_commit(lambda: cache.delete(seat_map_cache_key(event_id)))


def _seat_map_raw(event_id: int) -> dict[str, Any] | None:
    plan = SeatingPlan.objects.filter(event_id=event_id).values("id", "name", "width", "height").first()
    if plan is None:
        return None
    categories = list(
        PriceCategory.objects.filter(plan_id=plan["id"])
        .order_by("id")
        .values("id", "code", "name", "color", "ticket_type_id", "ticket_type__price_cents", "ticket_type__currency")
    )
    sections = list(Section.objects.filter(plan_id=plan["id"]).order_by("position", "id").values("id", "name"))
    rows = {
        r["id"]: r
        for r in Row.objects.filter(section__plan_id=plan["id"]).values("id", "label", "section_id", "position")
    }
    seat_rows = (
        Seat.objects.filter(event_id=event_id)
        .order_by("row_id", "number")
        .values(
            "id",
            "label",
            "number",
            "x",
            "y",
            "row_id",
            "category_id",
            "is_accessible",
            "status",
            "hold__status",
            "hold__expires_at",
        )
    )
    seats = [{**seat, "section_id": rows[seat["row_id"]]["section_id"]} for seat in seat_rows]
    return {"plan": plan, "categories": categories, "sections": sections, "rows": rows, "seats": seats}


def seat_map_for_event(*, event_id: int, now: datetime | None = None, use_cache: bool = True) -> SeatMap | None:
    """The event's seat map with each seat's effective status at `now`, or None
    if the event has no seating plan. Raw rows are cached for a few seconds;
    effective statuses (lazy expiry) are always computed at read time."""
    now = now or timezone.now()
    raw = cache.get(seat_map_cache_key(event_id)) if use_cache else None
    if raw is None:
        raw = _seat_map_raw(event_id)
        if raw is None:
            return None
        if use_cache:
            cache.set(seat_map_cache_key(event_id), raw, SEAT_MAP_CACHE_SECONDS)

    free_by_category: dict[int, int] = {c["id"]: 0 for c in raw["categories"]}
    seats: list[dict[str, Any]] = []
    for seat in raw["seats"]:
        status = seat_effective_status(
            status=seat["status"], hold_status=seat["hold__status"], hold_expires_at=seat["hold__expires_at"], now=now
        )
        if status == SeatStatus.FREE:
            free_by_category[seat["category_id"]] = free_by_category.get(seat["category_id"], 0) + 1
        seats.append(
            {
                "id": seat["id"],
                "label": seat["label"],
                "number": seat["number"],
                "x": seat["x"],
                "y": seat["y"],
                "row_id": seat["row_id"],
                "section_id": seat["section_id"],
                "category_id": seat["category_id"],
                "is_accessible": seat["is_accessible"],
                "status": status,
            }
        )

    rows_by_section: dict[int, list[dict[str, Any]]] = {}
    for row in sorted(raw["rows"].values(), key=lambda r: (r["position"], r["id"])):
        rows_by_section.setdefault(row["section_id"], []).append(
            {"id": row["id"], "label": row["label"], "position": row["position"]}
        )
    sections = [{**s, "rows": rows_by_section.get(s["id"], [])} for s in raw["sections"]]
    categories = [
        {
            "id": c["id"],
            "code": c["code"],
            "name": c["name"],
            "color": c["color"],
            "ticket_type_id": c["ticket_type_id"],
            "price_cents": c["ticket_type__price_cents"],
            "currency": c["ticket_type__currency"],
            "free": free_by_category.get(c["id"], 0),
        }
        for c in raw["categories"]
    ]
    legend = [{"kind": "category", **c} for c in categories] + [
        {"kind": "status", "status": value, "name": label} for value, label in SeatStatus.choices
    ]
    return SeatMap(plan=dict(raw["plan"]), categories=categories, sections=sections, seats=seats, legend=legend)
