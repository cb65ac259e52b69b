"""Row locks of the payments domain.

Payments come last in the platform's lock order (ticketing.locks: ... ->
order -> payment); within payments the order is
    payment session -> payment -> refund,
so a webhook (session, then payment) and a refund (payment, then refund) can
never deadlock. Every helper runs inside the caller's transaction, under
ticketing.locks.lock_timeout(), so a long wait becomes Busy ("try again").
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any, cast

from django.db import transaction

from payments.exceptions import PaymentNotFound, PaymentSessionNotFound
from payments.models import Payment, PaymentSession, Refund
from ticketing import rows
from ticketing.models import Order


def _assert_atomic() -> None:
    assert transaction.get_connection().in_atomic_block, "row locks last until commit: take them in a transaction"


def lock_session(*, session_id: int) -> PaymentSession:
    _assert_atomic()
    session = PaymentSession.objects.select_for_update().filter(pk=session_id).first()
    if session is None:
        raise PaymentSessionNotFound(detail={"session": session_id})
    return session


# --- a session with its payment, in one statement -----------------------------------

# What a session with its payment is looked up by (SQL on the aliases s, p).
_PAIR_BY = {
    "payment": "p.id = %s",
    "provider_session_id": "s.provider = %s AND s.provider_session_id = %s",
    "reference": "s.provider = %s AND s.reference = %s",
}
# Of the order, only what the payments services read: its code.
_ORDER_FIELDS = ("id", "code")


@cache
def _pair_sql(by: str, vendor: str) -> tuple[str, rows.Columns, rows.Columns, rows.Columns]:
    connection = transaction.get_connection()
    quote = connection.ops.quote_name
    session = rows.columns(PaymentSession, "s")
    payment = rows.columns(Payment, "p", start=len(session.attnames))
    order = rows.columns(Order, "o", _ORDER_FIELDS, start=len(session.attnames) + len(payment.attnames))
    # Session, then payment: PostgreSQL locks a joined row's tables in the
    # query's FROM order, and that is the payments lock order. The order is
    # read, never locked (it comes before payments in the platform's lock
    # order).
    sql = (
        f"SELECT {session.sql}, {payment.sql}, {order.sql} "  # noqa: S608
        f"FROM {quote(PaymentSession._meta.db_table)} s "
        f"JOIN {quote(Payment._meta.db_table)} p ON p.{quote('session_id')} = s.{quote('id')} "
        f"JOIN {quote(Order._meta.db_table)} o ON o.{quote('id')} = s.{quote('order_id')} "
        f"WHERE {_PAIR_BY[by]}"
    )
    if connection.features.has_select_for_update_of:
        sql += " FOR UPDATE OF s, p"
    return sql, session, payment, order


def lock_session_with_payment(*, by: str, params: Sequence[Any]) -> PaymentSession | None:
    """The payment session with its payment (session.payment), both locked
    by the one cached statement that reads them, and the code of the order
    they are for read along (session.order has only its id and code).
    `by`: "payment" (params: the payment's id), "provider_session_id"
    (provider, the provider's session id) or "reference" (provider, our
    session reference); each names at most one session."""
    _assert_atomic()
    connection = transaction.get_connection()
    sql, session_columns, payment_columns, order_columns = _pair_sql(by, connection.vendor)
    _, found = rows.execute(sql, params)
    if not found:
        return None
    row = found[0]
    session = cast(PaymentSession, session_columns.build(row, connection))
    payment = cast(Payment, payment_columns.build(row, connection))
    order = cast(Order, order_columns.build(row, connection))
    PaymentSession._meta.get_field("order").set_cached_value(session, order)  # type: ignore[union-attr]
    session_field = Payment._meta.get_field("session")
    session_field.set_cached_value(payment, session)  # type: ignore[union-attr]
    session_field.remote_field.set_cached_value(session, payment)  # type: ignore[union-attr]
    return session


def lock_session_and_payment(*, payment_id: int) -> tuple[PaymentSession, Payment]:
    """The payment's session and the payment, locked in one statement."""
    session = lock_session_with_payment(by="payment", params=[payment_id])
    if session is None:
        raise PaymentNotFound(detail={"payment": payment_id})
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
