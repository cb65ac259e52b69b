"""The e-mail bell: after its commit a recorded e-mail rings (a Redis SET NX);
only the ring that sets the bell publishes a drain, which silences it before
its first claim. Rings that find it set publish nothing and lose nothing;
a ring that cannot ring (Redis down, no Redis, a failed publish) hands its
delivery to a message of its own; a drain that stops early rings again."""

from __future__ import annotations

import itertools
import smtplib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import redis
from celery import current_app
from celery.app.task import Task
from celery.exceptions import Retry
from django.core import mail
from django.db import OperationalError
from django.test import override_settings
from django.utils import timezone
from django_redis import get_redis_connection

from config.celery import app
from tests.ticketing.mail_backend import (
    SENDING,
    SENT,
    Backend,
    WorkerKilled,
    backend,  # noqa: F401 - the autouse fixture of these tests
    in_thread,
    record_deliveries,
    sent_ids,
    states,
)
from ticketing.models import EmailDelivery
from ticketing.services import email_bell, emails
from ticketing.services.email_bell import email_bell_ring
from ticketing.services.emails import claim_timeout
from ticketing.tasks import resend_lost_email_deliveries
from workflows.models import OutboxMessage
from workflows.ticketing import issue_tickets

DRAIN, OWN = "ticketing.tasks.send_pending_emails", "ticketing.tasks.send_email_delivery"


@dataclass
class Message:
    name: str
    args: list[Any]
    options: dict[str, Any]


@pytest.fixture(autouse=True)
def _needs_redis(settings: Any) -> None:
    if not settings.REDIS_URL:
        pytest.fail("the e-mail bell tests need Redis: run them with REDIS_URL=redis://127.0.0.1:6379/2")


def _redis() -> Any:
    return get_redis_connection("default")


def _bell() -> Any:
    """The bell's value in Redis (None if it is not set)."""
    return _redis().get(email_bell._key())


def _silence() -> None:
    _redis().delete(email_bell._key())


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Message]]:
    """Celery as in production (not eager), its messages captured in order
    instead of published; `run` plays them as a worker would."""
    sent: list[Message] = []

    def apply_async(self: Task, args: Any = None, kwargs: Any = None, **options: Any) -> None:
        sent.append(Message(self.name, list(args or []), options))

    monkeypatch.setattr(Task, "apply_async", apply_async)
    eager, app.conf.task_always_eager = app.conf.task_always_eager, False
    _silence()
    yield sent
    app.conf.task_always_eager = eager
    _silence()


_task_ids = itertools.count()


def run(broker: list[Message], *, limit: int | None = None) -> list[str]:
    """Run the captured messages (and those they send) until none is left
    (or `limit` ran), each with a task id of its own. The names run."""
    ran: list[str] = []
    while broker and (limit is None or len(ran) < limit):
        message = broker.pop(0)
        current_app.tasks[message.name].apply(args=message.args, task_id=f"{message.name}-{next(_task_ids)}")
        ran.append(message.name)
    return ran


def _names(broker: list[Message]) -> list[str]:
    return [message.name for message in broker]


# --- ringing ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_first_ring_publishes_a_drain_and_the_rings_after_it_nothing(broker, organization, settings):
    deliveries = record_deliveries(organization, 3)

    # when: each delivery's hand-off after its commit
    for delivery in deliveries:
        issue_tickets._hand_to_sender(delivery.pk)

    # then: one drain, to the e-mail queue's task; the bell set, expiring
    assert _names(broker) == [DRAIN]
    assert _bell() is not None
    ttl = _redis().ttl(email_bell._key())
    assert 0 < ttl <= settings.EMAIL_BELL_SECONDS

    # when: the drain runs: it silences the bell and sends all three
    assert run(broker) == [DRAIN]
    assert _bell() is None
    assert sent_ids() == {d.pk: 1 for d in deliveries}

    # then: the next ring publishes a drain again
    assert email_bell_ring() is True
    assert _names(broker) == [DRAIN]


@pytest.mark.django_db
def test_a_delivery_committed_before_a_ring_that_found_the_bell_set_goes_with_that_drain(broker, organization):
    # given: a ring that set the bell (its drain queued, not yet run)
    (first,) = record_deliveries(organization, 1)
    issue_tickets._hand_to_sender(first.pk)

    # when: more e-mails are recorded and rung for: the bell is set
    later = record_deliveries(organization, 5)
    for delivery in later:
        issue_tickets._hand_to_sender(delivery.pk)
    assert _names(broker) == [DRAIN]

    # then: the one drain sends them all, once
    run(broker)
    assert sent_ids() == {d.pk: 1 for d in [first, *later]}
    assert set(EmailDelivery.objects.values_list("status", "attempts")) == {(SENT, 1)}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("batch", [5, 3])
