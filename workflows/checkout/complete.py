"""CompleteCheckout: a verified payment becomes a paid order with tickets.

One run per order (`checkout.complete`, key `order:<code>`), started by
ProcessPayment for every succeeded payment, however often the provider says
so. Its first step is one transaction that locks the order and then:
marks it paid -> sells the held seats and units -> issues the tickets ->
records the sale in the ledger -> records the ticket e-mail and the funnel's
"paid" step. Only after that commits: the e-mail is sent and
`order_completed` is announced.

A payment for an order whose hold already lapsed (a late payment) takes the
same units or seats again if they are still free; if not, the money is
refunded automatically, the buyer is told, and the run records it all."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import datetime
from functools import partial
from typing import Any

from django.db import transaction
from django.utils import timezone

from payments.exceptions import ProviderUnavailable
from payments.models import Payment
from payments.services import refund_create
from ticketing import rows
from ticketing.integrations import anyone_subscribed, order_paid_publish
from ticketing.locks import lock_timeout
from ticketing.models import EmailKind, Order, OrderLine, OrderStatus
from ticketing.services.orders import order_cancel, order_expire, order_mark_paid
from ticketing.signals import order_completed
from workflows.analytics.track_funnel_event import track_order_paid
from workflows.engine import Context, RetryPolicy, advance_claimed, signal, start, start_claimed, workflow
from workflows.engine.one_transaction import run_in_one_transaction
from workflows.engine.retry import is_retryable
from workflows.finance.record_sale import record_sale
from workflows.models import WorkflowRun
from workflows.seating.finalize_seats import InventoryGone, finalize_capacity_holds, finalize_seat_holds
from workflows.ticketing.issue_tickets import issue_tickets, send_buyer_email

WORKFLOW = "checkout.complete"
# The buyer has paid: completing the order is retried for hours (locks busy in
# a rush, a database restart) before it waits for staff to retry it.
NEVER_GIVE_UP = RetryPolicy(max_attempts=60, initial_delay=0.2, multiplier=2.0, max_delay=300)
# The provider's "try later" is worth retrying; its "no" is not.
PROVIDER_RETRY = RetryPolicy(
    max_attempts=8,
    initial_delay=5,
    max_delay=600,
    retry_if=lambda exc: isinstance(exc, ProviderUnavailable) or is_retryable(exc),
)
PAID_STATES = frozenset({OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED})


def complete_order(*, order_code: str, payment_id: int | None, paid: dict[str, str] | None = None) -> dict[str, Any]:
    """The CompleteCheckout transaction (the step's own). Idempotent: an order
    already paid returns at once. `paid`: the payment's `succeeded_at` (ISO
    8601) and `currency`, if the run was started with them; otherwise the
    payment is read for them."""
    with lock_timeout():
        # The order, locked, and its lines (read once the lock is granted),
        # in one round trip.
        found, lines = rows.select_together(
            rows.query(
                Order,
                '"ticketing_order"."code" = %s',
                [order_code],
                annotate={"subscribed": anyone_subscribed("ticketing_order")},
                lock=True,
            ),
            rows.query(
                OrderLine,
                '"order_id" = (SELECT "id" FROM "ticketing_order" WHERE "code" = %s) ORDER BY "id"',
                [order_code],
            ),
        )
        if not found:
            raise Order.DoesNotExist(f"no order {order_code}")
        order: Order = found[0]
        subscribed = bool(order.subscribed)  # type: ignore[attr-defined]
        if order.status in PAID_STATES:
            return {"status": "already_paid", "order_id": order.pk}
        # The money was captured whatever happens next: the sale is booked in
        # this transaction (a refund, if it comes to that, is booked against it).
        record_sale(
            order=order,
            payment_id=payment_id,
            paid=(datetime.fromisoformat(paid["succeeded_at"]), paid["currency"]) if paid else None,
        )
        late = order.status != OrderStatus.PENDING or (
            order.expires_at is not None and order.expires_at < timezone.now()
        )
        seated = any(line.seat_id for line in lines)
        # Only a late order's holds, or seats, can be gone, and then a
        # savepoint undoes the sale of the rest. An order on time (the rush)
        # takes none: its GA holds outlive it and only the sweeper, after they
        # lapse, takes them back.
        guarded = late or seated
        try:
            with transaction.atomic() if guarded else nullcontext():
                # Not paid, so never paid before (no state leads back to
                # unpaid): it has no tickets yet.
                order, _ = order_mark_paid(
                    order_id=order.pk,
                    paid_at=timezone.now(),
                    reason="late payment" if late else "payment confirmed",
                    locked=order,
                )
                seats = finalize_seat_holds(order_code=order.code) if seated else []
                tickets = issue_tickets(order=order, lines=lines, unpaid_until_now=True)
                # Integrators hear of it if and only if this commits.
                order_paid_publish(order_id=order.pk, organization_id=order.organization_id, subscribed=subscribed)
                # The funnel's "paid" step commits with the sale, in no
                # transaction of its own.
                track_order_paid(event_id=order.event_id, order_code=order.code, tickets=len(tickets))
                # GA units last: the ticket type's row lock (the hot row of a
                # rush) is then held only for the rest of this commit.
                finalize_capacity_holds(order_code=order.code)
        except InventoryGone as exc:
            if not guarded:
                # The hold lapsed between the check above and the sale: this
                # transaction rolls back whole, and the step's retry finds the
                # order late.
                raise
            return {"status": "inventory_gone", "order_id": order.pk, "detail": str(exc)}
        # (The seat map's cache is dropped by the seats' own sale.)
        transaction.on_commit(
            partial(
                order_completed.send_robust,
                sender=Order,
                order_id=order.pk,
                order_code=order.code,
                event_id=order.event_id,
                organization_id=order.organization_id,
                tickets=len(tickets),
            )
        )
        return {
            "status": "paid",
            "order_id": order.pk,
            "late": late,
            "tickets": len(tickets),
            "payment_id": payment_id,
            "seats": seats,
        }


def refund_late_payment(*, payment_id: int, idempotency_key: str) -> dict[str, Any]:
    """Refund a late payment in full through the provider (outside any
    transaction, with the step's idempotency key). The refund's ledger entries
    are booked when the refund succeeds (workflows.payments.record_refund)."""
    payment = Payment.objects.get(pk=payment_id)
    refund = refund_create(
        payment=payment,
        amount_cents=payment.amount_cents,
        idempotency_key=idempotency_key,
        reason="late payment: the tickets were sold meanwhile",
    )
    return {"refund_id": refund.pk, "status": refund.status, "amount_cents": refund.amount_cents}


def close_unpayable_order(*, order_code: str) -> dict[str, Any]:
    """The late payment could not be honoured: the order stays unpaid (cancelled)
    and the buyer is told their money is on its way back."""
    order = Order.objects.get(code=order_code)
    if order.status == OrderStatus.PENDING:
        order, _ = order_cancel(order_id=order.pk, reason="late payment refunded: tickets sold meanwhile")
    elif order.status not in (OrderStatus.CANCELLED, OrderStatus.EXPIRED):
        order, _ = order_expire(order_id=order.pk)
    send_buyer_email(order=order, kind=EmailKind.LATE_PAYMENT_REFUNDED, dedup_key=f"late-refund:{order.code}")
    return {"order_status": order.status}


def tell_checkout(*, order_code: str, outcome: str) -> dict[str, Any]:
    """(Version 1 runs only.) Let the waiting checkout run know the order is
    settled, so it ends now instead of at its hold expiry."""
    run = WorkflowRun.objects.filter(workflow_type="checkout", business_key=f"order:{order_code}").first()
    if run is None or run.is_finished:
        return {"signalled": False}
    signal(run, "settled", {"outcome": outcome}, dedup_key=f"complete:{order_code}")
    return {"signalled": True}


def _complete(ctx: Context) -> dict[str, Any]:
    order_code: str = ctx.input["order_code"]
    payment_id: int | None = ctx.input.get("payment_id")
    result = ctx.step(
        "complete_order",
        partial(complete_order, order_code=order_code, payment_id=payment_id, paid=ctx.input.get("paid")),
        retry=NEVER_GIVE_UP,
    )
    if result["status"] == "inventory_gone" and payment_id is not None:
        ctx.step(
            "refund_late_payment",
            lambda key: refund_late_payment(payment_id=payment_id, idempotency_key=key),
            external=True,
            retry=PROVIDER_RETRY,
        )
        ctx.step("tell_buyer_refunded", partial(close_unpayable_order, order_code=order_code))
    return result


@workflow(WORKFLOW, version=2)
def complete_checkout(ctx: Context) -> dict[str, Any]:
    return _complete(ctx)


@workflow(WORKFLOW, version=1)
def complete_checkout_v1(ctx: Context) -> dict[str, Any]:
    """Version 1 also signalled StartCheckout version 1, which waited for it."""
    result = _complete(ctx)
    ctx.step("tell_checkout", partial(tell_checkout, order_code=ctx.input["order_code"], outcome=result["status"]))
    return result


def complete_checkout_start(
    *,
    order_code: str,
    organization_id: int,
    payment_id: int | None,
    succeeded_at: datetime | None = None,
    currency: str = "",
) -> WorkflowRun:
    """Start (idempotently) the CompleteCheckout run of an order. Many
    confirmations of one payment, or a sweeper finding it again, start one run.
    `succeeded_at` and `currency`: the payment's, when the caller has them
    (the run then does not read the payment for its sale).

    Outside a transaction (a webhook after its commit, the sweeper) the run is
    advanced right here: the order is paid with its tickets before the
    provider gets its answer, with no round trip through a worker. Inside one,
    the run starts with the caller's commit and a worker advances it."""
    key = f"order:{order_code}"
    data: dict[str, Any] = {"order_code": order_code, "payment_id": payment_id}
    if succeeded_at is not None and currency:
        data["paid"] = {"succeeded_at": succeeded_at.isoformat(), "currency": currency}
    if transaction.get_connection().in_atomic_block:
        return start(WORKFLOW, key, data, organization=organization_id)
    done = run_in_one_transaction(WORKFLOW, key, data, organization_id=organization_id)
    if done is not None:
        return done
    run, lease = start_claimed(WORKFLOW, key, data, organization=organization_id)
    return run if lease is None else advance_claimed(run, lease)
