from __future__ import annotations

from datetime import timedelta

import pytest

from seating.exceptions import (
    HoldLost,
    InvalidSeatSelection,
    OrphanSeat,
    SeatBlocked,
    SeatHoldExpired,
    SeatHoldNotFound,
    SeatUnavailable,
    SeatWrongEvent,
    UnknownSeat,
)
from seating.models import Seat, SeatHold, SeatHoldStatus, SeatStatus
from seating.services.holds import (
    MAX_SEATS_PER_HOLD,
    seat_hold_create,
    seat_hold_extend,
    seat_hold_finalize,
    seat_hold_release,
    seat_holds_expire,
)
from seating.services.plans import seat_block
from seating.tasks import expire_seat_holds
from tests.factories import EventFactory
from tests.invariants import assert_inventory_consistent
from tests.seating.factories import make_hall, sell
from ticketing.exceptions import InvalidInput
from ticketing.models import AuditLogEntry

pytestmark = pytest.mark.django_db


def snapshot() -> tuple:
    """Everything a failed call must leave untouched."""
    return (
        list(Seat.objects.order_by("pk").values_list("pk", "status", "hold_id")),
        list(SeatHold.objects.order_by("pk").values_list("pk", "status", "expires_at", "closed_at")),
        AuditLogEntry.objects.count(),
    )


def states(ids: list[int]) -> list[tuple[str, int | None]]:
    by_id = dict(Seat.objects.filter(pk__in=ids).values_list("pk", "status"))
    holds = dict(Seat.objects.filter(pk__in=ids).values_list("pk", "hold_id"))
    return [(by_id[i], holds[i]) for i in ids]


# --- create -------------------------------------------------------------------------


def test_create_holds_exactly_the_chosen_seats_with_audit_rows(hall, now, later):
    chosen = hall.seats("A", [5, 3, 4])

    hold = seat_hold_create(event_id=hall.event.pk, seat_ids=chosen, expires_at=later, reference="order-1", now=now)

    assert hold.seat_ids == sorted(chosen)
    assert hold.status == SeatHoldStatus.ACTIVE
    assert hold.organization_id == hall.event.organization_id
    assert states(sorted(chosen)) == [(SeatStatus.HELD, hold.pk)] * 3
    assert Seat.objects.filter(status=SeatStatus.HELD).count() == 3
    audit = AuditLogEntry.objects.filter(transition="hold")
    assert sorted(int(a.object_id) for a in audit) == sorted(chosen)
    assert {(a.source_state, a.target_state) for a in audit} == {("free", "held")}
    assert_inventory_consistent()


def test_create_is_a_fixed_handful_of_statements(hall, now, later, django_assert_num_queries):
    # savepoint, lock seats, insert hold, update seats, insert audit rows,
    # release savepoint: the same for 1 seat or 20 (the lock timeout is the
    # connection's own).
    seat_hold_create(event_id=hall.event.pk, seat_ids=hall.seats("B", [1]), expires_at=later, now=now)
    with django_assert_num_queries(6):
        seat_hold_create(event_id=hall.event.pk, seat_ids=hall.row("A"), expires_at=later, now=now)


@pytest.mark.parametrize(
    ("seat_ids", "reason"),
    [
        ([], "empty"),
        ("1,2", "not_a_list"),
        (None, "not_a_list"),
        (["7"], "bad_ids"),
        ([True], "bad_ids"),
        ([0], "bad_ids"),
        ([-3], "bad_ids"),
        ([1.5], "bad_ids"),
    ],
)
def test_malformed_selection_is_rejected(hall, now, later, seat_ids, reason):
    before = snapshot()
    with pytest.raises(InvalidSeatSelection) as exc:
        seat_hold_create(event_id=hall.event.pk, seat_ids=seat_ids, expires_at=later, now=now)
    assert exc.value.code == "invalid_seat_selection"
    assert exc.value.status == 400
    assert exc.value.detail["reason"] == reason
    assert snapshot() == before