def test_a_ring_while_a_drain_is_mid_way_is_sent_once(require_postgres, broker, organization, settings, batch):
    # given: a drain sending three e-mails, held while it sends the first
    # (batch 5: its claim came back short, so it ends after them; batch 3:
    # it claims again after them)
    settings.EMAIL_BATCH_SIZE = batch
    deliveries = record_deliveries(organization, 3)
    issue_tickets._hand_to_sender(deliveries[0].pk)
    drain = broker.pop(0)
    Backend.pause_on = deliveries[0].pk
    results: dict[str, Any] = {}
    thread = in_thread(results, "drain", lambda: current_app.tasks[drain.name].apply(task_id="drain-a"))
    try:
        assert Backend.paused.wait(timeout=10)

        # when: an order's e-mail is committed and rung for meanwhile: the
        # drain silenced the bell, so this ring publishes a drain of its own
        (late,) = record_deliveries(organization, 1)
        issue_tickets._hand_to_sender(late.pk)
        assert _names(broker) == [DRAIN]
    finally:
        Backend.resume.set()
        thread.join(timeout=20)
    assert not isinstance(results["drain"], BaseException), results["drain"]

    # then: whichever drain took it, every e-mail went out once
    run(broker)
    assert sent_ids() == {d.pk: 1 for d in [*deliveries, late]}
    assert set(EmailDelivery.objects.values_list("status", "attempts")) == {(SENT, 1)}
    assert broker == []


# --- when the bell cannot ring ------------------------------------------------------------


@pytest.mark.django_db
def test_a_ring_whose_publish_fails_clears_the_bell_and_the_delivery_goes_on_its_own(broker, organization, monkeypatch):
    (delivery,) = record_deliveries(organization, 1)

    def broker_down() -> None:
        raise ConnectionError("broker down")

    # when: the bell is set, but its drain cannot be published
    with monkeypatch.context() as patched:
        patched.setattr(email_bell, "_publish_drain", broker_down)
        issue_tickets._hand_to_sender(delivery.pk)

    # then: the bell is clear again, and the delivery's own send was queued
    assert _bell() is None
    assert [(m.name, m.args) for m in broker] == [(OWN, [delivery.pk])]
    run(broker)
    assert sent_ids() == {delivery.pk: 1}

    # and the next ring publishes a drain again
    assert email_bell_ring() is True
    assert _names(broker) == [DRAIN]


@pytest.mark.django_db
@pytest.mark.parametrize("then", ["another order rings", "nobody rings"])
def test_a_ring_that_found_the_bell_of_a_failed_publish_is_covered_by_the_next_ring_or_the_sweeper(
    broker, organization, monkeypatch, settings, then
):
    first, second, third = record_deliveries(organization, 3)

    def second_rings_then_broker_down() -> None:
        # the second order's ring comes while the first's publish is under way
        assert email_bell_ring() is True  # it finds the bell set: it relies on the first's drain
        raise ConnectionError("broker down")

    # when: the first's drain is not published: it falls back to its own send
    with monkeypatch.context() as patched:
        patched.setattr(email_bell, "_publish_drain", second_rings_then_broker_down)
        issue_tickets._hand_to_sender(first.pk)
    assert [(m.name, m.args) for m in broker] == [(OWN, [first.pk])]
    run(broker)
    assert sent_ids() == {first.pk: 1}

    # then: the second is sent by the drain of the next ring that sets the bell
    if then == "another order rings":
        issue_tickets._hand_to_sender(third.pk)
        assert run(broker) == [DRAIN]
    # or, if none comes, the resend sweeper's message sends it
    else:
        settings.EMAIL_RESEND_AFTER_SECONDS = 0
        assert resend_lost_email_deliveries() == 2
        assert run(broker) == [OWN, OWN]
    assert sent_ids() == {first.pk: 1, second.pk: 1, third.pk: 1}


@pytest.mark.django_db
def test_a_ring_and_a_send_that_both_fail_leave_the_delivery_to_the_outbox(broker, organization, monkeypatch):
    (delivery,) = record_deliveries(organization, 1)

    def broker_down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("broker down")

    with monkeypatch.context() as patched:
        patched.setattr(email_bell, "_publish_drain", broker_down)
        patched.setattr(issue_tickets, "send", broker_down)
        issue_tickets._hand_to_sender(delivery.pk)

    assert _bell() is None
    message = OutboxMessage.objects.get(task_name=OWN)
    assert message.args == [delivery.pk] and message.published_at is None
    assert broker == [] and mail.outbox == []


