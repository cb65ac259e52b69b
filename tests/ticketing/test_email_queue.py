"""E-mails go to the `email` queue, everything else to the default one, and a
worker started without -Q consumes both, so no e-mail waits for a worker that
is not there (bench/stack.py and the README start one for `email` alone)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from config.celery import app
from ticketing.services import email_bell
from ticketing.tasks import resend_lost_email_deliveries
from workflows.engine import outbox
from workflows.ticketing.issue_tickets import SEND_EMAIL_TASK


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str]]]:
    """(task name, queue) of each message, as routed; nothing reaches a broker."""
    sent: list[tuple[str, str]] = []

    def send_task_message(producer: Any, name: str, message: Any, **options: Any) -> None:
        sent.append((name, options["queue"].name))

    monkeypatch.setattr(app.amqp, "send_task_message", send_task_message)
    eager, app.conf.task_always_eager = app.conf.task_always_eager, False
    yield sent
    app.conf.task_always_eager = eager


def test_the_email_send_goes_to_the_email_queue_and_the_rest_to_the_default(published):
    email_bell._publish_drain()  # how a ring that sets the bell publishes the drain
    outbox.send(SEND_EMAIL_TASK, [1])  # a delivery's own send (a fallback, relayed from the outbox, a retry)
    outbox.send("ticketing.tasks.expire_capacity_holds", [])
    outbox.send("payments.tasks.deliver_sandbox_webhook", [1])

    assert published == [
        ("ticketing.tasks.send_pending_emails", "email"),
        (SEND_EMAIL_TASK, "email"),
        ("ticketing.tasks.expire_capacity_holds", "celery"),
        ("payments.tasks.deliver_sandbox_webhook", "celery"),
    ]


@pytest.mark.django_db
def test_the_resend_sweeper_queues_lost_emails_on_the_email_queue(published, monkeypatch):
    monkeypatch.setattr("ticketing.tasks.email_deliveries_due", lambda: [7, 8])

    assert resend_lost_email_deliveries() == 2

    assert published == [(SEND_EMAIL_TASK, "email"), (SEND_EMAIL_TASK, "email")]


def test_a_worker_without_queue_options_consumes_both_queues():
    assert set(app.amqp.queues.consume_from) == {"celery", "email"}
    assert app.conf.task_default_queue == "celery"
