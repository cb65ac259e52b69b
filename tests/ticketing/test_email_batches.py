"""The drain (email_deliveries_drain): the fresh e-mails sent in batches, each
claimed in one statement, read in one, sent over one connection, each
delivery marked sent as soon as it is sent, until a claim comes back short.
A batch cut short (a killed worker, a failed send, a slow server) loses
nothing and sends nothing twice; drains racing over the same deliveries
claim each once, without waiting for each other. A delivery's own message
(retries, resends) sends that delivery alone."""

from __future__ import annotations

import smtplib
import time
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.db import connection, transaction
from django.utils import timezone

from tests.concurrency import run_concurrently
from tests.ticketing.mail_backend import (
    PENDING,
    SENDING,
    SENT,
    Backend,
    WorkerKilled,
    backend,  # noqa: F401 - the autouse fixture of these tests
    delivery_id,
    in_thread,
    record_deliveries,
    sent_ids,
    states,
)
from ticketing.models import EmailDelivery, EventSigningKey
from ticketing.services.emails import (
    Drained,
    claim_timeout,
    email_deliveries_drain,
    email_deliveries_due,
    email_delivery_send,
)

# --- batches -------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_drain_sends_the_waiting_emails_over_one_connection(organization, django_assert_num_queries):
    deliveries = record_deliveries(organization, 4)

    # when: a claim (it comes back short: nothing else is waiting), the
    # read, and each marked sent
    with django_assert_num_queries(2 + 4):
        assert email_deliveries_drain(claimant="task-0") == Drained(sent=4)

    # then
    assert [delivery_id(m) for m in mail.outbox] == [d.pk for d in deliveries]
    assert Backend.opened == 1
    assert states(deliveries) == [(SENT, 1)] * 4
    assert set(EmailDelivery.objects.values_list("claimed_by", flat=True)) == {"task-0"}

    # and the next drain finds nothing, in one statement
    with django_assert_num_queries(1):
        assert email_deliveries_drain(claimant="task-1") == Drained(sent=0)
    assert len(mail.outbox) == 4


@pytest.mark.django_db
def test_a_drain_makes_its_events_first_signing_key_once(organization, django_assert_num_queries):
    deliveries = record_deliveries(organization, 3, key=False)

    # when: claim, read, the key looked for and made (select, savepoint,
    # insert, release), three marked sent
    with django_assert_num_queries(2 + 4 + 3):
        assert email_deliveries_drain().sent == 3

    # then: every code signed with that one key
    event = deliveries[0].order.event
    assert EventSigningKey.objects.filter(event=event).count() == 1
    assert states(deliveries) == [(SENT, 1)] * 3


@pytest.mark.django_db
def test_a_drain_goes_batch_by_batch_oldest_first_until_a_claim_comes_back_short(
    organization, django_assert_num_queries
):
    deliveries = record_deliveries(organization, 7)

    # when: batches of 3: 3, 3, then 1 (short: the drain ends)
    with django_assert_num_queries(3 * 2 + 7):
        assert email_deliveries_drain(batch=3) == Drained(sent=7)

    # then: oldest first, one connection per batch
    assert [delivery_id(m) for m in mail.outbox] == [d.pk for d in deliveries]
    assert Backend.opened == 3
    assert states(deliveries) == [(SENT, 1)] * 7


@pytest.mark.django_db
def test_a_full_last_batch_needs_one_more_claim_to_know_it_was_the_last(organization, django_assert_num_queries):
    record_deliveries(organization, 6)

    with django_assert_num_queries(2 * 2 + 6 + 1):
        assert email_deliveries_drain(batch=3) == Drained(sent=6)


@pytest.mark.django_db
def test_a_drain_stops_after_its_batches_and_says_there_may_be_more(organization):
    deliveries = record_deliveries(organization, 5)

    # when: at most two batches of two
    assert email_deliveries_drain(batch=2, batches=2) == Drained(sent=4, more=True)

    # then: the oldest four went; the fifth waits for the next drain
    assert states(deliveries) == [(SENT, 1)] * 4 + [(PENDING, 0)]
    assert email_deliveries_drain(batch=2, batches=2) == Drained(sent=1)
    assert sent_ids() == {d.pk: 1 for d in deliveries}


