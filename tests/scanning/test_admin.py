"""The scanning admin: devices (token shown once, revoke), the scan log,
admission policies; every page scoped to the staff's organizations."""

from __future__ import annotations

import re

from django.urls import reverse

from scanning.models import Device, Scan
from scanning.services.devices import device_authenticate
from tests.factories import MembershipFactory
from tests.scanning.conftest import Gate, scan
from ticketing.models import AdmissionPolicy, Role, TicketType


def _login(client, gate: Gate, role: str = Role.MANAGER):
    user = MembershipFactory(organization=gate.organization, role=role).user
    client.force_login(user)
    return user


def test_adding_a_device_shows_its_token_once(client, gate: Gate) -> None:
    user = _login(client, gate)
    response = client.post(
        reverse("admin:scanning_device_add"),
        {"event": gate.event.pk, "name": "Handheld 7", "gate": "East gate"},
        follow=True,
    )
    assert response.status_code == 200
    page = response.content.decode()
    token = re.search(r"(dv_[0-9a-f]+_[A-Za-z0-9_-]+)", page).group(1)
    device = Device.objects.get(name="Handheld 7")
    assert (device.organization_id, device.event_id, device.created_by_id) == (
        gate.organization.pk,
        gate.event.pk,
        user.pk,
    )
    assert device_authenticate(raw=token) == device
    assert token not in client.get(reverse("admin:scanning_device_change", args=[device.pk])).content.decode()


def test_the_revoke_action_revokes(client, gate: Gate) -> None:
    _login(client, gate)
    response = client.post(
        reverse("admin:scanning_device_changelist"), {"action": "revoke", "_selected_action": [gate.device.pk]}
    )
    assert response.status_code == 302
    assert Device.objects.get(pk=gate.device.pk).revoked_at is not None
    assert device_authenticate(raw=gate.token) is None


def test_another_tenants_devices_and_scans_are_invisible(client, gate: Gate, other_gate: Gate) -> None:
    scan(other_gate.device, other_gate.ticket())
    theirs = Scan.objects.get()
    _login(client, gate)
    page = client.get(reverse("admin:scanning_device_changelist")).content.decode()
    assert "Alpha live" in page and "Beta live" not in page
    page = client.get(reverse("admin:scanning_scan_changelist")).content.decode()
    assert "Beta live" not in page
    response = client.get(reverse("admin:scanning_scan_change", args=[theirs.pk]))
    assert response.status_code in (302, 404)
    # A crafted POST with their event creates nothing.
    client.post(reverse("admin:scanning_device_add"), {"event": other_gate.event.pk, "name": "x", "gate": "y"})
    assert not Device.objects.filter(event=other_gate.event, name="x").exists()
    client.post(
        reverse("admin:scanning_device_changelist"), {"action": "revoke", "_selected_action": [other_gate.device.pk]}
    )
    assert Device.objects.get(pk=other_gate.device.pk).revoked_at is None


def test_scans_are_read_only_with_filters(client, gate: Gate) -> None:
    ticket = gate.ticket()
    recorded = scan(gate.device, ticket).scan
    _login(client, gate, Role.SCANNER)
    changelist = reverse("admin:scanning_scan_changelist")
    page = client.get(changelist).content.decode()
    assert f"#{ticket.pk} (Ada Lovelace)" in page
    # The ticket's page code is a credential: gate staff do not see it here.
    assert ticket.code not in page
    detail = client.get(reverse("admin:scanning_scan_change", args=[recorded.pk]))
    assert detail.status_code == 200 and ticket.code not in detail.content.decode()
    state_page = client.get(reverse("admin:scanning_admissionstate_changelist")).content.decode()
    assert f"#{ticket.pk}" in state_page and ticket.code not in state_page
    assert client.get(changelist, {"result": "ok"}).status_code == 200
    assert client.get(changelist, {"direction": "in", "event__id__exact": gate.event.pk}).status_code == 200
    # Gate staff read; they do not add devices.
    assert client.get(reverse("admin:scanning_device_add")).status_code == 403
    assert client.get(reverse("admin:scanning_scan_add")).status_code == 403


def test_admission_policies_are_edited_under_scanning(client, gate: Gate, other_gate: Gate) -> None:
    _login(client, gate)
    changelist = client.get(reverse("admin:scanning_tickettypeadmission_changelist")).content.decode()
    assert gate.ticket_type.name in changelist and other_gate.ticket_type.name not in changelist
    url = reverse("admin:scanning_tickettypeadmission_change", args=[gate.ticket_type.pk])
    # N entries need a number.
    response = client.post(url, {"admission_policy": AdmissionPolicy.MULTI_ENTRY, "max_entries": ""})
    assert response.status_code == 200 and b"Set how many entries" in response.content
    response = client.post(url, {"admission_policy": AdmissionPolicy.MULTI_ENTRY, "max_entries": "3"})
    assert response.status_code == 302
    saved = TicketType.objects.get(pk=gate.ticket_type.pk)
    assert (saved.admission_policy, saved.max_entries) == (AdmissionPolicy.MULTI_ENTRY, 3)
    # Theirs is out of reach.
    their_url = reverse("admin:scanning_tickettypeadmission_change", args=[other_gate.ticket_type.pk])
    client.post(their_url, {"admission_policy": AdmissionPolicy.REENTRY, "max_entries": ""})
    assert TicketType.objects.get(pk=other_gate.ticket_type.pk).admission_policy == AdmissionPolicy.SINGLE_ENTRY
