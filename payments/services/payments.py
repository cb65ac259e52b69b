"""State changes of a payment, as the provider reports them.

Each `payment_mark_*` locks the session and the payment (payments.locks
order), re-checks the state machine, applies the transition (which writes the
audit row), saves, and sends its signal after commit. Their writes (the
UPDATEs of the rows they hold locked, the audit rows) go with the caller's
next statement inside ticketing.rows.deferred(), at once outside it. They
are idempotent and safe against out-of-order delivery: a change the state
machine does not allow from the current state is simply not made, and they
return (payment, False). So a late "pending" after "succeeded" does nothing,
and "failed" never downgrades "succeeded". They join the caller's transaction
when there is one (webhook_receive commits the event row and the change
together).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone
from django_fsm import can_proceed

from payments.exceptions import (
    PaymentAmountMismatch,
    PaymentNotFound,
    PaymentReferenceConflict,
)
from payments.locks import lock_session_and_payment
from payments.models import Payment, PaymentSession
from payments.providers import get_provider
from payments.providers.base import ProviderStatus, SessionStatus
from payments.signals import (
    payment_cancelled,
    payment_failed,
    payment_pending,
    payment_succeeded,
    send_after_commit,
)
from ticketing import rows
from ticketing.locks import lock_timeout

_SAVED_FIELDS = [
    "status",
    "provider_payment_id",
    "captured_cents",
    "succeeded_at",
    "failure_code",
    "failure_message",
    "updated_at",
]


def _signal_payload(session: PaymentSession, payment: Payment) -> dict[str, Any]:
    return {
        "payment_id": payment.pk,
        "order_id": payment.order_id,
        "order_code": session.order.code,
        "organization_id": payment.organization_id,
        "session_id": payment.session_id,
        "provider": payment.provider,
        "amount_cents": payment.amount_cents,
        "currency": payment.currency,
        "status": payment.status,
        "succeeded_at": payment.succeeded_at,
    }


def _lock(payment_id: int, locked: PaymentSession | None) -> tuple[PaymentSession, Payment]:
    """The session and the payment, locked; `locked`: the session, with its
    payment and order, that the caller locked in this transaction already
    (lock_session_and_payment's way), so they are not read again."""
    if locked is None:
        return lock_session_and_payment(payment_id=payment_id)
    assert locked.payment.pk == payment_id, "the caller locked another payment's session"
    return locked, locked.payment


def _reference_conflict(payment: Payment, provider_payment_id: str) -> PaymentReferenceConflict | None:
    """The refusal, if the provider names another payment id than the one we recorded."""
    if provider_payment_id and payment.provider_payment_id not in ("", provider_payment_id):
        return PaymentReferenceConflict(
            detail={"expected": payment.provider_payment_id, "received": provider_payment_id}
        )
    return None


def _record_provider_payment_id(payment: Payment, provider_payment_id: str) -> None:
    conflict = _reference_conflict(payment, provider_payment_id)
    if conflict is not None:
        raise conflict
    if provider_payment_id:
        payment.provider_payment_id = provider_payment_id


def _close_session(session: PaymentSession, *, complete: bool, by: Any, reason: str) -> None:
    transition = session.complete if complete else session.expire
    if can_proceed(transition):
        transition(by=by, reason=reason)
        rows.save_fields_later(session, ["status", "updated_at"])


def payment_mark_pending(
    *,
    payment_id: int,
    provider_payment_id: str = "",
    by: Any = None,
    reason: str = "",
    locked: PaymentSession | None = None,
) -> tuple[Payment, bool]:
    """The buyer paid; the provider confirms later (delayed confirmation)."""
    with transaction.atomic(), lock_timeout():
        session, payment = _lock(payment_id, locked)
        if not can_proceed(payment.mark_pending):
            return payment, False
        _record_provider_payment_id(payment, provider_payment_id)
        payment.mark_pending(by=by, reason=reason)
        rows.save_fields_later(payment, _SAVED_FIELDS)
        send_after_commit(payment_pending, sender=Payment, **_signal_payload(session, payment))
        return payment, True


def payment_mark_succeeded(
    *,
    payment_id: int,
    amount_cents: int,
    currency: str,
    provider_payment_id: str = "",
    by: Any = None,
    reason: str = "",
    locked: PaymentSession | None = None,
) -> tuple[Payment, bool]:
    """The provider has the money. Also from failed (the buyer retried) and
    from cancelled (paid as we gave up): money taken is always recorded, and
    the session completes. Raises PaymentAmountMismatch, changing nothing, if
    the provider took another amount than we asked for."""
    # No savepoint inside a caller's transaction (the payment confirmation's
    # hot path): the refusals are raised after the block, which then wrote
    # nothing, so a caller may go on after catching one.
    refusal: PaymentAmountMismatch | PaymentReferenceConflict | None = None
    with transaction.atomic(savepoint=False), lock_timeout():
        session, payment = _lock(payment_id, locked)
        if not can_proceed(payment.mark_succeeded):
            return payment, False
        if amount_cents != payment.amount_cents or currency.upper() != payment.currency:
            refusal = PaymentAmountMismatch(
                detail={
                    "expected": {"amount_cents": payment.amount_cents, "currency": payment.currency},
                    "received": {"amount_cents": amount_cents, "currency": currency},
                }
            )
        else:
            refusal = _reference_conflict(payment, provider_payment_id)
        if refusal is None:
            payment.provider_payment_id = provider_payment_id or payment.provider_payment_id
            payment.mark_succeeded(captured_cents=amount_cents, at=timezone.now(), by=by, reason=reason)
            rows.save_fields_later(payment, _SAVED_FIELDS)
            _close_session(session, complete=True, by=by, reason=reason)
            send_after_commit(payment_succeeded, sender=Payment, **_signal_payload(session, payment))
    if refusal is not None:
        raise refusal
    return payment, True


def payment_mark_failed(
    *,
    payment_id: int,
    failure_code: str = "",
    failure_message: str = "",
    provider_payment_id: str = "",
    by: Any = None,
    reason: str = "",
    locked: PaymentSession | None = None,
) -> tuple[Payment, bool]:
    """An attempt was declined. The session stays open: on a hosted page the
    buyer may retry with another card, and a later success still counts."""
    with transaction.atomic(), lock_timeout():
        session, payment = _lock(payment_id, locked)
        if not can_proceed(payment.mark_failed):
            return payment, False
        _record_provider_payment_id(payment, provider_payment_id)
        payment.mark_failed(failure_code=failure_code, failure_message=failure_message, by=by, reason=reason)
        rows.save_fields_later(payment, _SAVED_FIELDS)
        send_after_commit(
            payment_failed, sender=Payment, failure_code=payment.failure_code, **_signal_payload(session, payment)
        )
        return payment, True


def payment_mark_cancelled(
    *, payment_id: int, by: Any = None, reason: str = "", locked: PaymentSession | None = None
) -> tuple[Payment, bool]:
    """The session closed without a payment (expired at the provider, or we
    expired it). A payment that already succeeded is left alone."""
    with transaction.atomic(), lock_timeout():
        session, payment = _lock(payment_id, locked)
        if not can_proceed(payment.mark_cancelled):
            return payment, False
        payment.mark_cancelled(by=by, reason=reason)
        rows.save_fields_later(payment, _SAVED_FIELDS)
        _close_session(session, complete=False, by=by, reason=reason)
        send_after_commit(payment_cancelled, sender=Payment, **_signal_payload(session, payment))
        return payment, True


def payment_apply_provider_status(
    *, payment: Payment, status: SessionStatus, by: Any = None, reason: str = ""
) -> tuple[Payment, bool]:
    """Bring our payment in line with what the provider says, through the
    idempotent mark_* services. OPEN changes nothing."""
    if status.status == ProviderStatus.SUCCEEDED:
        return payment_mark_succeeded(
            payment_id=payment.pk,
            amount_cents=status.amount_cents if status.amount_cents is not None else payment.amount_cents,
            currency=status.currency or payment.currency,
            provider_payment_id=status.provider_payment_id,
            by=by,
            reason=reason,
        )
    if status.status == ProviderStatus.PENDING:
        return payment_mark_pending(
            payment_id=payment.pk, provider_payment_id=status.provider_payment_id, by=by, reason=reason
        )
    if status.status == ProviderStatus.FAILED:
        return payment_mark_failed(
            payment_id=payment.pk,
            failure_code=status.failure_code,
            provider_payment_id=status.provider_payment_id,
            by=by,
            reason=reason,
        )
    if status.status == ProviderStatus.EXPIRED:
        return payment_mark_cancelled(payment_id=payment.pk, by=by, reason=reason)
    return payment, False


def _load(payment_id: int) -> Payment:
    # durable: this service calls the provider next, which must never happen
    # inside a caller's transaction (no network while rows are locked).
    with transaction.atomic(durable=True):
        payment = Payment.objects.select_related("session").filter(pk=payment_id).first()
    if payment is None:
        raise PaymentNotFound(detail={"payment": payment_id})
    return payment


def payment_status_fetch(*, payment_id: int, by: Any = None) -> tuple[Payment, SessionStatus | None]:
    """Ask the provider what happened to the payment's session and apply it
    (e.g. before releasing an expired hold: the buyer may have paid and the
    webhook not arrived yet). Calls the provider outside any transaction.
    Returns the payment and the provider's answer; None if the provider was
    never told about the session (its creation did not complete), in which
    case nobody can have paid it."""
    payment = _load(payment_id)
    if not payment.session.provider_session_id:
        return payment, None
    status = get_provider(payment.provider).fetch_status(provider_session_id=payment.session.provider_session_id)
    payment, _ = payment_apply_provider_status(
        payment=payment, status=status, by=by, reason=f"status fetched from {payment.provider}: {status.status}"
    )
    return payment, status
