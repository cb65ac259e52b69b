"""StartCheckout: from a cart to a payment page, as one recorded saga run.

    validate the cart (before the run: bad input starts nothing)
    -> calculate fees -> create a pending order with an expiry
    -> reserve capacity / hold seats -> create the payment session
    -> return the payment URL and expiry
    ... then wait until the order is settled: paid (CompleteCheckout tells
    us), cancelled by the buyer, or its hold expires (CancelCheckout).

Each step that changed something names its compensation; if a later step
fails (sold out, a seat taken meanwhile, the provider down) the engine undoes
the earlier ones in reverse order. No network call is made while inventory
locks are held: the payment session is created in its own step, after the
reservation committed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from celery import current_app
from django.conf import settings
from django.utils import timezone

from payments.exceptions import ProviderUnavailable
from payments.services import payment_session_create
from ticketing.exceptions import Busy, DomainError
from ticketing.models import Event, Order
from ticketing.models.order import new_public_code
from ticketing.services.orders import LineSpec, order_cancel, order_create_pending
from workflows.checkout.cancel import CANCEL_GRACE, close_payment_session, end_unpaid_checkout
from workflows.checkout.cart import PricedCart, buyer_clean, cart_price
from workflows.checkout.complete import complete_order
from workflows.engine import Context, RetryPolicy, advance, cancel, start, workflow
from workflows.engine.retry import is_retryable
from workflows.exceptions import SignalTimeout
from workflows.models import RunStatus, StepStatus, WorkflowRun, WorkflowStep
from workflows.seating.release_seats import release_inventory
from workflows.seating.reserve_seats import reserve_inventory

WORKFLOW = "checkout"
# The buyer waits for the start phase: its retries (a lock timeout, a provider
# hiccup) happen at once, inline, and then it gives up and is compensated.
INLINE_RETRY = RetryPolicy(max_attempts=3, initial_delay=0)
# A payment page that fails to open is retried at once, once.
SESSION_RETRY = RetryPolicy(
    max_attempts=2, initial_delay=0, retry_if=lambda exc: isinstance(exc, ProviderUnavailable) or is_retryable(exc)
)


# --- the steps ----------------------------------------------------------------------


def create_order(data: dict[str, Any]) -> dict[str, Any]:
    cart = data["cart"]
    lines: list[LineSpec] = []
    for line in cart["lines"]:
        if line["seat_ids"]:
            lines.extend(
                LineSpec(line["ticket_type_id"], 1, line["unit_price_cents"], seat_id) for seat_id in line["seat_ids"]
            )
        else:
            lines.append(LineSpec(line["ticket_type_id"], line["quantity"], line["unit_price_cents"]))
    fees = cart["fees"]
    order = order_create_pending(
        event=Event.objects.get(pk=cart["event_id"]),
        buyer_name=data["buyer_name"],
        buyer_email=data["buyer_email"],
        lines=lines,
        subtotal_cents=fees["subtotal_cents"],
        fees_cents=fees["buyer_fees_cents"],
        donation_cents=fees["donation_cents"],
        fee_snapshot=fees,
        expires_at=datetime.fromisoformat(data["expires_at"]),
        code=data["order_code"],
    )
    return {"order_id": order.pk}


def void_order(result: dict[str, Any]) -> dict[str, Any]:
    order, changed = order_cancel(order_id=result["order_id"], reason="checkout could not be completed")
    return {"status": order.status, "changed": changed}


def open_payment_session(data: dict[str, Any], order_id: int, idempotency_key: str) -> dict[str, Any]:
    order = Order.objects.get(pk=order_id)
    session = payment_session_create(
        order=order,
        provider=data["provider"],
        idempotency_key=idempotency_key,
        success_url=f"{data['return_url']}?status=paid",
        cancel_url=f"{data['return_url']}?status=cancelled",
        expires_at=order.expires_at,
    )
    return {"session_id": session.pk, "payment_url": session.payment_url}


# --- the saga ---------------------------------------------------------------------------


@workflow(WORKFLOW, version=1)
def checkout(ctx: Context) -> dict[str, Any]:
    data = ctx.input
    cart = data["cart"]
    expires_at = datetime.fromisoformat(data["expires_at"])
    order = ctx.step("create_order", partial(create_order, data), compensate=void_order, retry=INLINE_RETRY)
    reservation = ctx.step(
        "reserve_inventory",
        partial(
            reserve_inventory,
            event_id=cart["event_id"],
            order_code=data["order_code"],
            lines=cart["lines"],
            expires_at=expires_at,
        ),
        compensate=release_inventory,
        retry=INLINE_RETRY,
    )
    if cart["fees"]["total_cents"] == 0:
        # Free tickets: nothing to pay, complete at once.
        return ctx.step("complete_free_order", partial(complete_order, order_code=data["order_code"], payment_id=None))
    session = ctx.step(
        "create_payment_session",
        partial(open_payment_session, data, order["order_id"]),
        external=True,
        retry=SESSION_RETRY,
        compensate=lambda result, key: close_payment_session(result),
    )
    try:
        settled = ctx.wait_signal("settled", timeout=max(expires_at - timezone.now(), timedelta(0)))
    except SignalTimeout:
        settled = {"outcome": "expired"}
    if settled["outcome"] in ("expired", "cancel"):
        # CancelCheckout: ask the provider first; a payment caught in flight wins.
        payment = ctx.step("close_payment_session", lambda key: close_payment_session(session), external=True)
        if payment["status"] in ("succeeded", "pending"):
            try:
                settled = ctx.wait_signal("settled", timeout=CANCEL_GRACE)
            except SignalTimeout:
                settled = {"outcome": "expired"}
        if settled["outcome"] in ("expired", "cancel"):
            return ctx.step(
                "end_unpaid_checkout",
                partial(
                    end_unpaid_checkout,
                    order_id=order["order_id"],
                    reservation=reservation,
                    cancelled_by_buyer=settled["outcome"] == "cancel",
                ),
            )
    return {"outcome": settled["outcome"], "order_id": order["order_id"]}


# --- the entry point ------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckoutStarted:
    order_code: str
    order_id: int
    payment_url: str
    expires_at: datetime | None
    total_cents: int
    currency: str
    run_id: int


class CheckoutFailed(DomainError):
    """A domain error raised inside the run, handed back to the caller."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message") or None, detail=error.get("detail"))
        self.code = str(error.get("code") or "checkout_failed")
        self.status = int(error.get("status") or 409)


