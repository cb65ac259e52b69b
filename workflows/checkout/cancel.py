"""CancelCheckout: end a checkout that was not paid, because its hold expired
or because the buyer gave up. One run per order (`checkout.cancel`, key
`order:<code>`), started by the expiry sweeper below or by the buyer.

    close the payment session at the provider
    -> if the provider says a payment is in flight (paid, or confirming),
       give its confirmation time to arrive (CompleteCheckout may win)
    -> expire or cancel the order and release its holds, in one transaction,
       unless it was paid meanwhile

Holds never depend on this run for correctness: an expired hold blocks no
buyer (reservations check expiry), and a late payment is handled by
CompleteCheckout."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef, Value
from django.db.models.functions import Concat
from django.utils import timezone

from payments.exceptions import ProviderUnavailable
from payments.selectors import payment_session_for_order
from payments.services import payment_session_expire
from ticketing.models import Order, OrderStatus
from ticketing.services.orders import order_cancel, order_expire
from workflows.engine import Context, RetryPolicy, start, workflow
from workflows.engine.retry import is_retryable
from workflows.exceptions import RunNotFound
from workflows.models import WorkflowRun
from workflows.seating.release_seats import release_inventory_of

WORKFLOW = "checkout.cancel"
# How long a checkout waits for a payment the provider reported in flight at expiry.
CANCEL_GRACE = timedelta(minutes=30)
PROVIDER_RETRY = RetryPolicy(
    max_attempts=8,
    initial_delay=5,
    max_delay=600,
    retry_if=lambda exc: isinstance(exc, ProviderUnavailable) or is_retryable(exc),
)
IN_FLIGHT = ("succeeded", "pending")


def close_payment_session(session: dict[str, Any]) -> dict[str, Any]:
    """Close the payment page; returns the payment's state as the provider sees it."""
    payment = payment_session_expire(session_id=session["session_id"], reason="checkout ended")
    return {"status": payment.status, "payment_id": payment.pk}


def close_order_session(*, order_code: str) -> dict[str, Any]:
    """Close the order's payment page, if it has one (outside transactions:
    the provider may be called over the network)."""
    order_id = Order.objects.filter(code=order_code).values_list("pk", flat=True).first()
    session = payment_session_for_order(order_id=order_id) if order_id is not None else None
    if session is None:
        return {"status": "none"}
    return close_payment_session({"session_id": session.pk})


def end_unpaid_checkout(*, order_code: str, cancelled_by_buyer: bool) -> dict[str, Any]:
    """Expire (or cancel) the order and release its holds, unless it was paid
    meanwhile. Runs as one local step: one transaction, the order locked
    first (the documented lock order), then its seats and ticket types."""
    assert transaction.get_connection().in_atomic_block
    outcome = "cancelled" if cancelled_by_buyer else "expired"
    # Locked so that a payment completing now waits for us, or we for it.
    order = Order.objects.select_for_update().get(code=order_code)
    if order.status not in (OrderStatus.PENDING, OrderStatus.CANCELLED, OrderStatus.EXPIRED):
        return {"outcome": "paid", "order_status": order.status}
    if cancelled_by_buyer:
        order, _ = order_cancel(order_id=order.pk, reason="cancelled by the buyer")
    else:
        order, _ = order_expire(order_id=order.pk, reason="hold expired unpaid")
    release_inventory_of(order_code=order_code)
    return {"outcome": outcome, "order_status": order.status}


@workflow(WORKFLOW, version=1)
def cancel_checkout_run(ctx: Context) -> dict[str, Any]:
    code: str = ctx.input["order_code"]
    by_buyer = ctx.input.get("reason") == "cancel"
    payment = ctx.step(
        "close_payment_session",
        lambda key: close_order_session(order_code=code),
        external=True,
        retry=PROVIDER_RETRY,
    )
    if payment["status"] in IN_FLIGHT:
        # A payment caught in flight wins over the expiry: CompleteCheckout
        # makes the order paid meanwhile, and the last step then keeps it.
        ctx.sleep("await_payment_in_flight", CANCEL_GRACE)
    return ctx.step("end_unpaid_checkout", partial(end_unpaid_checkout, order_code=code, cancelled_by_buyer=by_buyer))


def cancel_checkout(*, order_code: str) -> bool:
    """The buyer gives up before paying. Idempotent; False if the checkout had
    already ended (the order is no longer pending). The order is cancelled
    by the run, after the provider closed the payment page."""
    order = Order.objects.filter(code=order_code).values("status", "organization_id").first()
    if order is None:
        raise RunNotFound("There is no open checkout for this order.", detail={"order": order_code})
    if order["status"] != OrderStatus.PENDING:
        return False
    data = {"order_code": order_code, "reason": "cancel"}
    run = start(WORKFLOW, f"order:{order_code}", data, organization=order["organization_id"])
    return run.input.get("reason") == "cancel" and not run.is_finished


def checkouts_expire_due(*, now: datetime | None = None, batch: int = 200) -> int:
    """The expiry sweeper (beat): start CancelCheckout for every pending order
    whose hold expired and that has none yet. Idempotent. Returns how many
    runs it started."""
    now = now or timezone.now()
    has_run = WorkflowRun.objects.filter(workflow_type=WORKFLOW, business_key=Concat(Value("order:"), OuterRef("code")))
    due = (
        Order.objects.filter(status=OrderStatus.PENDING, expires_at__lte=now)
        .exclude(Exists(has_run))
        .order_by("expires_at")
        .values_list("code", "organization_id")[:batch]
    )
    started = 0
    for code, organization_id in due:
        start(WORKFLOW, f"order:{code}", {"order_code": code, "reason": "expired"}, organization=organization_id)
        started += 1
    return started
