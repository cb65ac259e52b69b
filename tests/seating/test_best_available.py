from __future__ import annotations

import itertools
import random
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import seating.services.best_available as best_available_module
from seating.exceptions import InvalidSeatSelection, NoSeatsAvailable, UnknownCategory
from seating.models import Seat, SeatHold, SeatStatus
from seating.selectors import RowAvailability, RowSeat
from seating.services.best_available import best_available_pick, seat_best_available, seat_hold_best_available
from seating.services.holds import seat_hold_create
from tests.factories import EventFactory
from tests.seating.factories import make_hall, sell

# --- the pure choice, on crafted rows ------------------------------------------------------


def rows_from(*patterns: str, section_positions: tuple[int, ...] | None = None) -> list[RowAvailability]:
    """'.' is a free seat, 'X' a taken one, ' ' a gap in the numbering (an aisle).
    Row i is i-th closest to the stage; seat ids are 100 * (row + 1) + number."""
    rows = []
    for r, pattern in enumerate(patterns):
        seats = tuple(
            RowSeat(seat_id=100 * (r + 1) + n, number=n, free=ch == ".")
            for n, ch in enumerate(pattern, start=1)
            if ch != " "
        )
        section = section_positions[r] if section_positions else 0
        rows.append(
            RowAvailability(row_id=r, rank=(r, section, section, r), centre=(1 + len(pattern)) / 2, seats=seats)
        )
    rows.sort(key=lambda row: row.rank)
    return rows


def ids(row: int, *numbers: int) -> list[int]:
    return [100 * (row + 1) + n for n in numbers]


@pytest.mark.parametrize(
    ("patterns", "quantity", "expected"),
    [
        # An empty row: the middle.
        ([".........."], 2, ids(0, 5, 6)),
        ([".........."], 3, ids(0, 4, 5, 6)),
        # 3-4 or 4-5 would strand a seat in 3..5; 7-8 keeps 9-10 together.
        ([".X...X...."], 2, ids(0, 7, 8)),
        # A run that fits exactly leaves nothing behind.
        (["XX..XXXXXX", ".........."], 2, ids(0, 3, 4)),
        # The front row could only strand a seat: an orphan-free block further back wins.
        (["XX...XXXXX", ".........."], 2, ids(1, 5, 6)),
        # No orphan-free block anywhere: relax, still one block, nearest the centre.
        (["X...XXXXXX"], 2, ids(0, 3, 4)),
        (["X...XXXXXX", "XXXXX...XX"], 2, ids(0, 3, 4)),
        # No block of 3 anywhere: split, largest pieces first.
        (["X.X.X..XXX"], 3, ids(0, 6, 7) + ids(0, 4)),
        (["X..XXXXXXX", "XXXX..XXXX"], 4, ids(0, 2, 3) + ids(1, 5, 6)),
        # An aisle (gap in the numbering) ends a run.
        (["..... ....."], 6, ids(0, 1, 2, 3, 4, 5) + ids(0, 7)),
        (["..... ....."], 5, ids(0, 1, 2, 3, 4, 5)),
        # Not enough seats.
        (["X.X.XXXXXX"], 3, None),
        (["XXXXXXXXXX"], 1, None),
    ],
)
def test_best_available_on_crafted_rows(patterns, quantity, expected):
    assert best_available_pick(rows_from(*patterns), quantity) == expected


def test_rows_nearer_the_stage_win_then_the_section_position():
    # Same row position in two sections: the section with the lower position.
    rows = rows_from("..........", "..........", section_positions=(1, 0))
    rows = [
        RowAvailability(row_id=r.row_id, rank=(0, r.rank[1], r.rank[2], r.row_id), centre=r.centre, seats=r.seats)
        for r in rows
    ]
    rows.sort(key=lambda row: row.rank)
    assert best_available_pick(rows, 2) == ids(1, 5, 6)


def test_exact_fit_elsewhere_beats_stranding_in_the_centre():
    # n=4 in ".....": any placement strands one; the back row fits exactly.
    assert best_available_pick(rows_from("X.....XXXX", "XXX....XXX"), 4) == ids(1, 4, 5, 6, 7)


# --- the pure choice, property-tested against a brute-force oracle --------------------------


def _blocks(rows: list[RowAvailability], n: int):
    """Every placement of n adjacent free seats: (row index, seats, leaves an orphan)."""
    for index, row in enumerate(rows):
        seats = list(row.seats)
        for start in range(len(seats) - n + 1):
            block = seats[start : start + n]
            if not all(s.free for s in block):
                continue
            if any(b.number != a.number + 1 for a, b in itertools.pairwise(block)):
                continue
            left = right = 0
            i = start - 1
            while i >= 0 and seats[i].free and seats[i].number == seats[i + 1].number - 1:
                left, i = left + 1, i - 1
            i = start + n
            while i < len(seats) and seats[i].free and seats[i].number == seats[i - 1].number + 1:
                right, i = right + 1, i + 1
            yield index, block, left == 1 or right == 1


