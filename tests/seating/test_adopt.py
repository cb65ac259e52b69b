"""seat_hold_adopt: a buyer's seat-map hold handed to their order.

The order gets the very hold the buyer made (no second hold, no seat changes
state); a lapsed, closed, foreign or already claimed hold is refused with its
own error and nothing changes. The races run on real PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from seating.exceptions import (
    HoldLost,
    InvalidSeatSelection,
    SeatHoldExpired,
    SeatHoldInUse,
    SeatHoldMismatch,
    SeatHoldNotFound,
    SeatUnavailable,
)
from seating.models import Seat, SeatHold, SeatHoldStatus, SeatStatus
from seating.services.holds import (
    seat_hold_adopt,
    seat_hold_create,
    seat_hold_finalize,
    seat_hold_release,
    seat_holds_expire,
)
from tests.factories import EventFactory
from tests.seating.factories import make_hall
from tests.seating.test_holds import snapshot
from tests.seating.test_races import race
from ticketing.exceptions import InvalidInput
from ticketing.models import AuditLogEntry


def _page_hold(hall, numbers, *, now, minutes=15):
    """A hold as the seat map page makes it: no reference (unclaimed)."""
    return seat_hold_create(
        event_id=hall.event.pk, seat_ids=hall.seats("A", numbers), expires_at=now + timedelta(minutes=minutes), now=now
    )


@pytest.mark.django_db
class TestAdopt:
    def test_the_order_gets_the_same_hold_until_its_own_expiry(self, hall, now):
        hold = _page_hold(hall, [4, 5], now=now)
        order_expiry = now + timedelta(minutes=20)
        seats_before = list(Seat.objects.order_by("pk").values_list("pk", "status", "hold_id"))

        adopted = seat_hold_adopt(
            token=hold.token,
            event_id=hall.event.pk,
            order_code="order-1",
            seat_ids=hall.seats("A", [5, 4]),  # any order: compared as a set
            expires_at=order_expiry,
            now=now,
        )

        assert adopted.pk == hold.pk
        hold.refresh_from_db()
        assert (hold.reference, hold.expires_at, hold.status) == ("order-1", order_expiry, SeatHoldStatus.ACTIVE)
        assert SeatHold.objects.count() == 1
        assert list(Seat.objects.order_by("pk").values_list("pk", "status", "hold_id")) == seats_before
        audit = AuditLogEntry.objects.get(transition="adopt")
        assert (audit.object_id, audit.field, audit.source_state, audit.target_state) == (
            str(hold.pk),
            "reference",
            "unclaimed",
            "order-1",
        )

    def test_the_adopted_hold_is_sold_and_released_as_the_orders_own(self, hall, now):
        sold = _page_hold(hall, [1, 2], now=now)
        released = _page_hold(hall, [7], now=now)
        for hold, code in ((sold, "order-1"), (released, "order-2")):
            seat_hold_adopt(
                token=hold.token,
                event_id=hall.event.pk,
                order_code=code,
                seat_ids=hold.seat_ids,
                expires_at=now + timedelta(minutes=15),
                now=now,
            )

        assert seat_hold_finalize(hold_id=sold.pk) == sorted(sold.seat_ids)
        assert seat_hold_release(hold_id=released.pk) is True

        assert set(Seat.objects.filter(status=SeatStatus.SOLD).values_list("pk", "hold_id")) == {
            (seat_id, sold.pk) for seat_id in sold.seat_ids
        }
        assert Seat.objects.get(pk=released.seat_ids[0]).status == SeatStatus.FREE

    def test_adopting_again_for_the_same_order_is_a_no_op(self, hall, now):
        hold = _page_hold(hall, [3], now=now)
        args = {
            "token": hold.token,
            "event_id": hall.event.pk,
            "order_code": "order-1",
            "seat_ids": hold.seat_ids,
            "expires_at": now + timedelta(minutes=15),
            "now": now,
        }
        seat_hold_adopt(**args)
        before = snapshot()

        assert seat_hold_adopt(**args).pk == hold.pk
        seat_hold_finalize(hold_id=hold.pk)
        assert seat_hold_adopt(**args).status == SeatHoldStatus.CONVERTED  # a retried step after payment
        assert snapshot()[2] == before[2] + 1 + 1  # only the sale's own audit rows (hold + seat)

    @pytest.mark.parametrize("how", ["lapsed", "swept", "released"])
    def test_a_hold_that_ended_is_refused_as_expired(self, hall, now, how):
        hold = _page_hold(hall, [4, 5], now=now - timedelta(minutes=20))  # lapsed 5 minutes ago
        if how == "swept":
            seat_holds_expire(now=now)
        if how == "released":
            hold = _page_hold(hall, [8], now=now)
            seat_hold_release(hold_id=hold.pk)
        before = snapshot()

        with pytest.raises(SeatHoldExpired) as exc:
            seat_hold_adopt(
                token=hold.token,
                event_id=hall.event.pk,
                order_code="order-1",
                seat_ids=hold.seat_ids,
                expires_at=now + timedelta(minutes=15),
                now=now,
            )

        assert (exc.value.code, exc.value.status) == ("seat_hold_expired", 410)
        assert snapshot() == before

    def test_a_lapsed_hold_whose_seats_were_taken_is_refused_and_stays_taken(self, hall, now):
        lapsed = _page_hold(hall, [4, 5], now=now - timedelta(minutes=20))
        newer = _page_hold(hall, [5, 6], now=now)

        with pytest.raises(SeatHoldExpired):
            seat_hold_adopt(
                token=lapsed.token,
                event_id=hall.event.pk,
                order_code="order-1",
                seat_ids=lapsed.seat_ids,
                expires_at=now + timedelta(minutes=15),
                now=now,
            )

        assert Seat.objects.get(pk=hall.seat("A", 5)).hold_id == newer.pk

    def test_unknown_tokens_and_other_events_holds_are_not_found(self, hall, now):
        hold = _page_hold(hall, [4], now=now)
        other = EventFactory(organization=hall.event.organization)
        before = snapshot()

        for token, event_id in (("no-such-token", hall.event.pk), ("", hall.event.pk), (hold.token, other.pk)):
            with pytest.raises(SeatHoldNotFound):
                seat_hold_adopt(
                    token=token,
                    event_id=event_id,
                    order_code="order-1",
                    seat_ids=hold.seat_ids,
                    expires_at=now + timedelta(minutes=15),
                    now=now,
                )
        assert snapshot() == before

    def test_a_hold_claimed_by_another_order_is_in_use(self, hall, now):
        hold = _page_hold(hall, [4, 5], now=now)
        seat_hold_adopt(
            token=hold.token,
            event_id=hall.event.pk,
            order_code="order-1",
            seat_ids=hold.seat_ids,
            expires_at=now + timedelta(minutes=15),
            now=now,
        )
        before = snapshot()

        with pytest.raises(SeatHoldInUse) as exc:
            seat_hold_adopt(
                token=hold.token,
                event_id=hall.event.pk,
                order_code="order-2",
                seat_ids=hold.seat_ids,
                expires_at=now + timedelta(minutes=15),
                now=now,
            )

        assert exc.value.detail == {"hold": hold.pk, "order": "order-1"}
        assert snapshot() == before
        assert SeatHold.objects.get(pk=hold.pk).reference == "order-1"

    @pytest.mark.parametrize("numbers", [[4], [4, 5, 6], [6, 7]])
    def test_other_seats_than_the_holds_are_a_mismatch(self, hall, now, numbers):
        hold = _page_hold(hall, [4, 5], now=now)
        before = snapshot()

        with pytest.raises(SeatHoldMismatch) as exc:
            seat_hold_adopt(
                token=hold.token,
                event_id=hall.event.pk,
                order_code="order-1",
                seat_ids=hall.seats("A", numbers),
                expires_at=now + timedelta(minutes=15),
                now=now,
            )

        assert exc.value.detail["held"] == sorted(hold.seat_ids)
        assert snapshot() == before

    def test_bad_arguments_change_nothing(self, hall, now):
        hold = _page_hold(hall, [4], now=now)
        before = snapshot()
        good = {
            "token": hold.token,
            "event_id": hall.event.pk,
            "order_code": "order-1",
            "seat_ids": hold.seat_ids,
            "expires_at": now + timedelta(minutes=15),
            "now": now,
        }
        for bad, error in (
            ({"expires_at": now - timedelta(seconds=1)}, InvalidInput),
            ({"expires_at": (now + timedelta(minutes=5)).replace(tzinfo=None)}, InvalidInput),
            ({"order_code": ""}, InvalidInput),
            ({"seat_ids": []}, InvalidSeatSelection),
        ):
            with pytest.raises(error):
                seat_hold_adopt(**{**good, **bad})
        assert snapshot() == before

    def test_a_broken_hold_is_not_adopted(self, hall, now):
        hold = _page_hold(hall, [4, 5], now=now)
        # Not reachable through the services: a seat the hold lists was freed behind its back.
        Seat.objects.filter(pk=hall.seat("A", 5)).update(status=SeatStatus.FREE, hold=None)

        with pytest.raises(HoldLost):
            seat_hold_adopt(
                token=hold.token,
                event_id=hall.event.pk,
                order_code="order-1",
                seat_ids=hold.seat_ids,
                expires_at=now + timedelta(minutes=15),
                now=now,
            )
        assert SeatHold.objects.get(pk=hold.pk).reference == ""


@pytest.mark.django_db
class TestReleaseByTheBuyer:
    """seat_hold_release(unclaimed_only=True): the buyer lets go of their own
    hold by its token; a hold an order adopted is the order's."""

    def test_an_unclaimed_hold_is_released(self, hall, now):
        hold = _page_hold(hall, [2, 3], now=now)
        assert seat_hold_release(hold_id=hold.pk, unclaimed_only=True) is True
        assert set(Seat.objects.filter(pk__in=hold.seat_ids).values_list("status", "hold_id")) == {
            (SeatStatus.FREE, None)
        }
        assert seat_hold_release(hold_id=hold.pk, unclaimed_only=True) is False  # safe to repeat

    def test_an_adopted_hold_is_refused_and_stays_the_orders(self, hall, now):
        hold = _page_hold(hall, [2, 3], now=now)
        seat_hold_adopt(
            token=hold.token,
            event_id=hall.event.pk,
            order_code="order-1",
            seat_ids=hold.seat_ids,
            expires_at=now + timedelta(minutes=15),
            now=now,
        )
        before = snapshot()

        with pytest.raises(SeatHoldInUse) as exc:
            seat_hold_release(hold_id=hold.pk, unclaimed_only=True)

        assert exc.value.detail["order"] == "order-1"
        assert snapshot() == before
        # The order's own checkout still releases it (cancelled, expired).
        assert seat_hold_release(hold_id=hold.pk) is True
        assert seat_hold_release(hold_id=hold.pk, unclaimed_only=True) is False