@pytest.mark.django_db
def test_a_drain_takes_only_fresh_deliveries(organization):
    # given: one already tried (waiting for its backoff), one being sent by
    # another task, one sent, two fresh
    fresh, tried, elsewhere, sent, later = record_deliveries(organization, 5)
    EmailDelivery.objects.filter(pk=tried.pk).update(attempts=1, last_error="SMTP 451")
    EmailDelivery.objects.filter(pk=elsewhere.pk).update(
        status=SENDING, attempts=1, claimed_at=timezone.now(), claimed_by="task-9"
    )
    EmailDelivery.objects.filter(pk=sent.pk).update(status=SENT, attempts=1, sent_at=timezone.now())

    # when
    assert email_deliveries_drain(claimant="task-1") == Drained(sent=2)

    # then: the fresh ones, nothing else
    assert sent_ids() == {fresh.pk: 1, later.pk: 1}
    assert states([fresh, tried, elsewhere, sent, later]) == [
        (SENT, 1),
        (PENDING, 1),
        (SENDING, 1),
        (SENT, 1),
        (SENT, 1),
    ]


# --- a delivery's own message ----------------------------------------------------------


@pytest.mark.django_db
def test_a_deliverys_own_message_sends_it_alone(organization, django_assert_num_queries):
    first, second, third = record_deliveries(organization, 3)
    EmailDelivery.objects.filter(pk=second.pk).update(attempts=1, last_error="SMTP 451")  # a retry

    # when: its retry's message: claim, read, marked sent
    with django_assert_num_queries(3):
        assert email_delivery_send(delivery_id=second.pk, claimant="task-1") is True

    # then: the fresh ones around it are left to the drain
    assert sent_ids() == {second.pk: 1}
    assert states([first, second, third]) == [(PENDING, 0), (SENT, 2), (PENDING, 0)]


@pytest.mark.django_db
def test_a_message_whose_delivery_is_gone_or_sent_costs_one_statement(organization, django_assert_num_queries):
    gone, sent = record_deliveries(organization, 2)
    EmailDelivery.objects.filter(pk=gone.pk).delete()
    EmailDelivery.objects.filter(pk=sent.pk).update(status=SENT, attempts=1, sent_at=timezone.now())

    with django_assert_num_queries(1):
        assert email_delivery_send(delivery_id=gone.pk, claimant="task-1") is False
    with django_assert_num_queries(1):
        assert email_delivery_send(delivery_id=sent.pk, claimant="task-2") is False

    assert mail.outbox == []


# --- a batch cut short -----------------------------------------------------------------


@pytest.mark.django_db
def test_a_drain_killed_mid_batch_is_taken_back_at_once_by_its_message_delivered_again(organization):
    deliveries = record_deliveries(organization, 5)
    # given: the worker dies while sending the third e-mail
    Backend.fail_on = {deliveries[2].pk: WorkerKilled()}
    with pytest.raises(WorkerKilled):
        email_deliveries_drain(claimant="task-0")
    Backend.fail_on = {}
    assert sent_ids() == {deliveries[0].pk: 1, deliveries[1].pk: 1}
    assert states(deliveries) == [(SENT, 1)] * 2 + [(SENDING, 1)] * 3

    # when: another drain comes first (a ring after the kill)
    assert email_deliveries_drain(claimant="task-1") == Drained(sent=0)
    assert len(mail.outbox) == 2  # they wait: another worker may still be sending them

    # when: the killed drain's message is delivered again (acks_late): its
    # first claim takes its batch back at once
    assert email_deliveries_drain(claimant="task-0") == Drained(sent=3)

    # then: each e-mail sent once
    assert sent_ids() == {d.pk: 1 for d in deliveries}
    assert states(deliveries) == [(SENT, 1)] * 2 + [(SENT, 2)] * 3


