"""Validating and pricing a cart, before anything is written.

Bad input is refused here with the domain's own errors, so a checkout that
could never succeed starts no workflow run and changes nothing. The rules
themselves live in their domains: TicketType.check_orderable (limits, sales
window, on sale), seating.services.holds.seat_ids_clean (the seat list) and
finance.fees (prices and fees)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from finance.fees import LineInput, calculate_fees
from finance.selectors import fee_rules_for, fee_rules_from_sql, fee_rules_sql
from seating.exceptions import SeatBlocked, SeatWrongEvent, UnknownSeat
from seating.models import Seat, SeatStatus
from seating.services.holds import seat_ids_clean
from ticketing import rows
from ticketing.exceptions import InvalidInput, InvalidQuantity, NotFound, NotOnSale, TicketTypeNotFound
from ticketing.integrations import anyone_subscribed
from ticketing.models import Event, TicketKind, TicketType

MAX_DONATION_CENTS = 1_000_000


@dataclass(frozen=True)
class PricedLine:
    ticket_type_id: int
    quantity: int
    unit_price_cents: int
    seat_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class CartRows:
    """The rows the pricing read: the event and the cart's ticket types by id
    (each with `event` loaded, as TicketType.check_orderable needs), and
    whether the organization had an active webhook subscription then (True
    unless known otherwise)."""

    event: Event
    ticket_types: Mapping[int, TicketType]
    subscribed: bool = True


@dataclass(frozen=True)
class PricedCart:
    event_id: int
    organization_id: int
    currency: str
    lines: list[PricedLine]
    donation_cents: int
    fees: dict[str, Any]
    # Kept for the rest of this request (it need not read them again); never
    # part of the JSON, which is all a later pass in another process gets.
    rows: CartRows | None = field(default=None, compare=False, repr=False)

    @property
    def total_cents(self) -> int:
        return int(self.fees["total_cents"])

    def as_json(self) -> dict[str, Any]:
        """What `dataclasses.asdict` gives without `rows`, built by hand: asdict
        deep-copies every value (~50 calls per checkout start), and these are
        numbers and strings but for the lists and the fee snapshot's lines."""
        fees = {**self.fees, "lines": [dict(line) for line in self.fees.get("lines", [])]}
        if "lines" not in self.fees:
            del fees["lines"]
        return {
            "event_id": self.event_id,
            "organization_id": self.organization_id,
            "currency": self.currency,
            "lines": [
                {
                    "ticket_type_id": line.ticket_type_id,
                    "quantity": line.quantity,
                    "unit_price_cents": line.unit_price_cents,
                    "seat_ids": list(line.seat_ids),
                }
                for line in self.lines
            ],
            "donation_cents": self.donation_cents,
            "fees": fees,
        }


