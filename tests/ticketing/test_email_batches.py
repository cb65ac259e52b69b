"""Several e-mails sent by one task: claimed in one statement, read in one,
sent over one connection, each marked sent as soon as it is sent. A batch
cut short (a killed worker, a failed send, a slow server) loses nothing and
sends nothing twice; workers racing over the same deliveries claim each once;
the message of a delivery that a batch sent costs one statement."""

from __future__ import annotations

import smtplib
import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.db import connection, connections, transaction
from django.utils import timezone

from tests.concurrency import run_concurrently
from tests.factories import EventFactory, TicketTypeFactory, issued_order
from ticketing.models import DeliveryStatus, EmailDelivery, EmailKind, EventSigningKey
from ticketing.services.emails import (
    claim_timeout,
    email_deliveries_due,
    email_delivery_record,
    email_delivery_send,
)
from ticketing.services.signing_keys import signing_key_for_event

BACKEND = f"{__name__}.Backend"


class WorkerKilled(BaseException):
    """Stands for a SIGKILL: no handler of the code under test runs."""


class Backend(LocmemBackend):
    """locmem, counting connections, and failing or pausing where a test says."""

    opened = 0
    fail_on: dict[int, BaseException] = {}  # set per test
    fail_open: BaseException | None = None
    pause_on: int | None = None  # a delivery whose send waits for `resume`
    paused, resume = threading.Event(), threading.Event()

    def open(self) -> bool:
        if getattr(self, "_open", False):
            return False
        if Backend.fail_open is not None:
            raise Backend.fail_open
        self._open = True
        Backend.opened += 1
        return True

    def close(self) -> None:
        self._open = False

    def send_messages(self, messages: Any) -> int:
        for message in messages:
            if _delivery_id(message) == Backend.pause_on:
                Backend.paused.set()
                Backend.resume.wait(timeout=10)
            failure = Backend.fail_on.get(_delivery_id(message))
            if failure is not None:
                raise failure
        return super().send_messages(messages)


def _delivery_id(message: Any) -> int:
    return int(message.extra_headers["Message-ID"].split("@")[0].removeprefix("<delivery-"))


@pytest.fixture(autouse=True)
def backend(settings: Any) -> Any:
    settings.EMAIL_BACKEND = BACKEND
    settings.EMAIL_BATCH_SIZE = 20
    Backend.opened, Backend.fail_on, Backend.fail_open, Backend.pause_on = 0, {}, None, None
    Backend.paused, Backend.resume = threading.Event(), threading.Event()
    yield Backend
    Backend.fail_on, Backend.fail_open, Backend.pause_on = {}, None, None
    Backend.resume.set()


def _deliveries(organization: Any, count: int, *, key: bool = True) -> list[EmailDelivery]:
    """`count` ticket e-mails recorded (one order of one or two tickets each),
    oldest first; the event has its signing key (`key`), as in a rush."""
    ga = TicketTypeFactory(event=EventFactory(organization=organization))
    if key:
        signing_key_for_event(event=ga.event)
    orders = [issued_order(ga.event, [(ga, None)] * (1 + n % 2)) for n in range(count)]
    with transaction.atomic():
        return [
            email_delivery_record(order=order, kind=EmailKind.TICKETS, dedup_key=f"tickets:{order.code}")
            for order in orders
        ]


def _states(deliveries: list[EmailDelivery]) -> list[tuple[str, int]]:
    """(status, attempts) of each delivery."""
    rows = {
        pk: (status, attempts) for pk, status, attempts in EmailDelivery.objects.values_list("id", "status", "attempts")
    }
    return [rows[d.pk] for d in deliveries]


def _sent_ids() -> Counter[int]:
    return Counter(_delivery_id(message) for message in mail.outbox)


SENT, PENDING, SENDING = DeliveryStatus.SENT, DeliveryStatus.PENDING, DeliveryStatus.SENDING


# --- a batch -----------------------------------------------------------------------


