"""The sandbox delivers a due-now webhook in the paying process, right after
the charge commits: no Celery message, the row recorded already claimed for
that delivery (not claimed again, not read back), a failure never seen by the
buyer and left to the sweeper, a crash before the delivery left to the
sweeper once the lease runs out, and a race with the sweeper delivering once.
These tests commit for real (transaction=True), so the after-commit callbacks
run as in production, robust ones included."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from celery.app.task import Task
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from payments.models import Payment, PaymentSession, PaymentStatus, SandboxWebhook, WebhookEvent
from payments.sandbox import webhooks
from payments.sandbox.webhooks import DeliveryResult, sandbox_webhooks_deliver_due
from tests.concurrency import run_concurrently

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("require_postgres")]

SUCCESS, DELAYED = "4242424242424242", "4000000000000077"
# How long one side of a staged race waits for the other before failing.
WAIT_SECONDS = 20


@pytest.fixture
def celery_messages(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the tasks sent to Celery, captured instead of sent or run
    (eager or not): what is done here is done without Celery."""
    sent: list[str] = []

    def apply_async(self: Task, args: Any = None, kwargs: Any = None, **options: Any) -> None:
        sent.append(self.name)

    monkeypatch.setattr(Task, "apply_async", apply_async)
    return sent


def pay(client: Any, url: str, card: str = SUCCESS) -> Any:
    return client.post(url, {"card_number": card, "action": "pay"})


def payment_status(session: PaymentSession) -> str:
    return Payment.objects.get(session=session).status


def test_the_pay_post_delivers_the_webhook_before_answering_without_celery(
    client, sandbox_session, pay_url, signal_log, celery_messages
):
    # when
    with CaptureQueriesContext(connection) as queries:
        response = pay(client, pay_url(sandbox_session))

    # then: the payment was processed by our endpoint before the page answered
    assert (response.status_code, response["Location"]) == (302, sandbox_session.success_url)
    assert payment_status(sandbox_session) == PaymentStatus.SUCCEEDED
    assert signal_log.names() == ["payment_succeeded"]
    row = SandboxWebhook.objects.get()
    assert (row.event_type, row.attempts, row.last_status_code, row.next_attempt_at) == (
        "payment.succeeded",
        1,
        200,
        None,
    )
    assert row.delivered_at is not None
    assert WebhookEvent.objects.get().delivery_count == 1
    assert "payments.tasks.deliver_sandbox_webhook" not in celery_messages
    # Delivery used the row as it was recorded: it claimed and updated it, never read it back.
    webhook_statements = [
        q["sql"].split()[0] for q in queries.captured_queries if '"payments_sandboxwebhook"' in q["sql"]
    ]
    # Recorded already claimed, so not claimed again: the INSERT, then the UPDATE marking it delivered.
    assert webhook_statements == ["INSERT", "UPDATE"]
    # Delivered: the sweeper has nothing left to do.
    assert sandbox_webhooks_deliver_due(now=timezone.now() + timedelta(days=1)) == []


def test_a_webhook_due_later_is_left_to_the_sweeper(client, sandbox_session, pay_url, signal_log, celery_messages):
    response = pay(client, pay_url(sandbox_session), DELAYED)

    assert response.status_code == 200
    pending, later = SandboxWebhook.objects.order_by("id")
    assert (pending.event_type, pending.delivered_at is not None) == ("payment.pending", True)
    assert (later.event_type, later.delivered_at, later.attempts) == ("payment.succeeded", None, 0)
    assert signal_log.names() == ["payment_pending"]
    assert celery_messages.count("payments.tasks.deliver_sandbox_webhook") == 0

    results = sandbox_webhooks_deliver_due(now=timezone.now() + timedelta(days=1))

    assert [(r.webhook_id, r.delivered) for r in results] == [(later.pk, True)]
    assert payment_status(sandbox_session) == PaymentStatus.SUCCEEDED


