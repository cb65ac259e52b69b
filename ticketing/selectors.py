"""Reads of the ticketing domain."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, F, Max, Min, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from ticketing import rows
from ticketing.models import (
    CapacityHold,
    Event,
    EventSigningKey,
    EventStatus,
    HoldStatus,
    Order,
    Ticket,
    TicketKind,
    TicketStatus,
    TicketType,
)


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


# --- customer pages ----------------------------------------------------------------

# "Few left" below this share of capacity (and at most this many seats or tickets).
FEW_LEFT_SHARE = 10  # percent
FEW_LEFT_MIN = 5


def is_few_left(*, available: int, capacity: int) -> bool:
    return 0 < available <= max(FEW_LEFT_MIN, capacity * FEW_LEFT_SHARE // 100)


@dataclass(frozen=True)
class EventListing:
    event: Event
    min_price_cents: int | None
    max_price_cents: int | None
    capacity: int
    available: int

    @property
    def sold_out(self) -> bool:
        return self.capacity > 0 and self.available == 0

    @property
    def few_left(self) -> bool:
        return is_few_left(available=self.available, capacity=self.capacity)


def events_listing(*, now: datetime | None = None) -> list[EventListing]:
    """Upcoming on-sale events with price range and what is left, in one
    query. GA counts are the counters (a lapsed hold still counts until the
    sweeper runs, seconds later); seats use the effective status."""
    from seating.models import Seat, SeatStatus
    from seating.selectors import seats_effectively_free_q

    now = now or timezone.now()
    active_ga = TicketType.objects.filter(event=OuterRef("pk"), is_active=True, kind=TicketKind.GENERAL_ADMISSION)
    ga_capacity = active_ga.values("event").annotate(n=Sum("capacity")).values("n")
    ga_left = active_ga.values("event").annotate(n=Sum(F("capacity") - F("sold") - F("held"))).values("n")
    seats = Seat.objects.filter(event=OuterRef("pk"), category__ticket_type__is_active=True)
    seat_capacity = seats.exclude(status=SeatStatus.BLOCKED).values("event").annotate(n=Count("id")).values("n")
    seats_left = seats.filter(seats_effectively_free_q(now)).values("event").annotate(n=Count("id")).values("n")
    active_price = Q(ticket_types__is_active=True)
    events = (
        Event.objects.filter(status=EventStatus.ON_SALE, ends_at__gte=now)
        .annotate(
            min_price=Min("ticket_types__price_cents", filter=active_price),
            max_price=Max("ticket_types__price_cents", filter=active_price),
            ga_capacity=Coalesce(Subquery(ga_capacity), 0),
            ga_left=Coalesce(Subquery(ga_left), 0),
            seat_capacity=Coalesce(Subquery(seat_capacity), 0),
            seats_left=Coalesce(Subquery(seats_left), 0),
        )
        .order_by("starts_at", "id")
    )
    return [
        EventListing(
            event=e,
            min_price_cents=e.min_price,
            max_price_cents=e.max_price,
            capacity=e.ga_capacity + e.seat_capacity,
            available=max(e.ga_left, 0) + e.seats_left,
        )
        for e in events
    ]


class SaleState:
    ON_SALE = "on_sale"
    NOT_STARTED = "not_started"
    ENDED = "ended"
    SOLD_OUT = "sold_out"
    CLOSED = "closed"


@dataclass(frozen=True)
class TicketTypeOffer:
    """A ticket type as the event page offers it."""

    ticket_type: TicketType
    capacity: int
    available: int
    state: str

    @property
    def is_seated(self) -> bool:
        return self.ticket_type.kind == TicketKind.SEATED

    @property
    def few_left(self) -> bool:
        return self.state == SaleState.ON_SALE and is_few_left(available=self.available, capacity=self.capacity)

    @property
    def quantity_choices(self) -> list[int]:
        """0, then what one order may take: the per-order limits, capped by what is left."""
        if self.state != SaleState.ON_SALE or self.is_seated:
            return []
        most = min(self.ticket_type.max_per_order, self.available)
        return [0, *range(self.ticket_type.min_per_order, most + 1)]


def ticket_type_offers(*, event: Event, now: datetime | None = None) -> list[TicketTypeOffer]:
    """The event's active ticket types with what is left and whether they can
    be bought now. Three queries at most, whatever the number of types:
    the types, lapsed GA holds per type, free seats per seated type."""
    from seating.models import Seat, SeatStatus
    from seating.selectors import seats_effectively_free_q

    now = now or timezone.now()
    types = list(TicketType.objects.filter(event=event, is_active=True).order_by("position", "id"))
    lapsed: dict[int, int] = {}
    seats_left: dict[int, int] = {}
    seat_capacity: dict[int, int] = {}
    if any(t.kind == TicketKind.GENERAL_ADMISSION and t.held for t in types):
        lapsed = dict(
            CapacityHold.objects.filter(ticket_type__event=event, status=HoldStatus.ACTIVE, expires_at__lte=now)
            .values("ticket_type_id")
            .annotate(n=Sum("quantity"))
            .values_list("ticket_type_id", "n")
        )
    if any(t.kind == TicketKind.SEATED for t in types):
        rows = (
            Seat.objects.filter(event=event)
            .exclude(status=SeatStatus.BLOCKED)
            .values("category__ticket_type_id")
            .annotate(total=Count("id"), free=Count("id", filter=seats_effectively_free_q(now)))
            .values_list("category__ticket_type_id", "total", "free")
        )
        for type_id, total, free in rows:
            seat_capacity[type_id], seats_left[type_id] = total, free
    offers = []
    for t in types:
        if t.kind == TicketKind.SEATED:
            capacity, available = seat_capacity.get(t.pk, 0), seats_left.get(t.pk, 0)
        else:
            capacity = t.capacity
            available = max(t.capacity - t.sold - max(t.held - lapsed.get(t.pk, 0), 0), 0)
        if not event.is_on_sale:
            state = SaleState.CLOSED
        elif t.sales_end and now >= t.sales_end:
            state = SaleState.ENDED
        elif t.sales_start and now < t.sales_start:
            state = SaleState.NOT_STARTED
        elif available == 0:
            state = SaleState.SOLD_OUT
        else:
            state = SaleState.ON_SALE
        offers.append(TicketTypeOffer(ticket_type=t, capacity=capacity, available=available, state=state))
    return offers


# --- e-mails -------------------------------------------------------------------------


@dataclass(frozen=True)
class EmailRows:
    """What the e-mails of a batch of orders show: each order with its event,
    its valid tickets (id order; ticket type and seat selected, and the
    event as `ticket.event`), and the active signing key of each event that
    has tickets among them and a key already."""

    orders: dict[int, Order]
    tickets: dict[int, list[Ticket]]
    signing_keys: dict[int, EventSigningKey]


# What signing a ticket's code and the e-mail templates read of a ticket; the
# rest of each row stays in the database (an e-mail goes out for every order
# of a rush). A template that shows another field adds it here: a deferred
# field costs a query per ticket (tests/ticketing/test_ticket_email.py pins
# the send's statements).
_EMAIL_TICKET_FIELDS = ("id", "order", "event", "ticket_type", "seat", "code", "generation")
# The active signing key of the ticket's event (the partial unique index on
# event_id WHERE is_active finds it), read with the tickets instead of in a
# statement of its own.
_ACTIVE_KEY = (
    '(SELECT "key"."{column}" FROM "ticketing_eventsigningkey" AS "key" '
    'WHERE "key"."event_id" = "ticketing_ticket"."event_id" AND "key"."is_active")'
)
_ACTIVE_KEY_COLUMNS = {"signing_key_id": "id", "signing_key_kid": "kid", "signing_key_private": "private_key_encrypted"}


def email_rows(*, order_ids: Collection[int]) -> EmailRows:
    """One statement for the e-mails of `order_ids` (tickets with their
    order, event, ticket type and seat, and the events' active keys), and a
    second only for orders without valid tickets (a cancellation, a refund)."""
    ids = sorted(set(order_ids))
    if not ids:
        return EmailRows(orders={}, tickets={}, signing_keys={})
    marks = ", ".join(["%s"] * len(ids))
    found = rows.select(
        Ticket,
        f'"ticketing_ticket"."order_id" IN ({marks}) AND "ticketing_ticket"."status" = %s '
        'ORDER BY "ticketing_ticket"."id"',
        [*ids, TicketStatus.VALID],
        fields=_EMAIL_TICKET_FIELDS,
        related=("order", "event", "ticket_type", "seat"),
        annotate={name: _ACTIVE_KEY.format(column=column) for name, column in _ACTIVE_KEY_COLUMNS.items()},
    )
    orders: dict[int, Order] = {}
    tickets: dict[int, list[Ticket]] = {}
    signing_keys: dict[int, EventSigningKey] = {}
    for ticket in found:
        order = orders.setdefault(ticket.order_id, ticket.order)
        order.event = ticket.event
        ticket.order = order
        tickets.setdefault(order.pk, []).append(ticket)
        key_id = getattr(ticket, "signing_key_id", None)
        if key_id is not None and ticket.event_id not in signing_keys:
            # In the model's field order: Model.from_db takes a partial row so.
            signing_keys[ticket.event_id] = rows.from_values(
                EventSigningKey,
                {
                    "id": key_id,
                    "organization_id": ticket.event.organization_id,
                    "event_id": ticket.event_id,
                    "kid": getattr(ticket, "signing_key_kid", None),
                    "private_key_encrypted": getattr(ticket, "signing_key_private", None),
                    "is_active": True,
                },
            )
    missing = [pk for pk in ids if pk not in orders]
    if missing:
        marks = ", ".join(["%s"] * len(missing))
        for order in rows.select(Order, f'"ticketing_order"."id" IN ({marks})', missing, related=("event",)):
            orders[order.pk] = order
    return EmailRows(orders=orders, tickets=tickets, signing_keys=signing_keys)
