"""Staff of one organization never see or change another's rows in the admin."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import EventFactory, MembershipFactory, OrganizationFactory, TicketTypeFactory
from ticketing.models import Event, Membership, Role, TicketType


@pytest.fixture
def two_tenants(db):
    ours, theirs = OrganizationFactory(name="Ours"), OrganizationFactory(name="Theirs")
    our_event = EventFactory(organization=ours, name="Our gig")
    their_event = EventFactory(organization=theirs, name="Their gig")
    TicketTypeFactory(event=their_event, name="Their standing")
    staff = MembershipFactory(organization=ours, role=Role.MANAGER).user
    return ours, theirs, our_event, their_event, staff


def test_changelists_list_only_our_rows(client, two_tenants):
    *_, staff = two_tenants
    client.force_login(staff)

    page = client.get(reverse("admin:ticketing_event_changelist")).content.decode()
    assert "Our gig" in page
    assert "Their gig" not in page
    page = client.get(reverse("admin:ticketing_tickettype_changelist")).content.decode()
    assert "Their standing" not in page


def test_another_tenants_change_page_is_not_found(client, two_tenants):
    _, _, _, their_event, staff = two_tenants
    client.force_login(staff)
    response = client.get(reverse("admin:ticketing_event_change", args=[their_event.pk]))
    # Django's admin redirects to its index with a "doesn't exist" message for
    # objects outside the queryset: nothing of theirs is shown.
    assert response.status_code in (302, 404)
    assert b"Their gig" not in response.content


def test_posting_to_another_tenants_object_changes_nothing(client, two_tenants):
    _, theirs, _, their_event, staff = two_tenants
    client.force_login(staff)
    url = reverse("admin:ticketing_event_change", args=[their_event.pk])
    client.post(url, {"name": "Hijacked", "organization": theirs.pk})
    their_event.refresh_from_db()
    assert their_event.name == "Their gig"


def test_cannot_create_rows_in_another_tenant(client, two_tenants):
    ours, theirs, _, _, staff = two_tenants
    client.force_login(staff)
    data = {
        "organization": theirs.pk,
        "name": "Sneaky",
        "slug": "sneaky",
        "venue_name": "X",
        "timezone": "UTC",
        "currency": "EUR",
        "starts_at_0": "2030-01-01",
        "starts_at_1": "20:00:00",
        "ends_at_0": "2030-01-01",
        "ends_at_1": "23:00:00",
        "ticket_types-TOTAL_FORMS": "0",
        "ticket_types-INITIAL_FORMS": "0",
    }
    response = client.post(reverse("admin:ticketing_event_add"), data)
    assert response.status_code == 200  # the form comes back with an error
    assert not Event.objects.filter(name="Sneaky").exists()

    data["organization"] = ours.pk
    response = client.post(reverse("admin:ticketing_event_add"), data)
    assert response.status_code == 302
    assert Event.objects.get(name="Sneaky").organization == ours


def test_a_scanner_cannot_change_events_and_a_stranger_sees_nothing(client, two_tenants, make_user):
    ours, _, our_event, _, _ = two_tenants
    scanner = MembershipFactory(organization=ours, role=Role.SCANNER).user
    client.force_login(scanner)
    assert client.get(reverse("admin:ticketing_event_changelist")).status_code == 200
    client.post(reverse("admin:ticketing_event_change", args=[our_event.pk]), {"name": "Renamed"})
    our_event.refresh_from_db()
    assert our_event.name == "Our gig"
    assert client.get(reverse("admin:ticketing_order_changelist")).status_code == 403

    stranger = make_user()
    client.force_login(stranger)
    assert client.get(reverse("admin:ticketing_event_changelist")).status_code == 403


def test_staff_cannot_grant_themselves_another_tenant(client, two_tenants):
    ours, theirs, _, _, _ = two_tenants
    owner = MembershipFactory(organization=ours, role=Role.OWNER).user
    client.force_login(owner)
    client.post(
        reverse("admin:ticketing_membership_add"), {"user": owner.pk, "organization": theirs.pk, "role": Role.OWNER}
    )
    assert not Membership.objects.filter(user=owner, organization=theirs).exists()


def test_open_sales_action_runs_the_service_and_audits(client, db):
    org = OrganizationFactory()
    event = EventFactory(organization=org, status="draft")
    TicketTypeFactory(event=event)
    staff = MembershipFactory(organization=org, role=Role.OWNER).user
    client.force_login(staff)
    client.post(reverse("admin:ticketing_event_changelist"), {"action": "open_sales", "_selected_action": [event.pk]})
    event.refresh_from_db()
    assert event.status == "on_sale"
    from ticketing.models import AuditLogEntry

    entry = AuditLogEntry.objects.get(object_id=str(event.pk))
    assert (entry.source_state, entry.target_state, entry.actor) == ("draft", "on_sale", staff)


def test_superuser_sees_every_tenant(admin_client, two_tenants):
    page = admin_client.get(reverse("admin:ticketing_event_changelist")).content.decode()
    assert "Our gig" in page and "Their gig" in page
    assert TicketType.objects.count() == 1
