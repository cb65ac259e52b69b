"""POST /webhooks/payments/sandbox/: only correctly signed, fresh, matching
events change anything; everything else is a 400 with a machine-readable code
and leaves the payment, the order and the audit trail untouched."""

from __future__ import annotations

import json
import time

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from payments.models import (
    Dispute,
    Payment,
    PaymentSession,
    PaymentStatus,
    Refund,
    SandboxSession,
    WebhookEvent,
    WebhookOutcome,
)
from tests.payments.factories import SANDBOX_SECRET, hmac_header, sandbox_event
from ticketing.models import AuditLogEntry, Order, OrderStatus


@pytest.fixture
def post(django_capture_on_commit_callbacks):
    """POST a webhook and run what it registered for after commit (signals)."""

    def send(client, url, body: bytes, header: str | None):
        headers = {"Sandbox-Signature": header} if header is not None else {}
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(url, data=body, content_type="application/json", headers=headers)

    return send


@pytest.fixture
def assert_nothing_changed(sandbox_session, signal_log):
    """Checks, after the test body, that the payment, order, audit trail and
    signals are exactly as they were before it."""
    payment = sandbox_session.payment
    before = (
        Payment.objects.filter(pk=payment.pk).values().get(),
        sandbox_session.order.status,
        AuditLogEntry.objects.count(),
    )

    def check() -> None:
        sandbox_session.order.refresh_from_db()
        after = (
            Payment.objects.filter(pk=payment.pk).values().get(),
            sandbox_session.order.status,
            AuditLogEntry.objects.count(),
        )
        assert after == before
        assert sandbox_session.order.status == OrderStatus.PENDING
        assert signal_log.calls == []

    return check


def test_a_correctly_signed_event_is_applied(post, client, sandbox_session, webhook_url, signal_log):
    body = sandbox_event(sandbox_session)
    response = post(client, webhook_url("sandbox"), body, hmac_header(body=body, secret=SANDBOX_SECRET))

    assert response.status_code == 200
    assert response.json() == {"received": True, "duplicate": False, "outcome": "processed"}
    payment = Payment.objects.get(pk=sandbox_session.payment.pk)
    assert payment.status == PaymentStatus.SUCCEEDED
    event = WebhookEvent.objects.get()
    assert (event.provider, event.provider_event_id, event.event_type) == ("sandbox", "evt_test_1", "payment.succeeded")
    assert event.organization_id == sandbox_session.organization_id
    assert event.payload["data"]["amount_cents"] == 2500
    assert signal_log.names() == ["payment_succeeded"]


def test_csrf_does_not_block_providers(post, sandbox_session, webhook_url):
    body = sandbox_event(sandbox_session)
    response = post(
        Client(enforce_csrf_checks=True), webhook_url("sandbox"), body, hmac_header(body=body, secret=SANDBOX_SECRET)
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("wrong_secret", "webhook_invalid_signature"),
        ("missing_header", "webhook_invalid_signature"),
        ("garbage_header", "webhook_invalid_signature"),
        ("tampered_body", "webhook_invalid_signature"),
        ("stale", "webhook_stale"),
        ("from_the_future", "webhook_stale"),
    ],
)
def test_unsigned_forged_or_stale_events_are_rejected_before_anything_is_written(
    post, client, sandbox_session, webhook_url, assert_nothing_changed, case, code
):
    body = sandbox_event(sandbox_session)
    now = int(time.time())
    header: str | None = hmac_header(body=body, secret=SANDBOX_SECRET)
    if case == "wrong_secret":
        header = hmac_header(body=body, secret="whsec_someone_else")
    elif case == "missing_header":
        header = None
    elif case == "garbage_header":
        header = "v1=deadbeef"
    elif case == "tampered_body":
        body = body.replace(b'"amount_cents": 2500', b'"amount_cents": 1')
        assert b'"amount_cents": 1,' in body
    elif case == "stale":
        header = hmac_header(body=body, secret=SANDBOX_SECRET, timestamp=now - 301)
    elif case == "from_the_future":
        header = hmac_header(
            body=body, secret=SANDBOX_SECRET, timestamp=now + 600
        )  # well past the tolerance, however slow the run

    response = post(client, webhook_url("sandbox"), body, header)

    assert response.status_code == 400
    assert response.json()["code"] == code
    assert set(response.json()) == {"code", "message", "detail"}
    assert not WebhookEvent.objects.exists()
    assert_nothing_changed()


