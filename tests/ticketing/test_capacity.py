from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from tests.concurrency import run_concurrently
from tests.factories import EventFactory, TicketTypeFactory
from ticketing.exceptions import (
    CapacityHoldLost,
    InvalidQuantity,
    NotOnSale,
    SalesEnded,
    SalesNotStarted,
    SoldOut,
)
from ticketing.models import CapacityHold, EventStatus, HoldStatus, TicketType
from ticketing.selectors import ticket_type_availability
from ticketing.services.capacity import (
    capacity_convert,
    capacity_expire_all,
    capacity_release,
    capacity_reserve,
)


def _in(minutes: int):
    return timezone.now() + timedelta(minutes=minutes)


def _reserve(tt_id: int, quantity: int, minutes: int = 15) -> CapacityHold:
    tt = TicketType.objects.select_related("event").get(pk=tt_id)
    return capacity_reserve(ticket_type=tt, quantity=quantity, expires_at=_in(minutes))


def _snapshot(tt: TicketType) -> tuple[int, int, int]:
    tt.refresh_from_db()
    return tt.sold, tt.held, CapacityHold.objects.count()


# --- races on real PostgreSQL ----------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_fifty_threads_racing_for_the_last_units_never_exceed_capacity(require_postgres, check_inventory):
    # given a ticket type with only 10 of 100 units left
    tt = TicketTypeFactory(capacity=100, max_per_order=4)
    _reserve(tt.pk, 4)
    capacity_convert(hold_id=_reserve(tt.pk, 4).pk)
    for _ in range(20):
        capacity_convert(hold_id=_reserve(tt.pk, 4).pk)
    tt.refresh_from_db()
    assert tt.capacity - tt.sold - tt.held == 100 - 4 - 84

    rng = random.Random(7)
    quantities = [rng.randint(1, 4) for _ in range(50)]

    # when 50 buyers race for the last 12 units
    results = run_concurrently([lambda q=q: _reserve(tt.pk, q) for q in quantities])

    # then the successful reservations add up exactly and nothing is oversold
    won = [q for q, (hold, exc) in zip(quantities, results, strict=True) if exc is None]
    errors = [exc for _, exc in results if exc is not None]
    assert all(isinstance(e, SoldOut) for e in errors), errors
    tt.refresh_from_db()
    assert tt.held == 4 + sum(won)
    assert tt.sold + tt.held <= tt.capacity
    # the pool was drained as far as the requests allowed: what is left is
    # smaller than every request that lost
    left = tt.capacity - tt.sold - tt.held
    lost = [q for q, (_, exc) in zip(quantities, results, strict=True) if exc is not None]
    assert all(q > left for q in lost)
    print(f"capacity race: attempts={len(quantities)} successes={len(won)} units={sum(won)} left={left}")


@pytest.mark.django_db(transaction=True)
def test_racing_buyers_take_lapsed_holds_without_any_sweeper(require_postgres, check_inventory):
    # given a ticket type fully held by checkouts that have all lapsed
    tt = TicketTypeFactory(capacity=30, max_per_order=3)
    for _ in range(10):
        _reserve(tt.pk, 3, minutes=-1)
    assert ticket_type_availability(ticket_type=TicketType.objects.get(pk=tt.pk)).available == 30

    # when 40 buyers race for 1 to 3 units, with no sweeper running
    rng = random.Random(11)
    quantities = [rng.randint(1, 3) for _ in range(40)]
    results = run_concurrently([lambda q=q: _reserve(tt.pk, q) for q in quantities])

    # then the lapsed holds were released exactly once and the new ones fit
    won = sum(q for q, (_, exc) in zip(quantities, results, strict=True) if exc is None)
    assert all(isinstance(exc, SoldOut) for _, exc in results if exc is not None)
    tt.refresh_from_db()
    assert tt.held == won <= 30
    assert CapacityHold.objects.filter(status=HoldStatus.EXPIRED).count() == 10


