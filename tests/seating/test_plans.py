from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from seating.exceptions import InvalidSeatingPlan, SeatUnavailable, UnknownSeat
from seating.models import PriceCategory, Row, Seat, SeatingPlan, SeatStatus, Section
from seating.services.holds import seat_hold_create
from seating.services.plans import seat_block, seat_unblock, seating_plan_create, seating_plan_create_demo
from tests.factories import EventFactory, TicketTypeFactory
from tests.seating.factories import SeatedTicketTypeFactory, make_hall, sell
from ticketing.models import AuditLogEntry

pytestmark = pytest.mark.django_db


def two_categories(event):
    return [
        {"code": "front", "name": "Front", "color": "#ef4444", "ticket_type": SeatedTicketTypeFactory(event=event)},
        {"code": "back", "name": "Back", "color": "#22c55e", "ticket_type": SeatedTicketTypeFactory(event=event).pk},
    ]


def test_plan_is_built_in_bulk_with_coordinates_and_flags(event, django_assert_max_num_queries):
    sections = [
        {
            "name": "Stalls",
            "rows": [
                {"label": "A", "seats": 8, "category_code": "front", "accessible": [1, 8]},
                {"label": "B", "seats": 10, "category_code": "back", "blocked": [105, 106], "start_number": 101},
            ],
        },
        {"name": "Balcony", "position": 5, "rows": [{"label": "A", "seats": 6, "category_code": "back"}]},
    ]
    categories = two_categories(event)

    # A fixed number of statements, whatever the size: one INSERT per table.
    with django_assert_max_num_queries(12):
        plan = seating_plan_create(event=event, name="Hall", sections=sections, categories=categories)

    assert plan.organization_id == event.organization_id
    assert list(Section.objects.filter(plan=plan).values_list("name", "position")) == [("Stalls", 0), ("Balcony", 5)]
    assert Row.objects.filter(section__plan=plan).count() == 3
    seats = list(Seat.objects.filter(event=event).select_related("row__section", "category"))
    assert len(seats) == 24
    assert {s.organization_id for s in seats} == {event.organization_id}
    b_row = sorted((s for s in seats if s.row.label == "B"), key=lambda s: s.number)
    assert [s.number for s in b_row] == list(range(101, 111))
    assert b_row[0].label == "Stalls B 101"
    assert [s.number for s in b_row if s.status == SeatStatus.BLOCKED] == [105, 106]
    assert sorted(s.label for s in seats if s.is_accessible) == ["Stalls A 1", "Stalls A 8"]
    assert Counter(s.category.code for s in seats) == {"front": 8, "back": 16}
    assert PriceCategory.objects.get(plan=plan, code="back").ticket_type_id == categories[1]["ticket_type"]
    # Drawing: inside the plan, no two seats on one spot, rows nearer the stage higher up,
    # the shorter row A centred under row B, the balcony to the right of the stalls.
    assert all(0 < s.x < plan.width and 0 < s.y < plan.height for s in seats)
    assert len({(s.x, s.y) for s in seats}) == 24
    a_row = sorted((s for s in seats if s.row.label == "A" and s.row.section.name == "Stalls"), key=lambda s: s.x)
    assert a_row[0].y < b_row[0].y
    assert (a_row[0].x + a_row[-1].x) / 2 == pytest.approx((b_row[0].x + b_row[-1].x) / 2)
    balcony = [s for s in seats if s.row.section.name == "Balcony"]
    assert min(s.x for s in balcony) > max(s.x for s in b_row)