@pytest.mark.django_db
def test_a_killed_drain_whose_message_is_not_redelivered_is_sent_by_the_sweeper_after_the_claims_expire(
    organization,
):
    deliveries = record_deliveries(organization, 4)
    Backend.fail_on = {deliveries[1].pk: WorkerKilled()}
    with pytest.raises(WorkerKilled):
        email_deliveries_drain(claimant="task-0")
    Backend.fail_on = {}
    assert email_deliveries_due(older_than=timedelta(0)) == []  # claimed, not yet abandoned

    # when: the claims expire; the resend sweeper queues the abandoned ones,
    # and their own messages send them (new claimants); drains leave them
    later = timezone.now() + claim_timeout() + timedelta(seconds=1)
    due = [d.pk for d in deliveries[1:]]
    EmailDelivery.objects.filter(pk__in=due).update(claimed_at=timezone.now() - claim_timeout() - timedelta(seconds=1))
    assert email_deliveries_drain(claimant="task-1") == Drained(sent=0)
    assert email_deliveries_due(older_than=timedelta(0)) == due
    for pk in due:
        assert email_delivery_send(delivery_id=pk, claimant=f"sweep-{pk}", now=later) is True

    # then
    assert sent_ids() == {d.pk: 1 for d in deliveries}
    assert states(deliveries) == [(SENT, 1)] + [(SENT, 2)] * 3


@pytest.mark.django_db
def test_a_failed_send_stops_the_drain_and_hands_back_it_and_the_rest_untried(organization):
    deliveries = record_deliveries(organization, 4)
    Backend.fail_on = {deliveries[1].pk: smtplib.SMTPRecipientsRefused({"jane@example.com": (550, b"no")})}

    # when: the second fails
    assert email_deliveries_drain(claimant="task-0") == Drained(sent=1, failed=(deliveries[1].pk,), more=True)

    # then: the failed one waits for its own message's retry with its error
    # (no longer fresh: no drain takes it), the untried ones as they were
    assert sent_ids() == {deliveries[0].pk: 1}
    assert states(deliveries) == [(SENT, 1), (PENDING, 1), (PENDING, 0), (PENDING, 0)]
    failed = EmailDelivery.objects.get(pk=deliveries[1].pk)
    assert "550" in failed.last_error and failed.claimed_at is None

    # and the next drain sends the rest, the retry its own
    Backend.fail_on = {}
    assert email_deliveries_drain(claimant="task-1") == Drained(sent=2)
    assert email_delivery_send(delivery_id=deliveries[1].pk, claimant="task-2") is True
    assert sent_ids() == {d.pk: 1 for d in deliveries}
    assert states(deliveries) == [(SENT, 1), (SENT, 2), (SENT, 1), (SENT, 1)]


@pytest.mark.django_db
def test_a_failure_of_a_deliverys_own_message_raises_for_its_retry(organization):
    (delivery,) = record_deliveries(organization, 1)
    Backend.fail_on = {delivery.pk: smtplib.SMTPServerDisconnected("gone")}

    with pytest.raises(smtplib.SMTPServerDisconnected):
        email_delivery_send(delivery_id=delivery.pk, claimant="task-0")

    assert mail.outbox == []
    assert states([delivery]) == [(PENDING, 1)]
    assert EmailDelivery.objects.get(pk=delivery.pk).last_error == "gone"


@pytest.mark.django_db
def test_a_server_that_cannot_be_reached_hands_the_batch_back(organization):
    deliveries = record_deliveries(organization, 3)
    Backend.fail_open = ConnectionRefusedError("connection refused")

    assert email_deliveries_drain(claimant="task-0") == Drained(sent=0, failed=(deliveries[0].pk,), more=True)

    assert states(deliveries) == [(PENDING, 1), (PENDING, 0), (PENDING, 0)]