def _pieces(rows: list[RowAvailability], chosen: list[int]) -> int:
    chosen_set = set(chosen)
    pieces = 0
    for row in rows:
        previous = None
        for seat in row.seats:
            if seat.seat_id in chosen_set and not (previous is not None and previous.number == seat.number - 1):
                pieces += 1
            previous = seat if seat.seat_id in chosen_set else None
    return pieces


def _runs(rows: list[RowAvailability]) -> list[int]:
    lengths = []
    for row in rows:
        run, previous = 0, None
        for seat in row.seats:
            if seat.free and previous is not None and previous.free and previous.number == seat.number - 1:
                run += 1
            elif seat.free:
                if run:
                    lengths.append(run)
                run = 1
            else:
                if run:
                    lengths.append(run)
                run = 0
            previous = seat
        if run:
            lengths.append(run)
    return lengths


row_patterns = st.lists(
    st.text(alphabet=".X ", min_size=1, max_size=14).filter(lambda p: p.strip() != ""), min_size=1, max_size=5
)


@settings(max_examples=400, deadline=None)
@given(patterns=row_patterns, quantity=st.integers(min_value=1, max_value=7))
def test_best_available_property(patterns, quantity):
    rows = rows_from(*patterns)
    free_ids = {s.seat_id for r in rows for s in r.seats if s.free}
    picked = best_available_pick(rows, quantity)

    if len(free_ids) < quantity:
        assert picked is None
        return
    assert picked is not None
    assert len(picked) == quantity == len(set(picked))
    assert set(picked) <= free_ids

    blocks = list(_blocks(rows, quantity))
    clean = [b for b in blocks if not b[2]]
    as_block = next((b for b in blocks if [s.seat_id for s in b[1]] == picked), None)
    if clean:
        # Never strands a seat where a block fits without doing so, and takes
        # the best row among such blocks, nearest that row's centre.
        assert as_block is not None and not as_block[2]
        best_row = min(b[0] for b in clean)
        assert as_block[0] == best_row
        row = rows[best_row]

        def distance(b):
            return abs((b[1][0].number + b[1][-1].number) / 2 - row.centre)

        assert distance(as_block) == min(distance(b) for b in clean if b[0] == best_row)
    elif blocks:
        # Relaxed, but still one block, in the best row that has one.
        assert as_block is not None
        assert as_block[0] == min(b[0] for b in blocks)
    else:
        # Split only now, into as few pieces as the free runs allow.
        runs = sorted(_runs(rows), reverse=True)
        fewest = next(k for k in range(1, len(runs) + 1) if sum(runs[:k]) >= quantity)
        assert _pieces(rows, picked) == fewest


# --- against the database -----------------------------------------------------------------------


@pytest.mark.django_db
def test_seat_best_available_reads_effective_state(event, now):
    hall = make_hall(event, rows=[("A", 10), ("B", 10)])
    category = hall.categories["std"]
    sell(event, hall.seats("A", [1, 2, 3, 8, 9, 10]))  # A: only 4-7 left
    assert seat_best_available(event_id=event.pk, category_id=category.pk, quantity=4, now=now) == hall.seats(
        "A", [4, 5, 6, 7]
    )
    # A live hold on A4 pushes a group of 4 to row B; once it lapses, A4 is free again.
    seat_hold_create(event_id=event.pk, seat_ids=hall.seats("A", [4]), expires_at=now + timedelta(minutes=1), now=now)
    assert seat_best_available(event_id=event.pk, category_id=category.pk, quantity=4, now=now) == hall.seats(
        "B", [4, 5, 6, 7]
    )
    later = now + timedelta(minutes=2)
    assert seat_best_available(event_id=event.pk, category_id=category.pk, quantity=4, now=later) == hall.seats(
        "A", [4, 5, 6, 7]
    )


@pytest.mark.django_db
def test_seat_best_available_stays_in_its_category(event, now):
    hall = make_hall(event, rows=[("A", 10, "vip"), ("B", 10, "std")], category_codes=("std", "vip"))
    std, vip = hall.categories["std"], hall.categories["vip"]
    assert seat_best_available(event_id=event.pk, category_id=std.pk, quantity=2, now=now) == hall.seats("B", [5, 6])
    assert seat_best_available(event_id=event.pk, category_id=vip.pk, quantity=2, now=now) == hall.seats("A", [5, 6])


