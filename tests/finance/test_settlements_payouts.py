"""Settlements, reserves, payouts, the manage.py runs and the finance workflows."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from finance import accounts as chart
from finance.accounts import AccountKind
from finance.exceptions import InsufficientFunds, SettlementNotDue
from finance.models import OrganizationFinanceSettings, Payout, PayoutStatus, Settlement, SettlementStatus
from finance.selectors import account_balance_by_ref, ledger_differences, reconciliation_differences
from finance.services import (
    ledger_record_refund,
    ledger_record_sale,
    payout_mark_failed,
    payout_mark_in_transit,
    payout_mark_paid,
    payout_request,
    settlement_approve,
    settlement_create,
    settlement_reserve_release,
)
from payments.models import Refund, RefundStatus
from tests.factories import EventFactory
from tests.finance.factories import make_paid_payment, sale_kwargs

pytestmark = pytest.mark.django_db


@pytest.fixture
def past_event(organization):
    now = timezone.now()
    return EventFactory(
        organization=organization, starts_at=now - timedelta(days=6, hours=3), ends_at=now - timedelta(days=6)
    )


def _sell(event, n: int = 1) -> list:
    payments = [make_paid_payment(event=event) for _ in range(n)]
    with transaction.atomic():
        for payment in payments:
            ledger_record_sale(**(sale_kwargs(payment) | {"occurred_at": event.ends_at - timedelta(days=1)}))
    return payments


def _balance(kind: AccountKind, org: int) -> int:
    return account_balance_by_ref(ref=chart.org(kind, org, "EUR"))


def test_a_settlement_moves_pending_to_available_minus_the_reserve_and_its_statement_adds_up(past_event) -> None:
    org = past_event.organization_id
    _sell(past_event, 2)
    cutoff = past_event.ends_at + timedelta(days=3)

    settlement, created = settlement_create(event_id=past_event.pk, cutoff=cutoff)

    assert created and settlement is not None
    assert settlement.status == SettlementStatus.POSTED
    assert settlement.gross_cents == 20000 and settlement.pending_cents == 20000
    assert settlement.reserve_cents == 2000 and settlement.net_cents == 18000
    parts = settlement.gross_cents - settlement.platform_fees_cents - settlement.processor_fees_cents
    assert parts - settlement.refunds_cents - settlement.chargebacks_cents == settlement.pending_cents
    assert account_balance_by_ref(ref=chart.pending(org, past_event.pk, "EUR")) == 0
    assert _balance(AccountKind.ORG_AVAILABLE, org) == 18000
    assert _balance(AccountKind.ORG_RESERVE, org) == 2000
    assert settlement.reserve_release_at == cutoff + timedelta(days=90)
    assert ledger_differences() == []


def test_a_settlement_cannot_precede_its_cutoff_and_is_created_once(past_event) -> None:
    _sell(past_event)
    with pytest.raises(SettlementNotDue):
        settlement_create(event_id=past_event.pk, cutoff=timezone.now() + timedelta(hours=1))
    cutoff = past_event.ends_at + timedelta(days=3)
    first, _ = settlement_create(event_id=past_event.pk, cutoff=cutoff)
    second, created = settlement_create(
        event_id=past_event.pk, cutoff=cutoff.astimezone(timezone.get_fixed_timezone(120))
    )
    assert first is not None and second is not None
    assert not created and first.pk == second.pk
    assert Settlement.objects.count() == 1


def test_a_refund_after_payout_leaves_the_organizer_owing_and_the_next_settlement_recovers_it(past_event) -> None:
    org = past_event.organization_id
    (payment,) = _sell(past_event)
    settlement_create(event_id=past_event.pk, cutoff=past_event.ends_at + timedelta(days=3))
    payout = payout_request(organization_id=org, currency="EUR", idempotency_key="po-1")
    assert payout is not None and payout.amount_cents == 9000
    payout_mark_in_transit(payout_id=payout.pk, provider_payout_id="po_x")
    payout_mark_paid(payout_id=payout.pk)

    refund = Refund.objects.create(
        organization_id=org,
        payment=payment,
        provider="sandbox",
        amount_cents=10894,
        currency="EUR",
        idempotency_key="r-1",
        status=RefundStatus.SUCCEEDED,
    )
    order = payment.order
    ledger_record_refund(
        refund_id=refund.pk,
        payment_id=payment.pk,
        organization_id=org,
        event_id=past_event.pk,
        currency="EUR",
        amount_cents=10894,
        fee_snapshot=order.fee_snapshot,
        occurred_at=timezone.now() - timedelta(days=2),
    )
    owed, _ = settlement_create(event_id=past_event.pk, cutoff=timezone.now() - timedelta(days=1))
    assert owed is not None and owed.pending_cents == -10000 and owed.refunds_cents == 10000
    assert _balance(AccountKind.ORG_RECEIVABLE, org) == 10000

    # a later sale of another event pays the debt back first
    other = EventFactory(
        organization=past_event.organization, starts_at=past_event.starts_at, ends_at=past_event.ends_at
    )
    _sell(other, 2)
    later, _ = settlement_create(event_id=other.pk, cutoff=other.ends_at + timedelta(days=3))
    assert later is not None and later.receivable_recovered_cents == 10000 and later.net_cents == 8000
    assert _balance(AccountKind.ORG_RECEIVABLE, org) == 0
    settlement_reserve_release(settlement_id=later.pk, now=later.reserve_release_at)
    assert _balance(AccountKind.ORG_AVAILABLE, org) == 8000 + 2000  # the later net and its released reserve
    assert _balance(AccountKind.ORG_RESERVE, org) == 1000  # the first settlement's, still held
    assert ledger_differences() == []
    assert reconciliation_differences() == []


def test_approval_holds_the_money_until_finance_staff_approve(past_event) -> None:
    OrganizationFinanceSettings.objects.create(
        organization=past_event.organization, require_settlement_approval=True, reserve_percent_bp=0
    )
    _sell(past_event)
    settlement, _ = settlement_create(event_id=past_event.pk, cutoff=past_event.ends_at + timedelta(days=3))
    assert settlement is not None and settlement.status == SettlementStatus.AWAITING_APPROVAL
    assert _balance(AccountKind.ORG_AVAILABLE, past_event.organization_id) == 0
    settlement_approve(settlement_id=settlement.pk)
    assert _balance(AccountKind.ORG_AVAILABLE, past_event.organization_id) == 10000


def test_a_payout_never_exceeds_available_and_a_failure_restores_it(past_event) -> None:
    org = past_event.organization_id
    _sell(past_event)
    settlement_create(event_id=past_event.pk, cutoff=past_event.ends_at + timedelta(days=3))
    with pytest.raises(InsufficientFunds):
        payout_request(organization_id=org, currency="EUR", amount_cents=9001, idempotency_key="too-much")
    assert not Payout.objects.exists()
    payout = payout_request(organization_id=org, currency="EUR", idempotency_key="all")
    again = payout_request(organization_id=org, currency="EUR", idempotency_key="all")
    assert payout is not None and again is not None and payout.pk == again.pk
    assert _balance(AccountKind.ORG_AVAILABLE, org) == 0
    assert payout_request(organization_id=org, currency="EUR", idempotency_key="nothing-left") is None

    payout_mark_failed(payout_id=payout.pk, failure_code="account_closed")
    payout_mark_failed(payout_id=payout.pk, failure_code="account_closed")

    assert _balance(AccountKind.ORG_AVAILABLE, org) == 9000
    assert _balance(AccountKind.PAYOUT_IN_TRANSIT, org) == 0
    assert reconciliation_differences() == []


def test_run_settlements_twice_creates_one_settlement_and_prints_a_summary(past_event) -> None:
    _sell(past_event)
    dry = StringIO()
    call_command("run_settlements", "--dry-run", "--no-progress", stdout=dry)
    assert "would settle" in dry.getvalue() and not Settlement.objects.exists()

    for _ in range(2):
        out = StringIO()
        call_command("run_settlements", "--org", str(past_event.organization_id), "--no-progress", stdout=out)
    assert Settlement.objects.count() == 1
    assert "items" in out.getvalue()
    call_command("verify_ledger", stdout=StringIO())


def test_run_settlements_exits_non_zero_when_an_item_fails(past_event) -> None:
    OrganizationFinanceSettings.objects.create(organization=past_event.organization, require_settlement_approval=True)
    _sell(past_event)
    settlement_create(event_id=past_event.pk, cutoff=past_event.ends_at + timedelta(days=3))
    _sell(past_event)  # more sales while the first settlement awaits approval
    with pytest.raises(SystemExit) as exc:
        call_command("run_settlements", "--no-progress", stdout=StringIO(), stderr=StringIO())
    assert exc.value.code == 1


def test_run_payouts_pays_through_the_provider_once_a_day(past_event, django_capture_on_commit_callbacks) -> None:
    org = past_event.organization_id
    _sell(past_event)
    settlement_create(event_id=past_event.pk, cutoff=past_event.ends_at + timedelta(days=3))

    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            call_command("run_payouts", "--no-progress", stdout=StringIO())

    payout = Payout.objects.get()
    assert payout.status == PayoutStatus.IN_TRANSIT and payout.provider_payout_id
    assert _balance(AccountKind.PAYOUT_IN_TRANSIT, org) == 9000

    from workflows.engine import signal
    from workflows.models import WorkflowRun

    run = WorkflowRun.objects.get(workflow_type="finance.initiate_payout")
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        signal(run, "finance.payout_result", {"status": "paid"})
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.PAID
    assert ledger_differences() == [] and reconciliation_differences() == []


def test_the_settlement_workflow_sleeps_until_the_cutoff_then_posts(
    organization, django_capture_on_commit_callbacks
) -> None:
    from workflows.finance.process_settlement import process_settlement_start
    from workflows.models import RunStatus

    now = timezone.now()
    event = EventFactory(
        organization=organization, starts_at=now - timedelta(days=2, hours=3), ends_at=now - timedelta(days=2)
    )
    _sell(event)
    with django_capture_on_commit_callbacks(execute=True):
        run = process_settlement_start(event_id=event.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.WAITING  # the cutoff is a day away
    assert not Settlement.objects.exists()