@pytest.mark.django_db
def test_redis_down_at_ring_time_sends_the_delivery_on_its_own(broker, organization, monkeypatch):
    (delivery,) = record_deliveries(organization, 1)
    unreachable = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    monkeypatch.setattr(email_bell, "_redis", lambda: unreachable)

    issue_tickets._hand_to_sender(delivery.pk)

    assert [(m.name, m.args) for m in broker] == [(OWN, [delivery.pk])]
    run(broker)
    assert sent_ids() == {delivery.pk: 1}


@pytest.mark.django_db
def test_without_redis_the_delivery_goes_on_its_own(broker, organization):
    (delivery,) = record_deliveries(organization, 1)

    with override_settings(CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}):
        assert email_bell_ring() is False
        issue_tickets._hand_to_sender(delivery.pk)

    assert [(m.name, m.args) for m in broker] == [(OWN, [delivery.pk])]


@pytest.mark.django_db
def test_in_eager_mode_the_ring_sends_at_once_without_the_bell(organization):
    # given: a bell left set (by a worker's process, say): eager mode has no use for it
    _redis().set(email_bell._key(), b"1", ex=5)
    try:
        (delivery,) = record_deliveries(organization, 1)

        issue_tickets._hand_to_sender(delivery.pk)

        assert sent_ids() == {delivery.pk: 1}
    finally:
        _silence()


# --- the drain task ------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_failed_send_is_retried_on_its_own_and_the_drain_rings_again(broker, organization):
    deliveries = record_deliveries(organization, 3)
    Backend.fail_on = {deliveries[1].pk: smtplib.SMTPRecipientsRefused({"jane@example.com": (451, b"later")})}
    email_bell_ring()

    # when: the drain sends the first and fails on the second
    assert run(broker, limit=1) == [DRAIN]

    # then: the failed one's own message, with its backoff, and a new drain
    # for the rest (the bell was silenced: the ring publishes)
    assert [(m.name, m.args, m.options.get("countdown")) for m in broker] == [
        (OWN, [deliveries[1].pk], 5),
        (DRAIN, [], None),
    ]

    # when: the server takes them
    Backend.fail_on = {}
    run(broker)

    # then: each once
    assert sent_ids() == {d.pk: 1 for d in deliveries}
    assert states(deliveries) == [(SENT, 1), (SENT, 2), (SENT, 1)]


@pytest.mark.django_db
def test_a_drain_at_its_cap_rings_again(broker, organization, settings):
    settings.EMAIL_BATCH_SIZE, settings.EMAIL_DRAIN_BATCHES = 2, 2
    deliveries = record_deliveries(organization, 5)
    email_bell_ring()

    assert run(broker) == [DRAIN, DRAIN]  # 4, then the fifth

    assert sent_ids() == {d.pk: 1 for d in deliveries}


@pytest.mark.django_db
def test_a_drain_at_its_cap_that_cannot_ring_publishes_itself(broker, organization, settings, monkeypatch):
    settings.EMAIL_BATCH_SIZE, settings.EMAIL_DRAIN_BATCHES = 2, 1
    deliveries = record_deliveries(organization, 3)
    email_bell_ring()
    monkeypatch.setattr(email_bell, "_redis", lambda: None)

    assert run(broker) == [DRAIN, DRAIN]

    assert sent_ids() == {d.pk: 1 for d in deliveries}