@pytest.mark.django_db
def test_no_send_starts_after_half_the_claim_time(organization):
    # given: batches claimed more than half a claim time ago (a slow server)
    deliveries = record_deliveries(organization, 3)
    claimed = timezone.now() - claim_timeout() / 2 - timedelta(seconds=1)

    # when
    assert email_deliveries_drain(claimant="task-0", now=claimed) == Drained(sent=3)

    # then: each batch sent its first and handed the rest back untried, to
    # be claimed again by the next: every e-mail once, each one attempt
    assert [delivery_id(m) for m in mail.outbox] == [d.pk for d in deliveries]
    assert Backend.opened == 3
    assert states(deliveries) == [(SENT, 1)] * 3


# --- drains racing -----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_drains_racing_over_the_same_deliveries_send_each_once(require_postgres, organization):
    deliveries = record_deliveries(organization, 30)
    ids = [d.pk for d in deliveries]

    # when: four drains at once (and a delivery's own message for one of them)
    results = run_concurrently(
        [lambda n=n: email_deliveries_drain(claimant=f"task-{n}", batch=3) for n in range(4)]
        + [lambda: email_delivery_send(delivery_id=ids[4], claimant="own")]
    )

    # then: nobody failed, and every e-mail went out once
    assert [exc for _, exc in results] == [None] * 5
    assert sum(drained.sent for drained, _ in results[:4]) + int(results[4][0]) == 30
    assert sent_ids() == dict.fromkeys(ids, 1)
    assert set(EmailDelivery.objects.values_list("status", "attempts")) == {(SENT, 1)}


@pytest.mark.django_db(transaction=True)
def test_a_drain_skips_the_rows_another_drain_holds_without_waiting(require_postgres, organization):
    # given: drain A has claimed a batch and holds its rows (its claim not
    # yet committed: held open here, as a slow statement would)
    deliveries = record_deliveries(organization, 6)
    ids = [d.pk for d in deliveries]
    Backend.pause_on = ids[0]
    results: dict[str, Any] = {}

    def drain_a() -> Drained:
        with transaction.atomic():
            return email_deliveries_drain(claimant="task-a", batch=4, batches=1)

    a = in_thread(results, "a", drain_a)
    try:
        assert Backend.paused.wait(timeout=10)

        # when: drain B runs meanwhile
        b = in_thread(results, "b", lambda: email_deliveries_drain(claimant="task-b", batch=4))
        b.join(timeout=10)

        # then: B did not wait for A: it took the rows after A's and finished
        assert not b.is_alive(), "drain B waited for drain A's rows"
        assert results["b"] == Drained(sent=2)
    finally:
        Backend.resume.set()
        a.join(timeout=20)
    assert results["a"] == Drained(sent=4, more=True)  # one batch, full: there may be more
    claimed_by = dict(EmailDelivery.objects.values_list("id", "claimed_by"))
    assert [claimed_by[pk] for pk in ids] == ["task-a"] * 4 + ["task-b"] * 2
    assert sent_ids() == dict.fromkeys(ids, 1)
    assert set(EmailDelivery.objects.values_list("status", "attempts")) == {(SENT, 1)}


@pytest.mark.django_db(transaction=True)
def test_a_deliverys_own_message_waits_for_a_drains_claim_and_then_finds_it_taken(require_postgres, organization):
    # given: a drain holds the row of a delivery (its claim not yet committed)
    deliveries = record_deliveries(organization, 2)
    ids = [d.pk for d in deliveries]
    Backend.pause_on = ids[0]
    results: dict[str, Any] = {}

    def drain() -> Drained:
        with transaction.atomic():
            return email_deliveries_drain(claimant="task-a")

    a = in_thread(results, "a", drain)
    assert Backend.paused.wait(timeout=10)

    # when: the second delivery's own message (the outbox's) claims it
    b = in_thread(results, "b", lambda: email_delivery_send(delivery_id=ids[1], claimant="task-b"))
    try:
        _wait_until_blocked(statement_start="UPDATE")
    finally:
        Backend.resume.set()
        a.join(timeout=20)
        b.join(timeout=20)

    # then: it waited for the drain's claim and found the row taken
    assert results == {"a": Drained(sent=2), "b": False}
    assert sent_ids() == dict.fromkeys(ids, 1)


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