def test_duplicate_and_too_many_seats_are_rejected(event, now, later):
    hall = make_hall(event, rows=[("A", MAX_SEATS_PER_HOLD + 1)])
    before = snapshot()
    a1 = hall.seat("A", 1)
    with pytest.raises(InvalidSeatSelection) as dup:
        seat_hold_create(event_id=event.pk, seat_ids=[a1, hall.seat("A", 2), a1], expires_at=later, now=now)
    assert dup.value.detail == {"reason": "duplicates", "seat_ids": [a1]}
    with pytest.raises(InvalidSeatSelection) as many:
        seat_hold_create(event_id=event.pk, seat_ids=hall.row("A"), expires_at=later, now=now)
    assert many.value.detail["reason"] == "too_many"
    assert snapshot() == before


def test_unknown_seat_is_rejected_and_nothing_changes(hall, now, later):
    missing = max(hall.ids.values()) + 1000
    before = snapshot()
    with pytest.raises(UnknownSeat) as exc:
        seat_hold_create(event_id=hall.event.pk, seat_ids=[hall.seat("A", 1), missing], expires_at=later, now=now)
    assert (exc.value.code, exc.value.status, exc.value.detail) == ("unknown_seat", 400, {"seat_ids": [missing]})
    assert snapshot() == before


def test_seat_of_another_event_is_rejected_and_nothing_changes(hall, now, later):
    other = make_hall(EventFactory(organization=hall.event.organization))
    foreign = other.seat("A", 1)
    before = snapshot()
    with pytest.raises(SeatWrongEvent) as exc:
        seat_hold_create(event_id=hall.event.pk, seat_ids=[hall.seat("A", 1), foreign], expires_at=later, now=now)
    assert exc.value.code == "seat_wrong_event"
    assert exc.value.detail["seat_ids"] == [foreign]
    assert snapshot() == before


def test_blocked_seat_is_rejected_and_nothing_changes(hall, now, later):
    seat_block(seat_id=hall.seat("A", 2), reason="camera")
    before = snapshot()
    with pytest.raises(SeatBlocked) as exc:
        seat_hold_create(event_id=hall.event.pk, seat_ids=hall.seats("A", [1, 2, 3]), expires_at=later, now=now)
    assert (exc.value.code, exc.value.status) == ("seat_blocked", 409)
    assert exc.value.detail == {"seat_ids": [hall.seat("A", 2)]}
    assert snapshot() == before


def test_taken_seats_are_listed_and_nothing_changes(hall, now, later):
    sell(hall.event, hall.seats("A", [1]))
    seat_hold_create(event_id=hall.event.pk, seat_ids=hall.seats("A", [3]), expires_at=later, now=now)
    before = snapshot()
    with pytest.raises(SeatUnavailable) as exc:
        seat_hold_create(event_id=hall.event.pk, seat_ids=hall.seats("A", [1, 2, 3, 4]), expires_at=later, now=now)
    assert (exc.value.code, exc.value.status) == ("seat_unavailable", 409)
    assert exc.value.detail == {"seat_ids": hall.seats("A", [1, 3])}
    assert snapshot() == before


@pytest.mark.parametrize("offset", [timedelta(0), timedelta(minutes=-1)])
def test_hold_must_expire_in_the_future(hall, now, offset):
    before = snapshot()
    with pytest.raises(InvalidInput):
        seat_hold_create(event_id=hall.event.pk, seat_ids=hall.seats("A", [1]), expires_at=now + offset, now=now)
    assert snapshot() == before


# --- lazy expiry -----------------------------------------------------------------------


def test_expired_hold_never_blocks_a_new_one_without_any_sweeper(hall, now):
    old = seat_hold_create(
        event_id=hall.event.pk, seat_ids=hall.seats("A", [1, 2, 3]), expires_at=now + timedelta(minutes=1), now=now
    )
    after_expiry = now + timedelta(minutes=2)

    new = seat_hold_create(
        event_id=hall.event.pk,
        seat_ids=hall.seats("A", [2, 3, 4]),
        expires_at=after_expiry + timedelta(minutes=15),
        now=after_expiry,
    )

    assert states(hall.seats("A", [1, 2, 3, 4])) == [
        (SeatStatus.HELD, old.pk),  # not taken: still points at the lapsed hold
        (SeatStatus.HELD, new.pk),
        (SeatStatus.HELD, new.pk),
        (SeatStatus.HELD, new.pk),
    ]
    old.refresh_from_db()
    assert old.status == SeatHoldStatus.ACTIVE  # nobody swept it yet
    takeovers = AuditLogEntry.objects.filter(transition="hold", source_state="held")
    assert sorted(int(a.object_id) for a in takeovers) == hall.seats("A", [2, 3])
    assert_inventory_consistent()


