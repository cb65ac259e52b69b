"""The Stripe provider: Checkout Sessions, refunds, payouts and webhooks.

Uses the official `stripe` package with the API key passed per call (no
global state). Every create call carries our idempotency key, so Stripe
returns the original object when we retry after a timeout. SDK objects never
leave this module (responses become plain dicts at once): callers get the
dataclasses of payments.providers.base.

Settings: STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET (both default to "", which
makes API calls fail as rejected and every webhook fail verification), and
optionally STRIPE_API_VERSION.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe
from django.conf import settings

from payments.exceptions import (
    ProviderRejected,
    ProviderUnavailable,
    WebhookInvalidSignature,
    WebhookMalformed,
    WebhookStale,
)
from payments.providers.base import (
    WEBHOOK_TOLERANCE_SECONDS,
    CreatedSession,
    EventKind,
    NormalizedEvent,
    PaymentProvider,
    PayoutState,
    ProviderPayout,
    ProviderStatus,
    RefundOutcome,
    RefundResult,
    SessionRequest,
    SessionStatus,
    lower_headers,
)

# Stripe accepts Checkout Session expiries between 30 minutes and 24 hours
# ahead. Shorter holds are enforced by expiring the session ourselves
# (payment_session_expire). The bounds are taken from when we first asked, not
# from now, so a retry under the same idempotency key sends identical
# parameters (Stripe refuses a key reused with different ones).
MIN_SESSION_LIFETIME = timedelta(hours=1)
MAX_SESSION_LIFETIME = timedelta(hours=23)

CHECKOUT_EVENT_KINDS: dict[str, EventKind] = {
    "checkout.session.async_payment_succeeded": EventKind.PAYMENT_SUCCEEDED,
    "checkout.session.async_payment_failed": EventKind.PAYMENT_FAILED,
    "checkout.session.expired": EventKind.PAYMENT_CANCELLED,
}
REFUND_EVENT_TYPES = frozenset({"refund.created", "refund.updated", "refund.failed", "charge.refund.updated"})
# A dispute opens with charge.dispute.created and ends with charge.dispute.closed,
# whose status says won or lost (warning_closed, an inquiry that never became a
# dispute, moves no money and is ignored).
DISPUTE_CLOSED_KINDS: dict[str, EventKind] = {"won": EventKind.DISPUTE_WON, "lost": EventKind.DISPUTE_LOST}


# A payout is paid, or fails (also after it was paid, when the bank returns
# it), or is cancelled before it leaves (the money stays with us, as a failure).
PAYOUT_EVENT_KINDS: dict[str, EventKind] = {
    "payout.paid": EventKind.PAYOUT_PAID,
    "payout.failed": EventKind.PAYOUT_FAILED,
    "payout.canceled": EventKind.PAYOUT_FAILED,
}
PAYOUT_STATES: dict[str, PayoutState] = {
    "paid": PayoutState.PAID,
    "failed": PayoutState.FAILED,
    "canceled": PayoutState.FAILED,
    "pending": PayoutState.IN_TRANSIT,
    "in_transit": PayoutState.IN_TRANSIT,
}


def _dispute_fee(obj: Mapping[str, Any]) -> int | None:
    """Stripe charges its dispute fee in the dispute's balance transactions."""
    transactions = obj.get("balance_transactions")
    if not isinstance(transactions, list):
        return None
    fees: list[int] = []
    for item in transactions:
        fee = item.get("fee") if isinstance(item, Mapping) else None
        if isinstance(fee, bool) or not isinstance(fee, int):
            raise WebhookMalformed(detail={"field": "balance_transactions.fee"})
        fees.append(fee)
    return sum(fee for fee in fees if fee > 0)


def _translate(exc: stripe.StripeError) -> ProviderRejected | ProviderUnavailable:
    """Transient errors may be retried with the same idempotency key; the rest will not succeed."""
    detail = {"stripe_error": type(exc).__name__, "stripe_code": getattr(exc, "code", None)}
    if isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError | stripe.APIError):
        return ProviderUnavailable(detail=detail)
    return ProviderRejected(str(getattr(exc, "user_message", None) or "Stripe rejected the request."), detail=detail)


