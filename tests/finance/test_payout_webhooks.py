"""InitiatePayout end to end through the sandbox: the payout is made at the
sandbox, whose signed payout.paid / payout.failed webhook reaches our endpoint
and ends the run; replayed and reordered webhooks never book twice; a run
whose webhook never comes asks the provider; never more than available."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from finance import accounts as chart
from finance.accounts import AccountKind
from finance.exceptions import InsufficientFunds
from finance.models import JournalTransaction, OrganizationFinanceSettings, Payout, PayoutStatus
from finance.selectors import account_balance_by_ref, ledger_differences, reconciliation_differences
from finance.services import ledger_record_sale, payout_request, settlement_create
from payments.exceptions import WebhookMismatch, WebhookUnknownSession
from payments.models import SandboxPayout, SandboxWebhook, WebhookEvent, WebhookOutcome
from payments.sandbox.webhooks import (
    DELIVERY_LEASE_SECONDS,
    sandbox_webhook_replay,
    sandbox_webhooks_deliver_due,
    sandbox_webhooks_deliver_shuffled,
    signature_header,
)
from payments.services import webhook_receive
from tests.concurrency import run_concurrently
from tests.factories import EventFactory
from tests.finance.factories import make_paid_payment, sale_kwargs
from tests.workflows.helpers import rewind
from workflows.engine import cancel
from workflows.engine.sweepers import wake_due_runs
from workflows.finance.initiate_payout import initiate_payout_start
from workflows.models import RunStatus, WorkflowRun, WorkflowStep

pytestmark = pytest.mark.django_db

PAID, CLOSED, STUCK, RETURNED, REFUSED = "000123456789", "000111111113", "000444444440", "000555555559", "000999999991"
AVAILABLE = 9000  # one sale of two 50.00 tickets, settled minus the 10 % reserve


@pytest.fixture(autouse=True)
def _sandbox_payouts(settings):
    settings.PAYMENT_PROVIDERS = ("sandbox", "stripe")
    settings.SANDBOX_PAYOUT_DELAY_SECONDS = 30


@pytest.fixture
def funded(organization):
    """An organization with 90.00 available for payout."""
    now = timezone.now()
    event = EventFactory(
        organization=organization, starts_at=now - timedelta(days=6, hours=3), ends_at=now - timedelta(days=6)
    )
    with transaction.atomic():
        ledger_record_sale(**(sale_kwargs(make_paid_payment(event=event)) | {"occurred_at": event.ends_at}))
    settlement_create(event_id=event.pk, cutoff=event.ends_at + timedelta(days=3))
    assert _balance(AccountKind.ORG_AVAILABLE, organization.pk) == AVAILABLE
    return organization


def _balance(kind: AccountKind, org: int) -> int:
    return account_balance_by_ref(ref=chart.org(kind, org, "EUR"))


def _pay_out(org, capture, *, destination: str = PAID, key: str = "payout-1") -> tuple[WorkflowRun, Payout]:
    OrganizationFinanceSettings.objects.update_or_create(organization=org, defaults={"payout_destination": destination})
    with capture(execute=True):
        run = initiate_payout_start(organization_id=org.pk, currency="EUR", idempotency_key=key)
    return WorkflowRun.objects.get(pk=run.pk), Payout.objects.get(idempotency_key=key)


def _deliver_due(capture, *, after_seconds: float) -> list[int]:
    """Let the sandbox's clock run on and deliver what is due."""
    with capture(execute=True):
        results = sandbox_webhooks_deliver_due(now=timezone.now() + timedelta(seconds=after_seconds))
    return [r.status_code for r in results]


def _assert_books_clean() -> None:
    assert ledger_differences() == []
    assert reconciliation_differences() == []
    call_command("verify_ledger", stdout=__import__("io").StringIO())


