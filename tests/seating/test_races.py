"""Concurrency: many threads, each with its own database connection, released
together by a barrier. Needs PostgreSQL (SQLite serializes writers anyway).

What must hold whatever the interleaving: no seat is held or sold by two
holds, winners' seat sets are disjoint, nothing deadlocks, and the inventory
invariants (tests.invariants) hold afterwards.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from django.db import OperationalError, connection, connections
from django.utils import timezone

from seating.exceptions import HoldLost, NoSeatsAvailable, SeatUnavailable
from seating.models import Seat, SeatHold, SeatHoldStatus, SeatStatus
from seating.services.best_available import seat_hold_best_available
from seating.services.holds import (
    seat_hold_create,
    seat_hold_finalize,
    seat_hold_release,
    seat_holds_expire,
)
from tests.factories import EventFactory
from tests.seating.factories import make_hall
from ticketing.exceptions import Busy
from ticketing.models import AuditLogEntry

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 40
DEADLOCK = "40P01"


@dataclass
class RaceReport:
    attempts: int = 0
    successes: int = 0
    conflicts: int = 0  # lost the race cleanly (a domain error saying so)
    busy: int = 0  # lock timeout
    deadlocks: int = 0
    unexpected: list[BaseException] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)
    outcomes: list[tuple[str, Any]] = field(default_factory=list)  # per thread: ("ok"|"error", value)

    def line(self, name: str) -> str:
        return (
            f"[race {name}] attempts={self.attempts} successes={self.successes} conflicts={self.conflicts} "
            f"busy={self.busy} deadlocks={self.deadlocks} unexpected={len(self.unexpected)}"
        )


def _sqlstate(exc: BaseException) -> str | None:
    while exc is not None:
        state = getattr(exc, "sqlstate", None)
        if state:
            return state
        exc = exc.__cause__  # type: ignore[assignment]
    return None


def race(
    work: Callable[[int], Any], *, threads: int = THREADS, conflicts: tuple[type[BaseException], ...] = ()
) -> RaceReport:
    """Run work(0..threads-1) at once, one connection per thread, and classify outcomes."""
    barrier = threading.Barrier(threads)
    outcomes: list[tuple[str, Any]] = [("missing", None)] * threads

    def runner(i: int) -> None:
        try:
            connection.ensure_connection()  # connect first, so the barrier releases real contenders
            barrier.wait(timeout=30)
            outcomes[i] = ("ok", work(i))
        except BaseException as exc:  # noqa: BLE001 - every outcome is classified by the caller
            outcomes[i] = ("error", exc)
        finally:
            connections.close_all()

    pool = [threading.Thread(target=runner, args=(i,), daemon=True) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in pool), "a racing thread hung"

    report = RaceReport(attempts=threads, outcomes=outcomes)
    for kind, value in outcomes:
        if kind == "ok":
            report.successes += 1
            report.results.append(value)
        elif _sqlstate(value) == DEADLOCK:
            report.deadlocks += 1
        elif isinstance(value, conflicts):
            report.conflicts += 1
        elif isinstance(value, Busy) or (isinstance(value, OperationalError) and _sqlstate(value) == "55P03"):
            report.busy += 1
        else:
            report.unexpected.append(value)
    return report


def assert_holds_disjoint_and_owned(holds: list[SeatHold]) -> None:
    """Winners' seat sets are disjoint, and each winner owns exactly its seats."""
    counts = Counter(seat_id for hold in holds for seat_id in hold.seat_ids)
    assert [s for s, n in counts.items() if n > 1] == [], "a seat went to two holds"
    for hold in holds:
        owned = set(Seat.objects.filter(hold_id=hold.pk, status=SeatStatus.HELD).values_list("pk", flat=True))
        assert owned == set(hold.seat_ids)


@pytest.fixture
def pg(require_postgres, check_inventory):
    """PostgreSQL, and the inventory invariants checked after the test body."""


def test_racing_holds_on_overlapping_seats_never_double_hold_or_deadlock(pg):
    totals = RaceReport()
    for round_no in range(3):
        event = EventFactory()
        hall = make_hall(event, rows=[("A", 12), ("B", 12)])
        pool = hall.row("A") + hall.row("B")
        now = timezone.now()
        # A lapsed hold on some seats: racers must take those over too.
        seat_hold_create(
            event_id=event.pk,
            seat_ids=pool[:6],
            expires_at=now - timedelta(minutes=1),
            now=now - timedelta(minutes=20),
        )
        picks = []
        for i in range(THREADS):
            rng = random.Random(1000 * round_no + i)
            chosen = rng.sample(pool, rng.randint(2, 6))  # unsorted on purpose: the service sorts
            picks.append(chosen)

        report = race(
            lambda i, event=event, picks=picks: seat_hold_create(
                event_id=event.pk, seat_ids=picks[i], expires_at=timezone.now() + timedelta(minutes=15)
            ),
            conflicts=(SeatUnavailable,),
        )

        assert report.unexpected == []
        assert report.deadlocks == 0
        assert report.successes >= 1
        assert report.successes + report.conflicts + report.busy == THREADS
        winners = list(SeatHold.objects.filter(pk__in=[h.pk for h in report.results]))
        assert_holds_disjoint_and_owned(winners)
        # Every held seat belongs to a winner or to the lapsed hold's leftovers.
        live_holders = set(
            Seat.objects.filter(event=event, status=SeatStatus.HELD, hold__expires_at__gt=now).values_list(
                "hold_id", flat=True
            )
        )
        assert live_holders == {h.pk for h in winners}
        for name in ("attempts", "successes", "conflicts", "busy", "deadlocks"):
            setattr(totals, name, getattr(totals, name) + getattr(report, name))
    print(totals.line("manual holds, 3 rounds x 40 threads, 2-6 of 24 seats"))


