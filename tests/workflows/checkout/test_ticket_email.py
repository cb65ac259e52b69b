"""The ticket e-mail of a paid order is handed to Celery after the commit,
with its delivery row as its only record: neither a refused hand-off nor a
process that dies before it loses the e-mail, and neither sends it twice."""

from __future__ import annotations

import pytest
from django.core import mail

from tests.workflows.checkout.conftest import buy_ga, pay
from ticketing.models import EmailDelivery, Order, OrderStatus
from ticketing.tasks import resend_lost_email_deliveries
from workflows.engine import outbox
from workflows.models import OutboxMessage
from workflows.ticketing import issue_tickets

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("check_inventory")]


def _buy_and_pay(ga) -> Order:
    started = buy_ga(ga)
    pay(started)
    order = Order.objects.get(code=started.order_code)
    assert order.status == OrderStatus.PAID
    return order


def test_the_email_is_sent_once_with_no_outbox_message(ga):
    order = _buy_and_pay(ga)

    assert EmailDelivery.objects.get(order=order).status == "sent"
    assert len(mail.outbox) == 1
    assert not OutboxMessage.objects.filter(task_name=issue_tickets.SEND_EMAIL_TASK).exists()


def test_a_refused_hand_off_goes_to_the_outbox_and_its_relay_sends_it(ga, monkeypatch):
    def broker_down(task_name, args, kwargs=None):
        raise ConnectionError("broker down")

    with monkeypatch.context() as patched:
        patched.setattr(issue_tickets, "send", broker_down)
        patched.setattr(outbox, "send", broker_down)
        order = _buy_and_pay(ga)

    delivery = EmailDelivery.objects.get(order=order)
    assert delivery.status == "pending"
    message = OutboxMessage.objects.get(task_name=issue_tickets.SEND_EMAIL_TASK)
    assert message.args == [delivery.pk] and message.published_at is None
    assert mail.outbox == []

    # the broker is back: the relay's next sweep
    from django.utils import timezone

    assert outbox.relay(now=timezone.now() + outbox.RELAY_GRACE) == 1
    assert outbox.relay(now=timezone.now() + outbox.RELAY_GRACE + outbox.RELAY_VISIBILITY) == 0

    delivery.refresh_from_db()
    assert delivery.status == "sent"
    assert len(mail.outbox) == 1


def test_a_process_that_dies_before_the_hand_off_leaves_it_to_the_sweeper(ga, monkeypatch, settings):
    with monkeypatch.context() as patched:
        patched.setattr(issue_tickets, "_hand_to_sender", lambda delivery_id: None)  # died right after COMMIT
        order = _buy_and_pay(ga)
    delivery = EmailDelivery.objects.get(order=order)
    assert delivery.status == "pending"
    assert mail.outbox == []

    settings.EMAIL_RESEND_AFTER_SECONDS = 0
    assert resend_lost_email_deliveries() == 1
    assert resend_lost_email_deliveries() == 0

    delivery.refresh_from_db()
    assert delivery.status == "sent"
    assert len(mail.outbox) == 1
