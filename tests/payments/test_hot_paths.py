"""The payments statements of a sale, pinned by shape: the sandbox's charge
(one conditional UPDATE that returns the row, then its webhook's INSERT) and
our endpoint's payment event (one SELECT locking the session and the payment,
the change, then one INSERT of the event row with its outcome), with the
cases that take the slower ways: declines, replays, expiry, unknown cards,
duplicates and a delivery that finds its event applied already."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from payments.exceptions import SandboxSessionNotFound
from payments.locks import lock_session_with_payment
from payments.models import (
    Payment,
    PaymentSession,
    PaymentSessionStatus,
    PaymentStatus,
    SandboxSession,
    SandboxSessionStatus,
    SandboxWebhook,
    WebhookEvent,
    WebhookOutcome,
)
from payments.sandbox.gateway import ChargeOutcome, sandbox_charge
from payments.services import payment_session_create, webhook_receive
from tests.concurrency import run_concurrently
from tests.payments.factories import SANDBOX_SECRET, hmac_header, make_order, sandbox_event
from tests.round_trips import counting_round_trips
from ticketing.models import AuditLogEntry

SUCCESS, DECLINED, NO_FUNDS, DELAYED, NO_TEST_CARD = (
    "4242424242424242",
    "4000000000000002",
    "4000000000009995",
    "4000000000000077",
    "4111111111111111",
)
CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


@pytest.fixture(autouse=True)
def _no_delivery(settings: Any) -> None:
    """The sandbox's side alone: its webhooks are recorded, not delivered."""
    settings.SANDBOX_WEBHOOKS_DELIVER_ON_COMMIT = False


def sandbox_of(session: PaymentSession) -> SandboxSession:
    return SandboxSession.objects.get(session_id=session.provider_session_id)


def shapes(queries: CaptureQueriesContext) -> list[str]:
    """'UPDATE payments_sandboxsession', ... for each statement but
    transaction control (writes that travel with a statement in one round
    trip, ticketing.rows.deferred, are logged one by one too)."""
    found = []
    for query in queries.captured_queries:
        words = query["sql"].replace('"', "").split()
        if words[0] in CONTROL:
            continue
        table = words[2] if words[0] in ("INSERT", "DELETE") else words[1]
        if words[0] == "SELECT":
            table = words[words.index("FROM") + 1]
        found.append(f"{words[0]} {table}")
    return found


def row_values(session: SandboxSession) -> dict[str, Any]:
    return {f.attname: getattr(session, f.attname) for f in SandboxSession._meta.concrete_fields}


# --- the sandbox's charge -----------------------------------------------------------


