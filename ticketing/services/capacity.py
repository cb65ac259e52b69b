"""General-admission capacity: reserve, release, convert, expire, return.

No oversell, without a global lock: a reservation is one conditional UPDATE
of the ticket type's counters (`held += n WHERE sold + held + n <= capacity`),
and the database's CHECK constraint backs it. Holds past their expiry never
block a sale: a reservation that finds no room first expires that ticket
type's lapsed holds in the same transaction and tries once more.

Lock order: ticket type row, then its capacity holds (see ticketing.locks).
The ticket type row is locked FOR NO KEY UPDATE: inserting a row that refers
to it (a ticket, a hold) takes a KEY SHARE lock on it, and a plain FOR UPDATE
conflicts with that, which deadlocks two completions that each inserted
tickets before locking the counter.
The ticket type's row lock lasts until commit, so callers keep the
transaction around a reservation short and make no network calls in it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import F, Sum
from django.utils import timezone

from ticketing import rows
from ticketing.exceptions import CapacityHoldLost, InvalidQuantity, InvalidState, SoldOut, TicketTypeNotFound
from ticketing.locks import lock_timeout
from ticketing.models import CapacityHold, HoldStatus, TicketType

# The compare-and-set of a reservation (and of a late payment's re-take, on
# "sold"): the hot statement of a rush, so written once, not built per call.
_TAKE_SQL = {
    counter: (
        f'UPDATE "ticketing_tickettype" SET "{counter}" = "{counter}" + %s '  # noqa: S608
        'WHERE "id" = %s AND "capacity" >= "sold" + "held" + %s'
    )
    for counter in ("held", "sold")
}
# A paid order's holds: their ticket types locked in id order, the holds read,
# the active ones converted and their units moved from held to sold.
_LOCK_TYPES_OF_REFERENCE_SQL = (
    'SELECT "id" FROM "ticketing_tickettype" WHERE "id" IN '
    '(SELECT "ticket_type_id" FROM "ticketing_capacityhold" WHERE "reference" = %s) ORDER BY "id"'
)
_HOLDS_OF_REFERENCE_SQL = (
    'SELECT "id", "ticket_type_id", "quantity", "status" FROM "ticketing_capacityhold" WHERE "reference" = %s'
)
_CONVERT_HOLDS_SQL = 'UPDATE "ticketing_capacityhold" SET "status" = %s, "closed_at" = %s WHERE "id" IN ({ids})'
_SELL_HELD_SQL = 'UPDATE "ticketing_tickettype" SET "held" = "held" - %s, "sold" = "sold" + %s WHERE "id" = %s'


def _take(*, ticket_type_id: int, quantity: int, counter: str = "held") -> bool:
    """The compare-and-set: True if `quantity` units were added to `counter`
    ("held" for a reservation, "sold" for a late payment's re-take)."""
    updated, _ = rows.execute(_TAKE_SQL[counter], [quantity, ticket_type_id, quantity])
    return bool(updated == 1)


def capacity_reserve(
    *, ticket_type: TicketType, quantity: int, expires_at: datetime, reference: str = "", now: datetime | None = None
) -> CapacityHold:
    """Hold `quantity` units of `ticket_type` until `expires_at`.

    Validates the request (quantity, limits, sales window, event on sale)
    against the ticket type (with `event` loaded), then takes the units.
    Raises a ticketing DomainError and changes nothing when it cannot."""
    now = now or timezone.now()
    ticket_type.check_orderable(quantity=quantity, at=now)
    # No savepoint inside a caller's transaction (two statements saved on the
    # hot path): the refusals are raised after the block, which wrote nothing
    # but the expiry of lapsed holds, so a caller may go on after catching one.
    with transaction.atomic(savepoint=False), lock_timeout():
        taken = _take(ticket_type_id=ticket_type.pk, quantity=quantity)
        if not taken and capacity_expire_holds(ticket_type_id=ticket_type.pk, now=now):
            taken = _take(ticket_type_id=ticket_type.pk, quantity=quantity)
        if taken:
            hold = CapacityHold(
                organization_id=ticket_type.organization_id,
                ticket_type_id=ticket_type.pk,
                quantity=quantity,
                expires_at=expires_at,
                reference=reference,
            )
            return rows.insert([hold])[0]
        exists = TicketType.objects.filter(pk=ticket_type.pk).exists()
    if not exists:
        raise TicketTypeNotFound()
    raise SoldOut(detail={"ticket_type": ticket_type.pk, "requested": quantity})


def _close_hold(*, hold_id: int, to_status: str, now: datetime) -> CapacityHold | None:
    """Move an active hold to `to_status` exactly once; None if it was not active."""
    hold = CapacityHold.objects.select_for_update().filter(pk=hold_id, status=HoldStatus.ACTIVE).first()
    if hold is None:
        return None
    CapacityHold.objects.filter(pk=hold_id).update(status=to_status, closed_at=now)
    hold.status = to_status
    hold.closed_at = now
    return hold


def capacity_release(*, hold_id: int, now: datetime | None = None) -> bool:
    """Give a hold's units back. Idempotent: False if it was no longer active."""
    now = now or timezone.now()
    with transaction.atomic(), lock_timeout():
        ticket_type_id = CapacityHold.objects.filter(pk=hold_id).values_list("ticket_type_id", flat=True).first()
        if ticket_type_id is None:
            return False
        # Ticket type first, then the hold: the documented lock order.
        TicketType.objects.select_for_update(no_key=True).filter(pk=ticket_type_id).values_list("pk").first()
        hold = _close_hold(hold_id=hold_id, to_status=HoldStatus.RELEASED, now=now)
        if hold is None:
            return False
        TicketType.objects.filter(pk=ticket_type_id).update(held=F("held") - hold.quantity)
        return True


def capacity_convert(*, hold_id: int, now: datetime | None = None) -> CapacityHold:
    """Turn a hold into sold units (on payment). Idempotent for a hold already
    converted; raises CapacityHoldLost if the hold was released or expired, so
    the caller can try to re-reserve (late payment)."""
    now = now or timezone.now()
    with transaction.atomic(), lock_timeout():
        current = CapacityHold.objects.filter(pk=hold_id).first()
        if current is None:
            raise CapacityHoldLost(detail={"hold": hold_id})
        TicketType.objects.select_for_update(no_key=True).filter(pk=current.ticket_type_id).values_list("pk").first()
        hold = _close_hold(hold_id=hold_id, to_status=HoldStatus.CONVERTED, now=now)
        if hold is None:
            current.refresh_from_db()
            if current.status == HoldStatus.CONVERTED:
                return current
            raise CapacityHoldLost(detail={"hold": hold_id, "status": current.status})
        TicketType.objects.filter(pk=hold.ticket_type_id).update(
            held=F("held") - hold.quantity, sold=F("sold") + hold.quantity
        )
        return hold


def capacity_retake(*, hold_id: int, now: datetime | None = None) -> bool:
    """For a payment that arrived after its hold lapsed: take the same units
    again if there is still room and sell them. True if sold (or already
    sold); False if the units are gone (the caller refunds)."""
    now = now or timezone.now()
    with transaction.atomic(), lock_timeout():
        hold = CapacityHold.objects.filter(pk=hold_id).first()
        if hold is None:
            raise CapacityHoldLost(detail={"hold": hold_id})
        TicketType.objects.select_for_update(no_key=True).filter(pk=hold.ticket_type_id).values_list("pk").first()
        hold.refresh_from_db()
        if hold.status == HoldStatus.CONVERTED:
            return True
        if hold.status == HoldStatus.ACTIVE:
            capacity_convert(hold_id=hold_id, now=now)
            return True
        # Sales windows are not checked again: the buyer paid while the checkout was open.
        if not _take(ticket_type_id=hold.ticket_type_id, quantity=hold.quantity, counter="sold"):
            return False
        CapacityHold.objects.filter(pk=hold_id).update(status=HoldStatus.CONVERTED, closed_at=now)
        return True


def capacity_sell_reference(*, reference: str, now: datetime | None = None) -> tuple[list[int], list[int]]:
    """On payment: sell every still-active hold of `reference` (an order's GA
    units) in a few set-wise statements: lock the holds' ticket types (id
    order, as everywhere), convert the active holds, move their units from
    held to sold. Returns (sold hold ids, lapsed hold ids); the caller takes
    the lapsed ones again one by one (capacity_retake), for a late payment.
    Idempotent: holds already converted are neither sold again nor lapsed."""
    now = now or timezone.now()
    lock = " FOR NO KEY UPDATE" if connection.features.has_select_for_update else ""
    with transaction.atomic(savepoint=False), lock_timeout():
        # Under the ticket types' locks no hold of theirs can change (release,
        # expiry and sale all lock the ticket type first): the holds are read
        # by the next statement, sent in the same round trip, which the
        # database runs once the locks are taken, with a snapshot of its own.
        (_, locked), (_, holds) = rows.execute_together(
            (_LOCK_TYPES_OF_REFERENCE_SQL + lock, [reference]), (_HOLDS_OF_REFERENCE_SQL, [reference])
        )
        if not locked:
            return [], []
        active = [pk for pk, _, _, status in holds if status == HoldStatus.ACTIVE]
        lapsed = [pk for pk, _, _, status in holds if status not in (HoldStatus.ACTIVE, HoldStatus.CONVERTED)]
        # Both under the locks just taken, so neither can miss: they may
        # travel with the next statement (ticketing.rows.deferred), which
        # keeps the hot row's lock short.
        if active:
            marks = ", ".join(["%s"] * len(active))
            closed_at = connection.ops.adapt_datetimefield_value(now)
            rows.execute_later(_CONVERT_HOLDS_SQL.format(ids=marks), [HoldStatus.CONVERTED.value, closed_at, *active])
        units: dict[int, int] = {}
        for _, ticket_type_id, quantity, status in holds:
            if status == HoldStatus.ACTIVE:
                units[ticket_type_id] = units.get(ticket_type_id, 0) + quantity
        for ticket_type_id, quantity in sorted(units.items()):
            rows.execute_later(_SELL_HELD_SQL, [quantity, quantity, ticket_type_id])
        return sorted(pk for pk, _, _, _ in holds if pk not in lapsed), sorted(lapsed)


def capacity_return(*, ticket_type_id: int, quantity: int) -> None:
    """Put `quantity` sold units back on sale (their tickets were refunded).

    One conditional UPDATE (`sold -= n WHERE sold >= n`) under the ticket
    type's row lock (FOR NO KEY UPDATE, as everywhere in this module). Not
    idempotent by itself: call it in the transaction that marks the tickets
    refunded, for the tickets that this transaction changed, so a unit comes
    back exactly once per refunded ticket. Raises InvalidState if fewer units
    are sold than returned (nothing changes)."""
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        raise InvalidQuantity(detail={"quantity": quantity})
    with transaction.atomic(), lock_timeout():
        locked = TicketType.objects.select_for_update(no_key=True).filter(pk=ticket_type_id).values_list("pk").first()
        if locked is None:
            raise TicketTypeNotFound()
        returned = TicketType.objects.filter(pk=ticket_type_id, sold__gte=quantity).update(sold=F("sold") - quantity)
        if not returned:
            raise InvalidState(
                "More units would be returned than were sold.",
                detail={"ticket_type": ticket_type_id, "quantity": quantity},
            )


def capacity_expire_holds(*, ticket_type_id: int, now: datetime | None = None) -> int:
    """Expire the ticket type's active holds that are past their expiry and
    return their units to the pool. Returns how many units came back."""
    now = now or timezone.now()
    with transaction.atomic(), lock_timeout():
        TicketType.objects.select_for_update(no_key=True).filter(pk=ticket_type_id).values_list("pk").first()
        lapsed = CapacityHold.objects.filter(
            ticket_type_id=ticket_type_id, status=HoldStatus.ACTIVE, expires_at__lte=now
        )
        ids = list(lapsed.values_list("pk", flat=True))
        if not ids:
            return 0
        units = CapacityHold.objects.filter(pk__in=ids).aggregate(n=Sum("quantity"))["n"] or 0
        CapacityHold.objects.filter(pk__in=ids).update(status=HoldStatus.EXPIRED, closed_at=now)
        TicketType.objects.filter(pk=ticket_type_id).update(held=F("held") - units)
        return units


def capacity_expire_all(*, now: datetime | None = None, grace: timedelta = timedelta(0), batch: int = 500) -> int:
    """The sweeper: expire holds lapsed for longer than `grace` of every ticket
    type, one small transaction per ticket type. Returns the units returned.

    The checkout saga releases its own holds when they lapse, after asking the
    payment provider whether a payment is in flight; the periodic sweeper
    waits `grace` so it only collects holds whose saga is gone. A lapsed hold
    never blocks a sale meanwhile: reservations expire them lazily."""
    now = now or timezone.now()
    ticket_type_ids = sorted(
        set(
            CapacityHold.objects.filter(status=HoldStatus.ACTIVE, expires_at__lte=now - grace).values_list(
                "ticket_type_id", flat=True
            )[:batch]
        )
    )
    return sum(capacity_expire_holds(ticket_type_id=tt_id, now=now - grace) for tt_id in ticket_type_ids)