def test_a_hold_expiring_exactly_now_has_lapsed(hall, now):
    seat_hold_create(event_id=hall.event.pk, seat_ids=hall.seats("A", [1]), expires_at=now + timedelta(seconds=1))
    at = now + timedelta(seconds=1)
    hold = seat_hold_create(
        event_id=hall.event.pk, seat_ids=hall.seats("A", [1]), expires_at=at + timedelta(minutes=5), now=at
    )
    assert states(hall.seats("A", [1])) == [(SeatStatus.HELD, hold.pk)]


def test_a_live_hold_still_blocks(hall, now):
    seat_hold_create(event_id=hall.event.pk, seat_ids=hall.seats("A", [1]), expires_at=now + timedelta(minutes=1))
    with pytest.raises(SeatUnavailable):
        seat_hold_create(
            event_id=hall.event.pk,
            seat_ids=hall.seats("A", [1]),
            expires_at=now + timedelta(minutes=10),
            now=now + timedelta(seconds=59),
        )


# --- release -------------------------------------------------------------------------


def test_release_frees_the_seats_once(hall, now, later):
    hold = seat_hold_create(event_id=hall.event.pk, seat_ids=hall.seats("A", [1, 2]), expires_at=later, now=now)

    assert seat_hold_release(hold_id=hold.pk, now=now) is True
    first = snapshot()
    assert seat_hold_release(hold_id=hold.pk, now=now) is False

    assert snapshot() == first
    assert states(hall.seats("A", [1, 2])) == [(SeatStatus.FREE, None)] * 2
    hold.refresh_from_db()
    assert (hold.status, hold.closed_at) == (SeatHoldStatus.RELEASED, now)
    assert AuditLogEntry.objects.filter(transition="release").count() == 3  # 2 seats + the hold
    assert_inventory_consistent()


def test_release_of_an_unknown_hold_is_a_no_op(hall):
    assert seat_hold_release(hold_id=987654) is False


def test_release_leaves_seats_a_newer_hold_took_over(hall, now):
    old = seat_hold_create(
        event_id=hall.event.pk, seat_ids=hall.seats("A", [1, 2]), expires_at=now + timedelta(minutes=1), now=now
    )
    at = now + timedelta(minutes=5)
    new = seat_hold_create(
        event_id=hall.event.pk, seat_ids=hall.seats("A", [2]), expires_at=at + timedelta(minutes=15), now=at
    )

    assert seat_hold_release(hold_id=old.pk, now=at) is True

    assert states(hall.seats("A", [1, 2])) == [(SeatStatus.FREE, None), (SeatStatus.HELD, new.pk)]


def test_release_after_finalize_changes_nothing(hall, now, later):
    hold = seat_hold_create(event_id=hall.event.pk, seat_ids=hall.seats("A", [1]), expires_at=later, now=now)
    seat_hold_finalize(hold_id=hold.pk, now=now)
    before = snapshot()
    assert seat_hold_release(hold_id=hold.pk, now=now) is False
    assert snapshot() == before


# --- finalize ----------------------------------------------------------------------------


def test_finalize_sells_the_seats_and_is_idempotent(hall, now, later):
    chosen = hall.seats("B", [4, 5])
    hold = seat_hold_create(event_id=hall.event.pk, seat_ids=chosen, expires_at=later, now=now)

    assert seat_hold_finalize(hold_id=hold.pk, now=now) == chosen
    first = snapshot()
    assert seat_hold_finalize(hold_id=hold.pk, now=now + timedelta(hours=1)) == chosen

    assert snapshot() == first
    assert states(chosen) == [(SeatStatus.SOLD, hold.pk)] * 2
    hold.refresh_from_db()
    assert hold.status == SeatHoldStatus.CONVERTED
    assert AuditLogEntry.objects.filter(transition="sell").count() == 2
    assert_inventory_consistent()


