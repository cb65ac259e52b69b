"""Seat holds: create, release, finalize (sell), extend, adopt, expire; return sold seats.

Holding is a compare-and-set on exactly the chosen seat rows, all or nothing:
the seats are locked (`FOR NO KEY UPDATE OF seating_seat`) in ascending id
order, so two checkouts wanting overlapping seats queue on the first seat they
share instead of deadlocking; then every seat is re-checked under the lock and
all of them change in one UPDATE.

Lock order (see ticketing.locks): seats by id, then the seat hold. Every
function here takes its locks in that order, and at most one hold per
transaction, so they cannot deadlock with each other. Lock waits are bounded
by ticketing.locks.lock_timeout() and surface as `Busy`.

Lazy expiry: a hold past `expires_at` no longer protects its seats. A new hold
takes them at once, before any sweeper has run, so a stuck Celery never stops
sales. The lapsed hold stays `active` until the sweeper (seat_holds_expire)
closes it; finalizing it then succeeds only if none of its seats were taken.

Every seat and hold state change writes audit rows in the same transaction,
in bulk (one INSERT per kind of change, never one per seat).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from seating.exceptions import (
    HoldLost,
    InvalidSeatSelection,
    OrphanSeat,
    SeatBlocked,
    SeatHoldExpired,
    SeatHoldInUse,
    SeatHoldMismatch,
    SeatHoldNotFound,
    SeatUnavailable,
    SeatWrongEvent,
    UnknownSeat,
)
from seating.models import Seat, SeatHold, SeatHoldStatus, SeatStatus
from seating.selectors import hold_is_live, seat_effective_status, seat_map_invalidate
from ticketing.exceptions import Busy, InvalidInput
from ticketing.locks import lock_timeout
from ticketing.models import AuditLogEntry, Ticket, TicketStatus

logger = logging.getLogger(__name__)

# One checkout never needs more; a cap keeps lock sets (and abuse) small.
MAX_SEATS_PER_HOLD = 20

_LOCKED_FIELDS = ("id", "event_id", "organization_id", "status", "hold_id", "row_id", "number")


# --- helpers -------------------------------------------------------------------------


def seat_ids_clean(seat_ids: Any) -> list[int]:
    """Validate a manual selection and return its ids sorted (the lock order).

    Raises InvalidSeatSelection for an empty selection, ids that are not
    positive integers, duplicates, or more than MAX_SEATS_PER_HOLD seats."""
    if isinstance(seat_ids, str | bytes | dict) or not isinstance(seat_ids, Iterable):
        raise InvalidSeatSelection("Send a list of seat ids.", detail={"reason": "not_a_list"})
    ids = list(seat_ids)
    if not ids:
        raise InvalidSeatSelection("Choose at least one seat.", detail={"reason": "empty"})
    bad = [repr(i) for i in ids if isinstance(i, bool) or not isinstance(i, int) or i < 1]
    if bad:
        raise InvalidSeatSelection("Some seat ids are not valid.", detail={"reason": "bad_ids", "seat_ids": bad})
    duplicates = sorted(i for i, n in Counter(ids).items() if n > 1)
    if duplicates:
        raise InvalidSeatSelection(
            "A seat was chosen more than once.", detail={"reason": "duplicates", "seat_ids": duplicates}
        )
    if len(ids) > MAX_SEATS_PER_HOLD:
        raise InvalidSeatSelection(
            f"Choose at most {MAX_SEATS_PER_HOLD} seats.",
            detail={"reason": "too_many", "max": MAX_SEATS_PER_HOLD, "requested": len(ids)},
        )
    return sorted(ids)


def _lock_seats(seat_ids: Sequence[int], *, skip_locked: bool = False) -> list[dict[str, Any]]:
    """Lock the seats' rows in ascending id order and return their state.

    FOR NO KEY UPDATE, of the seat rows only: tickets and order lines that
    reference a seat (KEY SHARE) are not blocked by it, and no joined row is
    locked. The ORDER BY sits below the lock step in PostgreSQL's plan, so rows
    are locked in id order: the deadlock-free order."""
    queryset = Seat.objects.select_for_update(no_key=True, of=("self",), skip_locked=skip_locked)
    return list(
        queryset.filter(pk__in=list(seat_ids))
        .order_by("pk")
        # The plan's orphan rule rides along instead of costing a query: rows,
        # sections and plans are not updated while seats are sold, so joining
        # them (unlocked) is safe where joining the holds would not be.
        .values(*_LOCKED_FIELDS, forbid_orphans=F("row__section__plan__forbid_orphans"))
    )


def _lock_hold(hold_id: int) -> SeatHold | None:
    """Lock one hold row (after its seats: the documented order)."""
    return SeatHold.objects.select_for_update(no_key=True).filter(pk=hold_id).first()


def _live_hold_ids(hold_ids: Iterable[int], *, now: datetime) -> set[int]:
    """Which of these holds still protect their seats at `now`.

    Called after the seats are locked: a hold's expiry only moves under the lock
    of its seats (seat_hold_extend), so the answer stays true until commit. A
    fresh statement, not a join in the lock query, because a join would show the
    hold as it was before the lock wait (PostgreSQL re-checks only locked rows)."""
    ids = set(hold_ids)
    if not ids:
        return set()
    return set(
        SeatHold.objects.filter(pk__in=ids, status=SeatHoldStatus.ACTIVE, expires_at__gt=now).values_list(
            "pk", flat=True
        )
    )


def _audit_seats(
    *,
    seat_ids: Sequence[int],
    organization_id: int,
    source: str,
    target: str,
    transition: str,
    by: Any = None,
    reason: str = "",
) -> None:
    if not seat_ids:
        return
    AuditLogEntry.objects.record_many(
        objects=[Seat(pk=seat_id, organization_id=organization_id) for seat_id in seat_ids],
        field="status",
        source=source,
        target=target,
        transition=transition,
        actor=by,
        reason=reason,
    )


def _close_hold(
    *, hold: SeatHold, to_status: str, transition: str, now: datetime, by: Any = None, reason: str = ""
) -> None:
    """Move the locked hold from the status it was read in to `to_status`, with
    its audit row. A compare-and-set on that status, so a mistake in the
    caller's locking shows up as an error instead of a double close."""
    source = hold.status
    closed = SeatHold.objects.filter(pk=hold.pk, status=source).update(status=to_status, closed_at=now)
    if closed != 1:
        raise AssertionError(f"seat hold {hold.pk} changed under its lock")
    hold.status = to_status
    hold.closed_at = now
    AuditLogEntry.objects.record_many(
        objects=[hold], field="status", source=source, target=to_status, transition=transition, actor=by, reason=reason
    )