def test_demo_plan_has_three_sections_two_categories_and_500_seats(event):
    categories = two_categories(event)
    plan = seating_plan_create_demo(event=event, categories=categories)

    seats = Seat.objects.filter(event=event)
    assert seats.count() >= 500
    assert Section.objects.filter(plan=plan).count() == 3
    by_category = Counter(seats.values_list("category__code", flat=True))
    assert set(by_category) == {"front", "back"} and min(by_category.values()) > 100
    # Front rows are the first category.
    assert set(seats.filter(row__position=0).values_list("category__code", flat=True)) == {"front"}
    assert set(seats.filter(row__position=13).values_list("category__code", flat=True)) == {"back"}
    assert seats.filter(status=SeatStatus.BLOCKED).count() == 2
    assert seats.filter(is_accessible=True).count() == 6
    assert seats.values("x", "y").distinct().count() == seats.count()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s, c: s.clear(), "at least one section"),
        (lambda s, c: c.clear(), "at least one price category"),
        (lambda s, c: s[0]["rows"][0].update(category_code="nope"), "unknown category"),
        (lambda s, c: s[0]["rows"].append({"label": "A", "seats": 3, "category_code": "front"}), "same label"),
        (lambda s, c: s[0]["rows"][0].update(seats=0), "1 to 500 seats"),
        (lambda s, c: s[0]["rows"][0].update(seats="4"), "1 to 500 seats"),
        (lambda s, c: s[0]["rows"][0].update(blocked=[11]), "outside the row"),
        (lambda s, c: s[0]["rows"][0].update(label=""), "needs a label"),
        (lambda s, c: s[0].update(name=" "), "needs a name"),
        (lambda s, c: c.append(dict(c[0])), "its own code"),
    ],
)
def test_bad_plans_are_rejected_and_nothing_is_created(event, change, message):
    sections = [{"name": "Stalls", "rows": [{"label": "A", "seats": 10, "category_code": "front"}]}]
    categories = two_categories(event)
    change(sections, categories)
    with pytest.raises(InvalidSeatingPlan, match=message):
        seating_plan_create(event=event, name="Hall", sections=sections, categories=categories)
    assert not SeatingPlan.objects.exists()
    assert not Seat.objects.exists()


def test_categories_must_sell_seated_ticket_types_of_the_event(event):
    sections = [{"name": "Stalls", "rows": [{"label": "A", "seats": 4, "category_code": "x"}]}]
    general = TicketTypeFactory(event=event)
    foreign = SeatedTicketTypeFactory(event=EventFactory(organization=event.organization))
    for ticket_type, message in ((general, "reserved-seating"), (foreign, "belong to this event")):
        with pytest.raises(InvalidSeatingPlan, match=message):
            seating_plan_create(
                event=event,
                name="Hall",
                sections=sections,
                categories=[{"code": "x", "name": "X", "ticket_type": ticket_type}],
            )
    assert not SeatingPlan.objects.exists()


def test_one_plan_per_event(event):
    make_hall(event)
    with pytest.raises(InvalidSeatingPlan, match="already has"):
        make_hall(event)
    assert SeatingPlan.objects.count() == 1


# --- block / unblock --------------------------------------------------------------------------


def test_block_and_unblock_are_audited_and_idempotent(hall, staff_user):
    seat_id = hall.seat("A", 3)

    seat = seat_block(seat_id=seat_id, by=staff_user, reason="camera position")
    assert seat.status == SeatStatus.BLOCKED
    assert seat_block(seat_id=seat_id, by=staff_user).status == SeatStatus.BLOCKED
    entries = AuditLogEntry.objects.filter(object_id=str(seat_id), transition="block")
    assert [(e.actor_id, e.reason, e.source_state, e.target_state) for e in entries] == [
        (staff_user.pk, "camera position", "free", "blocked")
    ]

    assert seat_unblock(seat_id=seat_id, by=staff_user, reason="camera gone").status == SeatStatus.FREE
    assert seat_unblock(seat_id=seat_id, by=staff_user).status == SeatStatus.FREE
    assert AuditLogEntry.objects.filter(object_id=str(seat_id), transition="unblock").count() == 1
    assert Seat.objects.get(pk=seat_id).status == SeatStatus.FREE


def test_taken_seats_cannot_be_blocked(hall, now):
    sell(hall.event, hall.seats("A", [1]))
    seat_hold_create(event_id=hall.event.pk, seat_ids=hall.seats("A", [2]), expires_at=now + timedelta(minutes=5))
    for seat_id in hall.seats("A", [1, 2]):
        with pytest.raises(SeatUnavailable):
            seat_block(seat_id=seat_id)
    assert list(Seat.objects.filter(pk__in=hall.seats("A", [1, 2])).order_by("number").values_list("status")) == [
        ("sold",),
        ("held",),
    ]
    with pytest.raises(UnknownSeat):
        seat_block(seat_id=max(hall.ids.values()) + 100)


def test_a_seat_of_a_lapsed_hold_can_be_blocked(hall, now):
    seat_id = hall.seat("A", 4)
    seat_hold_create(event_id=hall.event.pk, seat_ids=[seat_id], expires_at=now + timedelta(minutes=1), now=now)
    seat = seat_block(seat_id=seat_id, now=now + timedelta(minutes=2), reason="broken")
    assert (seat.status, seat.hold_id) == (SeatStatus.BLOCKED, None)
    transitions = list(
        AuditLogEntry.objects.filter(object_id=str(seat_id)).order_by("id").values_list("transition", flat=True)
    )
    assert transitions == ["hold", "expire", "block"]
