"""What the endpoints do, beyond who may call them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from seating.models import Seat, SeatHold, SeatStatus
from tests.api.conftest import World, client_for, make_order, token_for
from ticketing.models import AuditLogEntry, Event, EventStatus, OrderStatus, TicketType
from ticketing.services.capacity import capacity_reserve


@pytest.fixture
def owner(world_a: World):
    return client_for(token_for(world_a.organization, "owner"))


def test_event_lifecycle(owner, world_a: World):
    start = timezone.now() + timedelta(days=5)
    created = owner.post(
        "/api/v1/events/",
        {
            "name": "Jazz",
            "slug": "jazz",
            "venue_name": "Club",
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(hours=2)).isoformat(),
            "timezone": "Europe/Paris",
        },
        format="json",
    )
    assert created.status_code == 201
    event_id = created.json()["id"]
    assert created.json()["status"] == "draft" and created.json()["organization"] == world_a.organization.pk

    # Open sales needs a ticket type.
    assert owner.post(f"/api/v1/events/{event_id}/open-sales/", {}, format="json").json()["code"] == "invalid_state"
    tt = owner.post(
        f"/api/v1/events/{event_id}/ticket-types/", {"name": "GA", "price_cents": 1500, "capacity": 50}, format="json"
    )
    assert tt.status_code == 201 and tt.json()["currency"] == "EUR"
    opened = owner.post(f"/api/v1/events/{event_id}/open-sales/", {"reason": "go"}, format="json")
    assert opened.json()["status"] == "on_sale"
    audit = AuditLogEntry.objects.filter(object_id=str(event_id), target_state="on_sale").get()
    assert audit.actor is None and "API token" in audit.actor_repr and audit.reason == "go"

    assert (
        owner.patch(f"/api/v1/events/{event_id}/", {"name": "Jazz night"}, format="json").json()["name"] == "Jazz night"
    )
    # Slug taken by another event of the organization: a 400, nothing saved.
    clash = owner.patch(f"/api/v1/events/{event_id}/", {"slug": world_a.event.slug}, format="json")
    assert clash.status_code == 400
    assert Event.objects.get(pk=event_id).slug == "jazz"

    assert owner.post(f"/api/v1/events/{event_id}/cancel/", {}, format="json").json()["status"] == "cancelled"
    assert owner.patch(f"/api/v1/events/{event_id}/", {"name": "x"}, format="json").status_code == 409


def test_event_list_filters_and_orders(owner, world_a: World):
    drafts = owner.get("/api/v1/events/?status=draft").json()
    assert [e["id"] for e in drafts["results"]] == [world_a.draft_event.pk]
    page = owner.get("/api/v1/events/?limit=1&ordering=-name").json()
    assert page["count"] == 2 and len(page["results"]) == 1 and page["next"]


def test_ticket_type_capacity_cannot_drop_below_held(owner, world_a: World):
    capacity_reserve(ticket_type=world_a.ticket_type, quantity=5, expires_at=timezone.now() + timedelta(minutes=5))
    url = f"/api/v1/ticket-types/{world_a.ticket_type.pk}/"
    response = owner.patch(url, {"capacity": 1}, format="json")
    assert response.status_code == 400 and "capacity" in response.json()["detail"]
    assert TicketType.objects.get(pk=world_a.ticket_type.pk).capacity == 100
    assert owner.patch(url, {"capacity": 120, "price_cents": 3000}, format="json").json()["capacity"] == 120


def test_availability_discounts_expired_holds(world_a: World):
    tt = world_a.ticket_type
    capacity_reserve(ticket_type=tt, quantity=3, expires_at=timezone.now() + timedelta(minutes=5))
    hold = capacity_reserve(ticket_type=tt, quantity=4, expires_at=timezone.now() + timedelta(minutes=5))
    type(hold).objects.filter(pk=hold.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    body = client_for(None).get(f"/api/v1/public/ticket-types/{tt.pk}/availability/").json()
    assert body == {"ticket_type_id": tt.pk, "capacity": 100, "sold": 0, "held": 3, "available": 97}


def test_public_endpoints_show_only_what_is_on_sale(world_a: World):
    anon = client_for(None)
    ids = [e["id"] for e in anon.get("/api/v1/public/events/").json()["results"]]
    assert world_a.event.pk in ids and world_a.draft_event.pk not in ids
    assert anon.get(f"/api/v1/public/events/{world_a.draft_event.pk}/").status_code == 404
    assert anon.get(f"/api/v1/public/events/{world_a.draft_event.pk}/ticket-types/").status_code == 404
    names = [t["name"] for t in anon.get(f"/api/v1/public/events/{world_a.event.pk}/ticket-types/").json()]
    assert world_a.ticket_type.name in names
    seat_map = anon.get(f"/api/v1/public/events/{world_a.event.pk}/seat-map/").json()
    statuses = {s["id"]: s["status"] for s in seat_map["seats"]}
    assert statuses[world_a.hold.seat_ids[0]] == "held"
    assert anon.get(f"/api/v1/public/events/{world_a.draft_event.pk}/seat-map/").status_code == 404


def test_best_available_hold_and_release(world_a: World):
    box = client_for(token_for(world_a.organization, "box_office"))
    created = box.post(
        f"/api/v1/events/{world_a.event.pk}/seat-holds/",
        {"category": world_a.hall.categories["std"].pk, "quantity": 3, "minutes": 5, "reference": "phone sale"},
        format="json",
    )
    assert created.status_code == 201, created.json()
    hold_id, seat_ids = created.json()["id"], created.json()["seat_ids"]
    assert len(seat_ids) == 3
    assert set(Seat.objects.filter(pk__in=seat_ids).values_list("status", flat=True)) == {SeatStatus.HELD}

    released = box.post(f"/api/v1/seat-holds/{hold_id}/release/", {}, format="json")
    assert released.json()["status"] == "released"
    assert set(Seat.objects.filter(pk__in=seat_ids).values_list("status", flat=True)) == {SeatStatus.FREE}
    # Releasing again is harmless.
    assert box.post(f"/api/v1/seat-holds/{hold_id}/release/", {}, format="json").status_code == 200


@pytest.mark.parametrize(
    "body",
    [{}, {"seat_ids": []}, {"category": 1}, {"seat_ids": [1], "quantity": 2}, {"seat_ids": "1,2"}, {"quantity": 0}],
)
def test_bad_hold_requests_are_400_and_hold_nothing(world_a: World, body):
    box = client_for(token_for(world_a.organization, "box_office"))
    before = SeatHold.objects.count()
    response = box.post(f"/api/v1/events/{world_a.event.pk}/seat-holds/", body, format="json")
    assert response.status_code == 400
    assert SeatHold.objects.count() == before


def test_order_filters_and_detail(world_a: World):
    make_order(world_a.event, world_a.ticket_type, email="other@example.com", paid=False)
    finance = client_for(token_for(world_a.organization, "finance"))
    by_email = finance.get("/api/v1/orders/?email=OTHER@example.com").json()["results"]
    assert [o["buyer_email"] for o in by_email] == ["other@example.com"]
    paid = finance.get(f"/api/v1/orders/?status=paid&event={world_a.event.pk}").json()["results"]
    assert [o["id"] for o in paid] == [world_a.order.pk]
    future = (timezone.now() + timedelta(days=1)).isoformat().replace("+", "%2B")
    assert finance.get(f"/api/v1/orders/?created_after={future}").json()["count"] == 0
    assert finance.get("/api/v1/orders/?status=bogus").status_code == 400

    detail = finance.get(f"/api/v1/orders/{world_a.order.pk}/").json()
    assert detail["status"] == OrderStatus.PAID
    assert detail["lines"][0]["quantity"] == 2 and len(detail["tickets"]) == 2
    ticket = finance.get(f"/api/v1/tickets/{world_a.ticket.pk}/").json()
    assert ticket["order_code"] == world_a.order.code


def test_workflow_run_with_steps(world_a: World):
    finance = client_for(token_for(world_a.organization, "finance"))
    runs = finance.get("/api/v1/workflow-runs/?workflow_type=checkout.start").json()["results"]
    assert [r["id"] for r in runs] == [world_a.run.pk]
    detail = finance.get(f"/api/v1/workflow-runs/{world_a.run.pk}/").json()
    assert [s["name"] for s in detail["steps"]] == ["reserve"]


def test_event_of_a_single_organization_needs_no_organization_field(owner, world_a: World):
    start = timezone.now() + timedelta(days=5)
    body = {"name": "A", "slug": "a-1", "venue_name": "V", "starts_at": start.isoformat(), "ends_at": start.isoformat()}
    assert owner.post("/api/v1/events/", body, format="json").status_code == 201
    assert Event.objects.filter(slug="a-1", organization=world_a.organization, status=EventStatus.DRAFT).exists()
