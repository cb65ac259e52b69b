"""Checks of the inventory invariants, run after every race and fault test,
and of the ledger, run after every test that used the database.

No oversell: sold + held never exceeds a ticket type's capacity, and the
counters agree with the holds and tickets behind them; a seat is held or sold
by at most one order. A refund puts its tickets' units and seats back on
sale: a refunded general-admission ticket is one unit less sold, and a
refunded seat no longer belongs to the hold that first sold it.
"""

from __future__ import annotations

from django.db.models import Count, Sum

from ticketing.models import CapacityHold, HoldStatus, Ticket, TicketKind, TicketStatus, TicketType


def inventory_problems() -> list[str]:
    problems: list[str] = []
    from seating.models import Seat, SeatHold, SeatHoldStatus, SeatStatus

    active_held = dict(
        CapacityHold.objects.filter(status=HoldStatus.ACTIVE)
        .values("ticket_type_id")
        .annotate(n=Sum("quantity"))
        .values_list("ticket_type_id", "n")
    )
    converted = dict(
        CapacityHold.objects.filter(status=HoldStatus.CONVERTED)
        .values("ticket_type_id")
        .annotate(n=Sum("quantity"))
        .values_list("ticket_type_id", "n")
    )
    returned = dict(
        Ticket.objects.filter(status=TicketStatus.REFUNDED, seat__isnull=True)
        .values("ticket_type_id")
        .annotate(n=Count("id"))
        .values_list("ticket_type_id", "n")
    )
    for tt in TicketType.objects.all():
        if tt.sold + tt.held > tt.capacity:
            problems.append(f"ticket type {tt.pk} oversold: sold {tt.sold} + held {tt.held} > capacity {tt.capacity}")
        if tt.kind == TicketKind.GENERAL_ADMISSION:
            if tt.held != active_held.get(tt.pk, 0):
                problems.append(f"ticket type {tt.pk}: held {tt.held} != active holds {active_held.get(tt.pk, 0)}")
            sold = converted.get(tt.pk, 0) - returned.get(tt.pk, 0)
            if tt.sold != sold:
                problems.append(f"ticket type {tt.pk}: sold {tt.sold} != converted holds - refunded tickets {sold}")

    # A seat is sold by at most one valid ticket and held by at most one hold.
    for seat_id, n in (
        Ticket.objects.filter(status=TicketStatus.VALID, seat__isnull=False)
        .values("seat_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .values_list("seat_id", "n")
    ):
        problems.append(f"seat {seat_id} has {n} valid tickets")
    owned = dict(Seat.objects.exclude(hold=None).values_list("id", "hold_id"))
    hold_status = dict(SeatHold.objects.values_list("id", "status"))
    for seat in Seat.objects.filter(status=SeatStatus.HELD).only("id", "hold_id"):
        if seat.hold_id is None:
            problems.append(f"seat {seat.pk} is held without a hold")
        elif hold_status.get(seat.hold_id) != SeatHoldStatus.ACTIVE:
            problems.append(f"seat {seat.pk} is held by hold {seat.hold_id}, which is {hold_status.get(seat.hold_id)}")
    refunded_seats = set(
        Ticket.objects.filter(status=TicketStatus.REFUNDED, seat__isnull=False).values_list("seat_id", "order__code")
    )
    for hold in SeatHold.objects.filter(status=SeatHoldStatus.CONVERTED):
        for seat_id in hold.seat_ids:
            if owned.get(seat_id) != hold.pk and (seat_id, hold.reference) not in refunded_seats:
                problems.append(f"converted hold {hold.pk} does not own seat {seat_id}")
    sold_seats = Seat.objects.filter(status=SeatStatus.SOLD)
    for seat in sold_seats.only("id", "hold_id"):
        if seat.hold_id is None:
            problems.append(f"seat {seat.pk} is sold without the hold that sold it")
        elif hold_status.get(seat.hold_id) != SeatHoldStatus.CONVERTED:
            problems.append(f"seat {seat.pk} is sold by hold {seat.hold_id}, which is {hold_status.get(seat.hold_id)}")
    return problems


def assert_inventory_consistent() -> None:
    problems = inventory_problems()
    assert not problems, "inventory invariants broken:\n" + "\n".join(problems)


def ledger_problems() -> list[str]:
    """What `manage.py verify_ledger` would report (the same function), or
    nothing when the ledger is empty (the check then costs one query) or the
    test left its transaction unusable (a test of a database error)."""
    from django.db import connection

    from finance.models import JournalTransaction
    from finance.selectors import ledger_verify

    if connection.needs_rollback:
        return []
    if not JournalTransaction.objects.exists():
        return []
    return [str(difference) for difference in ledger_verify().differences]
