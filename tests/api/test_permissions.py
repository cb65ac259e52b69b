"""The permission matrix: every role of the organization, an owner token of
another organization, and no token at all, against every staff endpoint.

A role that may not use an endpoint gets 403; another organization's objects
are 404 and stay unchanged; without credentials, 401."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from scanning.models import Device
from seating.models import SeatHold, SeatHoldStatus
from tests.api.conftest import ROLES, World, client_for, token_for
from ticketing.models import Event, EventStatus, Order, Ticket, TicketType
from workflows.models import WorkflowSignal

ALL = frozenset(ROLES)
OM = frozenset({"owner", "manager"})
READERS = frozenset({"owner", "manager", "finance", "box_office"})
BOX = frozenset({"owner", "manager", "box_office"})
RUNS = frozenset({"owner", "manager", "finance"})
GATES = frozenset({"owner", "manager", "box_office", "scanner"})


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # formatted with the world's ids
    roles: frozenset[str]
    ok: int = 200
    body: Callable[[World], dict[str, Any]] | None = None
    listing: str | None = None  # for lists: the world attribute whose id must (not) appear

    def url(self, w: World) -> str:
        return "/api/v1/" + self.path.format(
            event=w.event.pk,
            draft=w.draft_event.pk,
            tt=w.ticket_type.pk,
            hold=w.hold.pk,
            order=w.order.pk,
            ticket=w.ticket.pk,
            run=w.run.pk,
            org=w.organization.pk,
            pending=w.pending.pk,
            device=w.device.pk,
            scan=w.scan.pk,
        )

    def payload(self, w: World) -> dict[str, Any] | None:
        return self.body(w) if self.body else None


_START = (timezone.now() + timedelta(days=60)).isoformat()
_END = (timezone.now() + timedelta(days=60, hours=2)).isoformat()

ENDPOINTS = [
    Endpoint("get", "events/", ALL, listing="event"),
    Endpoint(
        "post",
        "events/",
        OM,
        201,
        lambda w: {
            "organization": w.organization.pk,
            "name": "New",
            "slug": "new",
            "venue_name": "Hall",
            "starts_at": _START,
            "ends_at": _END,
        },
    ),
    Endpoint("get", "events/{event}/", ALL),
    Endpoint("patch", "events/{event}/", OM, body=lambda w: {"name": "Renamed"}),
    Endpoint("post", "events/{draft}/open-sales/", OM, body=lambda w: {}),
    Endpoint("post", "events/{event}/close-sales/", OM, body=lambda w: {}),
    Endpoint("post", "events/{event}/cancel/", OM, body=lambda w: {"reason": "storm"}),
    Endpoint("get", "events/{event}/ticket-types/", READERS),
    Endpoint(
        "post", "events/{event}/ticket-types/", OM, 201, lambda w: {"name": "VIP", "price_cents": 9000, "capacity": 20}
    ),
    Endpoint("get", "ticket-types/{tt}/", READERS),
    Endpoint("patch", "ticket-types/{tt}/", OM, body=lambda w: {"capacity": 150}),
    Endpoint("get", "ticket-types/{tt}/availability/", READERS),
    Endpoint("get", "events/{event}/seat-map/", BOX),
    Endpoint("get", "events/{event}/seat-holds/", BOX),
    Endpoint("post", "events/{event}/seat-holds/", BOX, 201, lambda w: {"seat_ids": [w.hall.seat("A", 5)]}),
    Endpoint("get", "seat-holds/{hold}/", BOX),
    Endpoint("post", "seat-holds/{hold}/release/", BOX, body=lambda w: {}),
    Endpoint("get", "orders/", READERS, listing="order"),
    Endpoint("get", "orders/{order}/", READERS),
    Endpoint("post", "orders/{pending}/cancel/", BOX, 202, lambda w: {}),
    # The world's order was marked paid without a payment: the roles that
    # may refund get as far as the domain's answer (test_refunds has real ones).
    Endpoint("post", "orders/{order}/refunds/", RUNS, 409, lambda w: {"reason": "test"}),
    Endpoint("get", "tickets/{ticket}/", READERS),
    Endpoint(
        "post",
        "tickets/{ticket}/transfer/",
        BOX,
        body=lambda w: {"holder_name": "Bo Friend", "holder_email": "bo@x.org"},
    ),
    Endpoint("post", "tickets/{ticket}/revoke/", BOX, body=lambda w: {"reason": "fraud"}),
    Endpoint("get", "workflow-runs/", RUNS, listing="run"),
    Endpoint("get", "workflow-runs/{run}/", RUNS),
    Endpoint("get", "scanning/devices/", GATES, listing="device"),
    Endpoint(
        "post", "scanning/devices/", OM, 201, lambda w: {"event": w.event.pk, "name": "Handheld 2", "gate": "South"}
    ),
    Endpoint("get", "scanning/devices/{device}/", GATES),
    Endpoint("post", "scanning/devices/{device}/revoke/", OM, body=lambda w: {"reason": "lost"}),
    # POST scanning/scans/ takes a device token, not a role: tests/scanning/test_api.py.
    Endpoint("get", "scanning/scans/", GATES, listing="scan"),
    Endpoint("get", "scanning/scans/{scan}/", GATES),
]


def _call(client: Any, endpoint: Endpoint, world: World) -> Any:
    return getattr(client, endpoint.method)(endpoint.url(world), endpoint.payload(world), format="json")


def _snapshot(w: World) -> dict[str, Any]:
    """What a write could change in the world."""
    return {
        "events": sorted(Event.objects.filter(organization=w.organization).values_list("id", "name", "status")),
        "ticket_types": sorted(
            TicketType.objects.filter(organization=w.organization).values_list("id", "name", "capacity")
        ),
        "holds": sorted(SeatHold.objects.filter(organization_id=w.organization.pk).values_list("id", "status")),
        "orders": sorted(Order.objects.filter(organization=w.organization).values_list("id", "status")),
        "tickets": sorted(
            Ticket.objects.filter(organization=w.organization).values_list(
                "id", "status", "holder_name", "holder_email", "generation"
            )
        ),
        "signals": sorted(
            WorkflowSignal.objects.filter(run__organization=w.organization).values_list("id", "name", "payload")
        ),
        "devices": sorted(Device.objects.filter(organization=w.organization).values_list("id", "name", "revoked_at")),
    }


def _ids(endpoint: Endpoint) -> str:
    return f"{endpoint.method.upper()} {endpoint.path}"


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_ids)
@pytest.mark.parametrize("role", ROLES)
def test_role_of_the_organization(endpoint: Endpoint, role: str, world_a: World) -> None:
    client = client_for(token_for(world_a.organization, role))
    response = _call(client, endpoint, world_a)
    if role in endpoint.roles:
        assert response.status_code == endpoint.ok, response.json()
        if endpoint.listing:
            ids = [row["id"] for row in response.json()["results"]]
            assert getattr(world_a, endpoint.listing).pk in ids
    else:
        assert response.status_code == 403, response.json()
        assert response.json()["code"] == "permission_denied"


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_ids)
def test_another_organizations_owner_gets_404_and_changes_nothing(
    endpoint: Endpoint, world_a: World, world_b: World
) -> None:
    client = client_for(token_for(world_b.organization, "owner"))
    before = _snapshot(world_a)
    response = _call(client, endpoint, world_a)
    if endpoint.listing:
        assert response.status_code == 200
        ids = [row["id"] for row in response.json()["results"]]
        assert getattr(world_a, endpoint.listing).pk not in ids
        assert getattr(world_b, endpoint.listing).pk in ids
    else:
        assert response.status_code == 404, response.json()
        assert response.json()["code"] in {"not_found"}
    assert _snapshot(world_a) == before


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_ids)
def test_no_credentials_is_401(endpoint: Endpoint, world_a: World) -> None:
    response = _call(client_for(None), endpoint, world_a)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_staff_session_with_a_role_in_two_organizations_sees_only_where_the_role_allows(
    world_a: World, world_b: World, make_user: Any
) -> None:
    from ticketing.models import Membership

    user = make_user()
    Membership.objects.create(user=user, organization=world_a.organization, role="finance")
    Membership.objects.create(user=user, organization=world_b.organization, role="scanner")
    client = client_for(None)
    client.force_login(user)

    orders = client.get("/api/v1/orders/").json()["results"]
    assert {o["id"] for o in orders} == {world_a.order.pk, world_a.pending.pk}
    assert client.get(f"/api/v1/orders/{world_b.order.pk}/").status_code == 404
    # Events: any role reads them, in both organizations.
    event_ids = {e["id"] for e in client.get("/api/v1/events/").json()["results"]}
    assert {world_a.event.pk, world_b.event.pk} <= event_ids
    # Finance cannot write events.
    assert client.patch(f"/api/v1/events/{world_a.event.pk}/", {"name": "x"}, format="json").status_code == 403


def test_a_non_staff_session_is_anonymous(world_a: World, make_user: Any) -> None:
    user = make_user(is_staff=False)
    client = client_for(None)
    client.force_login(user)
    assert client.get("/api/v1/events/").status_code == 401


def test_the_outsider_hold_on_our_seats_is_refused_and_holds_nothing(world_a: World, world_b: World) -> None:
    """Seat ids of another organization's event in a hold of ours: refused, nothing held."""
    client = client_for(token_for(world_b.organization, "box_office"))
    response = client.post(
        f"/api/v1/events/{world_b.event.pk}/seat-holds/", {"seat_ids": [world_a.hall.seat("A", 1)]}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "seat_wrong_event"
    assert (
        not SeatHold.objects.filter(event=world_b.event, status=SeatHoldStatus.ACTIVE)
        .exclude(pk=world_b.hold.pk)
        .exists()
    )
    assert Event.objects.get(pk=world_a.event.pk).status == EventStatus.ON_SALE


def test_the_public_seat_hold_endpoints_take_no_credentials_and_show_no_other_hold(
    world_a: World, world_b: World
) -> None:
    """Buyers hold and release seats without credentials (any token may too,
    it grants nothing more); the hold's token is the only key, so there is no
    public way to list or read holds, and staff's hold endpoints stay closed."""
    url = f"/api/v1/public/events/{world_a.event.pk}/seat-holds/"
    body = {"category": world_a.hall.categories["std"].pk, "quantity": 2}
    for client in (client_for(None), client_for(token_for(world_b.organization, "scanner"))):
        created = client.post(url, body, format="json")
        assert created.status_code == 201, created.json()
        assert created.json()["token"] != world_a.hold.token
        released = client.post(f"/api/v1/public/seat-holds/{created.json()['token']}/release/", {}, format="json")
        assert released.status_code == 200 and released.json()["status"] == "released"
    anonymous = client_for(None)
    assert anonymous.get(url).status_code == 405
    assert anonymous.get(f"/api/v1/public/seat-holds/{world_a.hold.token}/release/").status_code == 405
    assert anonymous.get(f"/api/v1/events/{world_a.event.pk}/seat-holds/").status_code == 401
    assert anonymous.get(f"/api/v1/seat-holds/{world_a.hold.pk}/").status_code == 401
    assert SeatHold.objects.get(pk=world_a.hold.pk).status == SeatHoldStatus.ACTIVE
