"""Webhooks arrive late, repeated, reordered and concurrently: each event is
applied once, the state only moves forward, and each change is signalled once.
Deliveries go through the sandbox's own delivery path (signed, in-process,
through our endpoint's view)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from payments.models import Payment, PaymentStatus, SandboxWebhook, WebhookEvent, WebhookOutcome
from payments.sandbox.webhooks import (
    sandbox_webhook_deliver,
    sandbox_webhook_replay,
    sandbox_webhooks_deliver_due,
    sandbox_webhooks_deliver_shuffled,
)
from payments.services import payment_session_create, webhook_receive
from payments.tasks import deliver_sandbox_webhook
from tests.concurrency import run_concurrently
from tests.payments.factories import SANDBOX_SECRET, hmac_header, make_order, sandbox_event
from ticketing.models import AuditLogEntry

SUCCESS, DECLINED, DELAYED = "4242424242424242", "4000000000000002", "4000000000000077"


def charge_without_delivery(client, pay_url, session, card) -> None:
    """The buyer pays; the webhooks are recorded, due, but not delivered: the
    after-commit delivery is switched off, as in the webhook-shuffle drill,
    and the test plays the provider's deliveries itself. (A delivery lost to
    a crash leaves its row to the sweeper only once its lease runs out:
    tests/payments/test_inline_delivery.py.)"""
    with override_settings(SANDBOX_WEBHOOKS_DELIVER_ON_COMMIT=False):
        client.post(pay_url(session), {"card_number": card, "action": "pay"})


def webhook(session, event_type: str) -> SandboxWebhook:
    return SandboxWebhook.objects.get(session__session_id=session.provider_session_id, event_type=event_type)


def state_changes(payment: Payment) -> list[tuple[str, str]]:
    return list(
        AuditLogEntry.objects.filter(object_id=str(payment.pk), content_type__model="payment")
        .order_by("id")
        .values_list("source_state", "target_state")
    )


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_a_webhook_replayed_ten_times_among_others_changes_state_once(
    db, client, pay_url, signal_log, django_capture_on_commit_callbacks, seed
):
    # given: three paid orders; one was declined first, then paid
    sessions = [
        payment_session_create(order=make_order(), provider="sandbox", idempotency_key=f"k{i}") for i in range(3)
    ]
    first, second, third = sessions
    for session in sessions:
        if session is second:
            charge_without_delivery(client, pay_url, session, DECLINED)
        charge_without_delivery(client, pay_url, session, SUCCESS)
    assert not SandboxWebhook.objects.filter(delivered_at__isnull=False).exists()
    replayed = webhook(first, "payment.succeeded").pk
    others = [
        webhook(second, "payment.failed").pk,
        webhook(second, "payment.succeeded").pk,
        webhook(third, "payment.succeeded").pk,
    ]

    # when: the first one's success arrives ten times, shuffled among the others (each twice)
    with django_capture_on_commit_callbacks(execute=True):
        results = sandbox_webhooks_deliver_shuffled(webhook_ids=[replayed] * 10 + others * 2, seed=seed)

    # then
    assert [r.status_code for r in results] == [200] * 16
    for session in sessions:
        payment = Payment.objects.get(session=session)
        assert payment.status == PaymentStatus.SUCCEEDED
        assert state_changes(payment)[-1][1] == "succeeded"
        assert [target for _, target in state_changes(payment)].count("succeeded") == 1
    assert state_changes(Payment.objects.get(session=first)) == [("created", "succeeded")]
    succeeded = signal_log.of("payment_succeeded")
    assert sorted(kwargs["payment_id"] for kwargs in succeeded) == sorted(s.payment.pk for s in sessions)
    event = WebhookEvent.objects.get(provider_event_id=SandboxWebhook.objects.get(pk=replayed).event_id)
    assert (event.delivery_count, event.outcome) == (10, WebhookOutcome.PROCESSED)
    assert WebhookEvent.objects.count() == 4


def test_a_late_pending_after_succeeded_changes_nothing(
    client, sandbox_session, pay_url, signal_log, django_capture_on_commit_callbacks
):
    charge_without_delivery(client, pay_url, sandbox_session, DELAYED)

    with django_capture_on_commit_callbacks(execute=True):
        sandbox_webhook_replay(webhook_id=webhook(sandbox_session, "payment.succeeded").pk)
        result = sandbox_webhook_replay(webhook_id=webhook(sandbox_session, "payment.pending").pk)

    assert result[0].status_code == 200
    payment = Payment.objects.get(pk=sandbox_session.payment.pk)
    assert payment.status == PaymentStatus.SUCCEEDED
    assert state_changes(payment) == [("created", "succeeded")]
    pending_event = WebhookEvent.objects.get(event_type="payment.pending")
    assert pending_event.outcome == WebhookOutcome.NO_CHANGE
    assert signal_log.names() == ["payment_succeeded"]


def test_a_failure_after_success_does_not_downgrade(
    client, sandbox_session, pay_url, signal_log, django_capture_on_commit_callbacks
):
    charge_without_delivery(client, pay_url, sandbox_session, DECLINED)
    charge_without_delivery(client, pay_url, sandbox_session, SUCCESS)

    with django_capture_on_commit_callbacks(execute=True):
        sandbox_webhook_replay(webhook_id=webhook(sandbox_session, "payment.succeeded").pk)
        sandbox_webhook_replay(webhook_id=webhook(sandbox_session, "payment.failed").pk)

    payment = Payment.objects.get(pk=sandbox_session.payment.pk)
    assert (payment.status, payment.failure_code) == (PaymentStatus.SUCCEEDED, "")
    assert signal_log.names() == ["payment_succeeded"]


def test_a_failed_delivery_is_retried_with_backoff(
    client, sandbox_session, pay_url, signal_log, django_capture_on_commit_callbacks, settings
):
    charge_without_delivery(client, pay_url, sandbox_session, SUCCESS)
    outgoing = webhook(sandbox_session, "payment.succeeded")

    # Our endpoint is "down" (it answers 404 while the sandbox is switched off).
    settings.PAYMENT_PROVIDERS = ("stripe",)
    before = timezone.now()
    assert deliver_sandbox_webhook.delay(outgoing.pk).get() == 404
    outgoing.refresh_from_db()
    assert (outgoing.attempts, outgoing.last_status_code, outgoing.delivered_at) == (1, 404, None)
    assert before + timedelta(seconds=4) < outgoing.next_attempt_at < timezone.now() + timedelta(seconds=6)
    # Not due yet: a duplicate task message does nothing.
    assert deliver_sandbox_webhook.delay(outgoing.pk).get() is None
    assert Payment.objects.get(pk=sandbox_session.payment.pk).status == PaymentStatus.CREATED

    # A second failure backs off further.
    sandbox_webhooks_deliver_due(now=timezone.now() + timedelta(seconds=6))
    outgoing.refresh_from_db()
    assert outgoing.attempts == 2
    assert outgoing.next_attempt_at > timezone.now() + timedelta(seconds=14)

    settings.PAYMENT_PROVIDERS = ("sandbox", "stripe")
    with django_capture_on_commit_callbacks(execute=True):
        results = sandbox_webhooks_deliver_due(now=timezone.now() + timedelta(seconds=30))
    assert [(r.status_code, r.delivered) for r in results] == [(200, True)]
    outgoing.refresh_from_db()
    assert (outgoing.attempts, outgoing.last_error, outgoing.next_attempt_at) == (3, "", None)
    assert Payment.objects.get(pk=sandbox_session.payment.pk).status == PaymentStatus.SUCCEEDED
    assert signal_log.names() == ["payment_succeeded"]
    # Delivered: nothing is due any more.
    assert sandbox_webhook_deliver(webhook_id=outgoing.pk, now=timezone.now() + timedelta(days=1)) is None


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_deliveries_apply_once(signal_log):
    order = make_order()
    session = payment_session_create(order=order, provider="sandbox", idempotency_key="race")
    body = sandbox_event(session)
    header = hmac_header(body=body, secret=SANDBOX_SECRET)

    results = run_concurrently(
        [lambda: webhook_receive(provider="sandbox", raw_body=body, headers={"Sandbox-Signature": header})] * 8
    )

    assert [exc for _, exc in results] == [None] * 8
    assert sorted(created for (_, created), _ in results) == [False] * 7 + [True]
    event = WebhookEvent.objects.get()
    assert (event.delivery_count, event.outcome) == (8, WebhookOutcome.PROCESSED)
    assert Payment.objects.get(pk=session.payment.pk).status == PaymentStatus.SUCCEEDED
    assert signal_log.names() == ["payment_succeeded"]