def test_finalize_is_a_fixed_handful_of_statements(hall, now, later, django_assert_num_queries):
    warm = seat_hold_create(event_id=hall.event.pk, seat_ids=hall.seats("B", [1]), expires_at=later, now=now)
    seat_hold_finalize(hold_id=warm.pk, now=now)
    hold = seat_hold_create(event_id=hall.event.pk, seat_ids=hall.row("A"), expires_at=later, now=now)
    # savepoint, read seat ids, lock seats, lock hold, update seats, update
    # hold, audit hold, audit seats, release savepoint.
    with django_assert_num_queries(9):
        seat_hold_finalize(hold_id=hold.pk, now=now)


def test_finalize_of_an_unknown_hold_raises(hall):
    with pytest.raises(SeatHoldNotFound):
        seat_hold_finalize(hold_id=987654)


def test_late_payment_succeeds_while_the_seats_are_still_its_own(hall, now):
    hold = seat_hold_create(
        event_id=hall.event.pk, seat_ids=hall.seats("A", [1, 2]), expires_at=now + timedelta(minutes=1), now=now
    )
    late = now + timedelta(minutes=30)

    assert seat_hold_finalize(hold_id=hold.pk, now=late) == hall.seats("A", [1, 2])

    assert states(hall.seats("A", [1, 2])) == [(SeatStatus.SOLD, hold.pk)] * 2
    assert_inventory_consistent()


def test_late_payment_loses_when_a_seat_was_taken_and_changes_nothing(hall, now):
    hold = seat_hold_create(
        event_id=hall.event.pk, seat_ids=hall.seats("A", [1, 2]), expires_at=now + timedelta(minutes=1), now=now
    )
    late = now + timedelta(minutes=30)
    seat_hold_create(
        event_id=hall.event.pk, seat_ids=hall.seats("A", [2, 3]), expires_at=late + timedelta(minutes=15), now=late
    )
    before = snapshot()

    with pytest.raises(HoldLost) as exc:
        seat_hold_finalize(hold_id=hold.pk, now=late)

    assert (exc.value.code, exc.value.status) == ("hold_lost", 410)
    assert exc.value.detail == {"hold": hold.pk, "seat_ids": hall.seats("A", [2])}
    assert snapshot() == before


def test_late_payment_after_the_sweeper_retakes_seats_still_free(hall, now):
    hold = seat_hold_create(
        event_id=hall.event.pk, seat_ids=hall.seats("A", [1, 2]), expires_at=now + timedelta(minutes=1), now=now
    )
    late = now + timedelta(minutes=30)
    assert seat_holds_expire(now=late) == 1
    assert states(hall.seats("A", [1, 2])) == [(SeatStatus.FREE, None)] * 2

    assert seat_hold_finalize(hold_id=hold.pk, now=late) == hall.seats("A", [1, 2])

    hold.refresh_from_db()
    assert hold.status == SeatHoldStatus.CONVERTED
    assert states(hall.seats("A", [1, 2])) == [(SeatStatus.SOLD, hold.pk)] * 2
    assert AuditLogEntry.objects.filter(transition="convert", source_state="expired").count() == 1
    assert_inventory_consistent()


def test_late_payment_after_release_loses_when_a_seat_was_sold(hall, now, later):
    hold = seat_hold_create(event_id=hall.event.pk, seat_ids=hall.seats("A", [1, 2]), expires_at=later, now=now)
    seat_hold_release(hold_id=hold.pk, now=now)
    sell(hall.event, hall.seats("A", [1]))
    before = snapshot()

    with pytest.raises(HoldLost) as exc:
        seat_hold_finalize(hold_id=hold.pk, now=now)

    assert exc.value.detail["seat_ids"] == hall.seats("A", [1])
    assert snapshot() == before


# --- extend -------------------------------------------------------------------------------