def _assert_failed_and_restored(payout: Payout, run: WorkflowRun, organization: Any) -> None:
    """The payout failed (account closed), its run ended, and the
    organization's available balance is back, nothing left in transit."""
    payout.refresh_from_db()
    run.refresh_from_db()
    assert payout.status == PayoutStatus.FAILED and payout.failure_code == "account_closed"
    assert run.status == RunStatus.COMPLETED and run.output["status"] == "failed"
    assert _balance(AccountKind.ORG_AVAILABLE, organization.pk) == AVAILABLE
    assert _balance(AccountKind.PAYOUT_IN_TRANSIT, organization.pk) == 0


def _payout_postings(payout: Payout) -> list[str]:
    return sorted(
        JournalTransaction.objects.filter(reference=f"payout:{payout.pk}").values_list("idempotency_key", flat=True)
    )


def test_a_payout_is_paid_by_the_sandboxs_webhook(funded, django_capture_on_commit_callbacks) -> None:
    # given: the run sent the payout; it is in transit until the sandbox says more
    run, payout = _pay_out(funded, django_capture_on_commit_callbacks)
    assert payout.status == PayoutStatus.IN_TRANSIT and payout.provider_payout_id.startswith("sbx_po_")
    assert run.status == RunStatus.WAITING
    assert _balance(AccountKind.PAYOUT_IN_TRANSIT, funded.pk) == AVAILABLE
    sandbox = SandboxPayout.objects.get(payout_id=payout.provider_payout_id)
    assert sandbox.reference == payout.idempotency_key and sandbox.amount_cents == AVAILABLE

    # when: the sandbox's payout.paid webhook is due and delivered
    assert _deliver_due(django_capture_on_commit_callbacks, after_seconds=5) == []  # not yet
    assert _deliver_due(django_capture_on_commit_callbacks, after_seconds=31) == [200]

    # then
    payout.refresh_from_db()
    run.refresh_from_db()
    assert payout.status == PayoutStatus.PAID and payout.paid_at is not None
    assert run.status == RunStatus.COMPLETED and run.output == {"payout_id": payout.pk, "status": "paid"}
    event = WebhookEvent.objects.get(event_type="payout.paid")
    assert event.outcome == WebhookOutcome.PROCESSED and event.organization_id == funded.pk
    assert _balance(AccountKind.PAYOUT_IN_TRANSIT, funded.pk) == 0
    assert _balance(AccountKind.ORG_AVAILABLE, funded.pk) == 0
    assert _payout_postings(payout) == [f"payout:{payout.pk}:initiated", f"payout:{payout.pk}:paid"]
    _assert_books_clean()


def test_a_failed_payout_restores_the_balance(funded, django_capture_on_commit_callbacks) -> None:
    run, payout = _pay_out(funded, django_capture_on_commit_callbacks, destination=CLOSED)
    assert _balance(AccountKind.ORG_AVAILABLE, funded.pk) == 0

    assert _deliver_due(django_capture_on_commit_callbacks, after_seconds=31) == [200]

    _assert_failed_and_restored(payout, run, funded)
    _assert_books_clean()

    # and the restored money is paid out by the next run (another key)
    _, again = _pay_out(funded, django_capture_on_commit_callbacks, destination=PAID, key="payout-2")
    assert again.amount_cents == AVAILABLE and again.status == PayoutStatus.IN_TRANSIT


def test_a_refused_destination_fails_the_send_and_the_compensation_restores(
    funded, django_capture_on_commit_callbacks
) -> None:
    run, payout = _pay_out(funded, django_capture_on_commit_callbacks, destination=REFUSED)
    assert run.status == RunStatus.COMPENSATED
    assert payout.status == PayoutStatus.FAILED and payout.failure_code == "not_sent"
    assert _balance(AccountKind.ORG_AVAILABLE, funded.pk) == AVAILABLE
    assert not SandboxPayout.objects.exists()
    _assert_books_clean()


