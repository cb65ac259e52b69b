"""Ticket transfer and revoke through the API."""

from __future__ import annotations

import pytest

from tests.api.conftest import World, client_for, token_for
from ticketing.models import AuditLogEntry, Ticket, TicketStatus


@pytest.fixture
def box_office(world_a: World):
    return client_for(token_for(world_a.organization, "box_office"))


def test_transfer_names_the_new_holder_and_voids_the_old_code(box_office, world_a: World) -> None:
    before = world_a.ticket.generation
    response = box_office.post(
        f"/api/v1/tickets/{world_a.ticket.pk}/transfer/",
        {"holder_name": "Bo Friend", "holder_email": "Bo@Example.org"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="t-1",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["holder_name"] == "Bo Friend" and body["holder_email"].lower() == "bo@example.org"
    assert body["generation"] > before and body["status"] == TicketStatus.VALID
    replay = box_office.post(
        f"/api/v1/tickets/{world_a.ticket.pk}/transfer/",
        {"holder_name": "Bo Friend", "holder_email": "Bo@Example.org"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="t-1",
    )
    assert replay.json() == body and replay["Idempotent-Replayed"] == "true"


def test_transfer_validation_names_the_field(box_office, world_a: World) -> None:
    response = box_office.post(
        f"/api/v1/tickets/{world_a.ticket.pk}/transfer/", {"holder_name": "", "holder_email": "x"}, format="json"
    )
    assert response.status_code == 400 and {"holder_name", "holder_email"} <= set(response.json()["detail"])
    assert Ticket.objects.get(pk=world_a.ticket.pk).holder_name == world_a.ticket.holder_name


def test_revoke_is_audited_and_a_revoked_ticket_cannot_be_transferred(box_office, world_a: World) -> None:
    response = box_office.post(f"/api/v1/tickets/{world_a.ticket.pk}/revoke/", {"reason": "fraud"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == TicketStatus.REVOKED
    audit = AuditLogEntry.objects.get(object_id=str(world_a.ticket.pk), target_state=TicketStatus.REVOKED)
    assert audit.reason == "fraud" and "API token" in audit.actor_repr

    transfer = box_office.post(
        f"/api/v1/tickets/{world_a.ticket.pk}/transfer/",
        {"holder_name": "Bo Friend", "holder_email": "bo@example.org"},
        format="json",
    )
    assert transfer.status_code == 409 and transfer.json()["code"] == "ticket_not_valid"
