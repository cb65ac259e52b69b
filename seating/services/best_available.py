"""Best available: choose n seats of a category for the buyer, then hold them.

The choice (`best_available_pick`) is a pure function of the rows' effective
availability, so it is tested exhaustively without a database:

1. A block of n adjacent seats (same row, consecutive numbers) that leaves no
   single orphan: the free run it sits in keeps either 0 or at least 2 free
   seats on each side of it. Among those: the row closest to the stage
   (Row.position, then the section's position), then the block whose middle is
   nearest the row's centre, then the lower seat number (deterministic).
2. Only if no such block fits anywhere: a block of n that leaves an orphan,
   ranked the same way.
3. Only if no block of n fits at all: split. Take the largest block that fits
   (up to what is still needed), by the same rules, and repeat.

Holding re-checks everything under lock (seat_hold_create), so a choice made
from a slightly stale read can only lose a race, never double-sell; when it
loses, seat_hold_best_available chooses again from a fresh read.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.utils import timezone

from seating.exceptions import InvalidSeatSelection, NoSeatsAvailable, SeatBlocked, SeatUnavailable, UnknownCategory
from seating.models import PriceCategory, SeatHold
from seating.selectors import RowAvailability, RowSeat, seat_rows_for_category
from seating.services.holds import MAX_SEATS_PER_HOLD, seat_hold_create
from ticketing.exceptions import Busy

# (leaves an orphan, row rank, distance from the row centre, first seat number)
_BlockKey = tuple[bool, tuple[int, int, int, int], float, int]


def _free_runs(row: RowAvailability, taken: set[int]) -> list[list[RowSeat]]:
    """Maximal runs of free, untaken seats with consecutive numbers."""
    runs: list[list[RowSeat]] = []
    current: list[RowSeat] = []
    for seat in row.seats:
        if not seat.free or seat.seat_id in taken:
            current = []
            continue
        if current and seat.number != current[-1].number + 1:
            current = []  # a gap in the numbering (an aisle) ends a run
        if not current:
            runs.append(current)
        current.append(seat)
    return runs


def _best_block(rows: Sequence[RowAvailability], quantity: int, taken: set[int]) -> list[int] | None:
    best: tuple[_BlockKey, list[int]] | None = None
    for row in rows:
        for run in _free_runs(row, taken):
            spare = len(run) - quantity
            for start in range(spare + 1):
                left, right = start, spare - start
                block = run[start : start + quantity]
                middle = (block[0].number + block[-1].number) / 2
                key: _BlockKey = (left == 1 or right == 1, row.rank, abs(middle - row.centre), block[0].number)
                if best is None or key < best[0]:
                    best = (key, [seat.seat_id for seat in block])
    return best[1] if best else None


def best_available_pick(rows: Sequence[RowAvailability], quantity: int) -> list[int] | None:
    """The seat ids best available would choose (see the module docstring), or
    None if fewer than `quantity` seats are free. `rows` must be sorted by rank."""
    block = _best_block(rows, quantity, set())
    if block is not None:
        return block
    if sum(seat.free for row in rows for seat in row.seats) < quantity:
        return None
    # No block of n anywhere: split, largest pieces first, so the group stays
    # in as few pieces as the room allows.
    taken: set[int] = set()
    picked: list[int] = []
    while len(picked) < quantity:
        largest = max(len(run) for row in rows for run in _free_runs(row, taken))
        piece = _best_block(rows, min(quantity - len(picked), largest), taken)
        assert piece is not None  # a run of `largest` seats exists
        picked.extend(piece)
        taken.update(piece)
    return picked


def _check_quantity(quantity: Any) -> None:
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= MAX_SEATS_PER_HOLD:
        raise InvalidSeatSelection(
            f"Choose between 1 and {MAX_SEATS_PER_HOLD} seats.",
            detail={"reason": "bad_quantity", "max": MAX_SEATS_PER_HOLD},
        )


def seat_best_available(*, event_id: int, category_id: int, quantity: int, now: datetime | None = None) -> list[int]:
    """Choose `quantity` seats of the category (a read: nothing is locked or
    held). Seats of lapsed holds count as free. Raises UnknownCategory,
    InvalidSeatSelection for a bad quantity, or NoSeatsAvailable."""
    now = now or timezone.now()
    _check_quantity(quantity)
    rows = seat_rows_for_category(event_id=event_id, category_id=category_id, now=now)
    if not rows and not PriceCategory.objects.filter(pk=category_id, plan__event_id=event_id).exists():
        raise UnknownCategory(detail={"category": category_id, "event": event_id})
    picked = best_available_pick(rows, quantity)
    if picked is None:
        free = sum(seat.free for row in rows for seat in row.seats)
        raise NoSeatsAvailable(detail={"category": category_id, "requested": quantity, "free": free})
    return picked


def seat_hold_best_available(
    *,
    event_id: int,
    category_id: int,
    quantity: int,
    expires_at: datetime,
    reference: str = "",
    now: datetime | None = None,
    by: Any = None,
    attempts: int = 3,
) -> SeatHold:
    """Choose and hold `quantity` seats of the category (see seat_hold_create
    for the locks). If another buyer takes a chosen seat first, choose again
    from a fresh read, up to `attempts` times, then raise NoSeatsAvailable (or
    Busy if the last attempt timed out waiting for a lock)."""
    last_error: Exception | None = None
    for _ in range(attempts):
        seat_ids = seat_best_available(event_id=event_id, category_id=category_id, quantity=quantity, now=now)
        try:
            return seat_hold_create(
                event_id=event_id,
                seat_ids=seat_ids,
                expires_at=expires_at,
                reference=reference,
                now=now,
                by=by,
                enforce_orphan_rule=False,
            )
        except (SeatUnavailable, SeatBlocked, Busy) as exc:
            last_error = exc
    if isinstance(last_error, Busy):
        raise last_error
    raise NoSeatsAvailable(
        "The seats went quickly; please try again.",
        detail={"category": category_id, "requested": quantity, "reason": "lost_race", "attempts": attempts},
    )