def test_delivery_on_commit_can_be_switched_off(client, sandbox_session, pay_url, signal_log, settings):
    # The webhook-shuffle drill plays the provider's delivery itself.
    settings.SANDBOX_WEBHOOKS_DELIVER_ON_COMMIT = False

    assert pay(client, pay_url(sandbox_session)).status_code == 302

    row = SandboxWebhook.objects.get()
    assert (row.attempts, row.delivered_at) == (0, None)
    assert row.next_attempt_at <= timezone.now()
    assert signal_log.names() == []


def test_a_crash_between_the_commit_and_the_delivery_leaves_the_row_to_the_sweeper_once_its_lease_runs_out(
    client, sandbox_session, pay_url, signal_log, monkeypatch
):
    # given: the process dies after the charge commits, before its inline
    # delivery (robust on_commit swallows the error, as the buyer's page must)
    real_deliver = webhooks.sandbox_webhook_deliver

    def deliver(**kwargs: Any) -> DeliveryResult | None:
        if kwargs.get("recorded") is not None:
            raise RuntimeError("the process went away")
        return real_deliver(**kwargs)

    monkeypatch.setattr(webhooks, "sandbox_webhook_deliver", deliver)

    # when
    response = pay(client, pay_url(sandbox_session))

    # then: the charge stands; the row was recorded claimed for the lost delivery
    assert (response.status_code, response["Location"]) == (302, sandbox_session.success_url)
    row = SandboxWebhook.objects.get()
    assert (row.attempts, row.last_status_code, row.delivered_at) == (0, None, None)
    lease = timedelta(seconds=webhooks.DELIVERY_LEASE_SECONDS)
    assert timezone.now() < row.next_attempt_at <= timezone.now() + lease
    assert payment_status(sandbox_session) == PaymentStatus.CREATED

    # when: the sweeper comes round during the lease, after it, and again later
    during = sandbox_webhooks_deliver_due()
    after = sandbox_webhooks_deliver_due(now=timezone.now() + lease + timedelta(seconds=1))
    again = sandbox_webhooks_deliver_due(now=timezone.now() + timedelta(days=1))

    # then: it waits for the lease, then delivers exactly once
    assert during == []
    assert [(r.status_code, r.delivered) for r in after] == [(200, True)]
    assert again == []
    row.refresh_from_db()
    assert (row.attempts, row.last_status_code, row.last_error, row.next_attempt_at) == (1, 200, "", None)
    assert WebhookEvent.objects.get().delivery_count == 1
    assert payment_status(sandbox_session) == PaymentStatus.SUCCEEDED
    assert signal_log.names() == ["payment_succeeded"]


def _fail_once(monkeypatch: pytest.MonkeyPatch, failure: str) -> None:
    """Make the first (inline) delivery fail the way `failure` says; later
    deliveries reach our real endpoint."""
    real_dispatch = webhooks._dispatch
    calls: list[None] = []

    def dispatch(**kwargs: Any) -> tuple[int, str]:
        calls.append(None)
        if len(calls) == 1:
            if failure == "endpoint raises":
                raise ConnectionResetError("our endpoint went away")
            return 500, "Internal Server Error"
        return real_dispatch(**kwargs)

    monkeypatch.setattr(webhooks, "_dispatch", dispatch)