def test_racing_best_available_never_double_holds(pg):
    event = EventFactory()
    hall = make_hall(event, rows=[("A", 10), ("B", 10), ("C", 10)])
    category = hall.categories["std"]
    quantities = [random.Random(i).randint(1, 4) for i in range(THREADS)]  # ~100 seats wanted, 30 exist

    report = race(
        lambda i: seat_hold_best_available(
            event_id=event.pk,
            category_id=category.pk,
            quantity=quantities[i],
            expires_at=timezone.now() + timedelta(minutes=15),
        ),
        conflicts=(NoSeatsAvailable,),
    )
    print(report.line("best available, 40 threads, 1-4 of 30 seats"))

    assert report.unexpected == []
    assert report.deadlocks == 0
    winners = list(SeatHold.objects.filter(pk__in=[h.pk for h in report.results]))
    assert_holds_disjoint_and_owned(winners)
    held = sum(len(h.seat_ids) for h in winners)
    assert held == Seat.objects.filter(event=event, status=SeatStatus.HELD).count()
    assert held <= 30
    free = Seat.objects.filter(event=event, status=SeatStatus.FREE).count()
    assert free + held == 30
    # A buyer told "no seats" (not "lost the race") really could not be seated:
    # seats were only taken afterwards, never given back.
    for i, (kind, value) in enumerate(report.outcomes):
        if kind == "error" and isinstance(value, NoSeatsAvailable) and value.detail.get("reason") != "lost_race":
            assert free < quantities[i]


def test_mixed_race_late_payments_new_holds_sweeps_and_releases(pg):
    event = EventFactory()
    hall = make_hall(event, rows=[("A", 15), ("B", 15)])
    pool = hall.row("A") + hall.row("B")
    past = timezone.now() - timedelta(minutes=30)
    # Ten lapsed holds of three seats each, covering the pool.
    old = [
        seat_hold_create(
            event_id=event.pk, seat_ids=pool[3 * k : 3 * k + 3], expires_at=past + timedelta(minutes=1), now=past
        )
        for k in range(10)
    ]
    rng = random.Random(7)
    new_picks = [rng.sample(pool, rng.randint(2, 5)) for _ in range(20)]

    def work(i: int) -> Any:
        if i < 10:
            return ("finalize", old[i].pk, seat_hold_finalize(hold_id=old[i].pk))
        if i < 30:
            return (
                "hold",
                seat_hold_create(
                    event_id=event.pk, seat_ids=new_picks[i - 10], expires_at=timezone.now() + timedelta(minutes=15)
                ).pk,
            )
        if i < 35:
            return ("sweep", seat_holds_expire())
        return ("release", old[i - 35].pk, seat_hold_release(hold_id=old[i - 35].pk))

    report = race(work, conflicts=(SeatUnavailable, HoldLost))
    print(report.line("mixed: 10 late payments, 20 new holds, 5 sweeps, 5 releases"))

    assert report.unexpected == []
    assert report.deadlocks == 0
    sold_by = dict(Seat.objects.filter(event=event, status=SeatStatus.SOLD).values_list("pk", "hold_id"))
    for kind, *rest in report.results:
        if kind == "finalize":
            hold_id, seat_ids = rest
            assert all(sold_by.get(s) == hold_id for s in seat_ids)
    new_winners = list(SeatHold.objects.filter(pk__in=[r[1] for r in report.results if r[0] == "hold"]))
    assert_holds_disjoint_and_owned(new_winners)
    sold_seats = set(sold_by)
    assert not sold_seats & {s for h in new_winners for s in h.seat_ids}
    # Old holds end converted or not, never half-sold.
    for hold in SeatHold.objects.filter(pk__in=[h.pk for h in old]):
        mine = set(Seat.objects.filter(hold_id=hold.pk, status=SeatStatus.SOLD).values_list("pk", flat=True))
        assert mine in (set(), set(hold.seat_ids))
        assert (hold.status == SeatHoldStatus.CONVERTED) == bool(mine)


