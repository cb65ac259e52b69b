"""Tenant isolation in the seating admin: staff of one organization neither see
nor change another organization's plans, seats or holds."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from seating.models import Seat, SeatStatus
from seating.services.holds import seat_hold_create
from tests.factories import EventFactory, MembershipFactory, OrganizationFactory
from tests.seating.factories import make_hall
from ticketing.models import Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def ours(organization):
    return make_hall(EventFactory(organization=organization), sections=("Alpha",), category_codes=("alphacat",))


@pytest.fixture
def theirs():
    return make_hall(EventFactory(organization=OrganizationFactory()), sections=("Beta",), category_codes=("betacat",))


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


def test_plan_changelist_and_change_page_are_scoped(staff_client, ours, theirs):
    ours.plan.name, theirs.plan.name = "Our Hall", "Their Hall"
    ours.plan.save(update_fields=["name"])
    theirs.plan.save(update_fields=["name"])

    listing = staff_client.get(reverse("admin:seating_seatingplan_changelist"))
    assert listing.status_code == 200
    assert "Our Hall" in listing.content.decode()
    assert "Their Hall" not in listing.content.decode()

    own = staff_client.get(reverse("admin:seating_seatingplan_change", args=[ours.plan.pk]))
    assert own.status_code == 200
    assert "Alpha" in own.content.decode()  # the sections inline

    foreign = staff_client.get(reverse("admin:seating_seatingplan_change", args=[theirs.plan.pk]))
    assert foreign.status_code in (302, 403, 404)
    assert "Their Hall" not in foreign.content.decode()

    posted = staff_client.post(
        reverse("admin:seating_seatingplan_change", args=[theirs.plan.pk]),
        {"name": "Hijacked", "width": 10, "height": 10, "forbid_orphans": "on"},
    )
    assert posted.status_code in (302, 403, 404)
    theirs.plan.refresh_from_db()
    assert (theirs.plan.name, theirs.plan.forbid_orphans) == ("Their Hall", False)


def test_seat_changelist_filters_and_change_page_are_scoped(staff_client, ours, theirs):
    listing = staff_client.get(reverse("admin:seating_seat_changelist"), {"q": "A 1"})
    body = listing.content.decode()
    assert listing.status_code == 200
    assert "Alpha A 1" in body
    assert "Beta A 1" not in body
    assert "Alphacat" in body  # the category filter offers our category ...
    assert "Betacat" not in body  # ... and not theirs

    foreign_seat = theirs.seat("A", 1, section="Beta")
    foreign = staff_client.get(reverse("admin:seating_seat_change", args=[foreign_seat]))
    assert foreign.status_code in (302, 403, 404)
    assert "Beta A 1" not in foreign.content.decode()


def test_block_action_changes_only_our_seats(staff_client, ours, theirs):
    own_seat = ours.seat("A", 1, section="Alpha")
    foreign_seat = theirs.seat("A", 1, section="Beta")

    response = staff_client.post(
        reverse("admin:seating_seat_changelist"),
        {"action": "block_seats", "_selected_action": [own_seat, foreign_seat], "index": 0, "select_across": 0},
    )

    assert response.status_code == 302
    assert Seat.objects.get(pk=own_seat).status == SeatStatus.BLOCKED
    assert Seat.objects.get(pk=foreign_seat).status == SeatStatus.FREE


def test_status_is_read_only_in_the_seat_form(staff_client, ours):
    seat_id = ours.seat("A", 2, section="Alpha")
    response = staff_client.post(
        reverse("admin:seating_seat_change", args=[seat_id]),
        {"label": "Alpha A 2", "is_accessible": "on", "x": 1, "y": 2, "status": "sold"},
    )
    assert response.status_code == 302
    seat = Seat.objects.get(pk=seat_id)
    assert (seat.status, seat.is_accessible) == (SeatStatus.FREE, True)


def test_viewers_cannot_block(client, organization, ours):
    scanner = MembershipFactory(organization=organization, role=Role.SCANNER).user
    client.force_login(scanner)
    seat_id = ours.seat("A", 3, section="Alpha")
    assert client.get(reverse("admin:seating_seat_changelist")).status_code == 200
    client.post(
        reverse("admin:seating_seat_changelist"),
        {"action": "block_seats", "_selected_action": [seat_id], "index": 0, "select_across": 0},
    )
    assert Seat.objects.get(pk=seat_id).status == SeatStatus.FREE


def test_seat_holds_are_scoped_and_read_only(staff_client, ours, theirs):
    expires = timezone.now() + timedelta(minutes=10)
    own = seat_hold_create(event_id=ours.event.pk, seat_ids=[ours.seat("A", 5, "Alpha")], expires_at=expires)
    foreign = seat_hold_create(event_id=theirs.event.pk, seat_ids=[theirs.seat("A", 5, "Beta")], expires_at=expires)

    listing = staff_client.get(reverse("admin:seating_seathold_changelist")).content.decode()
    assert own.token[:8] in listing
    assert foreign.token[:8] not in listing
    assert staff_client.get(reverse("admin:seating_seathold_change", args=[foreign.pk])).status_code in (302, 403, 404)
    own_page = staff_client.get(reverse("admin:seating_seathold_change", args=[own.pk]))
    assert own_page.status_code == 200
    assert 'name="_save"' not in own_page.content.decode()


def test_actions_apply_only_where_the_user_may_change(client, staff_user, ours, theirs):
    # Owner of our organization, but only a scanner (view-only) at theirs.
    MembershipFactory(user=staff_user, organization=theirs.event.organization, role=Role.SCANNER)
    client.force_login(staff_user)
    own_seat = ours.seat("A", 4, section="Alpha")
    viewable_seat = theirs.seat("A", 4, section="Beta")
    assert "Beta A 4" in client.get(reverse("admin:seating_seat_changelist"), {"q": "A 4"}).content.decode()

    client.post(
        reverse("admin:seating_seat_changelist"),
        {"action": "block_seats", "_selected_action": [own_seat, viewable_seat], "index": 0, "select_across": 0},
    )

    assert Seat.objects.get(pk=own_seat).status == SeatStatus.BLOCKED
    assert Seat.objects.get(pk=viewable_seat).status == SeatStatus.FREE
