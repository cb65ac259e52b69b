"""The whole checkout through a real Celery worker on Redis: the web process
starts and pays; the worker delivers the webhook, completes the order and
sends the ticket e-mail exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.workflows.checkout.conftest import pay
from tests.workflows.helpers import WorkerProcess, wait_until
from ticketing.models import DeliveryStatus, EmailDelivery, Order, OrderStatus, Ticket
from ticketing.services import email_bell
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


def test_orders_paid_in_a_row_ring_the_bell_and_the_worker_sends_each_email_once(
    mail_dir: Path, celery_worker: WorkerProcess, ga, check_inventory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: the drains this process publishes, counted
    published: list[str] = []
    real_publish = email_bell._publish_drain

    def counted() -> None:
        published.append("drain")
        real_publish()

    monkeypatch.setattr(email_bell, "_publish_drain", counted)

    # when: five orders are paid one after the other
    orders = []
    for n in range(5):
        started = start_checkout(
            event_id=ga.event_id,
            buyer_name=f"Buyer {n}",
            buyer_email=f"buyer{n}@example.com",
            tickets=[{"ticket_type": ga.pk, "quantity": 1}],
        )
        pay(started)
        orders.append(Order.objects.get(code=started.order_code))

    # then: the worker sent every e-mail once, for at most one message each
    assert wait_until(
        lambda: EmailDelivery.objects.filter(order__in=orders, status=DeliveryStatus.SENT).count() == 5, timeout=60
    ), celery_worker.output()[-4000:]
    assert 1 <= len(published) <= 5
    assert set(EmailDelivery.objects.filter(order__in=orders).values_list("attempts", flat=True)) == {1}
    messages = [path.read_text() for path in mail_dir.glob("*.log")]
    assert sorted(n for n in range(5) for text in messages if f"buyer{n}@example.com" in text) == list(range(5))