def _stranded_seats(*, selected: set[int], row_ids: set[int], now: datetime) -> list[int]:
    """Free seats that the selection would leave alone between unavailable
    seats or row ends (a gap in the numbering, e.g. an aisle, counts as an end).

    Only seats next to a chosen seat count: orphans that exist anyway are not
    the buyer's doing. Neighbours are read without locks: the rule is a
    courtesy to other buyers, not an inventory guarantee."""
    seats = (
        Seat.objects.filter(row_id__in=row_ids)
        .order_by("row_id", "number")
        .values_list("id", "row_id", "number", "status", "hold__status", "hold__expires_at")
    )
    free_by_row: dict[int, dict[int, bool]] = defaultdict(dict)
    id_at: dict[tuple[int, int], int] = {}
    for seat_id, row_id, number, status, hold_status, hold_expires_at in seats:
        effective = seat_effective_status(
            status=status, hold_status=hold_status, hold_expires_at=hold_expires_at, now=now
        )
        free_by_row[row_id][number] = effective == SeatStatus.FREE and seat_id not in selected
        id_at[(row_id, number)] = seat_id
    stranded: list[int] = []
    for row_id, free in free_by_row.items():
        for number, is_free in free.items():
            if not is_free or free.get(number - 1) or free.get(number + 1):
                continue
            if id_at.get((row_id, number - 1)) in selected or id_at.get((row_id, number + 1)) in selected:
                stranded.append(id_at[(row_id, number)])
    return sorted(stranded)


# --- services ----------------------------------------------------------------------