def checkout_begin(
    *,
    event_id: int,
    buyer_name: str,
    buyer_email: str,
    tickets: list[dict[str, Any]] | None = None,
    seat_ids: list[Any] | None = None,
    donation_cents: Any = 0,
    provider: str = "sandbox",
    return_url: str | None = None,
) -> WorkflowRun:
    """Validate and price the cart and start the checkout run (not yet
    advanced). Raises the domain error of the first problem; then nothing
    was written."""
    now = timezone.now()
    name, email = buyer_clean(name=buyer_name, email=buyer_email)
    cart: PricedCart = cart_price(
        event_id=event_id, tickets=tickets or [], seat_ids=seat_ids or [], donation_cents=donation_cents, now=now
    )
    code = new_public_code()
    expires_at = now + timedelta(minutes=settings.CHECKOUT_HOLD_MINUTES)
    return start(
        WORKFLOW,
        f"order:{code}",
        {
            "order_code": code,
            "buyer_name": name,
            "buyer_email": email,
            "cart": cart.as_json(),
            "expires_at": expires_at.isoformat(),
            "provider": provider,
            "return_url": return_url or f"{settings.SITE_URL}/orders/{code}/",
        },
        organization=cart.organization_id,
    )


def start_checkout(**request: Any) -> CheckoutStarted:
    """StartCheckout in this request, up to the payment page (see
    checkout_begin for the arguments). Raises the domain error that stopped
    it; in that case everything it did has been undone."""
    run = checkout_begin(**request)
    # Advance here (the buyer waits for the payment page). A worker may have
    # picked up the run's queued advance first: then wait for its pass (with
    # eager Celery that advance already ran inline, at the start's commit).
    if not advance(run.pk) and not current_app.conf.task_always_eager:
        _wait_for_pass(run_id=run.pk)
    return checkout_outcome(run_id=run.pk)


def _wait_for_pass(*, run_id: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if WorkflowRun.objects.filter(pk=run_id, lease_owner="").exclude(status=RunStatus.PENDING).exists():
            return
        time.sleep(0.01)


def checkout_outcome(*, run_id: int) -> CheckoutStarted:
    run = WorkflowRun.objects.get(pk=run_id)
    steps = {s.name: s for s in WorkflowStep.objects.filter(run_id=run_id)}
    order_step = steps.get("create_order")
    session_step = steps.get("create_payment_session")
    if session_step is not None and session_step.status == StepStatus.COMPLETED and order_step is not None:
        result: dict[str, Any] = session_step.result or {}
        order = Order.objects.get(pk=(order_step.result or {})["order_id"])
        return CheckoutStarted(
            order_code=order.code,
            order_id=order.pk,
            payment_url=result["payment_url"],
            expires_at=order.expires_at,
            total_cents=order.total_cents,
            currency=order.currency,
            run_id=run_id,
        )
    if run.status == RunStatus.COMPLETED and order_step is not None:
        order = Order.objects.get(pk=(order_step.result or {})["order_id"])  # a free order, already complete
        return CheckoutStarted(order.code, order.pk, "", order.expires_at, 0, order.currency, run_id)
    failed = [s for s in steps.values() if s.status == StepStatus.FAILED and s.kind == "action"]
    if failed and (failed[0].error or {}).get("code") == Busy.code:
        raise Busy(detail={"order": run.input.get("order_code")})
    if failed:
        raise CheckoutFailed(failed[0].error or {})
    if run.is_finished:
        raise CheckoutFailed(run.error or {"code": "checkout_failed", "message": "Checkout failed."})
    # Still retrying (locks busy under a rush): give the buyer a clear "try
    # again" now rather than a payment page later; the run undoes itself.
    cancel(run, reason="start phase did not finish in the request")
    raise Busy(detail={"order": run.input.get("order_code")})