def test_a_replayed_webhook_changes_nothing_more(funded, django_capture_on_commit_callbacks) -> None:
    _, payout = _pay_out(funded, django_capture_on_commit_callbacks, destination=CLOSED)
    _deliver_due(django_capture_on_commit_callbacks, after_seconds=31)
    webhook = SandboxWebhook.objects.get(payout__payout_id=payout.provider_payout_id)

    with django_capture_on_commit_callbacks(execute=True):
        results = sandbox_webhook_replay(webhook_id=webhook.pk, times=3)

    assert [r.status_code for r in results] == [200] * 3
    event = WebhookEvent.objects.get(event_type="payout.failed")
    assert event.delivery_count == 4 and event.outcome == WebhookOutcome.PROCESSED
    assert _balance(AccountKind.ORG_AVAILABLE, funded.pk) == AVAILABLE  # restored once
    assert _payout_postings(payout) == [f"payout:{payout.pk}:failed", f"payout:{payout.pk}:initiated"]
    _assert_books_clean()


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_a_returned_payout_ends_failed_and_restored_once_in_any_order(
    funded, django_capture_on_commit_callbacks, seed
) -> None:
    # given: a payout the bank pays and then returns: payout.paid, later payout.failed
    run, payout = _pay_out(funded, django_capture_on_commit_callbacks, destination=RETURNED)
    paid = SandboxWebhook.objects.get(payout__payout_id=payout.provider_payout_id, event_type="payout.paid")
    failed = SandboxWebhook.objects.get(payout__payout_id=payout.provider_payout_id, event_type="payout.failed")

    # when: both arrive, repeated and shuffled
    with django_capture_on_commit_callbacks(execute=True):
        results = sandbox_webhooks_deliver_shuffled(webhook_ids=[paid.pk, failed.pk] * 3, seed=seed)

    # then: whatever came first, the payout ends failed and the balance was restored once
    assert [r.status_code for r in results] == [200] * 6
    _assert_failed_and_restored(payout, run, funded)
    assert JournalTransaction.objects.filter(kind="payout_failed", reference=f"payout:{payout.pk}").count() == 1
    assert WebhookEvent.objects.filter(event_type__startswith="payout.").count() == 2
    _assert_books_clean()


def _signed_payout_event(payout: Payout, *, event_type: str, event_id: str, **data: object) -> tuple[bytes, dict]:
    body = {
        "payout_id": payout.provider_payout_id,
        "payout_reference": payout.idempotency_key,
        "amount_cents": payout.amount_cents,
        "currency": payout.currency,
        "failure_code": "no_account" if event_type == "payout.failed" else "",
    } | data
    raw = json.dumps({"id": event_id, "type": event_type, "created": int(time.time()), "data": body}).encode()
    return raw, {"Sandbox-Signature": signature_header(raw_body=raw)}


@pytest.mark.parametrize("order", [("paid", "failed"), ("failed", "paid")])
def test_contradicting_webhooks_restore_at_most_once(funded, django_capture_on_commit_callbacks, order) -> None:
    _, payout = _pay_out(funded, django_capture_on_commit_callbacks)
    for status in [*order, *order]:  # each twice: the second time is a replay
        raw, headers = _signed_payout_event(payout, event_type=f"payout.{status}", event_id=f"evt_{status}")
        with django_capture_on_commit_callbacks(execute=True):
            webhook_receive(provider="sandbox", raw_body=raw, headers=headers)

    payout.refresh_from_db()
    assert payout.status == PayoutStatus.FAILED
    assert _balance(AccountKind.ORG_AVAILABLE, funded.pk) == AVAILABLE
    assert JournalTransaction.objects.filter(kind="payout_failed").count() == 1
    outcomes = dict(WebhookEvent.objects.values_list("event_type", "outcome"))
    # "paid" after "failed" changes nothing; "failed" after "paid" is a return
    assert outcomes["payout.failed"] == WebhookOutcome.PROCESSED
    assert outcomes["payout.paid"] == (WebhookOutcome.PROCESSED if order[0] == "paid" else WebhookOutcome.NO_CHANGE)
    _assert_books_clean()