@pytest.mark.parametrize("failure", ["endpoint raises", "endpoint answers 500"])
def test_a_failed_inline_delivery_keeps_the_buyers_success_and_the_sweeper_delivers_it_once(
    client, sandbox_session, pay_url, signal_log, monkeypatch, failure
):
    # given: our endpoint fails the first delivery
    _fail_once(monkeypatch, failure)

    # when: the buyer pays
    response = pay(client, pay_url(sandbox_session))

    # then: the buyer sees the success page all the same; the row waits for the sweeper
    assert (response.status_code, response["Location"]) == (302, sandbox_session.success_url)
    row = SandboxWebhook.objects.get()
    assert row.delivered_at is None
    assert (row.attempts, row.last_status_code) == (1, 500)
    assert timezone.now() < row.next_attempt_at <= timezone.now() + timedelta(seconds=5)
    assert payment_status(sandbox_session) == PaymentStatus.CREATED
    assert signal_log.names() == []

    # when: the sweeper comes round once the backoff has passed, and again later
    first = sandbox_webhooks_deliver_due(now=timezone.now() + timedelta(seconds=6))
    again = sandbox_webhooks_deliver_due(now=timezone.now() + timedelta(days=1))

    # then: delivered exactly once
    assert [(r.status_code, r.delivered) for r in first] == [(200, True)]
    assert again == []
    row.refresh_from_db()
    assert row.delivered_at is not None
    assert (row.attempts, row.last_status_code, row.last_error) == (2, 200, "")
    assert WebhookEvent.objects.get().delivery_count == 1
    assert payment_status(sandbox_session) == PaymentStatus.SUCCEEDED
    assert signal_log.names() == ["payment_succeeded"]


def _wait(event: threading.Event) -> None:
    assert event.wait(WAIT_SECONDS), "the other side of the race never got there"


def test_the_sweeper_right_after_the_commit_leaves_the_row_to_its_inline_delivery(
    client, sandbox_session, pay_url, signal_log, monkeypatch
):
    """The sweeper (another process) runs the moment the charge commits,
    before the inline delivery starts: the row is recorded claimed, so it is
    not due and the sweeper has nothing to do."""
    real_deliver = webhooks.sandbox_webhook_deliver
    committed, swept = threading.Event(), threading.Event()

    def deliver(**kwargs: Any) -> DeliveryResult | None:
        if kwargs.get("recorded") is not None:  # inline, right after the charge committed
            committed.set()
            _wait(swept)
        return real_deliver(**kwargs)

    monkeypatch.setattr(webhooks, "sandbox_webhook_deliver", deliver)
    url = pay_url(sandbox_session)

    def sweeper() -> list[DeliveryResult]:
        _wait(committed)
        try:
            return webhooks.sandbox_webhooks_deliver_due()
        finally:
            swept.set()

    buyer: Callable[[], Any] = lambda: pay(client, url)  # noqa: E731

    # when
    (response, buyer_error), (swept_results, sweeper_error) = run_concurrently([buyer, sweeper])

    # then
    assert (buyer_error, sweeper_error) == (None, None)
    assert (response.status_code, response["Location"]) == (302, sandbox_session.success_url)
    assert swept_results == []
    row = SandboxWebhook.objects.get()
    assert (row.attempts, row.last_status_code, row.next_attempt_at) == (1, 200, None)
    assert WebhookEvent.objects.get().delivery_count == 1
    assert payment_status(sandbox_session) == PaymentStatus.SUCCEEDED
    assert signal_log.names() == ["payment_succeeded"]


