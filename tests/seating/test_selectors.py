from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache

from seating.models import SeatStatus
from seating.selectors import seat_map_cache_key, seat_map_for_event
from seating.services.holds import seat_hold_create
from seating.services.plans import seat_block
from tests.seating.factories import make_hall, sell

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty_cache():
    # Test databases reuse ids from run to run; a map cached by the previous run must not leak in.
    cache.clear()
    yield
    cache.clear()


def test_seat_map_shows_effective_statuses_and_the_legend(event, now):
    hall = make_hall(event, rows=[("A", 4, "vip"), ("B", 4, "std")], category_codes=("std", "vip"))
    sell(event, hall.seats("A", [1]))
    seat_hold_create(event_id=event.pk, seat_ids=hall.seats("A", [2]), expires_at=now + timedelta(minutes=5), now=now)
    seat_hold_create(event_id=event.pk, seat_ids=hall.seats("A", [3]), expires_at=now + timedelta(seconds=1), now=now)
    seat_block(seat_id=hall.seat("B", 4))

    seat_map = seat_map_for_event(event_id=event.pk, now=now + timedelta(minutes=1))

    status = {seat["id"]: seat["status"] for seat in seat_map.seats}
    assert [status[i] for i in hall.row("A")] == ["sold", "held", "free", "free"]  # A3's hold lapsed
    assert [status[i] for i in hall.row("B")] == ["free", "free", "free", "blocked"]
    assert seat_map.plan["id"] == hall.plan.pk
    assert {c["code"]: c["free"] for c in seat_map.categories} == {"std": 3, "vip": 2}
    assert [s["name"] for s in seat_map.sections] == ["Main"]
    assert [r["label"] for r in seat_map.sections[0]["rows"]] == ["A", "B"]
    assert {entry.get("status") for entry in seat_map.legend if entry["kind"] == "status"} == set(SeatStatus.values)
    assert all({"x", "y", "label", "category_id", "section_id"} <= set(seat) for seat in seat_map.seats)


def test_seat_map_of_an_event_without_a_plan_is_none(event):
    assert seat_map_for_event(event_id=event.pk) is None


def test_cached_map_still_expires_holds_at_read_time(event, now, django_assert_num_queries):
    hall = make_hall(event, rows=[("A", 4)])
    seat_hold_create(event_id=event.pk, seat_ids=hall.seats("A", [1]), expires_at=now + timedelta(seconds=30))
    assert seat_map_for_event(event_id=event.pk, now=now).seats[0]["status"] == "held"

    with django_assert_num_queries(0):
        later = seat_map_for_event(event_id=event.pk, now=now + timedelta(minutes=1))
    assert later.seats[0]["status"] == "free"


def test_seat_changes_drop_the_cached_map_after_commit(event, now, django_capture_on_commit_callbacks):
    hall = make_hall(event, rows=[("A", 4)])
    seat_map_for_event(event_id=event.pk, now=now)
    assert cache.get(seat_map_cache_key(event.pk)) is not None

    with django_capture_on_commit_callbacks(execute=True):
        seat_hold_create(event_id=event.pk, seat_ids=hall.seats("A", [2]), expires_at=now + timedelta(minutes=5))
    assert cache.get(seat_map_cache_key(event.pk)) is None
    assert seat_map_for_event(event_id=event.pk, now=now).seats[1]["status"] == "held"
