"""Seating plans: build one for an event; block and unblock single seats.

A plan is built in one transaction with one bulk INSERT per table (plan,
categories, sections, rows, seats), whatever its size. Seats get drawing
coordinates: sections side by side from left to right, rows from the stage
(top) backwards, each row centred in its section.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from seating.exceptions import InvalidSeatingPlan, SeatUnavailable, UnknownSeat
from seating.models import PriceCategory, Row, Seat, SeatHold, SeatingPlan, SeatStatus, Section
from seating.selectors import hold_is_live, seat_map_invalidate
from ticketing.locks import lock_timeout
from ticketing.models import AuditLogEntry, Event, TicketKind, TicketType

# Drawing units (the SVG's user units).
SEAT_SPACING = 30.0
ROW_SPACING = 34.0
SECTION_GAP = 60.0
MARGIN = 40.0
STAGE_DEPTH = 80.0
MAX_SEATS_PER_ROW = 500
_LABEL_MAX = Seat._meta.get_field("label").max_length or 40


@dataclass(frozen=True)
class _RowSpec:
    label: str
    position: int
    seats: int
    start_number: int
    category_code: str
    blocked: frozenset[int]
    accessible: frozenset[int]


@dataclass(frozen=True)
class _SectionSpec:
    name: str
    position: int
    rows: tuple[_RowSpec, ...]
    x: float | None
    y: float | None


def _invalid(message: str, **detail: Any) -> InvalidSeatingPlan:
    return InvalidSeatingPlan(message, detail=detail)


def _numbers(value: Any, *, where: str, first: int, last: int) -> frozenset[int]:
    if isinstance(value, str | bytes | Mapping):
        raise _invalid(f"{where}: give seat numbers as a list.", where=where)
    numbers = frozenset(value or ())
    outside = sorted(
        repr(n) for n in numbers if isinstance(n, bool) or not isinstance(n, int) or not first <= n <= last
    )
    if outside:
        raise _invalid(f"{where}: seat numbers outside the row.", where=where, numbers=outside)
    return numbers


def _parse_sections(sections: Sequence[Mapping[str, Any]], category_codes: set[str]) -> list[_SectionSpec]:
    if not sections:
        raise _invalid("A plan needs at least one section.")
    specs: list[_SectionSpec] = []
    for s_index, section in enumerate(sections):
        name = str(section.get("name") or "").strip()
        if not name:
            raise _invalid("Every section needs a name.", section=s_index)
        raw_rows = section.get("rows") or []
        if not raw_rows:
            raise _invalid(f"Section {name} has no rows.", section=name)
        rows: list[_RowSpec] = []
        for r_index, row in enumerate(raw_rows):
            label = str(row.get("label") or "").strip()
            where = f"{name} row {label or r_index}"
            if not label:
                raise _invalid(f"{where}: every row needs a label.", section=name, row=r_index)
            seats = row.get("seats")
            if isinstance(seats, bool) or not isinstance(seats, int) or not 1 <= seats <= MAX_SEATS_PER_ROW:
                raise _invalid(f"{where}: a row has 1 to {MAX_SEATS_PER_ROW} seats.", section=name, row=label)
            start = row.get("start_number", 1)
            if isinstance(start, bool) or not isinstance(start, int) or start < 1:
                raise _invalid(f"{where}: start_number must be a positive integer.", section=name, row=label)
            code = row.get("category_code")
            if code not in category_codes:
                raise _invalid(f"{where}: unknown category {code!r}.", section=name, row=label, category_code=code)
            last = start + seats - 1
            if len(f"{name} {label} {last}") > _LABEL_MAX:
                raise _invalid(f"{where}: seat labels would be too long.", section=name, row=label)
            rows.append(
                _RowSpec(
                    label=label,
                    position=int(row.get("position", r_index)),
                    seats=seats,
                    start_number=start,
                    category_code=code,
                    blocked=_numbers(row.get("blocked"), where=where, first=start, last=last),
                    accessible=_numbers(row.get("accessible"), where=where, first=start, last=last),
                )
            )
        labels = [r.label for r in rows]
        if len(set(labels)) != len(labels):
            raise _invalid(f"Section {name} has two rows with the same label.", section=name)
        specs.append(
            _SectionSpec(
                name=name,
                position=int(section.get("position", s_index)),
                rows=tuple(rows),
                x=section.get("x"),
                y=section.get("y"),
            )
        )
    return specs


def _parse_categories(*, event: Event, categories: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    if not categories:
        raise _invalid("A plan needs at least one price category.")
    parsed: dict[str, dict[str, Any]] = {}
    for category in categories:
        code = str(category.get("code") or "").strip()
        if not code or code in parsed:
            raise _invalid("Each category needs its own code.", code=code)
        ticket_type = category.get("ticket_type")
        ticket_type_id = ticket_type.pk if isinstance(ticket_type, TicketType) else ticket_type
        parsed[code] = {
            "code": code,
            "name": str(category.get("name") or code),
            "color": str(category.get("color") or "#3b82f6"),
            "ticket_type_id": ticket_type_id,
        }
    wanted = {c["ticket_type_id"] for c in parsed.values()}
    kinds = dict(TicketType.objects.filter(pk__in=wanted, event_id=event.pk).values_list("pk", "kind"))
    for c in parsed.values():
        if c["ticket_type_id"] not in kinds:
            raise _invalid(
                f"Category {c['code']}: its ticket type must belong to this event.",
                code=c["code"],
                ticket_type=c["ticket_type_id"],
            )
        if kinds[c["ticket_type_id"]] != TicketKind.SEATED:
            # A general-admission type counts sales in its own counters; its
            # seats would be sold twice over.
            raise _invalid(
                f"Category {c['code']}: its ticket type must be a reserved-seating type.",
                code=c["code"],
                ticket_type=c["ticket_type_id"],
            )
    return parsed


def seating_plan_create(
    *,
    event: Event,
    name: str,
    sections: Sequence[Mapping[str, Any]],
    categories: Sequence[Mapping[str, Any]],
    forbid_orphans: bool = False,
) -> SeatingPlan:
    """Build the event's seating plan in one transaction, in bulk.

    `categories`: [{"code", "name", "color", "ticket_type" (a seated TicketType
    of this event, or its id)}].
    `sections`: [{"name", "position"?, "x"?, "y"?, "rows": [{"label", "seats":
    n, "category_code", "start_number"? (1), "position"? (index; lower is
    nearer the stage), "blocked"? [numbers], "accessible"? [numbers]}]}].
    Sections are laid out left to right unless they give their own x/y origin.

    Raises InvalidSeatingPlan (and creates nothing) for a bad description or
    an event that already has a plan."""
    if not str(name).strip():
        raise _invalid("The plan needs a name.")
    parsed_categories = _parse_categories(event=event, categories=categories)
    specs = _parse_sections(sections, set(parsed_categories))

    # Layout: every section is as wide as its longest row; rows are centred.
    origins: list[tuple[float, float, float]] = []
    cursor = MARGIN
    width = height = 0.0
    for spec in specs:
        section_width = max(r.seats for r in spec.rows) * SEAT_SPACING
        x0 = float(spec.x) if spec.x is not None else cursor
        y0 = float(spec.y) if spec.y is not None else MARGIN + STAGE_DEPTH
        origins.append((x0, y0, section_width))
        cursor = max(cursor, x0 + section_width + SECTION_GAP)
        width = max(width, x0 + section_width + MARGIN)
        height = max(height, y0 + len(spec.rows) * ROW_SPACING + MARGIN)

    with transaction.atomic():
        if SeatingPlan.objects.filter(event_id=event.pk).exists():
            raise _invalid("This event already has a seating plan.", event=event.pk)
        org_id = event.organization_id
        plan = SeatingPlan.objects.create(
            organization_id=org_id,
            event=event,
            name=name,
            width=math.ceil(width),
            height=math.ceil(height),
            forbid_orphans=forbid_orphans,
        )
        category_rows = PriceCategory.objects.bulk_create(
            [PriceCategory(organization_id=org_id, plan=plan, **c) for c in parsed_categories.values()]
        )
        category_ids = {c.code: c.pk for c in category_rows}
        section_rows = Section.objects.bulk_create(
            [Section(organization_id=org_id, plan=plan, name=s.name, position=s.position) for s in specs]
        )
        row_objs = Row.objects.bulk_create(
            [
                Row(organization_id=org_id, section=section, label=r.label, position=r.position)
                for section, spec in zip(section_rows, specs, strict=True)
                for r in spec.rows
            ]
        )
        seats: list[Seat] = []
        row_iter = iter(row_objs)
        for spec, (x0, y0, section_width) in zip(specs, origins, strict=True):
            for r_index, r in enumerate(spec.rows):
                row = next(row_iter)
                offset = x0 + (section_width - r.seats * SEAT_SPACING) / 2
                y = y0 + (r_index + 0.5) * ROW_SPACING
                for i in range(r.seats):
                    number = r.start_number + i
                    seats.append(
                        Seat(
                            organization_id=org_id,
                            event_id=event.pk,
                            row=row,
                            category_id=category_ids[r.category_code],
                            label=f"{spec.name} {r.label} {number}",
                            number=number,
                            x=round(offset + (i + 0.5) * SEAT_SPACING, 1),
                            y=round(y, 1),
                            is_accessible=number in r.accessible,
                            status=SeatStatus.BLOCKED if number in r.blocked else SeatStatus.FREE,
                        )
                    )
        Seat.objects.bulk_create(seats, batch_size=2000)
        seat_map_invalidate(event_id=event.pk)
    return plan


def seating_plan_create_demo(
    *, event: Event, categories: Sequence[Mapping[str, Any]], name: str = "Main hall"
) -> SeatingPlan:
    """A demo hall of 560 seats in three sections (Left, Centre, Right; 14 rows
    each), the rows split front to back between the `categories` (pass two:
    the first for the front rows). Row ends at the back are accessible, and
    two centre seats at the back are blocked for the sound desk."""
    bands = len(categories)
    if not bands:
        raise _invalid("The demo plan needs at least one category.")
    codes = [str(c.get("code")) for c in categories]
    row_count = 14
    sections: list[dict[str, Any]] = []
    for section_name, seats in (("Left", 10), ("Centre", 20), ("Right", 10)):
        rows = []
        for index in range(row_count):
            row: dict[str, Any] = {
                "label": chr(ord("A") + index),
                "seats": seats,
                "category_code": codes[index * bands // row_count],
            }
            if index == row_count - 1:
                row["accessible"] = [1, seats]
                if section_name == "Centre":
                    row["blocked"] = [seats // 2, seats // 2 + 1]
            rows.append(row)
        sections.append({"name": section_name, "rows": rows})
    return seating_plan_create(event=event, name=name, sections=sections, categories=categories)


# --- staff changes to single seats --------------------------------------------------------


def _lock_seat(seat_id: int) -> Seat:
    seat = Seat.objects.select_for_update(no_key=True, of=("self",)).filter(pk=seat_id).first()
    if seat is None:
        raise UnknownSeat(detail={"seat_ids": [seat_id]})
    return seat


def seat_block(*, seat_id: int, by: Any = None, reason: str = "", now: datetime | None = None) -> Seat:
    """Take a free seat off sale (broken seat, camera position, house seat).

    Locks the seat. Idempotent: a blocked seat is returned unchanged. A seat
    held by a lapsed hold counts as free (lazy expiry) and is taken from it;
    a sold seat or one under a live hold raises SeatUnavailable. The FSM
    transition writes the audit row in this transaction."""
    now = now or timezone.now()
    with transaction.atomic(), lock_timeout():
        seat = _lock_seat(seat_id)
        if seat.status == SeatStatus.BLOCKED:
            return seat
        if seat.status == SeatStatus.HELD:
            hold = SeatHold.objects.filter(pk=seat.hold_id or 0).values("status", "expires_at").first()
            if hold and hold_is_live(hold_status=hold["status"], expires_at=hold["expires_at"], now=now):
                raise SeatUnavailable(detail={"seat_ids": [seat_id]})
            Seat.objects.filter(pk=seat_id).update(status=SeatStatus.FREE, hold=None)
            AuditLogEntry.objects.record_many(
                objects=[seat],
                field="status",
                source=SeatStatus.HELD,
                target=SeatStatus.FREE,
                transition="expire",
                actor=by,
                reason=f"hold {seat.hold_id} had lapsed; seat blocked",
            )
            seat = _lock_seat(seat_id)  # re-read: the status field is protected
        if seat.status != SeatStatus.FREE:
            raise SeatUnavailable(detail={"seat_ids": [seat_id]})
        seat.block(by=by, reason=reason)
        seat.save(update_fields=["status"])
        seat_map_invalidate(event_id=seat.event_id)
        return seat


def seat_unblock(*, seat_id: int, by: Any = None, reason: str = "") -> Seat:
    """Put a blocked seat back on sale. Locks the seat. Idempotent: a seat that
    is not blocked is returned unchanged."""
    with transaction.atomic(), lock_timeout():
        seat = _lock_seat(seat_id)
        if seat.status != SeatStatus.BLOCKED:
            return seat
        seat.unblock(by=by, reason=reason)
        seat.save(update_fields=["status"])
        seat_map_invalidate(event_id=seat.event_id)
        return seat