@pytest.mark.parametrize("winner", ["inline", "sweeper"])
def test_a_late_inline_delivery_racing_the_sweeper_after_the_lease_ran_out_delivers_once(
    client, sandbox_session, pay_url, signal_log, monkeypatch, winner
):
    """The inline delivery starts only after the lease its row was recorded
    with ran out (its transaction ran on long before committing), just as the
    sweeper finds the row due again: the inline delivery must claim it now,
    like the sweeper. The steps are staged so that `winner` claims first and
    is still delivering while the other tries: the loser gets nothing to do."""
    real_deliver, real_dispatch = webhooks.sandbox_webhook_deliver, webhooks._dispatch
    committed, listed, claimed, lost = (threading.Event() for _ in range(4))
    late = timedelta(seconds=webhooks.DELIVERY_LEASE_SECONDS + 1)

    def deliver(**kwargs: Any) -> DeliveryResult | None:
        if kwargs.get("recorded") is not None:  # inline, right after the charge committed...
            kwargs["now"] = timezone.now() + late  # ...but late
            committed.set()
            _wait(listed)
            if winner == "sweeper":
                _wait(claimed)
        else:  # the sweeper, which has just listed the row as due
            listed.set()
            if winner == "inline":
                _wait(claimed)
        result = real_deliver(**kwargs)
        if result is None:
            lost.set()
        return result

    def dispatch(**kwargs: Any) -> tuple[int, str]:
        claimed.set()  # the winner holds the claim...
        _wait(lost)  # ...while the loser tries and finds nothing to do
        return real_dispatch(**kwargs)

    monkeypatch.setattr(webhooks, "sandbox_webhook_deliver", deliver)
    monkeypatch.setattr(webhooks, "_dispatch", dispatch)
    url = pay_url(sandbox_session)

    def sweeper() -> list[DeliveryResult]:
        _wait(committed)
        return webhooks.sandbox_webhooks_deliver_due(now=timezone.now() + late)

    buyer: Callable[[], Any] = lambda: pay(client, url)  # noqa: E731

    # when
    (response, buyer_error), (swept, sweeper_error) = run_concurrently([buyer, sweeper])

    # then
    assert (buyer_error, sweeper_error) == (None, None)
    assert (response.status_code, response["Location"]) == (302, sandbox_session.success_url)
    assert [(r.status_code, r.delivered) for r in swept] == ([(200, True)] if winner == "sweeper" else [])
    row = SandboxWebhook.objects.get()
    assert (row.attempts, row.last_status_code, row.next_attempt_at) == (1, 200, None)
    assert row.delivered_at is not None
    assert WebhookEvent.objects.get().delivery_count == 1
    assert payment_status(sandbox_session) == PaymentStatus.SUCCEEDED
    assert signal_log.names() == ["payment_succeeded"]
    assert sandbox_webhooks_deliver_due(now=timezone.now() + timedelta(days=1)) == []


def test_an_inline_delivery_short_of_lease_renews_it_before_delivering(
    client, sandbox_session, pay_url, signal_log, monkeypatch
):
    """The inline delivery starts with less than half its lease left (its
    transaction committed late): it renews the lease first, so a sweeper that
    comes round when the recorded lease would have run out, while the
    delivery is still under way, finds nothing due."""
    real_deliver, real_dispatch = webhooks.sandbox_webhook_deliver, webhooks._dispatch
    lease = timedelta(seconds=webhooks.DELIVERY_LEASE_SECONDS)
    late = lease - timedelta(seconds=webhooks.DELIVERY_LEASE_RENEW_SECONDS - 1)
    swept: list[list[DeliveryResult]] = []

    def deliver(**kwargs: Any) -> DeliveryResult | None:
        if kwargs.get("recorded") is not None:
            kwargs["now"] = timezone.now() + late
        return real_deliver(**kwargs)

    def dispatch(**kwargs: Any) -> tuple[int, str]:
        if not swept:  # while delivering, the recorded lease runs out and the sweeper comes round
            swept.append(webhooks.sandbox_webhooks_deliver_due(now=timezone.now() + lease + timedelta(seconds=1)))
        return real_dispatch(**kwargs)

    monkeypatch.setattr(webhooks, "sandbox_webhook_deliver", deliver)
    monkeypatch.setattr(webhooks, "_dispatch", dispatch)

    # when
    with CaptureQueriesContext(connection) as queries:
        response = pay(client, pay_url(sandbox_session))

    # then: renewed (one UPDATE more), so the sweeper found nothing; delivered once
    assert (response.status_code, response["Location"]) == (302, sandbox_session.success_url)
    assert swept == [[]]
    webhook_statements = [
        q["sql"].split()[0] for q in queries.captured_queries if '"payments_sandboxwebhook"' in q["sql"]
    ]
    assert webhook_statements[0] == "INSERT"
    assert webhook_statements[1:].count("UPDATE") == 2  # the renewal, then marking it delivered
    row = SandboxWebhook.objects.get()
    assert (row.attempts, row.last_status_code, row.next_attempt_at) == (1, 200, None)
    assert WebhookEvent.objects.get().delivery_count == 1
    assert payment_status(sandbox_session) == PaymentStatus.SUCCEEDED
    assert signal_log.names() == ["payment_succeeded"]