def seat_hold_create(
    *,
    event_id: int,
    seat_ids: Sequence[int],
    expires_at: datetime,
    reference: str = "",
    now: datetime | None = None,
    by: Any = None,
    enforce_orphan_rule: bool = True,
) -> SeatHold:
    """Hold exactly `seat_ids` of the event until `expires_at`, all or nothing.

    Locks: the seats, in id order (one statement); no hold is locked (the new
    one is created here). Every seat must exist (UnknownSeat), belong to the
    event (SeatWrongEvent), not be blocked (SeatBlocked) and be free or held by
    a lapsed hold (else SeatUnavailable, listing the taken seats). With the
    plan's `forbid_orphans` on, a selection that strands a single free seat is
    rejected (OrphanSeat); best available passes `enforce_orphan_rule=False`, as
    it applies a stronger rule of its own and relaxes it only when it must.

    Not idempotent: each call makes a new hold. Raises and changes nothing on
    any error. The cached seat map is dropped after commit."""
    now = now or timezone.now()
    ids = seat_ids_clean(seat_ids)
    if timezone.is_naive(expires_at) or expires_at <= now:
        raise InvalidInput("A hold must expire in the future.", detail={"expires_at": str(expires_at)})

    with transaction.atomic(), lock_timeout():
        seats = _lock_seats(ids)
        missing = sorted(set(ids) - {s["id"] for s in seats})
        if missing:
            raise UnknownSeat(detail={"seat_ids": missing})
        foreign = [s["id"] for s in seats if s["event_id"] != event_id]
        if foreign:
            raise SeatWrongEvent(detail={"seat_ids": foreign, "event": event_id})
        blocked = [s["id"] for s in seats if s["status"] == SeatStatus.BLOCKED]
        if blocked:
            raise SeatBlocked(detail={"seat_ids": blocked})
        live = _live_hold_ids((s["hold_id"] for s in seats if s["status"] == SeatStatus.HELD), now=now)
        taken = [
            s["id"]
            for s in seats
            if s["status"] == SeatStatus.SOLD or (s["status"] == SeatStatus.HELD and s["hold_id"] in live)
        ]
        if taken:
            raise SeatUnavailable(detail={"seat_ids": taken})
        if enforce_orphan_rule and seats[0]["forbid_orphans"]:
            stranded = _stranded_seats(selected=set(ids), row_ids={s["row_id"] for s in seats}, now=now)
            if stranded:
                raise OrphanSeat(detail={"seat_ids": stranded})

        organization_id = seats[0]["organization_id"]
        hold = SeatHold.objects.create(
            organization_id=organization_id,
            event_id=event_id,
            seat_ids=ids,
            expires_at=expires_at,
            reference=reference,
        )
        # The rows are locked and checked: one UPDATE moves them all.
        Seat.objects.filter(pk__in=ids).update(status=SeatStatus.HELD, hold=hold)

        from_free = [s["id"] for s in seats if s["status"] == SeatStatus.FREE]
        from_lapsed = [s["id"] for s in seats if s["status"] == SeatStatus.HELD]
        reason = f"hold {hold.pk}"
        _audit_seats(
            seat_ids=from_free,
            organization_id=organization_id,
            source=SeatStatus.FREE,
            target=SeatStatus.HELD,
            transition="hold",
            by=by,
            reason=reason,
        )
        _audit_seats(
            seat_ids=from_lapsed,
            organization_id=organization_id,
            source=SeatStatus.HELD,
            target=SeatStatus.HELD,
            transition="hold",
            by=by,
            reason=f"{reason}, taken over from a lapsed hold",
        )
        seat_map_invalidate(event_id=event_id)
    return hold


def seat_hold_release(
    *, hold_id: int, now: datetime | None = None, by: Any = None, reason: str = "", unclaimed_only: bool = False
) -> bool:
    """Give a hold's seats back (checkout cancelled). Returns True if this call
    released it; False (and changes nothing) if the hold does not exist or is
    no longer active: safe to repeat.

    Locks the hold's seats (id order), then the hold. Only seats still held by
    this hold are freed; seats a newer hold took over after this one lapsed
    stay with it. With `unclaimed_only` (a buyer letting go of a hold by its
    token), an active hold that an order has adopted meanwhile is not released
    but refused with SeatHoldInUse: checked under the hold's lock, because
    seat_hold_adopt claims it under the same locks."""
    now = now or timezone.now()
    with transaction.atomic(), lock_timeout():
        seat_ids = SeatHold.objects.filter(pk=hold_id).values_list("seat_ids", flat=True).first()
        if seat_ids is None:
            return False
        seats = _lock_seats(sorted(seat_ids))
        hold = _lock_hold(hold_id)
        if hold is None or hold.status != SeatHoldStatus.ACTIVE:
            return False
        if unclaimed_only and hold.reference:
            raise SeatHoldInUse(detail={"hold": hold.pk, "order": hold.reference})
        mine = [s["id"] for s in seats if s["hold_id"] == hold.pk and s["status"] == SeatStatus.HELD]
        if mine:
            Seat.objects.filter(pk__in=mine).update(status=SeatStatus.FREE, hold=None)
        _close_hold(hold=hold, to_status=SeatHoldStatus.RELEASED, transition="release", now=now, by=by, reason=reason)
        _audit_seats(
            seat_ids=mine,
            organization_id=hold.organization_id,
            source=SeatStatus.HELD,
            target=SeatStatus.FREE,
            transition="release",
            by=by,
            reason=reason or f"hold {hold.pk} released",
        )
        seat_map_invalidate(event_id=hold.event_id)
        return True