@pytest.mark.django_db
def test_seat_best_available_errors(event, now):
    hall = make_hall(event, rows=[("A", 4)])
    category = hall.categories["std"]
    other = make_hall(EventFactory(organization=event.organization), rows=[("A", 4)])
    with pytest.raises(UnknownCategory):
        seat_best_available(event_id=event.pk, category_id=other.categories["std"].pk, quantity=1, now=now)
    for bad in (0, -1, 21, "2", True, 1.0):
        with pytest.raises(InvalidSeatSelection):
            seat_best_available(event_id=event.pk, category_id=category.pk, quantity=bad, now=now)
    with pytest.raises(NoSeatsAvailable) as exc:
        seat_best_available(event_id=event.pk, category_id=category.pk, quantity=5, now=now)
    assert exc.value.detail == {"category": category.pk, "requested": 5, "free": 4}


@pytest.mark.django_db
def test_seat_best_available_random_halls_never_strand_a_seat_where_a_block_fits(event, now):
    hall = make_hall(event, rows=[("A", 12), ("B", 12), ("C", 12)])
    category = hall.categories["std"]
    everything = Seat.objects.filter(event=event)
    for seed in range(15):
        rng = random.Random(seed)
        everything.update(status=SeatStatus.FREE, hold=None)
        everything.filter(pk__in=rng.sample(sorted(hall.ids.values()), rng.randint(5, 30))).update(
            status=SeatStatus.BLOCKED
        )
        quantity = rng.randint(1, 6)
        state = {
            label: "".join(
                "." if s == SeatStatus.FREE else "X"
                for s in Seat.objects.filter(pk__in=hall.row(label)).order_by("number").values_list("status", flat=True)
            )
            for label in "ABC"
        }
        oracle_rows = rows_from(state["A"], state["B"], state["C"])
        clean = [b for b in _blocks(oracle_rows, quantity) if not b[2]]
        try:
            picked = seat_best_available(event_id=event.pk, category_id=category.pk, quantity=quantity, now=now)
        except NoSeatsAvailable:
            assert sum(p.count(".") for p in state.values()) < quantity
            continue
        if clean:
            numbers = dict(Seat.objects.filter(pk__in=picked).values_list("pk", "number"))
            label = next(lbl for lbl in "ABC" if set(picked) <= set(hall.row(lbl)))
            row_index = "ABC".index(label)
            block = [100 * (row_index + 1) + numbers[p] for p in picked]
            assert any([s.seat_id for s in b[1]] == block for b in clean), (seed, state, picked)
            assert row_index == min(b[0] for b in clean)


@pytest.mark.django_db
def test_hold_best_available_holds_the_choice_even_where_orphans_are_forbidden(event, now):
    hall = make_hall(event, rows=[("A", 5)], forbid_orphans=True)
    sell(event, hall.seats("A", [1]))
    # 2..5 free, 3 wanted: every choice strands one seat, so best available relaxes.
    hold = seat_hold_best_available(
        event_id=event.pk, category_id=hall.categories["std"].pk, quantity=3, expires_at=now + timedelta(minutes=15)
    )
    assert hold.seat_ids == hall.seats("A", [2, 3, 4])


@pytest.mark.django_db
def test_hold_best_available_chooses_again_after_losing_a_race(event, now, monkeypatch):
    hall = make_hall(event, rows=[("A", 10)])
    category = hall.categories["std"]
    real_choice = best_available_module.seat_best_available
    calls = []

    def first_choice_gets_taken(**kwargs):
        picked = real_choice(**kwargs)
        calls.append(picked)
        if len(calls) == 1:
            sell(event, picked)  # another buyer wins between our read and our hold
        return picked

    monkeypatch.setattr(best_available_module, "seat_best_available", first_choice_gets_taken)
    hold = seat_hold_best_available(
        event_id=event.pk, category_id=category.pk, quantity=2, expires_at=now + timedelta(minutes=15)
    )
    assert len(calls) == 2
    assert hold.seat_ids == calls[1] != calls[0]


@pytest.mark.django_db
def test_hold_best_available_gives_up_after_its_attempts_and_changes_nothing(event, now, monkeypatch):
    hall = make_hall(event, rows=[("A", 10)])
    sell(event, hall.seats("A", [5, 6]))
    holds_before = SeatHold.objects.count()
    # A stale read every time: always the seats somebody already bought.
    monkeypatch.setattr(best_available_module, "seat_best_available", lambda **kwargs: hall.seats("A", [5, 6]))
    with pytest.raises(NoSeatsAvailable) as exc:
        seat_hold_best_available(
            event_id=event.pk,
            category_id=hall.categories["std"].pk,
            quantity=2,
            expires_at=now + timedelta(minutes=15),
            attempts=3,
        )
    assert exc.value.detail["reason"] == "lost_race"
    assert SeatHold.objects.count() == holds_before