def test_a_timestamp_just_inside_the_tolerance_is_accepted(post, client, sandbox_session, webhook_url):
    body = sandbox_event(sandbox_session)
    header = hmac_header(body=body, secret=SANDBOX_SECRET, timestamp=int(time.time()) - 240)
    assert post(client, webhook_url("sandbox"), body, header).status_code == 200


@pytest.mark.parametrize(
    ("field", "value"),
    [("amount_cents", 2499), ("currency", "USD"), ("order_reference", "someone-elses-order"), ("amount_cents", None)],
)
def test_an_event_that_does_not_match_our_session_is_rejected_and_changes_nothing(
    post, client, sandbox_session, webhook_url, assert_nothing_changed, field, value
):
    body = sandbox_event(sandbox_session, **{field: value})
    response = post(client, webhook_url("sandbox"), body, hmac_header(body=body, secret=SANDBOX_SECRET))

    assert response.status_code == 400
    assert response.json()["code"] == "webhook_mismatch"
    assert field in response.json()["detail"]
    event = WebhookEvent.objects.get()
    assert (event.outcome, event.payment_id, event.error["code"]) == (WebhookOutcome.REJECTED, None, "webhook_mismatch")
    assert_nothing_changed()


def test_an_event_about_an_unknown_session_is_rejected(
    post, client, sandbox_session, webhook_url, assert_nothing_changed
):
    body = sandbox_event(sandbox_session, session_id="sbx_cs_nobody", session_reference="ps_nobody")
    response = post(client, webhook_url("sandbox"), body, hmac_header(body=body, secret=SANDBOX_SECRET))

    assert response.status_code == 400
    assert response.json()["code"] == "webhook_unknown_session"
    assert WebhookEvent.objects.get().outcome == WebhookOutcome.REJECTED
    assert_nothing_changed()


def test_a_rejected_event_is_evaluated_again_when_delivered_again(
    post, client, sandbox_session, webhook_url, signal_log
):
    # A crash between the provider call and storing its session id: we do not
    # know the session yet, and the event carries no reference of ours.
    provider_session_id = sandbox_session.provider_session_id
    type(sandbox_session).objects.filter(pk=sandbox_session.pk).update(provider_session_id="")
    body = sandbox_event(sandbox_session, session_id=provider_session_id, session_reference="")
    header = hmac_header(body=body, secret=SANDBOX_SECRET)
    assert post(client, webhook_url("sandbox"), body, header).status_code == 400

    type(sandbox_session).objects.filter(pk=sandbox_session.pk).update(provider_session_id=provider_session_id)
    response = post(client, webhook_url("sandbox"), body, header)

    assert response.status_code == 200
    assert response.json()["outcome"] == "processed"
    event = WebhookEvent.objects.get()
    assert (event.outcome, event.delivery_count, event.error) == (WebhookOutcome.PROCESSED, 2, None)
    assert signal_log.names() == ["payment_succeeded"]


def test_our_own_reference_matches_a_session_whose_provider_id_we_never_stored(
    post, client, sandbox_session, webhook_url
):
    provider_session_id = sandbox_session.provider_session_id
    type(sandbox_session).objects.filter(pk=sandbox_session.pk).update(provider_session_id="")
    body = sandbox_event(sandbox_session, session_id=provider_session_id)

    response = post(client, webhook_url("sandbox"), body, hmac_header(body=body, secret=SANDBOX_SECRET))

    assert response.status_code == 200
    sandbox_session.refresh_from_db()
    assert sandbox_session.provider_session_id == provider_session_id
    assert sandbox_session.payment.status == PaymentStatus.SUCCEEDED


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        json.dumps({"id": "evt_x", "type": "payment.succeeded"}).encode(),
        json.dumps({"id": "", "type": "payment.succeeded", "data": {}}).encode(),
        # Money is never a float.
        json.dumps({"id": "evt_x", "type": "payment.succeeded", "data": {"amount_cents": 25.0}}).encode(),
    ],
)
def test_signed_but_malformed_bodies_are_rejected(
    post, client, sandbox_session, webhook_url, assert_nothing_changed, body
):
    response = post(client, webhook_url("sandbox"), body, hmac_header(body=body, secret=SANDBOX_SECRET))
    assert response.status_code == 400
    assert response.json()["code"] == "webhook_malformed"
    assert not WebhookEvent.objects.exists()
    assert_nothing_changed()


