"""Payments' domain errors.

Each is a ticketing.exceptions.DomainError with a stable `code` (providers'
dashboards, the workflows layer and clients match on it, so never rename one),
a human message and the HTTP status the edges map it to. `detail` carries the
machine-readable specifics (which field mismatched, what is still refundable).
"""

from __future__ import annotations

from ticketing.exceptions import DomainError, NotFound

# --- webhooks: all 400, so the provider shows the delivery as failed ----------


class WebhookInvalidSignature(DomainError):
    """Missing, unparsable or wrong signature (wrong secret, tampered body)."""

    code = "webhook_invalid_signature"
    message = "The webhook signature is missing or does not match."
    status = 400


class WebhookStale(DomainError):
    """Correctly signed, but signed too long ago: a possible replay attack."""

    code = "webhook_stale"
    message = "The webhook timestamp is outside the accepted tolerance."
    status = 400


class WebhookMalformed(DomainError):
    code = "webhook_malformed"
    message = "The webhook body is not a well-formed event."
    status = 400


class WebhookUnknownSession(DomainError):
    """Signed by the provider, but about a session or refund we never created."""

    code = "webhook_unknown_session"
    message = "The webhook refers to a payment session we do not know."
    status = 400


class WebhookMismatch(DomainError):
    """Signed by the provider, but its amount, currency or order does not match ours."""

    code = "webhook_mismatch"
    message = "The webhook does not match the payment session it refers to."
    status = 400


# --- providers --------------------------------------------------------------------


class ProviderUnknown(NotFound):
    code = "provider_unknown"
    message = "This payment provider is not available."


class ProviderUnavailable(DomainError):
    """A transient failure talking to the provider (network, 5xx, rate limit).

    Nothing is lost: retry the same call with the same idempotency key."""

    code = "provider_unavailable"
    message = "The payment provider could not be reached; please try again."
    status = 503


class ProviderRejected(DomainError):
    """The provider refused the request for good (invalid request, refund declined)."""

    code = "provider_rejected"
    message = "The payment provider rejected the request."
    status = 402


# --- our own rules ------------------------------------------------------------------


class PaymentNotFound(NotFound):
    code = "payment_not_found"
    message = "This payment does not exist."


class PaymentSessionNotFound(NotFound):
    code = "payment_session_not_found"
    message = "This payment session does not exist."


class OrderNotPayable(DomainError):
    code = "order_not_payable"
    message = "This order cannot be paid in its current state."
    status = 409


class IdempotencyKeyReused(DomainError):
    """The same idempotency key was sent with different parameters."""

    code = "idempotency_key_reused"
    message = "This idempotency key was already used for a different request."
    status = 409


class PaymentAmountMismatch(DomainError):
    code = "payment_amount_mismatch"
    message = "The amount the provider reported does not match the payment."
    status = 409


class PaymentReferenceConflict(DomainError):
    code = "payment_reference_conflict"
    message = "The provider reported another payment id for this payment."
    status = 409


class InvalidRefundAmount(DomainError):
    code = "invalid_refund_amount"
    message = "The refund amount must be a positive number of cents."
    status = 400


class RefundNotAllowed(DomainError):
    code = "refund_not_allowed"
    message = "This payment cannot be refunded in its current state."
    status = 409


class RefundExceedsCaptured(DomainError):
    code = "refund_exceeds_captured"
    message = "The refund is larger than what is left to refund on this payment."
    status = 409


class SandboxSessionNotFound(NotFound):
    code = "sandbox_session_not_found"
    message = "This sandbox payment page does not exist."


class DisputeMismatch(WebhookMismatch):
    """A dispute whose amount, currency or payment state cannot be right."""

    code = "dispute_mismatch"
    message = "The dispute does not match the payment it refers to."