# --- races on PostgreSQL -------------------------------------------------------------------

THREADS = 16


@pytest.fixture
def pg(require_postgres, check_inventory):
    """PostgreSQL, and the inventory invariants checked after the test body."""


@pytest.mark.django_db(transaction=True)
def test_adopting_races_new_holds_and_other_checkouts_for_the_same_seats(pg):
    """Half the threads are checkouts adopting one buyer's live hold (the same
    form sent many times), half are other buyers holding the same seats: one
    checkout gets the hold, every other buyer is told the seats are taken."""
    for round_no in range(3):
        event = EventFactory()
        hall = make_hall(event, rows=[("A", 10)])
        seats = hall.seats("A", [4, 5, 6])
        hold = seat_hold_create(event_id=event.pk, seat_ids=seats, expires_at=timezone.now() + timedelta(minutes=15))
        order_expiry = timezone.now() + timedelta(minutes=20)

        def work(i: int, hold=hold, seats=seats, event=event, order_expiry=order_expiry, round_no=round_no):
            if i % 2 == 0:
                return seat_hold_adopt(
                    token=hold.token,
                    event_id=event.pk,
                    order_code=f"order-{round_no}-{i}",
                    seat_ids=seats,
                    expires_at=order_expiry,
                ).reference
            return seat_hold_create(
                event_id=event.pk, seat_ids=seats[i % 3 :], expires_at=timezone.now() + timedelta(minutes=15)
            )

        report = race(work, threads=THREADS, conflicts=(SeatHoldInUse, SeatUnavailable))
        print(report.line(f"adopt vs new holds, round {round_no}"))

        assert report.unexpected == [] and report.deadlocks == 0 and report.busy == 0
        adopted_by = [value for kind, value in report.outcomes if kind == "ok"]
        assert len(adopted_by) == 1, "exactly one checkout adopts the hold; no new hold takes its seats"
        hold.refresh_from_db()
        assert hold.reference == adopted_by[0] and hold.expires_at == order_expiry
        assert set(Seat.objects.filter(event=event, status=SeatStatus.HELD).values_list("pk", "hold_id")) == {
            (seat_id, hold.pk) for seat_id in seats
        }
        assert SeatHold.objects.filter(event=event).count() == 1
        in_use = [value for kind, value in report.outcomes if isinstance(value, SeatHoldInUse)]
        assert len(in_use) == THREADS // 2 - 1
        assert all(exc.detail["order"] == hold.reference for exc in in_use)