def seat_hold_finalize(*, hold_id: int, now: datetime | None = None, by: Any = None) -> list[int]:
    """Sell the hold's seats (on payment) and return their ids, sorted.

    Locks the hold's seats (id order), then the hold. Idempotent: a hold
    already converted returns its seats again without changing anything.

    A late payment is not dropped: a hold that lapsed (or was released or
    swept) still converts if each of its seats is still held by it, free again,
    or held by another lapsed hold. If any was taken for good (sold, blocked,
    held by a live hold), raises HoldLost listing them and changes nothing, so
    the caller can refund."""
    now = now or timezone.now()
    with transaction.atomic(), lock_timeout():
        seat_ids = SeatHold.objects.filter(pk=hold_id).values_list("seat_ids", flat=True).first()
        if seat_ids is None:
            raise SeatHoldNotFound(detail={"hold": hold_id})
        ids = sorted(seat_ids)
        seats = _lock_seats(ids)
        hold = _lock_hold(hold_id)
        if hold is None:
            raise SeatHoldNotFound(detail={"hold": hold_id})
        if hold.status == SeatHoldStatus.CONVERTED:
            return ids

        others = {s["hold_id"] for s in seats if s["status"] == SeatStatus.HELD and s["hold_id"] != hold.pk}
        live_others = _live_hold_ids(others, now=now)
        lost = sorted(set(ids) - {s["id"] for s in seats}) + [
            s["id"]
            for s in seats
            if s["status"] in (SeatStatus.SOLD, SeatStatus.BLOCKED)
            or (s["status"] == SeatStatus.HELD and s["hold_id"] in live_others)
        ]
        if lost:
            raise HoldLost(detail={"hold": hold.pk, "seat_ids": sorted(lost)})

        Seat.objects.filter(pk__in=ids).update(status=SeatStatus.SOLD, hold=hold)
        late = hold.status != SeatHoldStatus.ACTIVE  # released or swept before the payment came
        _close_hold(
            hold=hold,
            to_status=SeatHoldStatus.CONVERTED,
            transition="convert",
            now=now,
            by=by,
            reason="late payment, seats re-taken" if late else "",
        )
        by_source: dict[str, list[int]] = defaultdict(list)
        for s in seats:
            by_source[s["status"]].append(s["id"])
        for source, source_ids in sorted(by_source.items()):
            _audit_seats(
                seat_ids=source_ids,
                organization_id=hold.organization_id,
                source=source,
                target=SeatStatus.SOLD,
                transition="sell",
                by=by,
                reason=f"hold {hold.pk} paid",
            )
        seat_map_invalidate(event_id=hold.event_id)
        return ids


def seat_hold_extend(
    *, token: str, until: datetime, now: datetime | None = None, max_minutes: int | None = None
) -> SeatHold:
    """Push a live hold's expiry to `until` (the buyer is still active).

    Never beyond `max_minutes` (default settings.SEAT_HOLD_MINUTES) from now,
    and never shortens a hold: an extension to an earlier time returns the hold
    unchanged. Locks the hold's seats (id order), then the hold: a new hold
    reads a lapsed hold's expiry under the same seat locks, so an extension
    cannot revive a hold whose seats were just taken. Raises SeatHoldNotFound,
    or SeatHoldExpired for a hold that lapsed or was closed."""
    now = now or timezone.now()
    if timezone.is_naive(until):
        raise InvalidInput("The new expiry must have a time zone.")
    window = timedelta(minutes=max_minutes if max_minutes is not None else settings.SEAT_HOLD_MINUTES)
    until = min(until, now + window)
    with transaction.atomic(), lock_timeout():
        found = SeatHold.objects.filter(token=token).values_list("pk", "seat_ids").first()
        if found is None:
            raise SeatHoldNotFound()
        hold_id, seat_ids = found
        seats = _lock_seats(sorted(seat_ids))
        hold = _lock_hold(hold_id)
        if hold is None:
            raise SeatHoldNotFound()
        if not hold_is_live(hold_status=hold.status, expires_at=hold.expires_at, now=now):
            raise SeatHoldExpired(detail={"status": hold.status, "expires_at": hold.expires_at.isoformat()})
        lost = [s["id"] for s in seats if s["hold_id"] != hold.pk or s["status"] != SeatStatus.HELD]
        if lost or len(seats) != len(seat_ids):
            # Cannot happen to a live hold through these services; say so rather than extend a broken hold.
            raise HoldLost(detail={"hold": hold.pk, "seat_ids": lost})
        if until <= hold.expires_at:
            return hold
        SeatHold.objects.filter(pk=hold.pk).update(expires_at=until)
        hold.expires_at = until
        return hold