def test_a_charged_card_is_one_conditional_update_that_returns_the_row(sandbox_session: PaymentSession) -> None:
    token = sandbox_of(sandbox_session).token

    with CaptureQueriesContext(connection) as queries:
        result = sandbox_charge(token=token, card_number=SUCCESS)

    assert result.outcome == ChargeOutcome.SUCCEEDED
    assert shapes(queries) == ["UPDATE payments_sandboxsession", "INSERT payments_sandboxwebhook"]
    charge = next(q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE"))
    assert " RETURNING " in charge
    # The session handed back is the row as written, converted as the ORM converts it.
    stored = SandboxSession.objects.get(token=token)
    assert row_values(result.session) == row_values(stored)
    assert (stored.status, stored.attempts, stored.failure_code) == (SandboxSessionStatus.SUCCEEDED, 1, "")
    webhook = SandboxWebhook.objects.get()
    assert (webhook.event_type, webhook.session_id) == ("payment.succeeded", stored.pk)
    assert f'"payment_id":"{stored.payment_id}"' in webhook.body


def test_declines_count_as_attempts_and_leave_the_session_open_for_a_good_card(
    sandbox_session: PaymentSession,
) -> None:
    token = sandbox_of(sandbox_session).token

    declined = sandbox_charge(token=token, card_number=DECLINED)
    no_funds = sandbox_charge(token=token, card_number=NO_FUNDS)
    paid = sandbox_charge(token=token, card_number=SUCCESS)

    assert [r.outcome for r in (declined, no_funds, paid)] == [
        ChargeOutcome.DECLINED,
        ChargeOutcome.DECLINED,
        ChargeOutcome.SUCCEEDED,
    ]
    assert (declined.session.status, declined.session.failure_code, declined.session.attempts) == (
        SandboxSessionStatus.OPEN,
        "card_declined",
        1,
    )
    assert (no_funds.failure_code, no_funds.session.attempts) == ("insufficient_funds", 2)
    stored = SandboxSession.objects.get(token=token)
    assert (stored.status, stored.failure_code, stored.attempts) == (SandboxSessionStatus.SUCCEEDED, "", 3)
    assert list(SandboxWebhook.objects.order_by("id").values_list("event_type", flat=True)) == [
        "payment.failed",
        "payment.failed",
        "payment.succeeded",
    ]


def test_a_delayed_card_makes_the_session_pending_and_records_the_later_confirmation(
    sandbox_session: PaymentSession, settings: Any
) -> None:
    settings.SANDBOX_DELAYED_CONFIRMATION_SECONDS = 60
    token = sandbox_of(sandbox_session).token
    sandbox_charge(token=token, card_number=DECLINED)
    now = timezone.now()

    result = sandbox_charge(token=token, card_number=DELAYED, now=now)

    assert result.outcome == ChargeOutcome.PROCESSING
    stored = SandboxSession.objects.get(token=token)
    # The decline's code stays, as before: only a success clears it.
    assert (stored.status, stored.settles_at, stored.attempts, stored.failure_code) == (
        SandboxSessionStatus.PENDING,
        now + timedelta(seconds=60),
        2,
        "card_declined",
    )
    assert result.session.settles_at == stored.settles_at
    later = SandboxWebhook.objects.get(event_type="payment.succeeded")
    assert later.next_attempt_at == stored.settles_at
    assert SandboxWebhook.objects.filter(event_type="payment.pending").count() == 1


def test_a_paid_or_processing_session_is_not_charged_again(sandbox_session: PaymentSession) -> None:
    token = sandbox_of(sandbox_session).token
    sandbox_charge(token=token, card_number=SUCCESS)

    with CaptureQueriesContext(connection) as queries:
        again = sandbox_charge(token=token, card_number=SUCCESS)
        declined = sandbox_charge(token=token, card_number=DECLINED)

    assert (again.outcome, declined.outcome) == (ChargeOutcome.ALREADY_PAID, ChargeOutcome.ALREADY_PAID)
    # The conditional UPDATE found nothing to charge; the locked read told why.
    assert shapes(queries) == ["UPDATE payments_sandboxsession", "SELECT payments_sandboxsession"] * 2
    stored = SandboxSession.objects.get(token=token)
    assert (stored.attempts, SandboxWebhook.objects.count()) == (1, 1)


def test_a_processing_session_is_not_charged_again(sandbox_session: PaymentSession) -> None:
    token = sandbox_of(sandbox_session).token
    sandbox_charge(token=token, card_number=DELAYED)

    result = sandbox_charge(token=token, card_number=SUCCESS)

    assert result.outcome == ChargeOutcome.ALREADY_PROCESSING
    assert SandboxSession.objects.get(token=token).attempts == 1


def test_an_expired_session_is_closed_not_charged(sandbox_session: PaymentSession) -> None:
    sandbox = sandbox_of(sandbox_session)
    SandboxSession.objects.filter(pk=sandbox.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    result = sandbox_charge(token=sandbox.token, card_number=SUCCESS)

    assert result.outcome == ChargeOutcome.EXPIRED
    stored = SandboxSession.objects.get(pk=sandbox.pk)
    assert (stored.status, stored.attempts) == (SandboxSessionStatus.EXPIRED, 0)
    assert list(SandboxWebhook.objects.values_list("event_type", flat=True)) == ["payment.cancelled"]


def test_a_card_that_is_no_test_card_changes_nothing(sandbox_session: PaymentSession) -> None:
    sandbox = sandbox_of(sandbox_session)

    with CaptureQueriesContext(connection) as queries:
        result = sandbox_charge(token=sandbox.token, card_number=NO_TEST_CARD)

    assert result.outcome == ChargeOutcome.INVALID_CARD
    assert shapes(queries) == ["SELECT payments_sandboxsession"]
    assert row_values(SandboxSession.objects.get(pk=sandbox.pk)) == row_values(sandbox)
    assert not SandboxWebhook.objects.exists()


@pytest.mark.parametrize("card", [SUCCESS, NO_TEST_CARD])
def test_an_unknown_token_is_not_found(db: Any, card: str) -> None:
    with pytest.raises(SandboxSessionNotFound):
        sandbox_charge(token="no-such-token", card_number=card)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("require_postgres")
def test_a_double_submit_racing_on_the_row_charges_once() -> None:
    # given: the session's row held by another transaction while both submits start
    session = payment_session_create(order=make_order(), provider="sandbox", idempotency_key="double")
    token = sandbox_of(session).token
    held, release = threading.Event(), threading.Event()

    def hold_the_row() -> None:
        try:
            with transaction.atomic():
                SandboxSession.objects.select_for_update().get(token=token)
                held.set()
                release.wait(10)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_the_row)
    holder.start()
    assert held.wait(10)
    threading.Timer(0.3, release.set).start()

    # when
    results = run_concurrently([lambda: sandbox_charge(token=token, card_number=SUCCESS)] * 2)
    holder.join(10)

    # then: one charge; the other waited on the row and found it paid
    assert [exc for _, exc in results] == [None, None]
    assert sorted(result.outcome for result, _ in results) == [ChargeOutcome.ALREADY_PAID, ChargeOutcome.SUCCEEDED]
    stored = SandboxSession.objects.get(token=token)
    assert (stored.status, stored.attempts) == (SandboxSessionStatus.SUCCEEDED, 1)
    assert SandboxWebhook.objects.count() == 1


# --- our endpoint: a payment event --------------------------------------------------


def receive(body: bytes) -> tuple[WebhookEvent, bool]:
    return webhook_receive(
        provider="sandbox", raw_body=body, headers={"Sandbox-Signature": hmac_header(body=body, secret=SANDBOX_SECRET)}
    )


def test_a_payment_event_is_one_locking_read_the_change_and_one_insert_of_its_row(
    sandbox_session: PaymentSession,
    signal_log: Any,
    django_capture_on_commit_callbacks: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = sandbox_event(sandbox_session)
    ContentType.objects.get_for_models(Payment, PaymentSession)  # cached by every running process

    with (
        django_capture_on_commit_callbacks(execute=True),
        counting_round_trips(monkeypatch) as trips,
        CaptureQueriesContext(connection) as queries,
    ):
        event, created = receive(body)

    assert created and event.outcome == WebhookOutcome.PROCESSED
    # The lock, then the row's INSERT with the change's writes before it.
    assert shapes(queries) == [
        "SELECT payments_paymentsession",
        "INSERT ticketing_auditlogentry",
        "UPDATE payments_payment",
        "INSERT ticketing_auditlogentry",
        "UPDATE payments_paymentsession",
        "INSERT payments_webhookevent",
    ]
    if connection.vendor == "postgresql":
        assert trips.count == 4  # BEGIN, the lock, the INSERT with its passengers, COMMIT
    if connection.features.has_select_for_update_of:
        lock = next(q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT"))
        assert lock.endswith("FOR UPDATE OF s, p")
    stored = WebhookEvent.objects.get()
    assert (stored.outcome, stored.delivery_count, stored.session_id, stored.payment_id, stored.error) == (
        WebhookOutcome.PROCESSED,
        1,
        sandbox_session.pk,
        sandbox_session.payment.pk,
        None,
    )
    assert stored.organization_id == sandbox_session.organization_id and stored.processed_at is not None
    assert stored.payload["id"] == "evt_test_1" and stored.signature_verified
    # The audit rows are the transitions' own: actor, name, source -> target, reason.
    reason = "sandbox webhook payment.succeeded (evt_test_1)"
    audit = AuditLogEntry.objects.order_by("id").values_list(
        "object_id", "transition", "source_state", "target_state", "actor_repr", "reason"
    )
    assert list(audit)[-2:] == [
        (str(sandbox_session.payment.pk), "mark_succeeded", "created", "succeeded", "system", reason),
        (str(sandbox_session.pk), "complete", "open", "complete", "system", reason),
    ]
    assert signal_log.names() == ["payment_succeeded"]


def test_a_replayed_payment_event_is_counted_and_changes_nothing(
    sandbox_session: PaymentSession, signal_log: Any, django_capture_on_commit_callbacks: Any
) -> None:
    body = sandbox_event(sandbox_session)
    with django_capture_on_commit_callbacks(execute=True):
        receive(body)
    audit_rows = AuditLogEntry.objects.count()

    with django_capture_on_commit_callbacks(execute=True), CaptureQueriesContext(connection) as queries:
        event, created = receive(body)

    assert not created
    assert (event.outcome, event.delivery_count) == (WebhookOutcome.PROCESSED, 2)
    assert WebhookEvent.objects.get().delivery_count == 2
    assert shapes(queries) == [
        "SELECT payments_paymentsession",
        "INSERT payments_webhookevent",
        "SELECT payments_webhookevent",
        "UPDATE payments_webhookevent",
    ]
    assert AuditLogEntry.objects.count() == audit_rows
    assert signal_log.names() == ["payment_succeeded"]


def test_a_delivery_that_finds_its_event_applied_already_rolls_its_change_back(
    sandbox_session: PaymentSession, signal_log: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # given: the event's row, as an earlier delivery left it, with the payment
    # somehow not moved on (a transition that a second delivery could make again)
    body = sandbox_event(sandbox_session)
    WebhookEvent.objects.create(
        provider="sandbox",
        provider_event_id="evt_test_1",
        event_type="payment.succeeded",
        payload={},
        signature_verified=True,
        outcome=WebhookOutcome.PROCESSED,
    )
    audit_rows = AuditLogEntry.objects.count()

    # when
    with django_capture_on_commit_callbacks(execute=True):
        event, created = receive(body)

    # then: a duplicate, and nothing this delivery changed stays
    assert not created
    assert (event.outcome, event.delivery_count) == (WebhookOutcome.PROCESSED, 2)
    assert Payment.objects.get(pk=sandbox_session.payment.pk).status == PaymentStatus.CREATED
    assert PaymentSession.objects.get(pk=sandbox_session.pk).status == PaymentSessionStatus.OPEN
    assert AuditLogEntry.objects.count() == audit_rows
    assert signal_log.names() == []


def test_an_unknown_session_is_rejected_each_time_it_is_delivered(sandbox_session: PaymentSession) -> None:
    body = sandbox_event(sandbox_session, session_id="sbx_cs_nobody", session_reference="ps_nobody")

    for _ in range(2):
        with pytest.raises(Exception, match="session") as raised:
            receive(body)
        assert raised.value.code == "webhook_unknown_session"  # type: ignore[attr-defined]

    event = WebhookEvent.objects.get()
    assert (event.outcome, event.delivery_count, event.error["code"]) == (
        WebhookOutcome.REJECTED,
        2,
        "webhook_unknown_session",
    )


# --- the lock of a session with its payment -----------------------------------------


def test_a_session_and_its_payment_are_locked_and_read_in_one_statement(
    sandbox_session: PaymentSession, django_assert_num_queries: Any
) -> None:
    payment_id = Payment.objects.get(session=sandbox_session).pk

    with transaction.atomic(), django_assert_num_queries(1) as queries:
        session = lock_session_with_payment(by="payment", params=[payment_id])
        assert session is not None
        payment = session.payment
        assert payment.session is session
        assert session.order.code == sandbox_session.order.code
        assert (session.reference, payment.amount_cents, payment.status) == (
            sandbox_session.reference,
            2500,
            PaymentStatus.CREATED,
        )

    assert session.expires_at == PaymentSession.objects.get(pk=session.pk).expires_at
    if connection.features.has_select_for_update_of:
        assert queries.captured_queries[0]["sql"].endswith("FOR UPDATE OF s, p")


def test_a_session_is_found_by_the_providers_id_or_our_reference(sandbox_session: PaymentSession) -> None:
    with transaction.atomic():
        by_id = lock_session_with_payment(
            by="provider_session_id", params=["sandbox", sandbox_session.provider_session_id]
        )
        by_reference = lock_session_with_payment(by="reference", params=["sandbox", sandbox_session.reference])
        nobody = lock_session_with_payment(by="reference", params=["stripe", sandbox_session.reference])

    assert by_id is not None and by_reference is not None
    assert by_id.pk == by_reference.pk == sandbox_session.pk
    assert nobody is None


def test_the_pay_page_reads_its_session_in_one_statement(
    client: Any, sandbox_session: PaymentSession, pay_url: Any, django_assert_num_queries: Any
) -> None:
    url = pay_url(sandbox_session)

    with django_assert_num_queries(1):
        response = client.get(url)

    assert response.status_code == 200
    assert "Pay 25.00 EUR" in response.content.decode()
