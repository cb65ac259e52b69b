"""The whole checkout through a real Celery worker on Redis: the web process
starts and pays; the worker delivers the webhook, completes the order and
sends the ticket e-mail exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.workflows.checkout.conftest import pay
from tests.workflows.helpers import WorkerProcess, wait_until
from ticketing.models import DeliveryStatus, EmailDelivery, Order, OrderStatus, Ticket
from workflows.checkout.start import start_checkout

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def mail_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The worker writes e-mails as files here (its settings come from the environment)."""
    folder = tmp_path / "mail"
    monkeypatch.setenv("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
    monkeypatch.setenv("EMAIL_FILE_PATH", str(folder))
    return folder


def test_a_real_worker_completes_the_order_and_sends_one_email(
    mail_dir: Path, celery_worker: WorkerProcess, ga, check_inventory
) -> None:
    started = start_checkout(
        event_id=ga.event_id,
        buyer_name="Katherine Johnson",
        buyer_email="kj@example.com",
        tickets=[{"ticket_type": ga.pk, "quantity": 3}],
    )

    pay(started)

    order = Order.objects.get(code=started.order_code)
    assert wait_until(
        lambda: EmailDelivery.objects.filter(order=order, status=DeliveryStatus.SENT).exists(), timeout=60
    ), celery_worker.output()[-4000:]
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    assert Ticket.objects.filter(order=order).count() == 3
    delivery = EmailDelivery.objects.get(order=order)
    assert delivery.attempts == 1
    messages = list(mail_dir.glob("*.log"))
    assert len(messages) == 1
    assert "kj@example.com" in messages[0].read_text()