def test_event_types_we_do_not_act_on_are_acknowledged_and_recorded(
    post, client, sandbox_session, webhook_url, signal_log
):
    body = sandbox_event(sandbox_session, event_type="customer.updated")
    response = post(client, webhook_url("sandbox"), body, hmac_header(body=body, secret=SANDBOX_SECRET))
    assert response.status_code == 200
    assert response.json()["outcome"] == "ignored"
    assert Payment.objects.get().status == PaymentStatus.CREATED
    assert signal_log.calls == []


def test_wrong_method_and_unknown_provider(client, webhook_url, settings):
    assert client.get(webhook_url("sandbox")).status_code == 405
    response = client.post(webhook_url("paypal"), data=b"{}", content_type="application/json")
    assert response.status_code == 404
    assert response.json()["code"] == "provider_unknown"
    settings.PAYMENT_PROVIDERS = ("stripe",)
    assert client.post(webhook_url("sandbox"), data=b"{}", content_type="application/json").status_code == 404


def _rows() -> dict[str, list[dict]]:
    """Every row a payment event could touch, as stored."""
    return {
        model.__name__: list(model.objects.order_by("pk").values())
        for model in (PaymentSession, Payment, SandboxSession, Refund, Dispute, AuditLogEntry, Order)
    }


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("require_postgres")
@pytest.mark.parametrize(
    ("event_type", "data", "setup", "code"),
    [
        ("payment.succeeded", {"amount_cents": 2499}, None, "webhook_mismatch"),
        ("payment.succeeded", {"amount_cents": None}, None, "webhook_mismatch"),
        ("payment.pending", {"order_reference": "someone-elses-order"}, None, "webhook_mismatch"),
        ("payment.failed", {"currency": "USD"}, None, "webhook_mismatch"),
        ("payment.cancelled", {"amount_cents": 1}, None, "webhook_mismatch"),
        (
            "payment.succeeded",
            {"session_id": "sbx_cs_nobody", "session_reference": "ps_nobody"},
            None,
            "webhook_unknown_session",
        ),
        ("payment.succeeded", {"session_reference": "ps_someone_else"}, None, "webhook_mismatch"),
        ("payment.succeeded", {"session_id": "sbx_cs_someone_else"}, None, "webhook_mismatch"),
        ("payment.succeeded", {"payment_id": "sbx_pi_someone_else"}, "payment_id_known", "webhook_mismatch"),
        # Matched by our reference, so the provider's id would be stored: not when it mismatches.
        ("payment.succeeded", {"amount_cents": 2499}, "provider_id_never_stored", "webhook_mismatch"),
        ("payment.failed", {"currency": "USD"}, "provider_id_never_stored", "webhook_mismatch"),
    ],
)
def test_a_rejected_payment_event_writes_nothing_but_its_rejected_row(
    client, sandbox_session, webhook_url, signal_log, event_type, data, setup, code
):
    # given
    if setup == "payment_id_known":
        sandbox = SandboxSession.objects.get(session_id=sandbox_session.provider_session_id)
        Payment.objects.filter(pk=sandbox_session.payment.pk).update(provider_payment_id=sandbox.payment_id)
    body = sandbox_event(sandbox_session, event_type=event_type, **data)
    if setup == "provider_id_never_stored":
        PaymentSession.objects.filter(pk=sandbox_session.pk).update(provider_session_id="")
    before = _rows()

    # when
    with CaptureQueriesContext(connection) as queries:
        response = client.post(
            webhook_url("sandbox"),
            data=body,
            content_type="application/json",
            headers={"Sandbox-Signature": hmac_header(body=body, secret=SANDBOX_SECRET)},
        )

    # then: rejected; the event row is all that was written (a payment event
    # is rejected before any write, so it needs no savepoint to undo one)
    assert response.status_code == 400
    assert response.json()["code"] == code
    event = WebhookEvent.objects.get()
    assert (event.outcome, event.error["code"], event.session_id, event.payment_id, event.organization_id) == (
        WebhookOutcome.REJECTED,
        code,
        None,
        None,
        None,
    )
    assert _rows() == before
    assert signal_log.calls == []
    statements = [q["sql"].split()[0] for q in queries.captured_queries]
    assert "SAVEPOINT" not in statements
    writes = [
        q["sql"].split()[:3] for q in queries.captured_queries if q["sql"].split()[0] in ("INSERT", "UPDATE", "DELETE")
    ]
    assert writes == [["INSERT", "INTO", '"payments_webhookevent"']]  # inserted with its outcome