def test_extend_pushes_a_live_hold_but_never_shortens_or_exceeds_the_window(hall, now, settings):
    settings.SEAT_HOLD_MINUTES = 15
    hold = seat_hold_create(
        event_id=hall.event.pk, seat_ids=hall.seats("A", [1]), expires_at=now + timedelta(minutes=5), now=now
    )
    at = now + timedelta(minutes=4)

    extended = seat_hold_extend(token=hold.token, until=at + timedelta(minutes=10), now=at)
    assert extended.expires_at == at + timedelta(minutes=10)

    capped = seat_hold_extend(token=hold.token, until=at + timedelta(hours=5), now=at)
    assert capped.expires_at == at + timedelta(minutes=15)

    unchanged = seat_hold_extend(token=hold.token, until=at + timedelta(minutes=1), now=at)
    assert unchanged.expires_at == at + timedelta(minutes=15)
    hold.refresh_from_db()
    assert hold.expires_at == at + timedelta(minutes=15)


def test_extend_refuses_a_lapsed_or_closed_hold(hall, now, later):
    lapsed = seat_hold_create(
        event_id=hall.event.pk, seat_ids=hall.seats("A", [1]), expires_at=now + timedelta(minutes=1), now=now
    )
    released = seat_hold_create(event_id=hall.event.pk, seat_ids=hall.seats("A", [5]), expires_at=later, now=now)
    seat_hold_release(hold_id=released.pk, now=now)
    at = now + timedelta(minutes=2)
    before = snapshot()

    with pytest.raises(SeatHoldExpired):
        seat_hold_extend(token=lapsed.token, until=at + timedelta(minutes=10), now=at)
    with pytest.raises(SeatHoldExpired):
        seat_hold_extend(token=released.token, until=at + timedelta(minutes=10), now=at)
    with pytest.raises(SeatHoldNotFound):
        seat_hold_extend(token="no-such-token", until=at + timedelta(minutes=10), now=at)
    assert snapshot() == before


# --- the sweeper -----------------------------------------------------------------------------


def test_sweeper_expires_lapsed_holds_only_and_is_idempotent(hall, now, later):
    lapsed = seat_hold_create(
        event_id=hall.event.pk, seat_ids=hall.seats("A", [1, 2]), expires_at=now + timedelta(minutes=1), now=now
    )
    live = seat_hold_create(event_id=hall.event.pk, seat_ids=hall.seats("A", [5]), expires_at=later, now=now)
    at = now + timedelta(minutes=2)

    assert seat_holds_expire(now=at) == 1
    assert seat_holds_expire(now=at) == 0

    lapsed.refresh_from_db()
    live.refresh_from_db()
    assert (lapsed.status, lapsed.closed_at) == (SeatHoldStatus.EXPIRED, at)
    assert live.status == SeatHoldStatus.ACTIVE
    assert states(hall.seats("A", [1, 2, 5])) == [(SeatStatus.FREE, None)] * 2 + [(SeatStatus.HELD, live.pk)]
    freed = AuditLogEntry.objects.filter(transition="expire", target_state="free")
    assert sorted(int(a.object_id) for a in freed) == hall.seats("A", [1, 2])
    assert_inventory_consistent()


def test_sweeper_frees_only_seats_still_pointing_at_the_hold(hall, now):
    old = seat_hold_create(
        event_id=hall.event.pk, seat_ids=hall.seats("A", [1, 2]), expires_at=now + timedelta(minutes=1), now=now
    )
    at = now + timedelta(minutes=2)
    new = seat_hold_create(
        event_id=hall.event.pk, seat_ids=hall.seats("A", [2]), expires_at=at + timedelta(minutes=15), now=at
    )

    assert seat_holds_expire(now=at) == 1

    old.refresh_from_db()
    assert old.status == SeatHoldStatus.EXPIRED
    assert states(hall.seats("A", [1, 2])) == [(SeatStatus.FREE, None), (SeatStatus.HELD, new.pk)]


