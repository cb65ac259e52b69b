"""Outbound webhooks: recorded in the change's transaction, signed, retried
with exponential backoff, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from tests.api.conftest import Receiver
from tests.factories import MembershipFactory, OrganizationFactory
from ticketing.exceptions import InvalidInput
from ticketing.models import WebhookDelivery, WebhookDeliveryStatus, WebhookSubscription
from ticketing.services.outbound_webhooks import (
    backoff,
    webhook_delivery_attempt,
    webhook_event_publish,
    webhook_signature_verify,
)
from ticketing.tasks import deliver_due_webhooks
from workflows.models import OutboxMessage


@pytest.fixture
def subscription(db, receiver: Receiver) -> WebhookSubscription:
    return WebhookSubscription.objects.create(
        organization=OrganizationFactory(), url=receiver.url, event_types=["order.paid", "order.refunded"]
    )


def _publish(subscription: WebhookSubscription, event_type: str = "order.paid") -> list[WebhookDelivery]:
    with transaction.atomic():
        return webhook_event_publish(
            organization_id=subscription.organization_id, event_type=event_type, payload={"order": {"id": 7}}
        )


def test_delivery_is_signed_and_sent_after_commit(subscription, receiver, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        (delivery,) = _publish(subscription)
        assert not receiver.received  # nothing leaves before commit
    assert OutboxMessage.objects.filter(task_name="ticketing.tasks.deliver_webhook").count() == 1

    delivery.refresh_from_db()
    assert delivery.status == WebhookDeliveryStatus.SUCCEEDED
    assert delivery.response_status == 200 and delivery.attempts == 1
    headers, body = receiver.received[0]
    assert webhook_signature_verify(secret=subscription.secret, header=headers["Ticketing-Signature"], body=body)
    assert not webhook_signature_verify(secret="whsec_wrong", header=headers["Ticketing-Signature"], body=body)
    assert not webhook_signature_verify(
        secret=subscription.secret, header=headers["Ticketing-Signature"], body=body + b" "
    )
    assert headers["Ticketing-Event-Type"] == "order.paid"
    assert b'"type":"order.paid"' in body and b'"data":{"order":{"id":7}}' in body


def test_an_old_signature_is_refused(subscription):
    from ticketing.services.outbound_webhooks import webhook_sign

    old = int((timezone.now() - timedelta(minutes=10)).timestamp())
    header = webhook_sign(secret=subscription.secret, timestamp=old, body=b"{}")
    assert not webhook_signature_verify(secret=subscription.secret, header=header, body=b"{}")


def test_failures_are_retried_with_exponential_backoff(subscription, receiver):
    receiver.failures = 3
    (delivery,) = _publish(subscription)
    now = timezone.now()
    waits = []
    for _ in range(3):
        result = webhook_delivery_attempt(delivery_id=delivery.pk, now=now)
        assert result.sent and result.status == WebhookDeliveryStatus.PENDING and result.response_status == 500
        waits.append(result.retry_at - now)
        # Not due yet: nothing is sent.
        assert not webhook_delivery_attempt(delivery_id=delivery.pk, now=now + waits[-1] / 2).sent
        now = result.retry_at
    assert waits == [backoff(1), backoff(2), backoff(3)]
    assert waits[1] == 2 * waits[0] and waits[2] == 4 * waits[0]

    final = webhook_delivery_attempt(delivery_id=delivery.pk, now=now)
    assert final.status == WebhookDeliveryStatus.SUCCEEDED
    delivery.refresh_from_db()
    assert delivery.attempts == 4 and len(receiver.received) == 4
    # Each attempt carries its own timestamp, and is correctly signed.
    for headers, body in receiver.received:
        assert webhook_signature_verify(
            secret=subscription.secret,
            header=headers["Ticketing-Signature"],
            body=body,
            now=timezone.now(),
            tolerance=10**6,
        )
    assert not webhook_delivery_attempt(delivery_id=delivery.pk, now=now).sent  # done: never sent twice


def test_gives_up_after_max_attempts(subscription, receiver, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    receiver.failures = 10
    (delivery,) = _publish(subscription)
    first = webhook_delivery_attempt(delivery_id=delivery.pk)
    second = webhook_delivery_attempt(delivery_id=delivery.pk, now=first.retry_at)
    assert second.status == WebhookDeliveryStatus.FAILED
    assert not webhook_delivery_attempt(delivery_id=delivery.pk, now=first.retry_at + timedelta(days=1)).sent


def test_unreachable_receiver_is_a_failed_attempt(subscription):
    WebhookSubscription.objects.filter(pk=subscription.pk).update(url="http://127.0.0.1:9/closed")
    (delivery,) = _publish(subscription)
    result = webhook_delivery_attempt(delivery_id=delivery.pk)
    assert result.response_status is None and result.status == WebhookDeliveryStatus.PENDING
    assert WebhookDelivery.objects.get(pk=delivery.pk).last_error


def test_the_beat_task_sends_due_deliveries(subscription, receiver):
    (delivery,) = _publish(subscription)
    assert deliver_due_webhooks() == 1  # eager Celery: sent inline
    delivery.refresh_from_db()
    assert delivery.status == WebhookDeliveryStatus.SUCCEEDED
    assert deliver_due_webhooks() == 0


def test_only_subscribed_active_subscriptions_of_the_organization_get_events(subscription):
    WebhookSubscription.objects.create(
        organization=subscription.organization, url="http://127.0.0.1:9/", event_types=["order.paid"], is_active=False
    )
    WebhookSubscription.objects.create(
        organization=OrganizationFactory(), url="http://127.0.0.1:9/", event_types=["order.paid"]
    )
    assert len(_publish(subscription)) == 1
    assert _publish(subscription, "ticket.issued") == []
    with pytest.raises(InvalidInput):
        _publish(subscription, "order.exploded")


def test_rolled_back_changes_publish_nothing(subscription):
    with pytest.raises(RuntimeError), transaction.atomic():
        webhook_event_publish(organization_id=subscription.organization_id, event_type="order.paid", payload={})
        raise RuntimeError("the change failed")
    assert not WebhookDelivery.objects.exists()
    assert not OutboxMessage.objects.exists()


def test_admin_resend_sends_the_same_event_again(client, subscription, receiver):
    (delivery,) = _publish(subscription)
    webhook_delivery_attempt(delivery_id=delivery.pk)
    owner = MembershipFactory(organization=subscription.organization, role="owner").user
    client.force_login(owner)
    response = client.post(
        reverse("admin:ticketing_webhookdelivery_changelist"),
        {"action": "resend", "_selected_action": [delivery.pk]},
    )
    assert response.status_code == 302
    copies = WebhookDelivery.objects.exclude(pk=delivery.pk)
    assert copies.count() == 1 and copies[0].event_id == delivery.event_id
    webhook_delivery_attempt(delivery_id=copies[0].pk)
    assert len(receiver.received) == 2
    assert receiver.received[0][0]["Ticketing-Event-Id"] == receiver.received[1][0]["Ticketing-Event-Id"]
    assert client.get(reverse("admin:ticketing_webhookdelivery_changelist")).status_code == 200
