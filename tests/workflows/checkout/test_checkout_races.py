"""Many buyers at once: exactly the capacity is sold, no seat twice."""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connections

from seating.models import Seat, SeatStatus
from tests.factories import EventFactory, TicketTypeFactory
from tests.workflows.checkout.conftest import pay
from ticketing.exceptions import Busy, DomainError
from ticketing.models import Order, OrderStatus, Ticket, TicketKind
from workflows.checkout.start import start_checkout
from workflows.engine import sweepers
from workflows.models import ACTIVE_STATUSES, WorkflowRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("require_postgres", "check_inventory")]

BUYERS = 200
# PostgreSQL's default max_connections is 100: 200 buyers share 32 connections.
THREADS = 32


def _rush(buy) -> dict[str, Any]:
    outcomes: dict[str, int] = {}

    def one(i: int) -> None:
        # A buyer told "busy, try again" tries again, as the Retry-After asks.
        try:
            for attempt in range(10):
                try:
                    started = buy(i)
                    pay(started)
                    key = "paid"
                    break
                except Busy:
                    key = "busy"
                    outcomes["retried"] = outcomes.get("retried", 0) + 1
                    time.sleep(0.05 * (attempt + 1))
                except DomainError as exc:
                    key = exc.code
                    break
        finally:
            connections.close_all()
        outcomes[key] = outcomes.get(key, 0) + 1

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(one, range(BUYERS)))
    _drain()
    return outcomes


def _drain(timeout: float = 60) -> None:
    """What beat does in production: fire the retries of runs that met busy locks."""
    deadline = time.monotonic() + timeout
    while WorkflowRun.objects.filter(status__in=ACTIVE_STATUSES, workflow_type="checkout.complete").exists():
        assert time.monotonic() < deadline, "completions did not finish"
        sweepers.wake_due_runs()
        time.sleep(0.2)


def test_200_buyers_for_100_ga_tickets_sell_exactly_100(organization):
    ticket_type = TicketTypeFactory(event=EventFactory(organization=organization), capacity=100)

    outcomes = _rush(
        lambda i: start_checkout(
            event_id=ticket_type.event_id,
            buyer_name=f"Buyer {i}",
            buyer_email=f"b{i}@example.com",
            tickets=[{"ticket_type": ticket_type.pk, "quantity": 1}],
        )
    )

    ticket_type.refresh_from_db()
    print(f"GA rush: {outcomes}")
    assert (ticket_type.sold, ticket_type.held) == (100, 0)
    assert Ticket.objects.filter(ticket_type=ticket_type).count() == 100
    assert Order.objects.filter(status=OrderStatus.PAID).count() == 100
    assert outcomes.get("paid") == 100
    assert set(outcomes) <= {"paid", "sold_out", "retried"}


def test_200_buyers_for_100_seats_sell_each_seat_once(organization):
    from seating.services.plans import seating_plan_create

    event = EventFactory(organization=organization)
    ticket_type = TicketTypeFactory(event=event, kind=TicketKind.SEATED, capacity=100)
    seating_plan_create(
        event=event,
        name="Hall",
        categories=[{"code": "S", "name": "Stalls", "ticket_type": ticket_type}],
        sections=[
            {"name": "Stalls", "rows": [{"label": str(r), "seats": 10, "category_code": "S"} for r in range(10)]}
        ],
    )
    seats = list(Seat.objects.filter(event=event).values_list("pk", flat=True))
    rng = random.Random(5)
    wishes = [rng.choice(seats) for _ in range(BUYERS)]

    outcomes = _rush(
        lambda i: start_checkout(
            event_id=event.pk, buyer_name=f"Buyer {i}", buyer_email=f"b{i}@example.com", seat_ids=[wishes[i]]
        )
    )

    print(f"seat rush: {outcomes}")
    sold = Seat.objects.filter(event=event, status=SeatStatus.SOLD).count()
    tickets = list(Ticket.objects.filter(event=event).values_list("seat_id", flat=True))
    assert len(tickets) == len(set(tickets)) == sold == outcomes.get("paid")
    assert sold == len(set(wishes))  # every wished seat was sold, once
    assert set(outcomes) <= {"paid", "seat_unavailable", "retried"}