@pytest.mark.django_db
def test_a_drain_whose_database_fails_mid_way_takes_its_claims_back_when_retried(broker, organization, monkeypatch):
    deliveries = record_deliveries(organization, 3)
    email_bell_ring()
    reads = 0
    real_rows = emails.email_rows

    def database_gone_once(**kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        if reads == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real_rows(**kwargs)

    monkeypatch.setattr(emails, "email_rows", database_gone_once)

    # when: the drain claims its batch and loses the database before reading it
    drain = broker.pop(0)
    with pytest.raises(Retry) as retry:  # eager here: a worker would retry it after the backoff
        current_app.tasks[drain.name].apply(task_id="drain-1")
    assert retry.value.when == 5
    assert states(deliveries) == [(SENDING, 1)] * 3

    # then: its retry (the same task id) takes its claims back at once and
    # sends each e-mail once
    assert retry.value.sig is not None and retry.value.sig.id == "drain-1"
    retry.value.sig.apply()
    assert sent_ids() == {d.pk: 1 for d in deliveries}
    assert states(deliveries) == [(SENT, 2)] * 3


@pytest.mark.django_db
def test_a_drain_killed_mid_batch_loses_nothing_and_sends_nothing_twice(broker, organization, settings):
    deliveries = record_deliveries(organization, 4)
    email_bell_ring()

    # given: the worker is killed while sending the second e-mail, and its
    # message is not delivered again (the broker holds it for an hour)
    Backend.fail_on = {deliveries[1].pk: WorkerKilled()}
    with pytest.raises(WorkerKilled):
        run(broker)
    Backend.fail_on = {}
    assert states(deliveries) == [(SENT, 1)] + [(SENDING, 1)] * 3

    # when: later orders ring and drain: the claimed ones are not theirs
    (late,) = record_deliveries(organization, 1)
    issue_tickets._hand_to_sender(late.pk)
    run(broker)
    assert sent_ids() == {deliveries[0].pk: 1, late.pk: 1}

    # when: the claims expire, the resend sweeper queues them
    EmailDelivery.objects.filter(status=SENDING).update(
        claimed_at=timezone.now() - claim_timeout() - timedelta(seconds=1)
    )
    settings.EMAIL_RESEND_AFTER_SECONDS = 3600
    assert resend_lost_email_deliveries() == 3
    assert run(broker) == [OWN] * 3

    # then: each e-mail once
    assert sent_ids() == {d.pk: 1 for d in [*deliveries, late]}
    assert states(deliveries) == [(SENT, 1)] + [(SENT, 2)] * 3


@pytest.mark.django_db(transaction=True)
def test_rings_and_drains_racing_send_each_email_once(require_postgres, broker, organization, settings):
    # given: e-mails recorded by several "web processes" while drains run
    settings.EMAIL_BATCH_SIZE = 3
    batches = [record_deliveries(organization, 6) for _ in range(4)]

    def web(deliveries: list[EmailDelivery]) -> None:
        for delivery in deliveries:
            issue_tickets._hand_to_sender(delivery.pk)

    def worker(n: int) -> None:
        current_app.tasks[DRAIN].apply(task_id=f"drain-{n}")

    from tests.concurrency import run_concurrently

    results = run_concurrently([lambda b=b: web(b) for b in batches] + [lambda n=n: worker(n) for n in range(3)])
    assert [exc for _, exc in results] == [None] * 7

    # when: the drains published meanwhile run
    run(broker)

    # then
    everyone = [d for b in batches for d in b]
    assert sent_ids() == {d.pk: 1 for d in everyone}
    assert set(EmailDelivery.objects.values_list("status", "attempts")) == {(SENT, 1)}
    assert _bell() is None


@pytest.mark.django_db(transaction=True)
def test_a_drain_that_lingers_takes_the_orders_paid_meanwhile(require_postgres, broker, organization, settings):
    # given: a drain that waits a moment for more once the queue is empty
    settings.EMAIL_DRAIN_LINGER_SECONDS = 0.6
    (first,) = record_deliveries(organization, 1)
    issue_tickets._hand_to_sender(first.pk)
    drain = broker.pop(0)
    results: dict[str, Any] = {}
    thread = in_thread(results, "drain", lambda: current_app.tasks[drain.name].apply(task_id="drain-lingering"))
    try:
        # (it has sent the first e-mail and holds the bell)
        deadline = timezone.now() + timedelta(seconds=10)
        while not (sent_ids() == {first.pk: 1} and _bell() is not None) and timezone.now() < deadline:
            threading.Event().wait(0.01)
        assert sent_ids() == {first.pk: 1} and _bell() is not None

        # when: orders are paid while it lingers: the bell is held, their
        # rings publish nothing
        later = record_deliveries(organization, 3)
        for delivery in later:
            issue_tickets._hand_to_sender(delivery.pk)
        assert _names(broker) == []
    finally:
        thread.join(timeout=20)

    # then: the lingering drain sent them, once each, and left the bell silent
    assert not isinstance(results["drain"], BaseException), results["drain"]
    assert sent_ids() == {d.pk: 1 for d in [first, *later]}
    assert _bell() is None


@pytest.mark.django_db
def test_an_inline_drain_never_lingers(organization, settings):
    # given: eager Celery (the embedded default), a long linger
    settings.EMAIL_DRAIN_LINGER_SECONDS = 30
    (delivery,) = record_deliveries(organization, 1)

    # when
    started = timezone.now()
    issue_tickets._hand_to_sender(delivery.pk)

    # then: sent at once, in the request
    assert sent_ids() == {delivery.pk: 1}
    assert timezone.now() - started < timedelta(seconds=5)
