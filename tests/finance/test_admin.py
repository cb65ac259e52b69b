"""The finance admin: scoped to the staff's organizations, ledger read-only, CSV export."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from finance.models import JournalTransaction, Settlement
from finance.services import ledger_record_sale, settlement_create
from tests.factories import EventFactory, MembershipFactory
from tests.finance.factories import make_paid_payment, sale_kwargs
from ticketing.models import Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def settled(organization):
    now = timezone.now()
    event = EventFactory(organization=organization, starts_at=now - timedelta(days=9), ends_at=now - timedelta(days=8))
    with transaction.atomic():
        ledger_record_sale(**(sale_kwargs(make_paid_payment(event=event)) | {"occurred_at": event.ends_at}))
    settlement, _ = settlement_create(event_id=event.pk, cutoff=event.ends_at + timedelta(days=3))
    return settlement


def test_finance_staff_export_their_statements_and_cannot_edit_the_ledger(client, organization, settled) -> None:
    user = MembershipFactory(organization=organization, role=Role.FINANCE).user
    client.force_login(user)

    response = client.post("/admin/finance/settlement/", {"action": "export_csv", "_selected_action": [settled.pk]})
    assert response.status_code == 200
    lines = response.content.decode().splitlines()
    assert lines[0].startswith("settlement,organization,event,currency,cutoff,status,gross_cents")
    assert lines[1].split(",")[6] == "10000"

    txn = JournalTransaction.objects.get(kind="sale")
    page = client.get(f"/admin/finance/journaltransaction/{txn.pk}/change/")
    assert page.status_code == 200 and b"sale:" in page.content
    assert client.post(f"/admin/finance/journaltransaction/{txn.pk}/delete/", {"post": "yes"}).status_code == 403


def test_staff_of_another_organization_see_nothing(client, settled) -> None:
    stranger = MembershipFactory(role=Role.FINANCE).user
    client.force_login(stranger)
    assert client.get(f"/admin/finance/settlement/{settled.pk}/change/").status_code in (302, 404)
    listing = client.get("/admin/finance/settlement/")
    assert listing.status_code == 200
    assert Settlement.objects.count() == 1 and f'value="{settled.pk}"' not in listing.content.decode()