def test_a_webhook_that_beats_the_run_still_ends_it(
    funded, django_capture_on_commit_callbacks, settings, monkeypatch
) -> None:
    # given: a sandbox that pays at once, and its webhook delivered the moment
    # the provider call returns: before the run marks the payout in transit
    from workflows.finance import initiate_payout as module

    settings.SANDBOX_PAYOUT_DELAY_SECONDS = 0
    send = module.payout_create

    def send_then_deliver(**kwargs: object) -> str:
        provider_payout_id = send(**kwargs)
        # (the row is held for its delivery after the commit, which is not to come first here)
        later = timezone.now() + timedelta(seconds=DELIVERY_LEASE_SECONDS + 1)
        assert [r.status_code for r in sandbox_webhooks_deliver_due(now=later)] == [200]
        assert Payout.objects.get().status == PayoutStatus.PAID  # requested -> paid, by the webhook
        return provider_payout_id

    monkeypatch.setattr(module, "payout_create", send_then_deliver)

    # when
    run, payout = _pay_out(funded, django_capture_on_commit_callbacks)

    # then: the run learns the outcome from the signal it finds waiting
    run.refresh_from_db()
    assert payout.status == PayoutStatus.PAID and payout.provider_payout_id.startswith("sbx_po_")
    assert payout.in_transit_at is None
    assert run.status == RunStatus.COMPLETED and run.output["status"] == "paid"
    assert WebhookEvent.objects.get().outcome == WebhookOutcome.PROCESSED
    assert JournalTransaction.objects.filter(kind="payout_paid").count() == 1
    _assert_books_clean()


def test_a_payout_without_news_asks_the_provider_after_the_poll_interval(
    funded, django_capture_on_commit_callbacks
) -> None:
    # given: a payout whose webhook is lost (never delivered); the bank paid it a while ago
    run, payout = _pay_out(funded, django_capture_on_commit_callbacks)
    SandboxPayout.objects.update(settles_at=timezone.now() - timedelta(seconds=1))

    # when: the poll interval (24 h) passes and the beat wakes the run
    rewind(run, seconds=24 * 3600 + 1)
    with django_capture_on_commit_callbacks(execute=True):
        assert wake_due_runs() == 1

    # then: the run asked the sandbox and recorded its answer
    payout.refresh_from_db()
    run.refresh_from_db()
    assert payout.status == PayoutStatus.PAID
    assert run.status == RunStatus.COMPLETED and run.output["status"] == "paid"
    names = list(WorkflowStep.objects.filter(run=run).order_by("sequence").values_list("name", flat=True))
    assert names[-2:] == ["ask provider for status", "mark paid"]

    # and the late webhook, when it finally comes, changes nothing
    assert _deliver_due(django_capture_on_commit_callbacks, after_seconds=31) == [200]
    assert WebhookEvent.objects.get().outcome == WebhookOutcome.NO_CHANGE
    assert JournalTransaction.objects.filter(kind="payout_paid").count() == 1
    _assert_books_clean()


def test_a_payout_stuck_in_transit_keeps_waiting_and_asking(funded, django_capture_on_commit_callbacks) -> None:
    run, payout = _pay_out(funded, django_capture_on_commit_callbacks, destination=STUCK)
    assert not SandboxWebhook.objects.exists()

    for _ in range(2):
        rewind(run, seconds=24 * 3600 + 1)
        with django_capture_on_commit_callbacks(execute=True):
            wake_due_runs()

    payout.refresh_from_db()
    run.refresh_from_db()
    assert payout.status == PayoutStatus.IN_TRANSIT and run.status == RunStatus.WAITING
    asked = WorkflowStep.objects.filter(run=run, name="ask provider for status")
    assert [step.result["status"] for step in asked.order_by("sequence")] == ["in_transit", "in_transit"]
    assert _balance(AccountKind.PAYOUT_IN_TRANSIT, funded.pk) == AVAILABLE
    _assert_books_clean()


