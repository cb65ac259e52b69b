"""The ticket e-mail of a paid order is handed over after the commit, with
its delivery row as its only record: the e-mail bell rings (inline in eager
mode; a drain message only when the ring sets the bell), and neither a
refused hand-off nor a process that dies before it loses the e-mail, and
neither sends it twice."""

from __future__ import annotations

import pytest
from celery import current_app
from celery.app.task import Task
from django.core import mail
from django_redis import get_redis_connection

from config.celery import app
from tests.workflows.checkout.conftest import buy_ga, pay
from ticketing.models import EmailDelivery, Order, OrderStatus
from ticketing.services import email_bell
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

    def drain_not_published():
        raise ConnectionError("broker down")

    with monkeypatch.context() as patched:
        patched.setattr(email_bell, "_publish_drain", drain_not_published)
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


def test_orders_paid_while_the_bell_is_set_publish_nothing_and_their_drain_sends_each_once(ga, monkeypatch):
    # given: Celery as in production (not eager), messages captured
    sent: list[tuple[str, list]] = []
    monkeypatch.setattr(
        Task, "apply_async", lambda self, args=None, kwargs=None, **options: sent.append((self.name, list(args or [])))
    )
    eager, app.conf.task_always_eager = app.conf.task_always_eager, False
    _silence_bell()

    try:
        # when: three orders are paid
        orders = [_buy_and_pay(ga) for _ in range(3)]

        # then: the first one's ring published a drain, the others nothing
        assert sent == [("ticketing.tasks.send_pending_emails", [])]
        assert mail.outbox == []

        # when: the drain runs
        name, args = sent.pop()
        current_app.tasks[name].apply(args=args)
    finally:
        app.conf.task_always_eager = eager
        _silence_bell()

    # then: each order's e-mail, once
    assert sorted(d.order_id for d in EmailDelivery.objects.filter(status="sent")) == sorted(o.pk for o in orders)
    assert len(mail.outbox) == 3
    assert sent == []


def _silence_bell() -> None:
    get_redis_connection("default").delete(email_bell._key())