def seat_hold_adopt(
    *,
    token: str,
    event_id: int,
    order_code: str,
    seat_ids: Sequence[int],
    expires_at: datetime,
    now: datetime | None = None,
    by: Any = None,
) -> SeatHold:
    """Hand a buyer's live, unclaimed hold (made on the seat map page, with an
    empty reference) to their order: its reference becomes `order_code` and it
    expires with the order (`expires_at`), so finalizing, releasing and
    sweeping treat it as the order's own hold. No seat changes state.

    Locks the hold's seats (id order), then the hold: the order every function
    here takes, and the locks a new hold takes before it reads a lapsed hold's
    expiry, so a hold cannot be adopted while its seats are being taken over.

    Idempotent for the same order: a retried step gets the hold back. Raises,
    changing nothing: SeatHoldNotFound (no such hold for this event),
    SeatHoldExpired (lapsed or closed; never revived here, its seats may be
    someone else's already), SeatHoldInUse (claimed by another reference, e.g.
    the same checkout form sent twice), SeatHoldMismatch (`seat_ids` are not
    exactly the hold's seats). The cached seat map is dropped after commit."""
    now = now or timezone.now()
    if timezone.is_naive(expires_at) or expires_at <= now:
        raise InvalidInput("A hold must expire in the future.", detail={"expires_at": str(expires_at)})
    if not order_code:
        raise InvalidInput("Adopting a hold needs the order's code.", detail={"field": "order_code"})
    wanted = seat_ids_clean(seat_ids)
    with transaction.atomic(), lock_timeout():
        found = (
            SeatHold.objects.filter(token=token, event_id=event_id).values_list("pk", "seat_ids").first()
            if token
            else None
        )
        if found is None:
            raise SeatHoldNotFound(detail={"event": event_id})
        hold_id, held_ids = found
        seats = _lock_seats(sorted(held_ids))
        hold = _lock_hold(hold_id)
        if hold is None:
            raise SeatHoldNotFound(detail={"event": event_id})
        if hold.reference == order_code and hold.status in (SeatHoldStatus.ACTIVE, SeatHoldStatus.CONVERTED):
            return hold  # adopted by this order already: a retried step
        if not hold_is_live(hold_status=hold.status, expires_at=hold.expires_at, now=now):
            raise SeatHoldExpired(detail={"status": hold.status, "expires_at": hold.expires_at.isoformat()})
        if hold.reference:
            raise SeatHoldInUse(detail={"hold": hold.pk, "order": hold.reference})
        if wanted != sorted(held_ids):
            raise SeatHoldMismatch(detail={"held": sorted(held_ids), "requested": wanted})
        lost = [s["id"] for s in seats if s["hold_id"] != hold.pk or s["status"] != SeatStatus.HELD]
        if lost or len(seats) != len(held_ids):
            # Cannot happen to a live hold through these services; say so rather than sell a broken hold.
            raise HoldLost(detail={"hold": hold.pk, "seat_ids": lost})

        adopted = SeatHold.objects.filter(pk=hold.pk, status=SeatHoldStatus.ACTIVE, reference="").update(
            reference=order_code, expires_at=expires_at
        )
        if adopted != 1:
            raise AssertionError(f"seat hold {hold.pk} changed under its lock")
        AuditLogEntry.objects.record_many(
            objects=[hold],
            field="reference",
            source="unclaimed",
            target=order_code,
            transition="adopt",
            actor=by,
            reason=f"adopted by order {order_code}, expiry {hold.expires_at.isoformat()} -> {expires_at.isoformat()}",
        )
        hold.reference, hold.expires_at = order_code, expires_at
        seat_map_invalidate(event_id=hold.event_id)
        return hold


