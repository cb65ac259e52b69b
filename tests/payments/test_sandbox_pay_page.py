"""The sandbox's hosted pay page, end to end: page -> sandbox charge ->
signed webhook (delivered in-process right after commit, before the page
answers) -> our endpoint -> payment state -> signal."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from payments.models import (
    PaymentSessionStatus,
    PaymentStatus,
    SandboxSession,
    SandboxWebhook,
    WebhookEvent,
    WebhookOutcome,
)
from payments.tasks import deliver_due_sandbox_webhooks
from ticketing.models import AuditLogEntry, OrderStatus

SUCCESS, DECLINED, NO_FUNDS, DELAYED = (
    "4242 4242 4242 4242",
    "4000000000000002",
    "4000-0000-0000-9995",
    "4000000000000077",
)


def pay(client, url, card, capture):
    with capture(execute=True):
        return client.post(url, {"card_number": card, "action": "pay"})


def test_the_page_shows_the_amount_and_the_test_cards(client, sandbox_session, pay_url):
    response = client.get(pay_url(sandbox_session))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Pay 25.00 EUR" in page
    assert "4242424242424242" in page and "4000000000000077" in page
    assert sandbox_session.payment_url == f"https://tickets.example{pay_url(sandbox_session)}"


def test_paying_with_the_success_card(client, sandbox_session, pay_url, signal_log, django_capture_on_commit_callbacks):
    response = pay(client, pay_url(sandbox_session), SUCCESS, django_capture_on_commit_callbacks)

    assert response.status_code == 302
    assert response["Location"] == sandbox_session.success_url
    payment = sandbox_session.payment
    payment.refresh_from_db()
    sandbox = SandboxSession.objects.get(session_id=sandbox_session.provider_session_id)
    assert payment.status == PaymentStatus.SUCCEEDED
    assert payment.captured_cents == 2500
    assert payment.provider_payment_id == sandbox.payment_id
    sandbox_session.refresh_from_db()
    assert sandbox_session.status == PaymentSessionStatus.COMPLETE
    webhook = SandboxWebhook.objects.get(session=sandbox)
    assert (webhook.event_type, webhook.attempts, webhook.last_status_code) == ("payment.succeeded", 1, 200)
    assert webhook.delivered_at is not None
    event = WebhookEvent.objects.get()
    assert (event.outcome, event.signature_verified, event.payment_id) == (WebhookOutcome.PROCESSED, True, payment.pk)
    assert signal_log.names() == ["payment_succeeded"]
    assert signal_log.of("payment_succeeded")[0] == {
        "sender": type(payment),
        "payment_id": payment.pk,
        "order_id": sandbox_session.order_id,
        "order_code": sandbox_session.order.code,
        "organization_id": payment.organization_id,
        "session_id": sandbox_session.pk,
        "provider": "sandbox",
        "amount_cents": 2500,
        "currency": "EUR",
        "status": "succeeded",
        "succeeded_at": payment.succeeded_at,
    }
    audit = AuditLogEntry.objects.get(object_id=str(payment.pk), transition="mark_succeeded")
    assert (audit.source_state, audit.target_state, audit.actor_repr) == ("created", "succeeded", "system")
    # Payments never changes the order: that is the checkout workflow's job.
    sandbox_session.order.refresh_from_db()
    assert sandbox_session.order.status == OrderStatus.PENDING


def test_a_double_submit_charges_once(client, sandbox_session, pay_url, signal_log, django_capture_on_commit_callbacks):
    pay(client, pay_url(sandbox_session), SUCCESS, django_capture_on_commit_callbacks)
    response = pay(client, pay_url(sandbox_session), SUCCESS, django_capture_on_commit_callbacks)

    assert response.status_code == 302
    assert SandboxWebhook.objects.count() == 1
    assert signal_log.names() == ["payment_succeeded"]


@pytest.mark.parametrize(("card", "failure_code"), [(DECLINED, "card_declined"), (NO_FUNDS, "insufficient_funds")])
def test_a_declined_card_fails_the_payment_and_the_buyer_can_retry(
    client, sandbox_session, pay_url, signal_log, django_capture_on_commit_callbacks, card, failure_code
):
    response = pay(client, pay_url(sandbox_session), card, django_capture_on_commit_callbacks)

    assert response.status_code == 402
    assert ("declined" if failure_code == "card_declined" else "insufficient funds") in response.content.decode()
    payment = sandbox_session.payment
    payment.refresh_from_db()
    assert (payment.status, payment.failure_code, payment.captured_cents) == (PaymentStatus.FAILED, failure_code, 0)
    assert signal_log.names() == ["payment_failed"]
    assert signal_log.of("payment_failed")[0]["failure_code"] == failure_code

    # The hosted page stays open, and a good card still pays.
    response = pay(client, pay_url(sandbox_session), SUCCESS, django_capture_on_commit_callbacks)
    assert response.status_code == 302
    payment.refresh_from_db()
    assert (payment.status, payment.failure_code, payment.captured_cents) == (PaymentStatus.SUCCEEDED, "", 2500)
    assert signal_log.names() == ["payment_failed", "payment_succeeded"]


def test_delayed_confirmation_stays_pending_until_the_later_webhook(
    client, sandbox_session, pay_url, signal_log, django_capture_on_commit_callbacks, settings
):
    settings.SANDBOX_DELAYED_CONFIRMATION_SECONDS = 60
    response = pay(client, pay_url(sandbox_session), DELAYED, django_capture_on_commit_callbacks)

    assert response.status_code == 200
    assert "being processed" in response.content.decode()
    payment = sandbox_session.payment
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.PENDING
    assert signal_log.names() == ["payment_pending"]
    later = SandboxWebhook.objects.get(event_type="payment.succeeded")
    assert later.delivered_at is None
    assert timedelta(seconds=55) < later.next_attempt_at - timezone.now() <= timedelta(seconds=60)

    # The sweeper leaves it alone until it is due...
    with django_capture_on_commit_callbacks(execute=True):
        assert deliver_due_sandbox_webhooks.delay().get() == 0
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.PENDING

    # ...and delivers it once it is.
    SandboxWebhook.objects.filter(pk=later.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    SandboxSession.objects.update(settles_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert deliver_due_sandbox_webhooks.delay().get() == 1
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert SandboxSession.objects.get().status == "succeeded"
    assert signal_log.names() == ["payment_pending", "payment_succeeded"]


def test_the_management_command_fast_forwards_delayed_confirmations(
    client, sandbox_session, pay_url, signal_log, django_capture_on_commit_callbacks
):
    pay(client, pay_url(sandbox_session), DELAYED, django_capture_on_commit_callbacks)

    with django_capture_on_commit_callbacks(execute=True):
        call_command("sandbox_deliver_webhooks", "--all")

    sandbox_session.payment.refresh_from_db()
    assert sandbox_session.payment.status == PaymentStatus.SUCCEEDED
    assert signal_log.names() == ["payment_pending", "payment_succeeded"]
    assert "being processed" not in client.get(pay_url(sandbox_session)).content.decode()


def test_an_unknown_card_number_is_a_form_error_and_changes_nothing(
    client, sandbox_session, pay_url, signal_log, django_capture_on_commit_callbacks
):
    response = pay(client, pay_url(sandbox_session), "4111 1111 1111 1111", django_capture_on_commit_callbacks)
    assert response.status_code == 400
    assert "test card" in response.content.decode()
    response = pay(client, pay_url(sandbox_session), "not a card", django_capture_on_commit_callbacks)
    assert response.status_code == 400
    assert "12 to 19 digits" in response.content.decode()

    sandbox_session.payment.refresh_from_db()
    assert sandbox_session.payment.status == PaymentStatus.CREATED
    assert not SandboxWebhook.objects.exists()
    assert SandboxSession.objects.get().attempts == 0
    assert signal_log.calls == []


def test_cancel_goes_back_without_changing_anything(client, sandbox_session, pay_url, signal_log):
    response = client.post(pay_url(sandbox_session), {"action": "cancel"})
    assert response.status_code == 302
    assert response["Location"] == sandbox_session.cancel_url
    assert SandboxSession.objects.get().status == "open"
    assert signal_log.calls == []


def test_an_expired_page_cannot_be_paid_and_cancels_the_payment(
    client, sandbox_session, pay_url, signal_log, django_capture_on_commit_callbacks
):
    SandboxSession.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    response = pay(client, pay_url(sandbox_session), SUCCESS, django_capture_on_commit_callbacks)

    assert response.status_code == 410
    assert "expired" in response.content.decode()
    sandbox_session.payment.refresh_from_db()
    assert sandbox_session.payment.status == PaymentStatus.CANCELLED
    assert signal_log.names() == ["payment_cancelled"]


def test_unknown_page_and_disabled_sandbox_are_not_found(client, sandbox_session, pay_url, settings):
    assert client.get("/pay/sandbox/no-such-token/").status_code == 404
    settings.PAYMENT_PROVIDERS = ("stripe",)
    assert client.get(pay_url(sandbox_session)).status_code == 404
