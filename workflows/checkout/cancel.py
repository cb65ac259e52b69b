"""CancelCheckout: end a checkout that was not paid, by the buyer's request
or because its hold expired.

The payment session is closed at the provider first and its answer decides:
a payment caught in flight (paid, or still confirming) wins over the expiry,
and the checkout waits for it a little longer. Only then are the order
expired or cancelled and its holds released, in one transaction."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction

from payments.services import payment_session_expire
from ticketing.models import OrderStatus
from ticketing.services.orders import order_cancel, order_expire
from workflows.engine import signal
from workflows.exceptions import RunNotFound
from workflows.models import WorkflowRun
from workflows.seating.release_seats import release_inventory

# How long a checkout waits for a payment the provider reported in flight at expiry.
CANCEL_GRACE = timedelta(minutes=30)


def close_payment_session(session: dict[str, Any]) -> dict[str, Any]:
    """Close the payment page; returns the payment's state as the provider sees it."""
    payment = payment_session_expire(session_id=session["session_id"], reason="checkout ended")
    return {"status": payment.status, "payment_id": payment.pk}


def end_unpaid_checkout(*, order_id: int, reservation: dict[str, Any], cancelled_by_buyer: bool) -> dict[str, Any]:
    """Expire (or cancel) the order and release its holds, unless it was paid
    meanwhile. Runs as one local step: one transaction."""
    assert transaction.get_connection().in_atomic_block
    if cancelled_by_buyer:
        order, _ = order_cancel(order_id=order_id, reason="cancelled by the buyer")
    else:
        order, _ = order_expire(order_id=order_id, reason="hold expired unpaid")
    if order.status in (OrderStatus.CANCELLED, OrderStatus.EXPIRED):
        release_inventory(reservation)
    return {"outcome": "cancelled" if cancelled_by_buyer else "expired", "order_status": order.status}


def cancel_checkout(*, order_code: str) -> bool:
    """The buyer gives up before paying. Idempotent; False if the checkout
    had already ended."""
    run = WorkflowRun.objects.filter(workflow_type="checkout", business_key=f"order:{order_code}").first()
    if run is None:
        raise RunNotFound("There is no open checkout for this order.", detail={"order": order_code})
    if run.is_finished:
        return False
    return signal(run, "settled", {"outcome": "cancel"}, dedup_key=f"buyer-cancel:{order_code}")