def _id_of(value: Any) -> str:
    """Stripe fields like payment_intent are an id or, when expanded, an object."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return str(value.get("id") or "")
    return ""


class StripeProvider(PaymentProvider):
    name = "stripe"

    def __init__(self, *, api_key: str | None = None, webhook_secret: str | None = None) -> None:
        self._api_key = api_key if api_key is not None else str(getattr(settings, "STRIPE_SECRET_KEY", ""))
        self._webhook_secret = (
            webhook_secret if webhook_secret is not None else str(getattr(settings, "STRIPE_WEBHOOK_SECRET", ""))
        )
        self._api_version: str | None = getattr(settings, "STRIPE_API_VERSION", None)

    def _options(self, **extra: Any) -> dict[str, Any]:
        options: dict[str, Any] = {"api_key": self._api_key, **extra}
        if self._api_version:
            options["stripe_version"] = self._api_version
        return options

    # --- API calls ------------------------------------------------------------------

    def create_session(self, request: SessionRequest, *, idempotency_key: str) -> CreatedSession:
        anchor = request.created_at
        expires_at = min(max(request.expires_at, anchor + MIN_SESSION_LIFETIME), anchor + MAX_SESSION_LIFETIME)
        metadata = {"session_reference": request.reference, "order_code": request.order_code}
        params: dict[str, Any] = {
            "mode": "payment",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": request.currency.lower(),
                        "unit_amount": request.amount_cents,
                        "product_data": {"name": request.description or f"Order {request.order_code}"},
                    },
                }
            ],
            "client_reference_id": request.order_code,
            "success_url": request.success_url,
            "cancel_url": request.cancel_url,
            "expires_at": int(expires_at.timestamp()),
            "metadata": metadata,
            "payment_intent_data": {"metadata": metadata},
        }
        if request.buyer_email:
            params["customer_email"] = request.buyer_email
        try:
            session = stripe.checkout.Session.create(
                **self._options(idempotency_key=idempotency_key), **params
            ).to_dict()
        except stripe.StripeError as exc:
            raise _translate(exc) from exc
        return CreatedSession(
            provider_session_id=session["id"],
            payment_url=session["url"] or "",
            expires_at=datetime.fromtimestamp(session["expires_at"], tz=UTC) if session.get("expires_at") else None,
        )

    def _session_status(self, session: Mapping[str, Any]) -> SessionStatus:
        status, payment_status = session.get("status"), session.get("payment_status")
        if status == "complete" and payment_status in ("paid", "no_payment_required"):
            normalized = ProviderStatus.SUCCEEDED
        elif status == "complete":
            normalized = ProviderStatus.PENDING  # an asynchronous payment method has not settled yet
        elif status == "expired":
            normalized = ProviderStatus.EXPIRED
        else:
            normalized = ProviderStatus.OPEN
        return SessionStatus(
            status=normalized,
            provider_payment_id=_id_of(session.get("payment_intent")),
            amount_cents=session.get("amount_total"),
            currency=str(session.get("currency") or "").upper(),
        )

    def fetch_status(self, *, provider_session_id: str) -> SessionStatus:
        try:
            session = stripe.checkout.Session.retrieve(provider_session_id, **self._options()).to_dict()
        except stripe.StripeError as exc:
            raise _translate(exc) from exc
        return self._session_status(session)

    def expire_session(self, *, provider_session_id: str) -> SessionStatus:
        try:
            stripe.checkout.Session.expire(provider_session_id, **self._options())
        except stripe.InvalidRequestError:
            # Only open sessions can be expired: this one is complete or
            # already expired, which fetch_status reports.
            pass
        except stripe.StripeError as exc:
            raise _translate(exc) from exc
        return self.fetch_status(provider_session_id=provider_session_id)

    def refund(
        self, *, provider_payment_id: str, amount_cents: int, currency: str, idempotency_key: str, reference: str
    ) -> RefundResult:
        try:
            refund = stripe.Refund.create(
                **self._options(idempotency_key=idempotency_key),
                payment_intent=provider_payment_id,
                amount=amount_cents,
                metadata={"refund_reference": reference},
            ).to_dict()
        except stripe.StripeError as exc:
            raise _translate(exc) from exc
        outcome = {
            "succeeded": RefundOutcome.SUCCEEDED,
            "failed": RefundOutcome.FAILED,
            "canceled": RefundOutcome.FAILED,
        }.get(str(refund.get("status")), RefundOutcome.PENDING)
        return RefundResult(
            provider_refund_id=refund["id"], outcome=outcome, failure_code=str(refund.get("failure_reason") or "")
        )

    def payout(
        self, *, amount_cents: int, currency: str, destination: str, idempotency_key: str, reference: str = ""
    ) -> str:
        params: dict[str, Any] = {"amount": amount_cents, "currency": currency.lower()}
        if destination:
            params["destination"] = destination
        if reference:
            params["metadata"] = {"payout_reference": reference}
        try:
            payout = stripe.Payout.create(**self._options(idempotency_key=idempotency_key), **params).to_dict()
        except stripe.StripeError as exc:
            raise _translate(exc) from exc
        return str(payout["id"])

    def fetch_payout_status(self, *, provider_payout_id: str) -> ProviderPayout:
        try:
            payout = stripe.Payout.retrieve(provider_payout_id, **self._options()).to_dict()
        except stripe.StripeError as exc:
            raise _translate(exc) from exc
        return ProviderPayout(
            provider_payout_id=str(payout.get("id") or provider_payout_id),
            state=PAYOUT_STATES.get(str(payout.get("status")), PayoutState.IN_TRANSIT),
            amount_cents=payout.get("amount"),
            currency=str(payout.get("currency") or "").upper(),
            failure_code=str(payout.get("failure_code") or ""),
        )

    # --- webhooks -------------------------------------------------------------------

    def verify_webhook(self, *, raw_body: bytes, headers: Mapping[str, str]) -> NormalizedEvent:
        header = lower_headers(headers).get("stripe-signature")
        if not header:
            raise WebhookInvalidSignature(detail={"reason": "missing_signature_header", "header": "Stripe-Signature"})
        if not self._webhook_secret:
            raise WebhookInvalidSignature(detail={"reason": "webhook_secret_not_configured"})
        try:
            payload_text = raw_body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WebhookMalformed(detail={"reason": "not_utf8"}) from exc
        # First the signature alone, so a forged body is reported as forged
        # even when its timestamp is old too; then the full check with the
        # tolerance, which can now only fail on the timestamp.
        try:
            stripe.WebhookSignature.verify_header(payload_text, header, self._webhook_secret, tolerance=None)
        except stripe.SignatureVerificationError as exc:
            raise WebhookInvalidSignature(detail={"reason": "signature_mismatch"}) from exc
        try:
            stripe.Webhook.construct_event(
                payload_text, header, self._webhook_secret, tolerance=WEBHOOK_TOLERANCE_SECONDS
            )
        except stripe.SignatureVerificationError as exc:
            raise WebhookStale(detail={"tolerance_seconds": WEBHOOK_TOLERANCE_SECONDS}) from exc
        except ValueError as exc:
            raise WebhookMalformed(detail={"reason": "not_json"}) from exc
        return self._normalize(json.loads(payload_text))

    def _normalize(self, payload: Any) -> NormalizedEvent:
        if not isinstance(payload, dict):
            raise WebhookMalformed(detail={"reason": "not_an_object"})
        data = payload.get("data")
        obj = data.get("object") if isinstance(data, dict) else None
        event_id, event_type = payload.get("id"), payload.get("type")
        if not isinstance(obj, dict) or not isinstance(event_id, str) or not isinstance(event_type, str):
            raise WebhookMalformed(detail={"reason": "missing_id_type_or_object"})
        amount_key = "amount_total" if event_type.startswith("checkout.session.") else "amount"
        amount = obj.get(amount_key)
        if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int)):
            raise WebhookMalformed(detail={"field": amount_key})
        common: dict[str, Any] = {
            "provider_event_id": event_id,
            "event_type": event_type,
            "payload": payload,
            "amount_cents": amount,
            "currency": str(obj.get("currency") or "").upper(),
            "provider_payment_id": _id_of(obj.get("payment_intent")),
        }
        if event_type.startswith("checkout.session."):
            if event_type == "checkout.session.completed":
                paid = obj.get("payment_status") in ("paid", "no_payment_required")
                kind = EventKind.PAYMENT_SUCCEEDED if paid else EventKind.PAYMENT_PENDING
            else:
                kind = CHECKOUT_EVENT_KINDS.get(event_type, EventKind.IGNORED)
            metadata = obj.get("metadata")
            if not isinstance(metadata, dict):
                metadata = {}
            return NormalizedEvent(
                kind=kind,
                provider_session_id=str(obj.get("id") or ""),
                session_reference=str(metadata.get("session_reference") or ""),
                order_reference=str(obj.get("client_reference_id") or ""),
                **common,
            )
        if event_type in REFUND_EVENT_TYPES:
            status = obj.get("status")
            if status == "succeeded":
                kind = EventKind.REFUND_SUCCEEDED
            elif status in ("failed", "canceled"):
                kind = EventKind.REFUND_FAILED
            else:
                kind = EventKind.IGNORED
            return NormalizedEvent(
                kind=kind,
                provider_refund_id=str(obj.get("id") or ""),
                failure_code=str(obj.get("failure_reason") or ""),
                **common,
            )
        if event_type in ("charge.dispute.created", "charge.dispute.closed"):
            if event_type == "charge.dispute.created":
                kind = EventKind.DISPUTE_OPENED
            else:
                kind = DISPUTE_CLOSED_KINDS.get(str(obj.get("status")), EventKind.IGNORED)
            return NormalizedEvent(
                kind=kind,
                provider_dispute_id=str(obj.get("id") or ""),
                fee_cents=_dispute_fee(obj),
                reason=str(obj.get("reason") or "")[:100],
                **common,
            )
        if event_type in PAYOUT_EVENT_KINDS:
            metadata = obj.get("metadata")
            if not isinstance(metadata, dict):
                metadata = {}
            failure_code = str(obj.get("failure_code") or "")
            if event_type == "payout.canceled":
                failure_code = failure_code or "canceled"
            return NormalizedEvent(
                kind=PAYOUT_EVENT_KINDS[event_type],
                provider_payout_id=str(obj.get("id") or ""),
                payout_reference=str(metadata.get("payout_reference") or ""),
                failure_code=failure_code,
                failure_message=str(obj.get("failure_message") or "")[:300],
                **common,
            )
        return NormalizedEvent(kind=EventKind.IGNORED, **common)