@pytest.mark.django_db
def test_one_task_sends_the_waiting_emails_over_one_connection(organization, django_assert_num_queries):
    deliveries = _deliveries(organization, 4)

    # when: the first delivery's message: claim, read, and each marked sent
    with django_assert_num_queries(2 + 4):
        assert email_delivery_send(delivery_id=deliveries[0].pk, claimant="task-0") is True

    # then
    assert [_delivery_id(m) for m in mail.outbox] == [d.pk for d in deliveries]
    assert Backend.opened == 1
    assert _states(deliveries) == [(SENT, 1)] * 4
    claimed_by = set(EmailDelivery.objects.values_list("claimed_by", flat=True))
    assert claimed_by == {"task-0"}

    # and the other deliveries' own messages find them sent, one statement each
    for delivery in deliveries[1:]:
        with django_assert_num_queries(1):
            assert email_delivery_send(delivery_id=delivery.pk, claimant=f"task-{delivery.pk}") is False
    assert len(mail.outbox) == 4
    assert _states(deliveries) == [(SENT, 1)] * 4


@pytest.mark.django_db
def test_a_batch_makes_its_events_first_signing_key_once(organization, django_assert_num_queries):
    deliveries = _deliveries(organization, 3, key=False)

    # when: claim, read, the key looked for and made (select, savepoint,
    # insert, release), three marked sent
    with django_assert_num_queries(2 + 4 + 3):
        assert email_delivery_send(delivery_id=deliveries[0].pk) is True

    # then: every code signed with that one key
    event = deliveries[0].order.event
    assert EventSigningKey.objects.filter(event=event).count() == 1
    assert _states(deliveries) == [(SENT, 1)] * 3


@pytest.mark.django_db
def test_a_batch_is_at_most_the_batch_size(organization, settings):
    settings.EMAIL_BATCH_SIZE = 3
    deliveries = _deliveries(organization, 5)

    assert email_delivery_send(delivery_id=deliveries[0].pk) is True

    assert _states(deliveries) == [(SENT, 1)] * 3 + [(PENDING, 0)] * 2
    assert email_delivery_send(delivery_id=deliveries[3].pk) is True
    assert _states(deliveries) == [(SENT, 1)] * 5


@pytest.mark.django_db
def test_a_batch_takes_only_fresh_deliveries_after_its_own(organization):
    # given: one before the task's own, one already tried (waiting for its
    # backoff), one being sent by another task, one fresh
    before, own, tried, elsewhere, fresh = _deliveries(organization, 5)
    EmailDelivery.objects.filter(pk=tried.pk).update(attempts=1, last_error="SMTP 451")
    EmailDelivery.objects.filter(pk=elsewhere.pk).update(
        status=SENDING, attempts=1, claimed_at=timezone.now(), claimed_by="task-9"
    )

    # when
    assert email_delivery_send(delivery_id=own.pk, claimant="task-1") is True

    # then: its own and the fresh one, nothing else
    assert _sent_ids() == {own.pk: 1, fresh.pk: 1}
    assert _states([before, own, tried, elsewhere, fresh]) == [
        (PENDING, 0),
        (SENT, 1),
        (PENDING, 1),
        (SENDING, 1),
        (SENT, 1),
    ]


@pytest.mark.django_db
def test_a_message_whose_delivery_is_gone_or_sent_takes_no_batch(organization):
    gone, sent, *waiting = _deliveries(organization, 4)
    EmailDelivery.objects.filter(pk=gone.pk).delete()
    EmailDelivery.objects.filter(pk=sent.pk).update(status=SENT, attempts=1, sent_at=timezone.now())

    assert email_delivery_send(delivery_id=gone.pk, claimant="task-1") is False
    assert email_delivery_send(delivery_id=sent.pk, claimant="task-2") is False

    assert mail.outbox == []
    assert _states(waiting) == [(PENDING, 0)] * 2


# --- a batch cut short -------------------------------------------------------------


@pytest.mark.django_db
def test_a_worker_killed_mid_batch_loses_nothing_and_sends_nothing_twice(organization):
    deliveries = _deliveries(organization, 5)
    # given: the worker dies while sending the third e-mail
    Backend.fail_on = {deliveries[2].pk: WorkerKilled()}
    with pytest.raises(WorkerKilled):
        email_delivery_send(delivery_id=deliveries[0].pk, claimant="task-0")
    Backend.fail_on = {}
    assert _sent_ids() == {deliveries[0].pk: 1, deliveries[1].pk: 1}
    assert _states(deliveries) == [(SENT, 1)] * 2 + [(SENDING, 1)] * 3

    # when: the other deliveries' own messages come before the claims expire
    for delivery in deliveries[2:]:
        assert email_delivery_send(delivery_id=delivery.pk, claimant=f"task-{delivery.pk}") is False
    assert len(mail.outbox) == 2  # they wait: another worker may still be sending them

    # when: the killed task's message is delivered again (acks_late): it
    # takes its whole batch back at once
    assert email_delivery_send(delivery_id=deliveries[0].pk, claimant="task-0") is False  # its own was sent

    # then: each e-mail sent once
    assert _sent_ids() == {d.pk: 1 for d in deliveries}
    assert _states(deliveries) == [(SENT, 1)] * 2 + [(SENT, 2)] * 3


