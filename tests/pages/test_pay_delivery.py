"""The buyer pays on the sandbox's page and lands on a paid order: the
sandbox's webhook is delivered to our endpoint in the same request, right
after the charge commits, which completes the order (paid, tickets, ledger)
before the page answers. No Celery message is involved: every message is
captured, none is run."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlparse

import pytest
from celery.app.task import Task
from django.utils import timezone

from payments.models import SandboxWebhook
from payments.sandbox.webhooks import sandbox_webhooks_deliver_due
from tests.pages.conftest import PAY, buy
from ticketing.models import Order, OrderStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("require_postgres")]


@pytest.fixture
def celery_messages(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Task names sent to Celery, captured instead of sent or run (eager or not)."""
    sent: list[str] = []

    def apply_async(self: Task, args: Any = None, kwargs: Any = None, **options: Any) -> None:
        sent.append(self.name)

    monkeypatch.setattr(Task, "apply_async", apply_async)
    return sent


def test_the_pay_post_answers_with_the_order_already_paid(client, ga, celery_messages):
    # given: a started checkout, the buyer on the sandbox's pay page
    started = buy(ga.event_id, tickets=[{"ticket_type": ga.pk, "quantity": 2}])
    pay_path = urlparse(started.payment_url).path

    # when: the buyer pays
    response = client.post(pay_path, {"card_number": PAY, "action": "pay"})

    # then: by the time the page answers, the webhook was delivered and the order completed
    assert response.status_code == 302
    assert response["Location"] == f"http://testserver/orders/{started.order_code}/?status=paid"
    order = Order.objects.get(code=started.order_code)
    assert order.status == OrderStatus.PAID
    assert order.tickets.count() == 2
    webhook = SandboxWebhook.objects.get(session__order_reference=started.order_code)
    assert (webhook.event_type, webhook.attempts, webhook.last_status_code) == ("payment.succeeded", 1, 200)
    assert webhook.delivered_at is not None
    assert "payments.tasks.deliver_sandbox_webhook" not in celery_messages
    assert sandbox_webhooks_deliver_due(now=timezone.now() + timedelta(days=1)) == []

    # and the success page shows the paid order, not "confirming your payment"
    page = client.get(response["Location"]).content.decode()
    assert 'data-order-status="paid"' in page
    assert "Your tickets" in page
    assert "Confirming your payment" not in page