def _int(value: Any, *, name: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise InvalidInput(f"{name} must be a whole number.", detail={"field": name})


def buyer_clean(*, name: Any, email: Any) -> tuple[str, str]:
    name = str(name or "").strip()
    email = str(email or "").strip()
    problems = {}
    if not name or len(name) > 200:
        problems["buyer_name"] = "Enter your name (up to 200 characters)."
    try:
        validate_email(email)
    except ValidationError:
        problems["buyer_email"] = "Enter a valid e-mail address."
    if problems:
        raise InvalidInput("Please check your details.", detail=problems)
    return name, email.lower()


def cart_price(
    *,
    event_id: int,
    tickets: Sequence[Mapping[str, Any]] = (),
    seat_ids: Sequence[Any] = (),
    donation_cents: Any = 0,
    now: datetime,
) -> PricedCart:
    """Validate the cart against the event and price it. Raises a DomainError
    naming the first problem; reads only."""
    # The event comes with its ticket types and its fee rules, in one cached
    # statement (this runs on every checkout start); it is read alone only if
    # it has none. Along with them, whether anyone
    # subscribed to the organization's webhooks (order.created, announced
    # after the checkout, needs no query of its own then).
    event_types = rows.select(
        TicketType,
        '"ticketing_tickettype"."event_id" = %s',
        [event_id],
        related=("event",),
        annotate={"subscribed": anyone_subscribed("ticketing_tickettype"), "fee_rules": fee_rules_sql(event='"event"')},
    )
    subscribed = bool(getattr(event_types[0], "subscribed", True)) if event_types else True
    # The fees come with them too (finance's subquery), except for an event
    # without ticket types, which has nothing to sell anyway.
    rules = fee_rules_from_sql(getattr(event_types[0], "fee_rules", None)) if event_types else None
    if event_types:
        event = event_types[0].event
    else:
        try:
            event = Event.objects.get(pk=event_id)
        except Event.DoesNotExist:
            raise NotFound("This event does not exist.", detail={"event": event_id}) from None
    if not event.is_on_sale:
        raise NotOnSale("This event is not on sale.", detail={"event": event_id})
    donation = _int(donation_cents or 0, name="donation_cents")
    if not 0 <= donation <= MAX_DONATION_CENTS:
        raise InvalidInput("The donation is out of range.", detail={"field": "donation_cents"})

    quantities: Counter[int] = Counter()
    for item in tickets:
        if not isinstance(item, Mapping):
            raise InvalidInput("Each ticket line needs a ticket type and a quantity.", detail={"field": "tickets"})
        ticket_type_id = _int(item.get("ticket_type"), name="ticket_type")
        quantity = item.get("quantity")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            raise InvalidQuantity("Choose at least one ticket.", detail={"ticket_type": ticket_type_id})
        quantities[ticket_type_id] += quantity
    seats = seat_ids_clean(seat_ids) if seat_ids else []
    if not quantities and not seats:
        raise InvalidInput("Choose at least one ticket or seat.", detail={"code": "empty_cart"})

    types = {t.pk: t for t in event_types if t.pk in quantities or t.kind == TicketKind.SEATED}
    lines: list[PricedLine] = []
    for ticket_type_id, quantity in sorted(quantities.items()):
        ticket_type = types.get(ticket_type_id)
        if ticket_type is None or ticket_type.kind != TicketKind.GENERAL_ADMISSION:
            raise TicketTypeNotFound(detail={"ticket_type": ticket_type_id, "event": event.pk})
        ticket_type.check_orderable(quantity=quantity, at=now)
        lines.append(PricedLine(ticket_type.pk, quantity, ticket_type.price_cents))

    if seats:
        seat_rows = {
            s["id"]: s
            for s in Seat.objects.filter(pk__in=seats).values("id", "event_id", "status", "category__ticket_type_id")
        }
        unknown = [seat_id for seat_id in seats if seat_id not in seat_rows]
        if unknown:
            raise UnknownSeat(detail={"seat_ids": unknown})
        foreign = [seat_id for seat_id in seats if seat_rows[seat_id]["event_id"] != event.pk]
        if foreign:
            raise SeatWrongEvent(detail={"seat_ids": foreign})
        blocked = [seat_id for seat_id in seats if seat_rows[seat_id]["status"] == SeatStatus.BLOCKED]
        if blocked:
            raise SeatBlocked(detail={"seat_ids": blocked})
        by_type: dict[int, list[int]] = {}
        for seat_id in seats:
            by_type.setdefault(seat_rows[seat_id]["category__ticket_type_id"], []).append(seat_id)
        for ticket_type_id, ids in sorted(by_type.items()):
            ticket_type = types[ticket_type_id]
            ticket_type.check_orderable(quantity=len(ids), at=now)
            lines.append(PricedLine(ticket_type.pk, len(ids), ticket_type.price_cents, sorted(ids)))

    fees = calculate_fees(
        rules=rules or fee_rules_for(organization_id=event.organization_id, event_id=event.pk),
        currency=event.currency,
        lines=[LineInput(str(line.ticket_type_id), line.unit_price_cents, line.quantity) for line in lines],
        donation_cents=donation,
    )
    return PricedCart(
        event_id=event.pk,
        organization_id=event.organization_id,
        currency=event.currency,
        lines=lines,
        donation_cents=donation,
        fees=fees.as_snapshot(),
        rows=CartRows(event=event, ticket_types=types, subscribed=subscribed),
    )