@pytest.mark.django_db
def test_a_killed_batch_whose_message_is_not_redelivered_goes_out_after_the_claim_expires(organization):
    deliveries = _deliveries(organization, 4)
    Backend.fail_on = {deliveries[1].pk: WorkerKilled()}
    with pytest.raises(WorkerKilled):
        email_delivery_send(delivery_id=deliveries[0].pk, claimant="task-0")
    Backend.fail_on = {}
    assert email_deliveries_due(older_than=timedelta(0)) == []  # claimed, not yet abandoned

    # when: the claims expire, the resend sweeper queues the abandoned ones
    # and their messages send them, each its own (a new claimant)
    later = timezone.now() + claim_timeout() + timedelta(seconds=1)
    due = [d.pk for d in deliveries[1:]]
    EmailDelivery.objects.filter(pk__in=due).update(claimed_at=timezone.now() - claim_timeout() - timedelta(seconds=1))
    assert email_deliveries_due(older_than=timedelta(0)) == due
    for delivery_id in due:
        email_delivery_send(delivery_id=delivery_id, claimant=f"sweep-{delivery_id}", now=later)

    # then
    assert _sent_ids() == {d.pk: 1 for d in deliveries}
    assert _states(deliveries) == [(SENT, 1)] + [(SENT, 2)] * 3


@pytest.mark.django_db
def test_a_failed_send_hands_back_it_and_the_rest_untried(organization):
    deliveries = _deliveries(organization, 4)
    Backend.fail_on = {deliveries[1].pk: smtplib.SMTPRecipientsRefused({"jane@example.com": (550, b"no")})}

    # when: the second of the batch fails; the task's own went out
    assert email_delivery_send(delivery_id=deliveries[0].pk, claimant="task-0") is True

    # then: the failed one waits for its own message's retry with its error,
    # the untried ones as they were
    assert _sent_ids() == {deliveries[0].pk: 1}
    assert _states(deliveries) == [(SENT, 1), (PENDING, 1), (PENDING, 0), (PENDING, 0)]
    failed = EmailDelivery.objects.get(pk=deliveries[1].pk)
    assert "550" in failed.last_error and failed.claimed_at is None

    # and their own messages send them, each once
    Backend.fail_on = {}
    assert email_delivery_send(delivery_id=deliveries[1].pk, claimant="task-1") is True
    assert _sent_ids() == {d.pk: 1 for d in deliveries}
    assert _states(deliveries) == [(SENT, 1), (SENT, 2), (SENT, 1), (SENT, 1)]


@pytest.mark.django_db
def test_a_failure_of_the_tasks_own_delivery_raises_for_its_retry(organization):
    deliveries = _deliveries(organization, 3)
    Backend.fail_on = {deliveries[0].pk: smtplib.SMTPServerDisconnected("gone")}

    with pytest.raises(smtplib.SMTPServerDisconnected):
        email_delivery_send(delivery_id=deliveries[0].pk, claimant="task-0")

    assert mail.outbox == []
    assert _states(deliveries) == [(PENDING, 1), (PENDING, 0), (PENDING, 0)]
    assert EmailDelivery.objects.get(pk=deliveries[0].pk).last_error == "gone"


@pytest.mark.django_db
def test_a_server_that_cannot_be_reached_hands_the_batch_back(organization):
    deliveries = _deliveries(organization, 3)
    Backend.fail_open = ConnectionRefusedError("connection refused")

    with pytest.raises(ConnectionRefusedError):
        email_delivery_send(delivery_id=deliveries[0].pk, claimant="task-0")

    assert _states(deliveries) == [(PENDING, 1), (PENDING, 0), (PENDING, 0)]


