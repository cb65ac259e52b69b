"""The finance admin: scoped to the staff's organizations, ledger read-only, CSV export."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from finance.exports import LINE_FIELDS
from finance.models import JournalTransaction, Settlement
from finance.services import ledger_record_refund, ledger_record_sale, ledger_reverse, settlement_create
from payments.models import Refund, RefundStatus
from tests.factories import EventFactory, MembershipFactory
from tests.finance.factories import make_paid_payment, sale_kwargs
from ticketing.models import Role

pytestmark = pytest.mark.django_db


def _streamed(response) -> str:
    return b"".join(response.streaming_content).decode()


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
    assert response.status_code == 200 and response.streaming
    lines = _streamed(response).splitlines()
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


def _refund_booked(payment, *, status: str, at) -> JournalTransaction:
    refund = Refund.objects.create(
        organization=payment.organization,
        payment=payment,
        provider="sandbox",
        amount_cents=5447,
        currency="EUR",
        idempotency_key=f"statement-refund-{payment.pk}",
        status=status,
    )
    order = payment.order
    return ledger_record_refund(
        refund_id=refund.pk,
        payment_id=payment.pk,
        organization_id=order.organization_id,
        event_id=order.event_id,
        currency="EUR",
        amount_cents=refund.amount_cents,
        fee_snapshot=order.fee_snapshot,
        occurred_at=at,
    )


def test_a_statement_streams_every_posting_it_covers_and_its_total(client, organization) -> None:
    # given: an event with three sales, half of one refunded before the cutoff,
    # and a refund of another booked in error and reversed; settled; then a
    # late sale settled on a second statement
    now = timezone.now()
    event = EventFactory(organization=organization, starts_at=now - timedelta(days=9), ends_at=now - timedelta(days=8))
    payments = [make_paid_payment(event=event) for _ in range(3)]
    with transaction.atomic():
        for payment in payments:
            ledger_record_sale(**(sale_kwargs(payment) | {"occurred_at": event.ends_at}))
    _refund_booked(payments[0], status=RefundStatus.SUCCEEDED, at=event.ends_at + timedelta(hours=1))
    wrong = _refund_booked(payments[1], status=RefundStatus.FAILED, at=event.ends_at + timedelta(hours=2))
    ledger_reverse(transaction_id=wrong.pk, effective_at=event.ends_at + timedelta(hours=3))
    first, _ = settlement_create(event_id=event.pk, cutoff=event.ends_at + timedelta(days=3))
    late_payment = make_paid_payment(event=event)
    with transaction.atomic():
        late = ledger_record_sale(**(sale_kwargs(late_payment) | {"occurred_at": event.ends_at + timedelta(days=4)}))
    second, _ = settlement_create(event_id=event.pk, cutoff=event.ends_at + timedelta(days=5))
    assert first is not None and second is not None and late is not None

    # when: finance staff export both statements with their postings
    client.force_login(MembershipFactory(organization=organization, role=Role.FINANCE).user)
    response = client.post(
        "/admin/finance/settlement/", {"action": "export_lines_csv", "_selected_action": [first.pk, second.pk]}
    )

    # then: each posting once, on its settlement, and the lines add up to the settlement's total
    assert response.status_code == 200 and response.streaming
    rows = list(csv.DictReader(io.StringIO(_streamed(response))))
    by_settlement = {pk: [r for r in rows if r["settlement"] == str(pk)] for pk in (first.pk, second.pk)}
    postings = [r for r in by_settlement[first.pk] if r["line"] == "posting"]
    assert [r["kind"] for r in postings] == ["sale", "sale", "sale", "refund", "refund", "reversal of refund"]
    assert [r["order"] for r in postings[:3]] == [str(p.order_id) for p in payments]
    assert [int(r["transaction"]) for r in by_settlement[second.pk] if r["line"] == "posting"] == [late.pk]
    for settlement in (first, second):
        lines = by_settlement[settlement.pk]
        total = lines[-1]
        assert total["line"] == "total"
        for name in LINE_FIELDS:
            assert sum(int(r[name]) for r in lines[:-1]) == int(total[name]) == getattr(settlement, name)
    assert first.gross_cents == 30000 and first.refunds_cents == 5000 and second.gross_cents == 10000

    # and one settlement's statement is a link on its page, scoped to its organization
    single = client.get(f"/admin/finance/settlement/{second.pk}/statement.csv")
    assert single.status_code == 200
    assert len(list(csv.DictReader(io.StringIO(_streamed(single))))) == 2
    client.force_login(MembershipFactory(role=Role.FINANCE).user)
    assert client.get(f"/admin/finance/settlement/{second.pk}/statement.csv").status_code == 404