@pytest.mark.django_db(transaction=True)
def test_concurrent_release_convert_and_sweep_settle_each_hold_once(require_postgres, check_inventory):
    tt = TicketTypeFactory(capacity=200, max_per_order=2)
    holds = [_reserve(tt.pk, 2, minutes=-1 if i % 2 else 15) for i in range(40)]
    fns = []
    for hold in holds:
        fns.append(lambda h=hold: capacity_release(hold_id=h.pk))
        fns.append(lambda h=hold: capacity_convert(hold_id=h.pk))
    fns.append(capacity_expire_all)
    results = run_concurrently(fns)
    assert all(exc is None or isinstance(exc, CapacityHoldLost) for _, exc in results)
    tt.refresh_from_db()
    assert tt.held == 0
    assert tt.sold == 2 * CapacityHold.objects.filter(status=HoldStatus.CONVERTED).count()


# --- lazy expiry, idempotency ----------------------------------------------------------


@pytest.mark.django_db
def test_an_expired_hold_never_blocks_a_new_reservation(ticket_type):
    ticket_type.capacity = 5
    ticket_type.save()
    stale = _reserve(ticket_type.pk, 5, minutes=-1)

    fresh = _reserve(ticket_type.pk, 5)

    stale.refresh_from_db()
    ticket_type.refresh_from_db()
    assert stale.status == HoldStatus.EXPIRED
    assert fresh.status == HoldStatus.ACTIVE
    assert (ticket_type.held, ticket_type.sold) == (5, 0)
    with pytest.raises(SoldOut):
        _reserve(ticket_type.pk, 1)


@pytest.mark.django_db
def test_release_and_convert_are_idempotent(ticket_type):
    hold = _reserve(ticket_type.pk, 3)
    assert capacity_release(hold_id=hold.pk) is True
    assert capacity_release(hold_id=hold.pk) is False
    ticket_type.refresh_from_db()
    assert ticket_type.held == 0

    hold = _reserve(ticket_type.pk, 2)
    capacity_convert(hold_id=hold.pk)
    capacity_convert(hold_id=hold.pk)
    ticket_type.refresh_from_db()
    assert (ticket_type.held, ticket_type.sold) == (0, 2)
    assert capacity_release(hold_id=hold.pk) is False


@pytest.mark.django_db
def test_converting_a_hold_the_sweeper_expired_reports_it_lost(ticket_type):
    hold = _reserve(ticket_type.pk, 2, minutes=-1)
    assert capacity_expire_all() == 2
    with pytest.raises(CapacityHoldLost):
        capacity_convert(hold_id=hold.pk)
    ticket_type.refresh_from_db()
    assert (ticket_type.held, ticket_type.sold) == (0, 0)


@pytest.mark.django_db
def test_a_lapsed_hold_not_yet_swept_can_still_be_converted(ticket_type):
    # A late payment for units nobody else has taken keeps them.
    hold = _reserve(ticket_type.pk, 2, minutes=-1)
    capacity_convert(hold_id=hold.pk)
    ticket_type.refresh_from_db()
    assert (ticket_type.held, ticket_type.sold) == (0, 2)


# --- bad input changes nothing ------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("quantity", "error"),
    [
        (0, InvalidQuantity),
        (-1, InvalidQuantity),
        (11, InvalidQuantity),
        (2.5, InvalidQuantity),
        (True, InvalidQuantity),
    ],
)
def test_bad_quantities_are_refused_and_change_nothing(ticket_type, quantity, error):
    before = _snapshot(ticket_type)
    with pytest.raises(error) as info:
        capacity_reserve(ticket_type=ticket_type, quantity=quantity, expires_at=_in(15))
    assert info.value.code == "invalid_quantity"
    assert info.value.status == 400
    assert _snapshot(ticket_type) == before