@pytest.mark.django_db(transaction=True)
def test_a_lapsed_hold_is_never_adopted_while_new_holds_take_its_seats(pg):
    """The hold lapsed just before the checkout: checkouts adopting it race
    other buyers holding its seats. Every adoption is refused (the seats may be
    someone else's by now), and exactly one other buyer gets each seat."""
    event = EventFactory()
    hall = make_hall(event, rows=[("A", 10)])
    seats = hall.seats("A", [4, 5, 6])
    past = timezone.now() - timedelta(minutes=20)
    lapsed = seat_hold_create(event_id=event.pk, seat_ids=seats, expires_at=past + timedelta(minutes=15), now=past)

    def work(i: int):
        if i % 2 == 0:
            return seat_hold_adopt(
                token=lapsed.token,
                event_id=event.pk,
                order_code=f"order-{i}",
                seat_ids=seats,
                expires_at=timezone.now() + timedelta(minutes=15),
            )
        return seat_hold_create(
            event_id=event.pk, seat_ids=seats[i % 3 :], expires_at=timezone.now() + timedelta(minutes=15)
        )

    report = race(work, threads=THREADS, conflicts=(SeatHoldExpired, SeatUnavailable))
    print(report.line("adopt a lapsed hold vs new holds"))

    assert report.unexpected == [] and report.deadlocks == 0 and report.busy == 0
    refused = [value for kind, value in report.outcomes if isinstance(value, SeatHoldExpired)]
    assert len(refused) == THREADS // 2
    winners = [value for kind, value in report.outcomes if kind == "ok"]
    assert winners and all(isinstance(w, SeatHold) for w in winners)
    lapsed.refresh_from_db()
    assert lapsed.reference == ""
    # Each seat went to the one winner that wanted it; the others still sit
    # with the lapsed hold (which protects nothing) until the sweeper runs.
    holders = dict(Seat.objects.filter(pk__in=seats, status=SeatStatus.HELD).values_list("pk", "hold_id"))
    for seat_id in seats:
        owners = [w.pk for w in winners if seat_id in w.seat_ids]
        assert len(owners) <= 1
        assert holders[seat_id] == (owners[0] if owners else lapsed.pk)


