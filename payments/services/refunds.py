"""Refunds: never more than was captured, never paid out twice.

refund_create runs in three phases so that no transaction is open while the
provider is called:
  1. lock the payment row, reserve the amount with a conditional UPDATE
     (refunded + in flight + amount <= captured, backed by a CHECK constraint)
     and record a pending Refund, in one transaction;
  2. call provider.refund with the refund's idempotency key;
  3. lock payment and refund again and mark the refund succeeded (moving the
     reservation to refunded_cents) or failed (releasing it).
Two concurrent refunds of the last refundable amount serialize on the payment
row lock in phase 1: the first reserves it, the second finds nothing left and
gets RefundExceedsCaptured. A crash or timeout after phase 1 leaves a pending,
reserved refund; calling refund_create again with the same key resumes it, and
the provider returns the refund it may already have made.

These services change payments' rows only: the order's own state (refunded,
tickets revoked) is the workflows layer's to change, on refund_succeeded.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django_fsm import can_proceed

from payments.exceptions import (
    IdempotencyKeyReused,
    InvalidRefundAmount,
    PaymentReferenceConflict,
    ProviderRejected,
    RefundExceedsCaptured,
    RefundNotAllowed,
)
from payments.locks import lock_payment, lock_payment_and_refund
from payments.models import Payment, PaymentStatus, Refund, RefundStatus
from payments.providers import get_provider
from payments.providers.base import RefundOutcome
from payments.signals import refund_failed, refund_succeeded, send_after_commit
from ticketing.exceptions import InvalidInput
from ticketing.locks import lock_timeout

REFUNDABLE_STATES = frozenset({PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED})


def _signal_payload(refund: Refund, payment: Payment) -> dict[str, Any]:
    return {
        "refund_id": refund.pk,
        "payment_id": payment.pk,
        "order_id": payment.order_id,
        "organization_id": payment.organization_id,
        "provider": refund.provider,
        "amount_cents": refund.amount_cents,
        "currency": refund.currency,
        "payment_status": payment.status,
        "refunded_cents": payment.refunded_cents,
    }


def _record_provider_refund_id(refund: Refund, provider_refund_id: str) -> None:
    if not provider_refund_id:
        return
    if refund.provider_refund_id and refund.provider_refund_id != provider_refund_id:
        raise PaymentReferenceConflict(detail={"expected": refund.provider_refund_id, "received": provider_refund_id})
    refund.provider_refund_id = provider_refund_id


def _refund_reserve(*, payment_id: int, amount_cents: int, idempotency_key: str, reason: str) -> Refund:
    """Phase 1. Returns the pending refund, or the one this key already made."""
    # durable: the provider is called next, never inside a caller's transaction.
    with transaction.atomic(durable=True), lock_timeout():
        payment = lock_payment(payment_id=payment_id)
        # Looked up after the lock: a concurrent call with the same key has
        # committed its refund by the time we hold the row.
        existing = Refund.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing
        if payment.status not in REFUNDABLE_STATES or not payment.provider_payment_id:
            raise RefundNotAllowed(detail={"payment": payment.pk, "status": payment.status})
        reserved = Payment.objects.filter(
            pk=payment.pk,
            captured_cents__gte=F("refunded_cents") + F("refund_pending_cents") + amount_cents,
        ).update(refund_pending_cents=F("refund_pending_cents") + amount_cents)
        if not reserved:
            raise RefundExceedsCaptured(
                detail={
                    "payment": payment.pk,
                    "requested_cents": amount_cents,
                    "refundable_cents": payment.refundable_cents,
                }
            )
        return Refund.objects.create(
            organization_id=payment.organization_id,
            payment=payment,
            provider=payment.provider,
            amount_cents=amount_cents,
            currency=payment.currency,
            idempotency_key=idempotency_key,
            reason=reason[:300],
        )


def refund_create(
    *, payment: Payment, amount_cents: int, idempotency_key: str, reason: str = "", by: Any = None
) -> Refund:
    """Refund `amount_cents` of a succeeded payment and return the Refund.

    Its status says how it went: succeeded; failed (the provider declined it,
    the reservation is released); or pending (the provider confirms later by
    webhook). Idempotent on `idempotency_key`: the same key returns the same
    refund (resuming a pending one); the same key for another payment or
    amount raises IdempotencyKeyReused. Raises InvalidRefundAmount,
    RefundNotAllowed, RefundExceedsCaptured, and ProviderUnavailable when the
    provider could not be reached (the refund stays pending and reserved:
    retry with the same key). Must not be called inside a transaction."""
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) or amount_cents <= 0:
        raise InvalidRefundAmount(detail={"amount_cents": amount_cents})
    if not idempotency_key or len(idempotency_key) > 255:
        raise InvalidInput(
            "An idempotency key of 1 to 255 characters is required.", detail={"field": "idempotency_key"}
        )
    try:
        refund = _refund_reserve(
            payment_id=payment.pk, amount_cents=amount_cents, idempotency_key=idempotency_key, reason=reason
        )
    except IntegrityError:
        # The key was taken concurrently for another payment (a same-payment
        # race is settled under the row lock above).
        refund = Refund.objects.get(idempotency_key=idempotency_key)
    if refund.payment_id != payment.pk or refund.amount_cents != amount_cents:
        raise IdempotencyKeyReused(
            detail={
                "idempotency_key": idempotency_key,
                "payment": refund.payment_id,
                "amount_cents": refund.amount_cents,
            }
        )
    if refund.status != RefundStatus.PENDING or refund.provider_refund_id:
        return refund  # done, or accepted by the provider and awaiting its webhook

    provider_payment_id = Payment.objects.values_list("provider_payment_id", flat=True).get(pk=payment.pk)
    try:
        result = get_provider(refund.provider).refund(
            provider_payment_id=provider_payment_id,
            amount_cents=refund.amount_cents,
            currency=refund.currency,
            idempotency_key=refund.idempotency_key,
            reference=f"refund:{refund.pk}",
        )
    except ProviderRejected as exc:
        return refund_mark_failed(
            refund_id=refund.pk, failure_code=exc.code, by=by, reason=f"rejected by {refund.provider}: {exc.message}"
        )[0]
    if result.outcome == RefundOutcome.SUCCEEDED:
        return refund_mark_succeeded(
            refund_id=refund.pk, provider_refund_id=result.provider_refund_id, by=by, reason=reason
        )[0]
    if result.outcome == RefundOutcome.FAILED:
        return refund_mark_failed(
            refund_id=refund.pk,
            provider_refund_id=result.provider_refund_id,
            failure_code=result.failure_code or "failed",
            by=by,
            reason=f"failed at {refund.provider}",
        )[0]
    return _refund_record_provider_id(refund_id=refund.pk, provider_refund_id=result.provider_refund_id)


def _refund_record_provider_id(*, refund_id: int, provider_refund_id: str) -> Refund:
    """The provider accepted the refund and confirms it later: keep its id so
    the confirming webhook can be matched."""
    with transaction.atomic(), lock_timeout():
        _payment, refund = lock_payment_and_refund(refund_id=refund_id)
        _record_provider_refund_id(refund, provider_refund_id)
        refund.save(update_fields=["provider_refund_id", "updated_at"])
        return refund


def refund_mark_succeeded(
    *, refund_id: int, provider_refund_id: str = "", by: Any = None, reason: str = ""
) -> tuple[Refund, bool]:
    """The provider paid the refund. Locks payment then refund; moves the
    amount from in-flight to refunded and the payment to partially_refunded or
    refunded. Idempotent: (refund, False) if it is no longer pending."""
    with transaction.atomic(), lock_timeout():
        payment, refund = lock_payment_and_refund(refund_id=refund_id)
        if not can_proceed(refund.succeed):
            return refund, False
        _record_provider_refund_id(refund, provider_refund_id)
        refund.succeed(at=timezone.now(), by=by, reason=reason)
        refund.save(update_fields=["status", "provider_refund_id", "completed_at", "updated_at"])
        payment.refund_pending_cents -= refund.amount_cents
        payment.refunded_cents += refund.amount_cents
        if payment.refunded_cents == payment.captured_cents:
            payment.refund_fully(by=by, reason=reason)
        else:
            payment.refund_partially(by=by, reason=reason)
        payment.save(update_fields=["status", "refund_pending_cents", "refunded_cents", "updated_at"])
        send_after_commit(refund_succeeded, sender=Refund, **_signal_payload(refund, payment))
        return refund, True


def refund_mark_failed(
    *, refund_id: int, failure_code: str = "", provider_refund_id: str = "", by: Any = None, reason: str = ""
) -> tuple[Refund, bool]:
    """The provider will not pay the refund: release its reservation.
    Locks payment then refund. Idempotent: (refund, False) if no longer pending."""
    with transaction.atomic(), lock_timeout():
        payment, refund = lock_payment_and_refund(refund_id=refund_id)
        if not can_proceed(refund.fail):
            return refund, False
        _record_provider_refund_id(refund, provider_refund_id)
        refund.fail(at=timezone.now(), failure_code=failure_code or "failed", by=by, reason=reason)
        refund.save(update_fields=["status", "provider_refund_id", "failure_code", "completed_at", "updated_at"])
        payment.refund_pending_cents -= refund.amount_cents
        payment.save(update_fields=["refund_pending_cents", "updated_at"])
        send_after_commit(refund_failed, sender=Refund, **_signal_payload(refund, payment))
        return refund, True