@pytest.mark.django_db
def test_no_send_starts_after_half_the_claim_time(organization):
    # given: a batch claimed more than half a claim time ago (a slow server)
    deliveries = _deliveries(organization, 3)
    claimed = timezone.now() - claim_timeout() / 2 - timedelta(seconds=1)

    # when
    assert email_delivery_send(delivery_id=deliveries[0].pk, claimant="task-0", now=claimed) is True

    # then: its own went out, the rest are handed back untried
    assert _sent_ids() == {deliveries[0].pk: 1}
    assert _states(deliveries) == [(SENT, 1), (PENDING, 0), (PENDING, 0)]
    assert not EmailDelivery.objects.filter(pk__in=[d.pk for d in deliveries[1:]], claimed_at__isnull=False).exists()


# --- workers racing ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_workers_racing_over_the_same_deliveries_send_each_once(require_postgres, organization):
    deliveries = _deliveries(organization, 12)
    ids = [d.pk for d in deliveries]

    # when: six workers get messages of overlapping batches at once, two of
    # them for the same delivery
    starts = [ids[0], ids[0], ids[1], ids[3], ids[6], ids[7]]
    results = run_concurrently(
        [
            lambda own=own, n=n: email_delivery_send(delivery_id=own, claimant=f"task-{n}", batch=6)
            for n, own in enumerate(starts)
        ]
    )

    # then: nobody failed, and no e-mail went out twice
    assert [exc for _, exc in results] == [None] * len(starts)
    assert [sent for sent, _ in results].count(True) <= len(set(starts))
    assert set(_sent_ids().values()) == {1}
    sent = set(EmailDelivery.objects.filter(status=SENT).values_list("id", flat=True))
    assert sent == set(_sent_ids())
    assert set(EmailDelivery.objects.filter(status=SENT).values_list("attempts", flat=True)) == {1}
    # and what no batch reached is still waiting, untouched, for its own message
    assert set(EmailDelivery.objects.exclude(pk__in=sent).values_list("status", "attempts")) <= {(PENDING, 0)}
    for delivery_id in ids:
        email_delivery_send(delivery_id=delivery_id, claimant="late")
    assert _sent_ids() == dict.fromkeys(ids, 1)
    assert set(EmailDelivery.objects.values_list("status", "attempts")) == {(SENT, 1)}


@pytest.mark.django_db(transaction=True)
def test_a_claim_that_waited_for_another_batch_skips_what_that_batch_took(require_postgres, organization):
    # given: worker A has claimed a batch and holds its rows (its claim not
    # yet committed: held open here, so that B's claim must wait for it)
    deliveries = _deliveries(organization, 5)
    ids = [d.pk for d in deliveries]
    Backend.pause_on = ids[0]
    results: dict[str, Any] = {}

    def run(name: str, fn: Any) -> None:
        try:
            results[name] = fn()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            results[name] = exc
        finally:
            connections.close_all()

    def worker_a() -> bool:
        with transaction.atomic():
            return email_delivery_send(delivery_id=ids[0], claimant="task-a", batch=4)

    a = threading.Thread(target=run, args=("a", worker_a))
    a.start()
    assert Backend.paused.wait(timeout=10)

    # when: worker B's message for the second delivery claims while A holds
    # the rows: B saw them pending, waits for A, then finds them taken
    b = threading.Thread(
        target=run, args=("b", lambda: email_delivery_send(delivery_id=ids[1], claimant="task-b", batch=4))
    )
    b.start()
    try:
        _wait_until_blocked(statement_start='WITH "batch"')
    finally:
        Backend.resume.set()
        a.join(timeout=20)
        b.join(timeout=20)

    # then: A sent its four; B found its own sent and took only what A did not
    assert results == {"a": True, "b": False}
    assert _sent_ids() == dict.fromkeys(ids, 1)
    claimed_by = dict(EmailDelivery.objects.values_list("id", "claimed_by"))
    assert [claimed_by[pk] for pk in ids] == ["task-a"] * 4 + ["task-b"]
    assert set(EmailDelivery.objects.values_list("status", "attempts")) == {(SENT, 1)}


def _wait_until_blocked(*, statement_start: str, timeout: float = 5) -> None:
    """Until another session's statement starting so waits for a row lock."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
                [statement_start + "%"],
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.01)
    pytest.fail("the second claim never waited for the first")