def test_duplicate_payment_confirmations_sell_once(pg):
    event = EventFactory()
    hall = make_hall(event, rows=[("A", 10)])
    hold = seat_hold_create(
        event_id=event.pk, seat_ids=hall.seats("A", [4, 5, 6]), expires_at=timezone.now() + timedelta(minutes=15)
    )

    report = race(lambda i: seat_hold_finalize(hold_id=hold.pk), threads=12)
    print(report.line("12 concurrent finalizes of one hold"))

    assert report.successes == 12
    assert all(result == hall.seats("A", [4, 5, 6]) for result in report.results)
    assert AuditLogEntry.objects.filter(transition="convert", object_id=str(hold.pk)).count() == 1
    assert AuditLogEntry.objects.filter(transition="sell").count() == 3


def test_release_racing_finalize_has_one_winner(pg):
    event = EventFactory()
    hall = make_hall(event, rows=[("A", 10)])
    holds = [
        seat_hold_create(event_id=event.pk, seat_ids=[seat_id], expires_at=timezone.now() + timedelta(minutes=15))
        for seat_id in hall.row("A")
    ]

    def work(i: int) -> Any:
        hold = holds[i // 2]
        if i % 2:
            return ("release", hold.pk, seat_hold_release(hold_id=hold.pk))
        try:
            return ("finalize", hold.pk, seat_hold_finalize(hold_id=hold.pk))
        except HoldLost:
            return ("finalize", hold.pk, None)

    report = race(work, threads=20)
    print(report.line("release vs finalize on 10 holds"))

    assert report.unexpected == [] and report.deadlocks == 0
    for hold in SeatHold.objects.filter(pk__in=[h.pk for h in holds]):
        (seat_id,) = hold.seat_ids
        released = next(r[2] for r in report.results if r[0] == "release" and r[1] == hold.pk)
        finalized = next(r[2] for r in report.results if r[0] == "finalize" and r[1] == hold.pk)
        # A payment is never dropped: if the release won, the payment re-took the
        # seat it had just freed (nobody else wanted it).
        assert hold.status == SeatHoldStatus.CONVERTED
        assert finalized == [seat_id]
        assert Seat.objects.get(pk=seat_id).status == SeatStatus.SOLD
        converted_from = AuditLogEntry.objects.get(transition="convert", object_id=str(hold.pk)).source_state
        assert converted_from == ("released" if released else "active")


class _SeatLocker(threading.Thread):
    """Holds a row lock on some seats, in its own transaction, until told to stop."""

    def __init__(self, seat_ids: list[int]) -> None:
        super().__init__(daemon=True)
        self.seat_ids = seat_ids
        self.locked = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        from django.db import transaction

        try:
            with transaction.atomic():
                list(Seat.objects.select_for_update().filter(pk__in=self.seat_ids).order_by("pk"))
                self.locked.set()
                self.stop.wait(timeout=30)
        finally:
            connections.close_all()

    def __enter__(self) -> _SeatLocker:
        self.start()
        assert self.locked.wait(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.join(timeout=10)


def test_sweeper_skips_holds_that_are_being_worked_on_instead_of_waiting(pg):
    event = EventFactory()
    hall = make_hall(event, rows=[("A", 10)])
    past = timezone.now() - timedelta(minutes=30)
    busy = seat_hold_create(
        event_id=event.pk, seat_ids=hall.seats("A", [1, 2]), expires_at=past + timedelta(minutes=1), now=past
    )
    idle = seat_hold_create(
        event_id=event.pk, seat_ids=hall.seats("A", [5]), expires_at=past + timedelta(minutes=1), now=past
    )

    with _SeatLocker(hall.seats("A", [2])):  # e.g. a late payment finalizing `busy` right now
        started = timezone.now()
        assert seat_holds_expire() == 1
        assert timezone.now() - started < timedelta(seconds=2)  # did not sit out the lock timeout

    assert SeatHold.objects.get(pk=busy.pk).status == SeatHoldStatus.ACTIVE
    assert SeatHold.objects.get(pk=idle.pk).status == SeatHoldStatus.EXPIRED
    assert seat_holds_expire() == 1  # the next sweep gets it
    assert SeatHold.objects.get(pk=busy.pk).status == SeatHoldStatus.EXPIRED
    assert Seat.objects.filter(event=event, status=SeatStatus.HELD).count() == 0


def test_a_long_lock_wait_becomes_busy_and_changes_nothing(pg, settings):
    settings.LOCK_TIMEOUT_MS = 200
    event = EventFactory()
    hall = make_hall(event, rows=[("A", 10)])
    holds_before = SeatHold.objects.count()

    with _SeatLocker(hall.seats("A", [3])), pytest.raises(Busy) as exc:
        seat_hold_create(
            event_id=event.pk, seat_ids=hall.seats("A", [2, 3]), expires_at=timezone.now() + timedelta(minutes=5)
        )

    assert (exc.value.code, exc.value.status) == ("busy", 429)
    assert SeatHold.objects.count() == holds_before
    assert Seat.objects.filter(event=event).exclude(status=SeatStatus.FREE).count() == 0
