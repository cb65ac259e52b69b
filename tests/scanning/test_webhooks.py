"""checkin.created: published with the admitted entry, once, and delivered signed."""

from __future__ import annotations

import json

import pytest

from scanning.models import Scan, ScanResult
from tests.api.conftest import Receiver, receiver  # noqa: F401 - the receiver fixture
from tests.scanning.conftest import Gate, issue, scan, ticket_type_with
from ticketing.models import AdmissionPolicy, WebhookDelivery, WebhookDeliveryStatus, WebhookSubscription
from ticketing.services.outbound_webhooks import webhook_signature_verify
from workflows.models import OutboxMessage


@pytest.fixture
def subscription(gate: Gate, receiver: Receiver) -> WebhookSubscription:  # noqa: F811
    return WebhookSubscription.objects.create(
        organization=gate.organization, url=receiver.url, event_types=["checkin.created"]
    )


def test_an_admitted_entry_is_delivered_signed(
    gate: Gate,
    subscription: WebhookSubscription,
    receiver: Receiver,  # noqa: F811
    django_capture_on_commit_callbacks,
) -> None:
    ticket = gate.ticket()
    with django_capture_on_commit_callbacks(execute=True):
        outcome = scan(gate.device, ticket)
        assert not receiver.received  # nothing leaves before commit

    assert OutboxMessage.objects.filter(task_name="ticketing.tasks.deliver_webhook").count() == 1
    (delivery,) = WebhookDelivery.objects.all()
    assert delivery.status == WebhookDeliveryStatus.SUCCEEDED
    headers, body = receiver.received[0]
    assert headers["Ticketing-Event-Type"] == "checkin.created"
    assert webhook_signature_verify(secret=subscription.secret, header=headers["Ticketing-Signature"], body=body)
    envelope = json.loads(body)
    checkin = envelope["data"]["checkin"]
    assert envelope["type"] == "checkin.created" and envelope["organization"] == gate.organization.pk
    assert checkin["id"] == outcome.scan.pk
    assert (checkin["ticket"], checkin["event"], checkin["device"]) == (ticket.pk, gate.event.pk, gate.device.pk)
    assert (checkin["gate"], checkin["direction"], checkin["result"]) == ("North gate", "in", "ok")
    assert checkin["server_time"] and checkin["admitted"] is True


def test_one_event_per_admitted_entry_and_none_for_the_rest(gate: Gate, subscription: WebhookSubscription) -> None:
    reentry = issue(ticket_type_with(gate.event, AdmissionPolicy.REENTRY))[0]
    single = gate.ticket()
    for direction in ("in", "in", "out", "out", "in"):  # ok, already_inside, ok (exit), not_inside, ok
        scan(gate.device, reentry, direction)
    scan(gate.device, single, nonce="n")
    scan(gate.device, single, nonce="n")  # a replay
    scan(gate.device, single)  # already inside
    scan(gate.device, "garbage")

    admitted = Scan.objects.filter(result=ScanResult.OK, direction="in")
    assert admitted.count() == 3
    deliveries = WebhookDelivery.objects.filter(event_type="checkin.created")
    assert sorted(d.payload["checkin"]["id"] for d in deliveries) == sorted(admitted.values_list("id", flat=True))


def test_without_a_subscription_nothing_is_queued(gate: Gate) -> None:
    WebhookSubscription.objects.create(
        organization=gate.organization, url="http://127.0.0.1:9/", event_types=["order.paid"]
    )
    assert scan(gate.device, gate.ticket()).result == ScanResult.OK
    assert not WebhookDelivery.objects.exists()
    assert not OutboxMessage.objects.exists()


def test_another_organizations_subscription_hears_nothing(gate: Gate, other_gate: Gate) -> None:
    WebhookSubscription.objects.create(
        organization=other_gate.organization, url="http://127.0.0.1:9/", event_types=["checkin.created"]
    )
    scan(gate.device, gate.ticket())
    assert not WebhookDelivery.objects.exists()