def test_a_webhook_for_an_unknown_or_different_payout_is_rejected(funded, django_capture_on_commit_callbacks) -> None:
    _, payout = _pay_out(funded, django_capture_on_commit_callbacks)

    raw, headers = _signed_payout_event(
        payout, event_type="payout.paid", event_id="evt_other", payout_id="sbx_po_other", payout_reference="nope"
    )
    with pytest.raises(WebhookUnknownSession):
        webhook_receive(provider="sandbox", raw_body=raw, headers=headers)
    raw, headers = _signed_payout_event(payout, event_type="payout.paid", event_id="evt_more", amount_cents=9999)
    with pytest.raises(WebhookMismatch):
        webhook_receive(provider="sandbox", raw_body=raw, headers=headers)

    payout.refresh_from_db()
    assert payout.status == PayoutStatus.IN_TRANSIT
    assert set(WebhookEvent.objects.values_list("outcome", flat=True)) == {WebhookOutcome.REJECTED}
    assert all(event.organization_id is None for event in WebhookEvent.objects.all())


def test_a_payout_run_never_takes_more_than_available(funded, django_capture_on_commit_callbacks) -> None:
    # given: one payout took everything
    _, first = _pay_out(funded, django_capture_on_commit_callbacks)
    assert first.amount_cents == AVAILABLE

    # when: another run (another day's key) starts, and someone asks for a cent more by hand
    second_run, _ = _pay_out_nothing(funded, django_capture_on_commit_callbacks)
    with pytest.raises(InsufficientFunds):
        payout_request(organization_id=funded.pk, currency="EUR", amount_cents=1, idempotency_key="by-hand")

    # then: the second run paid nothing and nothing was overdrawn
    assert second_run.output == {"payout_id": None}
    assert Payout.objects.count() == 1
    assert _balance(AccountKind.ORG_AVAILABLE, funded.pk) == 0
    _assert_books_clean()


def _pay_out_nothing(org, capture) -> tuple[WorkflowRun, None]:
    with capture(execute=True):
        run = initiate_payout_start(organization_id=org.pk, currency="EUR", idempotency_key="payout-next-day")
    return WorkflowRun.objects.get(pk=run.pk), None


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("require_postgres")
def test_concurrent_payout_requests_never_take_more_than_available(funded) -> None:
    def ask(i: int):
        return lambda: (
            payout_request(organization_id=funded.pk, currency="EUR", amount_cents=5000, idempotency_key=f"race-{i}").pk
        )

    results = run_concurrently([ask(i) for i in range(4)])

    assert sum(1 for _, exc in results if exc is None) == 1
    assert all(isinstance(exc, InsufficientFunds) for _, exc in results if exc is not None)
    assert Payout.objects.count() == 1
    assert _balance(AccountKind.ORG_AVAILABLE, funded.pk) == AVAILABLE - 5000
    _assert_books_clean()


def test_a_cancelled_run_never_restores_money_that_left(funded, django_capture_on_commit_callbacks) -> None:
    # given: a payout the provider accepted, its run waiting for the outcome
    run, payout = _pay_out(funded, django_capture_on_commit_callbacks)

    # when: staff cancel the run (its compensations run)
    with django_capture_on_commit_callbacks(execute=True):
        assert cancel(run, reason="test")

    # then: the money stays in transit, and the provider's word still counts
    run.refresh_from_db()
    payout.refresh_from_db()
    assert run.status == RunStatus.CANCELLED and payout.status == PayoutStatus.IN_TRANSIT
    assert _balance(AccountKind.ORG_AVAILABLE, funded.pk) == 0
    assert _deliver_due(django_capture_on_commit_callbacks, after_seconds=31) == [200]
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.PAID
    _assert_books_clean()
