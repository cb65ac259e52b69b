"""Row locks of the payments domain.

Payments come last in the platform's lock order (ticketing.locks: ... ->
order -> payment); within payments the order is
    payment session -> payment -> refund,
so a webhook (session, then payment) and a refund (payment, then refund) can
never deadlock. Every helper runs inside the caller's transaction, under
ticketing.locks.lock_timeout(), so a long wait becomes Busy ("try again").
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import QuerySet

from payments.exceptions import PaymentNotFound, PaymentSessionNotFound
from payments.models import Payment, PaymentSession, Refund


def _assert_atomic() -> None:
    assert transaction.get_connection().in_atomic_block, "row locks last until commit: take them in a transaction"


def lock_session(*, session_id: int) -> PaymentSession:
    _assert_atomic()
    session = PaymentSession.objects.select_for_update().filter(pk=session_id).first()
    if session is None:
        raise PaymentSessionNotFound(detail={"session": session_id})
    return session


def sessions_with_payment_for_update() -> QuerySet[PaymentSession]:
    """Payment sessions with their payment, both locked by the statement that
    reads them (in that order: PostgreSQL locks a joined row's tables in the
    query's FROM order), and the order they are for read along, unlocked (the
    order comes before payments in the lock order, so it is never locked
    here). Unordered: filter it down to one session."""
    _assert_atomic()
    return (
        PaymentSession.objects.select_related("payment", "order")
        .filter(payment__isnull=False)  # an inner join: the payment's row can be locked
        .select_for_update(of=("self", "payment"))
        .order_by()
    )


def lock_session_and_payment(*, payment_id: int) -> tuple[PaymentSession, Payment]:
    """The payment's session and the payment, locked in one statement."""
    try:
        session = sessions_with_payment_for_update().get(payment__pk=payment_id)
    except PaymentSession.DoesNotExist:
        raise PaymentNotFound(detail={"payment": payment_id}) from None
    return session, session.payment


def lock_payment(*, payment_id: int) -> Payment:
    _assert_atomic()
    payment = Payment.objects.select_for_update().filter(pk=payment_id).first()
    if payment is None:
        raise PaymentNotFound(detail={"payment": payment_id})
    return payment


def lock_payment_and_refund(*, refund_id: int) -> tuple[Payment, Refund]:
    _assert_atomic()
    payment_id = Refund.objects.filter(pk=refund_id).values_list("payment_id", flat=True).first()
    if payment_id is None:
        raise PaymentNotFound("This refund does not exist.", detail={"refund": refund_id})
    payment = lock_payment(payment_id=payment_id)
    refund = Refund.objects.select_for_update().get(pk=refund_id)
    return payment, refund
