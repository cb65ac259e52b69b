"""The Stripe provider, with the official library running for real over a fake
HTTP layer (tests/payments/stripe_fakes.py): what it sends (idempotency keys,
amounts, references) and how we verify what Stripe sends us."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest

from payments.exceptions import ProviderRejected, ProviderUnavailable
from payments.models import Payment, PaymentSession, PaymentSessionStatus, PaymentStatus, Refund, RefundStatus
from payments.providers import get_provider
from payments.providers.base import EventKind
from payments.providers.stripe import StripeProvider
from payments.services import (
    payment_session_create,
    payment_session_expire,
    payment_status_fetch,
    refund_create,
)
from tests.payments.factories import STRIPE_SECRET, hmac_header, stripe_checkout_event
from tests.payments.stripe_fakes import checkout_session_json

KEY = "checkout:42:stripe"


def open_session(order, stripe_http, key: str = KEY) -> PaymentSession:
    stripe_http.respond("post", "/v1/checkout/sessions", checkout_session_json())
    return payment_session_create(order=order, provider="stripe", idempotency_key=key)


@pytest.fixture
def post_stripe(client, webhook_url, django_capture_on_commit_callbacks):
    def send(body: bytes, header: str | None = "sign", *, secret: str = STRIPE_SECRET, timestamp: int | None = None):
        if header == "sign":
            header = hmac_header(body=body, secret=secret, timestamp=timestamp)
        headers = {"Stripe-Signature": header} if header else {}
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(webhook_url("stripe"), data=body, content_type="application/json", headers=headers)

    return send


@pytest.fixture
def paid_payment(order, stripe_http, post_stripe) -> Payment:
    session = open_session(order, stripe_http)
    assert post_stripe(stripe_checkout_event(session)).status_code == 200
    payment = Payment.objects.get(session=session)
    assert payment.status == PaymentStatus.SUCCEEDED
    return payment


# --- creating sessions ------------------------------------------------------------------


def test_create_session_sends_our_idempotency_key_amount_and_order(order, stripe_http):
    session = open_session(order, stripe_http)

    [request] = stripe_http.requests
    assert (request.method, request.path) == ("post", "/v1/checkout/sessions")
    assert request.headers["idempotency-key"] == KEY
    assert request.headers["authorization"] == "Bearer sk_test_payments"
    params = request.params
    assert params["mode"] == "payment"
    assert params["line_items[0][price_data][unit_amount]"] == "2500"
    assert params["line_items[0][price_data][currency]"] == "eur"
    assert params["line_items[0][quantity]"] == "1"
    assert params["client_reference_id"] == order.code
    assert params["metadata[session_reference]"] == session.reference
    assert params["payment_intent_data[metadata][session_reference]"] == session.reference
    assert params["customer_email"] == "ada@example.com"
    # Stripe's minimum lifetime is 30 minutes; our 15-minute hold is enforced by expiring it ourselves.
    assert int(params["expires_at"]) == int((session.created_at + timedelta(hours=1)).timestamp())

    assert (session.status, session.provider_session_id) == (PaymentSessionStatus.OPEN, "cs_test_1")
    assert session.payment_url == "https://checkout.stripe.test/c/pay/cs_test_1"
    assert (session.amount_cents, session.currency) == (2500, "EUR")


def test_the_same_key_returns_the_same_session_without_calling_stripe_again(order, stripe_http):
    first = open_session(order, stripe_http)
    again = payment_session_create(order=order, provider="stripe", idempotency_key=KEY)
    assert again.pk == first.pk
    assert len(stripe_http.requests) == 1
    assert PaymentSession.objects.count() == Payment.objects.count() == 1


def test_an_outage_leaves_the_session_resumable_with_the_same_key_and_parameters(order, stripe_http):
    stripe_http.respond("post", "/v1/checkout/sessions", {"error": {"type": "api_error", "message": "x"}}, status=503)
    stripe_http.respond("post", "/v1/checkout/sessions", checkout_session_json())

    with pytest.raises(ProviderUnavailable):
        payment_session_create(order=order, provider="stripe", idempotency_key=KEY)
    session = PaymentSession.objects.get()
    assert (session.status, session.provider_session_id) == (PaymentSessionStatus.CREATED, "")

    session = payment_session_create(order=order, provider="stripe", idempotency_key=KEY)

    assert session.status == PaymentSessionStatus.OPEN
    first, second = stripe_http.requests
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"] == KEY
    assert first.params == second.params


def test_a_rejected_request_is_a_provider_rejection(order, stripe_http):
    stripe_http.respond(
        "post", "/v1/checkout/sessions", {"error": {"type": "invalid_request_error", "message": "bad"}}, status=400
    )
    with pytest.raises(ProviderRejected):
        payment_session_create(order=order, provider="stripe", idempotency_key=KEY)


# --- refunds ------------------------------------------------------------------------------


def refund_json(status: str = "succeeded", amount: int = 1000) -> dict:
    return {
        "id": "re_1",
        "object": "refund",
        "status": status,
        "amount": amount,
        "currency": "eur",
        "payment_intent": "pi_test_123",
    }


def test_refund_sends_the_idempotency_key_and_the_payment_intent(paid_payment, stripe_http, signal_log):
    stripe_http.respond("post", "/v1/refunds", refund_json())

    refund = refund_create(payment=paid_payment, amount_cents=1000, idempotency_key="refund:7")

    request = stripe_http.requests[-1]
    assert (request.path, request.headers["idempotency-key"]) == ("/v1/refunds", "refund:7")
    assert request.params["payment_intent"] == "pi_test_123"
    assert request.params["amount"] == "1000"
    assert request.params["metadata[refund_reference]"] == f"refund:{refund.pk}"
    assert (refund.status, refund.provider_refund_id) == (RefundStatus.SUCCEEDED, "re_1")
    paid_payment.refresh_from_db()
    assert (paid_payment.status, paid_payment.refunded_cents) == (PaymentStatus.PARTIALLY_REFUNDED, 1000)


def test_a_refund_outage_keeps_the_refund_reserved_and_resumes_with_the_same_key(paid_payment, stripe_http):
    stripe_http.respond("post", "/v1/refunds", {"error": {"type": "api_error", "message": "x"}}, status=500)
    stripe_http.respond("post", "/v1/refunds", refund_json(amount=2500))

    with pytest.raises(ProviderUnavailable):
        refund_create(payment=paid_payment, amount_cents=2500, idempotency_key="refund:all")
    refund = Refund.objects.get()
    paid_payment.refresh_from_db()
    assert refund.status == RefundStatus.PENDING
    assert (paid_payment.refund_pending_cents, paid_payment.refundable_cents) == (2500, 0)

    refund = refund_create(payment=paid_payment, amount_cents=2500, idempotency_key="refund:all")

    assert refund.status == RefundStatus.SUCCEEDED
    keys = [r.headers["idempotency-key"] for r in stripe_http.requests if r.path == "/v1/refunds"]
    assert keys == ["refund:all", "refund:all"]
    paid_payment.refresh_from_db()
    assert (paid_payment.status, paid_payment.refunded_cents, paid_payment.refund_pending_cents) == (
        PaymentStatus.REFUNDED,
        2500,
        0,
    )


def test_a_pending_refund_is_confirmed_by_its_webhook(paid_payment, stripe_http, post_stripe, signal_log):
    stripe_http.respond("post", "/v1/refunds", refund_json(status="pending"))
    refund = refund_create(payment=paid_payment, amount_cents=1000, idempotency_key="refund:p")
    assert (refund.status, refund.provider_refund_id) == (RefundStatus.PENDING, "re_1")

    body = json.dumps(
        {"id": "evt_re_1", "type": "refund.updated", "data": {"object": refund_json(status="succeeded")}}
    ).encode()
    assert post_stripe(body).status_code == 200

    refund.refresh_from_db()
    paid_payment.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    assert (paid_payment.status, paid_payment.refunded_cents) == (PaymentStatus.PARTIALLY_REFUNDED, 1000)
    assert signal_log.names()[-1] == "refund_succeeded"


# --- expiry and status --------------------------------------------------------------------


def test_expiring_a_session_the_buyer_already_paid_records_the_payment(order, stripe_http, signal_log):
    session = open_session(order, stripe_http)
    stripe_http.respond(
        "post",
        "/v1/checkout/sessions/cs_test_1/expire",
        {"error": {"type": "invalid_request_error", "message": "Only open sessions can be expired."}},
        status=400,
    )
    paid = checkout_session_json(status="complete", payment_status="paid", payment_intent="pi_late")
    stripe_http.respond("get", "/v1/checkout/sessions/cs_test_1", paid)

    payment = payment_session_expire(session_id=session.pk)

    assert (payment.status, payment.provider_payment_id, payment.captured_cents) == ("succeeded", "pi_late", 2500)


def test_expiring_an_open_session_cancels_the_payment(order, stripe_http):
    session = open_session(order, stripe_http)
    stripe_http.respond("post", "/v1/checkout/sessions/cs_test_1/expire", checkout_session_json(status="expired"))
    stripe_http.respond("get", "/v1/checkout/sessions/cs_test_1", checkout_session_json(status="expired"))

    payment = payment_session_expire(session_id=session.pk)

    assert payment.status == PaymentStatus.CANCELLED
    session.refresh_from_db()
    assert session.status == PaymentSessionStatus.EXPIRED


def test_status_fetch_applies_what_stripe_reports(order, stripe_http):
    session = open_session(order, stripe_http)
    stripe_http.respond("get", "/v1/checkout/sessions/cs_test_1", checkout_session_json())
    payment, status = payment_status_fetch(payment_id=session.payment.pk)
    assert (payment.status, status.status) == (PaymentStatus.CREATED, "open")

    stripe_http.respond(
        "get",
        "/v1/checkout/sessions/cs_test_1",
        checkout_session_json(status="complete", payment_status="paid", payment_intent="pi_9"),
    )
    payment, status = payment_status_fetch(payment_id=session.payment.pk)
    assert (payment.status, payment.provider_payment_id, status.status) == (
        PaymentStatus.SUCCEEDED,
        "pi_9",
        "succeeded",
    )


# --- webhooks -----------------------------------------------------------------------------


def test_a_locally_signed_completed_session_marks_the_payment_succeeded(order, stripe_http, post_stripe, signal_log):
    session = open_session(order, stripe_http)

    response = post_stripe(stripe_checkout_event(session))

    assert response.status_code == 200
    payment = Payment.objects.get(session=session)
    assert (payment.status, payment.provider_payment_id) == (PaymentStatus.SUCCEEDED, "pi_test_123")
    assert signal_log.names() == ["payment_succeeded"]
    assert post_stripe(stripe_checkout_event(session)).json()["duplicate"] is True
    assert signal_log.names() == ["payment_succeeded"]


def test_an_asynchronous_payment_goes_pending_then_succeeded(order, stripe_http, post_stripe, signal_log):
    session = open_session(order, stripe_http)
    post_stripe(stripe_checkout_event(session, payment_status="unpaid"))
    assert Payment.objects.get().status == PaymentStatus.PENDING
    post_stripe(stripe_checkout_event(session, event_type="checkout.session.async_payment_succeeded", event_id="evt_2"))
    assert Payment.objects.get().status == PaymentStatus.SUCCEEDED
    assert signal_log.names() == ["payment_pending", "payment_succeeded"]


def test_an_expired_session_event_cancels_the_payment(order, stripe_http, post_stripe):
    session = open_session(order, stripe_http)
    post_stripe(stripe_checkout_event(session, event_type="checkout.session.expired", status="expired"))
    assert Payment.objects.get().status == PaymentStatus.CANCELLED


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("wrong_secret", "webhook_invalid_signature"),
        ("missing_header", "webhook_invalid_signature"),
        ("tampered", "webhook_invalid_signature"),
        ("stale", "webhook_stale"),
        ("stale_and_forged", "webhook_invalid_signature"),
        ("no_secret_configured", "webhook_invalid_signature"),
        ("amount_mismatch", "webhook_mismatch"),
        ("order_mismatch", "webhook_mismatch"),
    ],
)
def test_bad_stripe_webhooks_are_rejected_and_change_nothing(
    order, stripe_http, post_stripe, signal_log, settings, case, code
):
    session = open_session(order, stripe_http)
    body = stripe_checkout_event(session)
    now = int(time.time())
    if case == "wrong_secret":
        response = post_stripe(body, secret="whsec_other")
    elif case == "missing_header":
        response = post_stripe(body, header=None)
    elif case == "tampered":
        header = hmac_header(body=body, secret=STRIPE_SECRET)
        response = post_stripe(body.replace(b"pi_test_123", b"pi_evil_999"), header)
    elif case == "stale":
        response = post_stripe(body, timestamp=now - 301)
    elif case == "stale_and_forged":
        response = post_stripe(body, secret="whsec_other", timestamp=now - 301)
    elif case == "no_secret_configured":
        settings.STRIPE_WEBHOOK_SECRET = ""
        response = post_stripe(body, secret="")
    elif case == "amount_mismatch":
        response = post_stripe(stripe_checkout_event(session, amount_total=100))
    else:
        response = post_stripe(stripe_checkout_event(session, client_reference_id="another-order"))

    assert response.status_code == 400
    assert response.json()["code"] == code
    payment = Payment.objects.get(session=session)
    assert (payment.status, payment.provider_payment_id) == (PaymentStatus.CREATED, "")
    assert signal_log.calls == []


def test_verify_webhook_normalizes_events(order, stripe_http):
    session = open_session(order, stripe_http)
    provider = get_provider("stripe")
    assert isinstance(provider, StripeProvider)

    def verify(body: bytes):
        return provider.verify_webhook(
            raw_body=body, headers={"stripe-signature": hmac_header(body=body, secret=STRIPE_SECRET)}
        )

    event = verify(stripe_checkout_event(session))
    assert (event.kind, event.provider_session_id, event.session_reference) == (
        EventKind.PAYMENT_SUCCEEDED,
        "cs_test_1",
        session.reference,
    )
    assert (event.amount_cents, event.currency, event.order_reference, event.provider_payment_id) == (
        2500,
        "EUR",
        order.code,
        "pi_test_123",
    )
    other = json.dumps({"id": "evt_9", "type": "customer.created", "data": {"object": {"id": "cus_1"}}}).encode()
    assert verify(other).kind == EventKind.IGNORED