def seat_return(*, seat_ids: Sequence[int], by: Any = None, reason: str = "") -> list[int]:
    """Put sold seats back on sale (their tickets were refunded): sold -> free.

    Locks the seats in id order (FOR NO KEY UPDATE), like every function
    here; no hold is locked (the converted hold that sold them stays as it
    was, for the record). Only seats that are sold and no longer carry a
    valid ticket are freed, so a repeated call, or a call for a seat that was
    meanwhile sold to someone else, changes nothing. Returns the freed ids,
    sorted; audits them and drops the cached seat map after commit."""
    ids = sorted(set(seat_ids))
    if not ids:
        return []
    with transaction.atomic(), lock_timeout():
        seats = _lock_seats(ids)
        sold = [s for s in seats if s["status"] == SeatStatus.SOLD]
        ticketed = set(
            Ticket.objects.filter(seat_id__in=[s["id"] for s in sold], status=TicketStatus.VALID).values_list(
                "seat_id", flat=True
            )
        )
        freed = [s for s in sold if s["id"] not in ticketed]
        if not freed:
            return []
        freed_ids = [s["id"] for s in freed]
        Seat.objects.filter(pk__in=freed_ids, status=SeatStatus.SOLD).update(status=SeatStatus.FREE, hold=None)
        for organization_id in sorted({s["organization_id"] for s in freed}):
            _audit_seats(
                seat_ids=[s["id"] for s in freed if s["organization_id"] == organization_id],
                organization_id=organization_id,
                source=SeatStatus.SOLD,
                target=SeatStatus.FREE,
                transition="return",
                by=by,
                reason=reason or "ticket refunded",
            )
        for event_id in sorted({s["event_id"] for s in freed}):
            seat_map_invalidate(event_id=event_id)
        return freed_ids


def _expire_hold(*, hold_id: int, now: datetime) -> bool:
    """Close one lapsed hold and free its seats, in its own short transaction.

    With SKIP LOCKED (PostgreSQL), a hold whose seats or row another
    transaction is working on (a late payment finalizing it, a new hold taking
    a seat over) is skipped rather than waited for; the next sweep gets it."""
    skip = connection.features.has_select_for_update_skip_locked
    with transaction.atomic(), lock_timeout():
        found = SeatHold.objects.filter(pk=hold_id).values_list("seat_ids", "event_id").first()
        if found is None:
            return False
        seat_ids, event_id = found
        seats = _lock_seats(sorted(seat_ids), skip_locked=skip)
        if len(seats) < len(seat_ids) and Seat.objects.filter(pk__in=seat_ids).count() > len(seats):
            return False  # some seats are busy: leave the whole hold to the next sweep
        hold = (
            SeatHold.objects.select_for_update(no_key=True, skip_locked=skip)
            .filter(pk=hold_id, status=SeatHoldStatus.ACTIVE, expires_at__lte=now)
            .first()
        )
        if hold is None:
            return False  # extended, closed, or being worked on meanwhile
        mine = [s["id"] for s in seats if s["hold_id"] == hold.pk and s["status"] == SeatStatus.HELD]
        if mine:
            Seat.objects.filter(pk__in=mine).update(status=SeatStatus.FREE, hold=None)
        _close_hold(hold=hold, to_status=SeatHoldStatus.EXPIRED, transition="expire", now=now, reason="expired")
        _audit_seats(
            seat_ids=mine,
            organization_id=hold.organization_id,
            source=SeatStatus.HELD,
            target=SeatStatus.FREE,
            transition="expire",
            reason=f"hold {hold.pk} expired",
        )
        seat_map_invalidate(event_id=event_id)
        return True


def seat_holds_expire(*, now: datetime | None = None, batch: int = 500) -> int:
    """The sweeper: close up to `batch` active holds past their expiry, oldest
    first, freeing the seats they still hold. Returns how many it closed.

    One small transaction per hold, so a sweep never holds many locks and a
    failure loses one hold's work, not the batch. Idempotent: a hold already
    closed, or extended in the meantime, is left alone. Sales never wait for
    it (lazy expiry); it keeps the tables tidy and the seat map honest."""
    now = now or timezone.now()
    hold_ids = list(
        SeatHold.objects.filter(status=SeatHoldStatus.ACTIVE, expires_at__lte=now)
        .order_by("expires_at", "pk")
        .values_list("pk", flat=True)[:batch]
    )
    expired = 0
    for hold_id in hold_ids:
        try:
            expired += _expire_hold(hold_id=hold_id, now=now)
        except Busy:
            # Only without SKIP LOCKED (not PostgreSQL): leave it to the next sweep.
            logger.info("seat hold %s is busy; the next sweep will expire it", hold_id)
    return expired
