"""The sandbox provider: our side of the wire to the built-in pretend service.

It needs no network and no account. Buyers pay on its hosted page at
/pay/sandbox/<token>/ with test cards; it notifies us with webhooks signed
like Stripe's (header `Sandbox-Signature: t=<unix ts>,v1=<hex HMAC-SHA256 of
f"{t}.{raw body}">`, secret settings.SANDBOX_WEBHOOK_SECRET, 300 s tolerance).
Payouts go to test destinations whose rules (paid, failed, returned, stuck,
refused) are listed in payments.sandbox.gateway; their outcome arrives as a
payout.paid / payout.failed webhook, or through fetch_payout_status.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.urls import reverse

from payments.exceptions import ProviderRejected, WebhookInvalidSignature, WebhookMalformed, WebhookStale
from payments.models import SandboxSession
from payments.providers.base import (
    WEBHOOK_TOLERANCE_SECONDS,
    CreatedSession,
    EventKind,
    NormalizedEvent,
    PaymentProvider,
    PlannedSession,
    ProviderPayout,
    RefundOutcome,
    RefundResult,
    SessionRequest,
    SessionStatus,
    lower_headers,
)
from payments.sandbox import gateway
from payments.sandbox.webhooks import SIGNATURE_HEADER, compute_signature, webhook_secret

EVENT_KINDS: dict[str, EventKind] = {
    "payment.pending": EventKind.PAYMENT_PENDING,
    "payment.succeeded": EventKind.PAYMENT_SUCCEEDED,
    "payment.failed": EventKind.PAYMENT_FAILED,
    "payment.cancelled": EventKind.PAYMENT_CANCELLED,
    "refund.succeeded": EventKind.REFUND_SUCCEEDED,
    "refund.failed": EventKind.REFUND_FAILED,
    "dispute.opened": EventKind.DISPUTE_OPENED,
    "dispute.won": EventKind.DISPUTE_WON,
    "dispute.lost": EventKind.DISPUTE_LOST,
    "payout.paid": EventKind.PAYOUT_PAID,
    "payout.failed": EventKind.PAYOUT_FAILED,
}


def _parse_signature_header(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            timestamp = int(value)
        elif key == "v1" and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        raise ValueError("no timestamp or no v1 signature")
    return timestamp, signatures


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key) or ""
    if not isinstance(value, str):
        raise WebhookMalformed(detail={"field": key})
    return value


def _amount(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    # Money is integer minor units: a float (or a bool) here is a broken sender.
    if isinstance(value, bool) or not isinstance(value, int):
        raise WebhookMalformed(detail={"field": key})
    return value


def _created(session: SandboxSession) -> CreatedSession:
    path = reverse("payments:sandbox-pay", kwargs={"token": session.token})
    return CreatedSession(
        provider_session_id=session.session_id,
        payment_url=f"{settings.SITE_URL}{path}",
        expires_at=session.expires_at,
    )


class SandboxProvider(PaymentProvider):
    name = "sandbox"
    in_process = True

    def __init__(self) -> None:
        self._secret = webhook_secret()

    def create_session(self, request: SessionRequest, *, idempotency_key: str) -> CreatedSession:
        return _created(gateway.sandbox_session_create(request=request, idempotency_key=idempotency_key))

    def plan_session(self, request: SessionRequest, *, idempotency_key: str) -> PlannedSession:
        session = gateway.sandbox_session_new(request=request, idempotency_key=idempotency_key)

        def write() -> None:
            written = gateway.sandbox_session_create(request=request, idempotency_key=idempotency_key, new=session)
            if written is not session:
                # The key opened another session before, which the caller's
                # record of this one does not name.
                raise ProviderRejected(
                    "The idempotency key was used for another session.", detail={"idempotency_key": idempotency_key}
                )

        return PlannedSession(created=_created(session), write=write)

    def fetch_status(self, *, provider_session_id: str) -> SessionStatus:
        return gateway.sandbox_session_status(session_id=provider_session_id)

    def expire_session(self, *, provider_session_id: str) -> SessionStatus:
        return gateway.sandbox_session_expire(session_id=provider_session_id)

    def refund(
        self, *, provider_payment_id: str, amount_cents: int, currency: str, idempotency_key: str, reference: str
    ) -> RefundResult:
        refund = gateway.sandbox_refund(
            payment_id=provider_payment_id,
            amount_cents=amount_cents,
            currency=currency,
            idempotency_key=idempotency_key,
        )
        # Sandbox refunds settle at once (no webhook needed) unless the sandbox
        # is set to confirm them later (settings.SANDBOX_REFUND_DELAY_SECONDS):
        # then they are pending and a refund.succeeded webhook follows.
        if refund.settles_at is not None:
            return RefundResult(provider_refund_id=refund.refund_id, outcome=RefundOutcome.PENDING)
        return RefundResult(provider_refund_id=refund.refund_id, outcome=RefundOutcome.SUCCEEDED)

    def payout(
        self, *, amount_cents: int, currency: str, destination: str, idempotency_key: str, reference: str = ""
    ) -> str:
        # The outcome follows the test destination (gateway.TEST_DESTINATIONS)
        # and arrives by a payout.paid / payout.failed webhook.
        return gateway.sandbox_payout(
            amount_cents=amount_cents,
            currency=currency,
            destination=destination,
            idempotency_key=idempotency_key,
            reference=reference,
        ).payout_id

    def fetch_payout_status(self, *, provider_payout_id: str) -> ProviderPayout:
        return gateway.sandbox_payout_status(payout_id=provider_payout_id)

    def verify_webhook(self, *, raw_body: bytes, headers: Mapping[str, str]) -> NormalizedEvent:
        header = lower_headers(headers).get(SIGNATURE_HEADER.lower())
        if not header:
            raise WebhookInvalidSignature(detail={"reason": "missing_signature_header", "header": SIGNATURE_HEADER})
        try:
            timestamp, signatures = _parse_signature_header(header)
        except ValueError as exc:
            raise WebhookInvalidSignature(detail={"reason": "unparsable_signature_header"}) from exc
        expected = compute_signature(secret=self._secret, timestamp=timestamp, raw_body=raw_body)
        if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
            raise WebhookInvalidSignature(detail={"reason": "signature_mismatch"})
        # Checked only once the signature is good: the timestamp is signed too.
        if abs(time.time() - timestamp) > WEBHOOK_TOLERANCE_SECONDS:
            raise WebhookStale(detail={"timestamp": timestamp, "tolerance_seconds": WEBHOOK_TOLERANCE_SECONDS})
        return self._normalize(raw_body)

    def _normalize(self, raw_body: bytes) -> NormalizedEvent:
        try:
            payload = json.loads(raw_body)
        except ValueError as exc:  # includes UnicodeDecodeError
            raise WebhookMalformed(detail={"reason": "not_json"}) from exc
        if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
            raise WebhookMalformed(detail={"reason": "no_data_object"})
        event_id, event_type = _str(payload, "id"), _str(payload, "type")
        if not event_id or not event_type:
            raise WebhookMalformed(detail={"reason": "missing_id_or_type"})
        data = payload["data"]
        return NormalizedEvent(
            provider_event_id=event_id,
            event_type=event_type,
            kind=EVENT_KINDS.get(event_type, EventKind.IGNORED),
            payload=payload,
            provider_session_id=_str(data, "session_id"),
            session_reference=_str(data, "session_reference"),
            provider_payment_id=_str(data, "payment_id"),
            provider_refund_id=_str(data, "refund_id"),
            provider_dispute_id=_str(data, "dispute_id"),
            provider_payout_id=_str(data, "payout_id"),
            payout_reference=_str(data, "payout_reference"),
            amount_cents=_amount(data, "amount_cents"),
            fee_cents=_amount(data, "fee_cents"),
            currency=_str(data, "currency").upper(),
            order_reference=_str(data, "order_reference"),
            failure_code=_str(data, "failure_code"),
            reason=_str(data, "reason"),
        )
