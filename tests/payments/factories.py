"""Orders and signed webhook bodies for the payments tests."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import timedelta
from typing import Any

from django.utils import timezone

from payments.models import PaymentSession
from tests.factories import EventFactory, OrganizationFactory
from ticketing.models import Order, OrderStatus, Organization

SANDBOX_SECRET = "whsec_sandbox_tests"
STRIPE_SECRET = "whsec_stripe_tests"


def make_order(
    *,
    organization: Organization | None = None,
    total_cents: int = 2500,
    currency: str = "EUR",
    status: str = OrderStatus.PENDING,
    expires_in: timedelta = timedelta(minutes=15),
) -> Order:
    event = EventFactory(organization=organization or OrganizationFactory(), currency=currency)
    return Order.objects.create(
        organization=event.organization,
        event=event,
        buyer_name="Ada Buyer",
        buyer_email="ada@example.com",
        currency=currency,
        subtotal_cents=total_cents,
        total_cents=total_cents,
        status=status,
        expires_at=timezone.now() + expires_in,
    )


def hmac_header(*, body: bytes, secret: str, timestamp: int | None = None) -> str:
    """t=<ts>,v1=<hex HMAC-SHA256 of f"{ts}.{body}">, computed here independently
    of the code under test (the sandbox and Stripe use the same scheme)."""
    ts = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={digest}"


def sandbox_event(
    session: PaymentSession, *, event_type: str = "payment.succeeded", event_id: str = "evt_test_1", **data: Any
) -> bytes:
    """A sandbox webhook body about `session` (as our records have it), with
    `data` overriding fields."""
    from payments.models import SandboxSession

    sandbox = SandboxSession.objects.get(session_id=session.provider_session_id)
    body = {
        "session_id": sandbox.session_id,
        "session_reference": session.reference,
        "payment_id": sandbox.payment_id,
        "amount_cents": session.amount_cents,
        "currency": session.currency,
        "order_reference": session.order.code,
        "failure_code": "",
    }
    body.update(data)
    return json.dumps({"id": event_id, "type": event_type, "created": int(time.time()), "data": body}).encode()


def stripe_checkout_event(
    session: PaymentSession,
    *,
    event_type: str = "checkout.session.completed",
    event_id: str = "evt_stripe_1",
    payment_status: str = "paid",
    **obj: Any,
) -> bytes:
    body: dict[str, Any] = {
        "id": session.provider_session_id,
        "object": "checkout.session",
        "amount_total": session.amount_cents,
        "currency": session.currency.lower(),
        "client_reference_id": session.order.code,
        "metadata": {"session_reference": session.reference, "order_code": session.order.code},
        "payment_intent": "pi_test_123",
        "payment_status": payment_status,
        "status": "complete",
    }
    body.update(obj)
    return json.dumps(
        {"id": event_id, "object": "event", "type": event_type, "created": int(time.time()), "data": {"object": body}}
    ).encode()