@pytest.mark.django_db
def test_min_per_order_is_enforced(ticket_type):
    ticket_type.min_per_order = 2
    ticket_type.save()
    with pytest.raises(InvalidQuantity):
        capacity_reserve(ticket_type=ticket_type, quantity=1, expires_at=_in(15))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "error", "code"),
    [
        ({"event_status": EventStatus.DRAFT}, NotOnSale, "not_on_sale"),
        ({"event_status": EventStatus.SALES_CLOSED}, NotOnSale, "not_on_sale"),
        ({"is_active": False}, NotOnSale, "not_on_sale"),
        ({"sales_start": 60}, SalesNotStarted, "sales_not_started"),
        ({"sales_end": -60}, SalesEnded, "sales_ended"),
    ],
)
def test_tickets_not_on_sale_are_refused_and_change_nothing(organization, change, error, code):
    event = EventFactory(organization=organization, status=change.get("event_status", EventStatus.ON_SALE))
    tt = TicketTypeFactory(
        event=event,
        is_active=change.get("is_active", True),
        sales_start=_in(change["sales_start"]) if "sales_start" in change else None,
        sales_end=_in(change["sales_end"]) if "sales_end" in change else None,
    )
    tt = TicketType.objects.select_related("event").get(pk=tt.pk)
    before = _snapshot(tt)
    with pytest.raises(error) as info:
        capacity_reserve(ticket_type=tt, quantity=1, expires_at=_in(15))
    assert info.value.code == code
    assert info.value.status == 409
    assert _snapshot(tt) == before


@pytest.mark.django_db
def test_sold_out_is_a_clear_error_that_changes_nothing(ticket_type):
    ticket_type.capacity = 3
    ticket_type.save()
    _reserve(ticket_type.pk, 3)
    before = _snapshot(ticket_type)
    with pytest.raises(SoldOut) as info:
        _reserve(ticket_type.pk, 1)
    assert info.value.as_dict()["code"] == "sold_out"
    assert _snapshot(ticket_type) == before


@pytest.mark.django_db
def test_the_database_itself_refuses_an_oversell(ticket_type, require_postgres):
    # Even code that bypasses the service cannot oversell: a CHECK constraint.
    with pytest.raises(IntegrityError), transaction.atomic():
        TicketType.objects.filter(pk=ticket_type.pk).update(sold=F("capacity") + 1)


@pytest.mark.django_db(transaction=True)
def test_a_held_lock_becomes_busy_not_a_hung_request(require_postgres, settings):
    from threading import Event as Signal
    from threading import Thread

    from django.db import connections

    from ticketing.exceptions import Busy

    settings.LOCK_TIMEOUT_MS = 200
    tt = TicketTypeFactory(capacity=10)
    locked, done = Signal(), Signal()

    def hold_row_lock() -> None:
        with transaction.atomic():
            TicketType.objects.select_for_update().get(pk=tt.pk)
            locked.set()
            done.wait(10)
        connections.close_all()

    blocker = Thread(target=hold_row_lock)
    blocker.start()
    assert locked.wait(10)
    try:
        with pytest.raises(Busy) as info:
            _reserve(tt.pk, 1)
        assert info.value.status == 429
    finally:
        done.set()
        blocker.join()
    assert connection.vendor == "postgresql"


@pytest.mark.django_db
def test_the_sweeper_task_leaves_recently_lapsed_holds_to_their_checkout(ticket_type, settings):
    from ticketing.tasks import expire_capacity_holds

    settings.HOLD_SWEEP_GRACE_SECONDS = 600
    old = _reserve(ticket_type.pk, 2, minutes=-11)
    recent = _reserve(ticket_type.pk, 3, minutes=-1)
    assert expire_capacity_holds.delay().get() == 2
    old.refresh_from_db()
    recent.refresh_from_db()
    assert (old.status, recent.status) == (HoldStatus.EXPIRED, HoldStatus.ACTIVE)


@pytest.mark.django_db
def test_retake_resells_the_units_of_a_lapsed_hold_when_there_is_room(ticket_type):
    from ticketing.services.capacity import capacity_retake

    ticket_type.capacity = 4
    ticket_type.save()
    lapsed = _reserve(ticket_type.pk, 2, minutes=-1)
    capacity_expire_all()
    assert capacity_retake(hold_id=lapsed.pk) is True
    assert capacity_retake(hold_id=lapsed.pk) is True  # idempotent
    ticket_type.refresh_from_db()
    assert (ticket_type.sold, ticket_type.held) == (2, 0)

    gone = _reserve(ticket_type.pk, 2, minutes=-1)
    capacity_expire_all()
    _reserve(ticket_type.pk, 2)  # someone else took the last units
    assert capacity_retake(hold_id=gone.pk) is False
    ticket_type.refresh_from_db()
    assert (ticket_type.sold, ticket_type.held) == (2, 2)