@pytest.mark.django_db(transaction=True)
def test_the_buyers_release_racing_adoption_has_one_winner(pg):
    """A buyer's release by token and their checkout adopting the same hold,
    at once: either the order has the hold (the release is refused) or the
    hold is released (the adoption is refused as expired); never an order
    holding a released hold."""
    event = EventFactory()
    hall = make_hall(event, rows=[("A", 10)])
    for round_no in range(6):
        hold = _page_hold(hall, [round_no + 1], now=timezone.now())
        order_code = f"order-{round_no}"

        def work(i: int, hold=hold, order_code=order_code):
            if i == 0:
                return seat_hold_release(hold_id=hold.pk, unclaimed_only=True)
            return seat_hold_adopt(
                token=hold.token,
                event_id=event.pk,
                order_code=order_code,
                seat_ids=hold.seat_ids,
                expires_at=timezone.now() + timedelta(minutes=15),
            ).reference

        report = race(work, threads=2, conflicts=(SeatHoldInUse, SeatHoldExpired))
        assert report.unexpected == [] and report.deadlocks == 0 and report.busy == 0
        assert report.successes == 1 and report.conflicts == 1
        hold.refresh_from_db()
        seat = Seat.objects.get(pk=hold.seat_ids[0])
        if report.outcomes[1][0] == "ok":
            assert isinstance(report.outcomes[0][1], SeatHoldInUse)
            assert (hold.status, hold.reference) == (SeatHoldStatus.ACTIVE, order_code)
            assert (seat.status, seat.hold_id) == (SeatStatus.HELD, hold.pk)
        else:
            assert isinstance(report.outcomes[1][1], SeatHoldExpired)
            assert (hold.status, hold.reference) == (SeatHoldStatus.RELEASED, "")
            assert (seat.status, seat.hold_id) == (SeatStatus.FREE, None)
