"""After the rush: wait for the asynchronous part to finish, then check the
database (the bench's own Django process reads the bench database).

The figures of a run only count if the audit is clean: nothing oversold, no
seat sold twice, every paid order with its tickets and exactly one ticket
e-mail, the ledger balanced (`manage.py verify_ledger`), no workflow run stuck.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.db.models import Count, Max, Sum
from django.utils import timezone

from seating.models import Seat, SeatStatus
from tests.invariants import inventory_problems
from ticketing.models import EmailDelivery, EmailKind, Order, OrderLine, OrderStatus, Ticket, TicketStatus, TicketType
from ticketing.models.email_delivery import DeliveryStatus
from workflows.models import ACTIVE_STATUSES, WorkflowRun

PAID = (OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED)


def settle(*, codes: Iterable[str], timeout: float) -> dict[str, Any]:
    """Wait until every order the buyers paid for is paid, no workflow run is
    active and every ticket e-mail is sent (or `timeout` passes)."""
    wanted = set(codes)
    started = time.monotonic()
    paid = 0
    while True:
        paid = Order.objects.filter(code__in=wanted, status__in=PAID).count()
        active = WorkflowRun.objects.filter(status__in=ACTIVE_STATUSES).count()
        unsent = EmailDelivery.objects.exclude(status=DeliveryStatus.SENT).count()
        if (paid == len(wanted) and not active and not unsent) or time.monotonic() - started > timeout:
            break
        time.sleep(0.2)
    return {
        "settle_seconds": round(time.monotonic() - started, 2),
        "paid_of_paid_by_buyers": f"{paid}/{len(wanted)}",
        "timed_out": paid != len(wanted) or bool(active) or bool(unsent),
        "active_runs": active,
        "unsent_emails": unsent,
    }


def paid_times(codes: Iterable[str]) -> dict[str, tuple[datetime | None, datetime | None]]:
    """(paid_at, last ticket issued_at) of each order."""
    rows = Order.objects.filter(code__in=list(codes)).annotate(issued=Max("tickets__issued_at"))
    return {o.code: (o.paid_at, o.issued) for o in rows.only("code", "paid_at")}


def verify_ledger(env: dict[str, str], cwd: Path) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "manage.py", "verify_ledger"], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    return {
        "verify_ledger_exit": result.returncode,
        "ledger_balanced": result.returncode == 0,
        "verify_ledger_stderr": result.stderr.strip()[-1000:],
    }


def audit(*, ticket_type_ids: list[int], stuck_after_seconds: int, env: dict[str, str], cwd: Path) -> dict[str, Any]:
    types = list(TicketType.objects.filter(pk__in=ticket_type_ids))
    valid_by_type = dict(
        Ticket.objects.filter(ticket_type_id__in=ticket_type_ids, status=TicketStatus.VALID)
        .values("ticket_type_id")
        .annotate(n=Count("id"))
        .values_list("ticket_type_id", "n")
    )
    capacity = sum(t.capacity for t in types)
    sold = sum(valid_by_type.values())
    oversold = sum(max(0, valid_by_type.get(t.pk, 0) - t.capacity) for t in types) + sum(
        max(0, t.sold + t.held - t.capacity) for t in types
    )

    paid_orders = Order.objects.filter(status__in=PAID)
    wanted_tickets = dict(
        OrderLine.objects.filter(order__status__in=PAID)
        .values("order_id")
        .annotate(n=Sum("quantity"))
        .values_list("order_id", "n")
    )
    issued = dict(
        Ticket.objects.filter(order__status__in=PAID, status=TicketStatus.VALID)
        .values("order_id")
        .annotate(n=Count("id"))
        .values_list("order_id", "n")
    )
    emails = dict(
        EmailDelivery.objects.filter(kind=EmailKind.TICKETS)
        .values("order_id")
        .annotate(n=Count("id"))
        .values_list("order_id", "n")
    )
    sent = dict(
        EmailDelivery.objects.filter(kind=EmailKind.TICKETS, status=DeliveryStatus.SENT)
        .values("order_id")
        .annotate(n=Count("id"))
        .values_list("order_id", "n")
    )
    paid_ids = list(paid_orders.values_list("id", flat=True))
    double_sold = (
        Ticket.objects.filter(status=TicketStatus.VALID, seat__isnull=False)
        .values("seat_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    stuck_before = timezone.now() - timedelta(seconds=stuck_after_seconds)
    active_runs = WorkflowRun.objects.filter(status__in=ACTIVE_STATUSES)
    result: dict[str, Any] = {
        "capacity": capacity,
        "tickets_sold": sold,
        "held_at_end": sum(t.held for t in types),
        "unsold": capacity - sold,
        "oversold": oversold,
        "paid_orders": len(paid_ids),
        "orders_by_status": dict(
            Order.objects.values("status").annotate(n=Count("id")).order_by("status").values_list("status", "n")
        ),
        "paid_orders_missing_tickets": sum(1 for i in paid_ids if issued.get(i, 0) != wanted_tickets.get(i, 0)),
        "paid_orders_without_exactly_one_ticket_email": sum(1 for i in paid_ids if emails.get(i, 0) != 1),
        "paid_orders_email_not_sent": sum(1 for i in paid_ids if sent.get(i, 0) != 1),
        "double_sold_seats": double_sold,
        "inventory_problems": inventory_problems()[:20],
        "active_runs": active_runs.count(),
        "stuck_runs": active_runs.filter(updated_at__lt=stuck_before).count(),
        "stuck_after_seconds": stuck_after_seconds,
    }
    result.update(verify_ledger(env, cwd))
    return result


def seats_left(event_id: int) -> dict[str, int]:
    """Free seats and free adjacent pairs at the end (a lapsed hold counts as
    free only once swept; the run waits until no checkout is active)."""
    seats = Seat.objects.filter(event_id=event_id).values("row_id", "number", "status")
    by_row: dict[int, dict[int, str]] = {}
    for seat in seats:
        by_row.setdefault(seat["row_id"], {})[seat["number"]] = seat["status"]
    free = sum(1 for row in by_row.values() for status in row.values() if status == SeatStatus.FREE)
    pairs = disjoint = 0
    for row in by_row.values():
        run = 0
        for number in sorted(row):
            if row[number] == SeatStatus.FREE:
                run = run + 1 if row.get(number - 1) == SeatStatus.FREE else 1
                pairs += run >= 2
                disjoint += run % 2 == 0
            else:
                run = 0
    # adjacent pairs may overlap (3 free seats make 2); disjoint pairs are buyers servable
    return {"free_seats": free, "free_adjacent_pairs": pairs, "free_disjoint_pairs": disjoint}