def test_sweeper_works_in_batches_oldest_first(hall, now):
    holds = [
        seat_hold_create(
            event_id=hall.event.pk,
            seat_ids=[seat_id],
            expires_at=now + timedelta(minutes=1 + i),
            now=now,
        )
        for i, seat_id in enumerate(hall.row("A")[:5])
    ]
    at = now + timedelta(hours=1)

    assert seat_holds_expire(now=at, batch=2) == 2
    statuses = list(SeatHold.objects.filter(pk__in=[h.pk for h in holds]).order_by("expires_at").values_list("status"))
    assert [s for (s,) in statuses] == ["expired", "expired", "active", "active", "active"]
    assert seat_holds_expire(now=at, batch=10) == 3


def test_expiry_task_sweeps_holds_past_the_grace_period_only(hall, now, settings):
    settings.HOLD_SWEEP_GRACE_SECONDS = 600
    seat_hold_create(
        event_id=hall.event.pk,
        seat_ids=hall.seats("A", [1]),
        expires_at=now - timedelta(minutes=11),
        now=now - timedelta(minutes=12),
    )
    seat_hold_create(
        event_id=hall.event.pk,
        seat_ids=hall.seats("A", [5]),
        expires_at=now - timedelta(minutes=1),
        now=now - timedelta(minutes=2),
    )
    # The recently lapsed hold is left to its checkout (which asks the provider first).
    result = expire_seat_holds.delay()
    assert result.get() == 1
    assert expire_seat_holds.name == "seating.tasks.expire_seat_holds"
    assert states(hall.seats("A", [1])) == [(SeatStatus.FREE, None)]
    assert states(hall.seats("A", [5]))[0][0] == SeatStatus.HELD


# --- the orphan rule ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("numbers", "stranded"),
    [
        ([2, 3], [1]),  # seat 1 left alone at the row end
        ([9], [10]),
        ([4, 5], []),  # 1-3 and 6-10 stay in groups
        ([1, 2], []),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9], [10]),
        ([7, 9], [8, 10]),
    ],
)
def test_forbid_orphans_rejects_selections_that_strand_a_seat(event, now, later, numbers, stranded):
    hall = make_hall(event, rows=[("A", 10)], forbid_orphans=True)
    before = snapshot()
    chosen = hall.seats("A", numbers)
    if stranded:
        with pytest.raises(OrphanSeat) as exc:
            seat_hold_create(event_id=event.pk, seat_ids=chosen, expires_at=later, now=now)
        assert exc.value.detail == {"seat_ids": hall.seats("A", stranded)}
        assert (exc.value.code, exc.value.status) == ("orphan_seat", 400)
        assert snapshot() == before
    else:
        seat_hold_create(event_id=event.pk, seat_ids=chosen, expires_at=later, now=now)


def test_forbid_orphans_counts_taken_seats_and_lapsed_holds_correctly(event, now, later):
    hall = make_hall(event, rows=[("A", 10)], forbid_orphans=True)
    sell(event, hall.seats("A", [5]))
    # Taking 3 would leave 4 alone between 3 and the sold 5.
    with pytest.raises(OrphanSeat):
        seat_hold_create(event_id=event.pk, seat_ids=hall.seats("A", [2, 3]), expires_at=later, now=now)
    # A lapsed hold on 4 makes 4 free again: taking 3 strands it.
    seat_hold_create(event_id=event.pk, seat_ids=hall.seats("A", [4]), expires_at=now + timedelta(seconds=5), now=now)
    at = now + timedelta(minutes=1)
    with pytest.raises(OrphanSeat):
        seat_hold_create(event_id=event.pk, seat_ids=hall.seats("A", [2, 3]), expires_at=later, now=at)
    # An orphan that exists anyway (6 between sold 5 and 7) is not the buyer's doing.
    sell(event, hall.seats("A", [7]))
    seat_hold_create(event_id=event.pk, seat_ids=hall.seats("A", [8, 9, 10]), expires_at=later, now=at)


def test_orphans_are_allowed_when_the_plan_does_not_forbid_them(hall, now, later):
    hold = seat_hold_create(event_id=hall.event.pk, seat_ids=hall.seats("A", [2, 3]), expires_at=later, now=now)
    assert hold.seat_ids == hall.seats("A", [2, 3])
