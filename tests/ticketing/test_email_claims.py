"""Sending a recorded e-mail: claimed once, sent once per claim, and a claim
left behind by a dead worker or a database outage taken back by the same
message at once (the fault drills found it waiting out the claim timeout)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone

from tests.factories import EventFactory, TicketTypeFactory
from ticketing.models import DeliveryStatus, EmailDelivery, EmailKind, Order
from ticketing.services.emails import claim_timeout, email_delivery_record, email_delivery_send

pytestmark = pytest.mark.django_db


@pytest.fixture
def delivery(organization) -> EmailDelivery:
    event = EventFactory(organization=organization)
    TicketTypeFactory(event=event)
    order = Order.objects.create(
        organization=organization,
        event=event,
        buyer_name="Ada",
        buyer_email="ada@example.com",
        currency=event.currency,
        subtotal_cents=0,
        fees_cents=0,
        donation_cents=0,
        total_cents=0,
    )
    with transaction.atomic():
        return email_delivery_record(order=order, kind=EmailKind.ORDER_CANCELLED, dedup_key=f"cancel:{order.code}")


def _left_sending(delivery: EmailDelivery, *, by: str) -> None:
    """A worker claimed the delivery and died (or lost the database) before it finished."""
    EmailDelivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.SENDING, claimed_at=timezone.now(), claimed_by=by
    )


def test_recording_twice_with_one_key_records_once(delivery):
    with transaction.atomic():
        again = email_delivery_record(order=delivery.order, kind=delivery.kind, dedup_key=delivery.dedup_key)
    assert again.pk == delivery.pk
    assert EmailDelivery.objects.count() == 1


def test_the_same_task_takes_its_own_claim_back_at_once(delivery):
    _left_sending(delivery, by="task-1")

    assert email_delivery_send(delivery_id=delivery.pk, claimant="task-1") is True

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT
    assert len(mail.outbox) == 1


def test_another_task_waits_for_the_claim_to_time_out(delivery):
    _left_sending(delivery, by="task-1")

    assert email_delivery_send(delivery_id=delivery.pk, claimant="task-2") is False
    assert email_delivery_send(delivery_id=delivery.pk) is False  # nor may an anonymous caller
    assert len(mail.outbox) == 0

    later = timezone.now() + claim_timeout() + timedelta(seconds=1)
    assert email_delivery_send(delivery_id=delivery.pk, claimant="task-2", now=later) is True
    assert len(mail.outbox) == 1


def test_a_sent_delivery_is_never_sent_again_even_by_its_own_task(delivery):
    assert email_delivery_send(delivery_id=delivery.pk, claimant="task-1") is True
    assert email_delivery_send(delivery_id=delivery.pk, claimant="task-1") is False
    assert len(mail.outbox) == 1
