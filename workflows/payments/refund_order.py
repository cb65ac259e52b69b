"""RefundOrder: money back for a whole order or some of its tickets.

    validate (order paid; tickets in the order, valid, not being refunded by
    another run; the amount) -> refund through the provider (external step,
    its idempotency key is the step's) -> [wait for the provider if it
    confirms later] -> one transaction: tickets refunded (generation bumped,
    so their old QR codes fail), seats or units back on sale, the order
    refunded or partially refunded, the buyer's e-mail recorded.

One run per order and ticket set (`refund:<order>:<ids|all>`): asking twice
gives the same run. The journal entries are not booked here: every succeeded
refund is booked by workflows.finance.record_refund on `refund_succeeded`,
whether the provider said so at once or by a later webhook.

Refunded never exceeds captured: payments.services.refund_create reserves
the amount under the payment's row lock with a conditional UPDATE. On top of
that, validation runs under the order's row lock and refuses tickets that an
unfinished refund run of the same order has claimed, so two requests cannot
refund one ticket twice even when the money would allow it.

No network call is made while a lock is held: validation and the final
transaction are local steps; the provider is called in between, outside any
transaction.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from functools import partial
from typing import Any

from django.db import transaction
from django.dispatch import receiver

from finance.fees import allocate
from payments.exceptions import ProviderUnavailable
from payments.models import Payment, PaymentStatus, Refund, RefundStatus
from payments.services import refund_create
from payments.signals import refund_failed, refund_succeeded
from seating.services.holds import seat_return
from ticketing.exceptions import (
    Busy,
    DomainError,
    InvalidInput,
    NotFound,
    NothingToRefund,
    OrderNotPaid,
    RefundInProgress,
    TicketAlreadyRefunded,
    TicketNotInOrder,
    TicketNotValid,
)
from ticketing.integrations import event_publish_if_wanted, order_payload
from ticketing.locks import lock_timeout
from ticketing.models import EmailKind, Order, OrderStatus, Ticket, TicketKind, TicketStatus
from ticketing.services.capacity import capacity_return
from ticketing.services.orders import order_mark_refunded
from ticketing.services.tickets import ticket_mark_refunded
from workflows.actors import actor_from, actor_ref
from workflows.engine import Context, RetryPolicy, advance, signal, start, workflow
from workflows.engine.retry import is_retryable
from workflows.exceptions import SignalTimeout
from workflows.models import ACTIVE_STATUSES, RunStatus, StepStatus, WorkflowRun, WorkflowStep
from workflows.ticketing.issue_tickets import send_buyer_email

WORKFLOW = "payments.refund_order"
REFUNDABLE_ORDER_STATES = frozenset({OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED})
# The payment that can be refunded: the one that was captured for the order.
CAPTURED_PAYMENT_STATES = (PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED)
# Validation waits for the caller: a lock timeout is retried at once, then
# reported as "busy, try again".
INLINE_RETRY = RetryPolicy(max_attempts=3, initial_delay=0)
# The provider's "try later" is retried with backoff (same idempotency key);
# its "no" (and our own domain errors, e.g. nothing left to refund) is final.
PROVIDER_RETRY = RetryPolicy(
    max_attempts=8,
    initial_delay=5,
    max_delay=600,
    retry_if=lambda exc: isinstance(exc, ProviderUnavailable) or is_retryable(exc),
)
# The money has gone back: the tickets and the order must follow, however
# long the locks are busy, before it waits for staff.
NEVER_GIVE_UP = RetryPolicy(max_attempts=60, initial_delay=0.2, multiplier=2.0, max_delay=300)
# A refund the provider confirms later is announced by its webhook (a signal
# to the run); should that announcement be lost, the run looks again this often.
REFUND_CHECK_INTERVAL = timedelta(hours=6)


class RefundDeclined(DomainError):
    code = "refund_declined"
    message = "The payment provider declined the refund."
    status = 409


class RefundFailed(DomainError):
    """A domain error raised inside the run, handed back to the caller."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message") or None, detail=error.get("detail"))
        self.code = str(error.get("code") or "refund_failed")
        self.status = int(error.get("status") or 409)


def refund_business_key(*, order_code: str, ticket_ids: list[int] | None) -> str:
    ids = "all" if ticket_ids is None else ",".join(str(i) for i in sorted(set(ticket_ids)))
    return f"refund:{order_code}:{ids}"


# --- amounts ------------------------------------------------------------------------------


def ticket_refund_shares(*, order: Order, tickets: list[Ticket]) -> dict[int, int]:
    """What each of the order's tickets paid, fees and donation share
    included, from the order's fee snapshot: each snapshot line's charged
    amount split evenly over its tickets (largest remainder, in ticket id
    order), so the shares of all tickets add up to the order's total."""
    lines: dict[str, list[int]] = defaultdict(list)
    for line in order.fee_snapshot.get("lines") or []:
        lines[str(line["key"])].extend(allocate(int(line["charged_cents"]), [1] * int(line["quantity"])))
    by_type: dict[str, list[Ticket]] = defaultdict(list)
    for ticket in sorted(tickets, key=lambda t: t.pk):
        by_type[str(ticket.ticket_type_id)].append(ticket)
    if lines and all(len(lines[key]) == len(group) for key, group in by_type.items()) and len(lines) == len(by_type):
        return {t.pk: amount for key, group in by_type.items() for t, amount in zip(group, lines[key], strict=True)}
    # No usable snapshot (an order from before fee snapshots): split the
    # total by the tickets' prices.
    ordered = sorted(tickets, key=lambda t: t.pk)
    prices = [t.order_line.unit_price_cents for t in ordered]
    return dict(zip([t.pk for t in ordered], allocate(order.total_cents, prices), strict=True))


def _claimed_by_other_runs(*, order_code: str, run_id: int) -> set[int]:
    """Tickets that unfinished refund runs of this order validated (claimed)."""
    others = WorkflowRun.objects.filter(
        workflow_type=WORKFLOW, business_key__startswith=f"refund:{order_code}:", status__in=ACTIVE_STATUSES
    ).exclude(pk=run_id)
    claimed: set[int] = set()
    for result in WorkflowStep.objects.filter(run__in=others, name="validate", status=StepStatus.COMPLETED).values_list(
        "result", flat=True
    ):
        claimed.update((result or {}).get("ticket_ids", []))
    return claimed


# --- the steps ---------------------------------------------------------------------------


def validate_refund(*, run_id: int, order_code: str, ticket_ids: list[int] | None) -> dict[str, Any]:
    """Under the order's row lock: what to refund and how much. A local step,
    so its result (the claim on the tickets) commits with the lock released."""
    with lock_timeout():
        order = Order.objects.select_for_update().filter(code=order_code).first()
        if order is None:
            raise NotFound("This order does not exist.", detail={"order": order_code})
        if order.status not in REFUNDABLE_ORDER_STATES:
            raise OrderNotPaid(detail={"order": order.code, "status": order.status})
        payment = (
            Payment.objects.filter(order_id=order.pk, status__in=CAPTURED_PAYMENT_STATES)
            .order_by("succeeded_at", "pk")
            .first()
        )
        tickets = list(Ticket.objects.filter(order_id=order.pk).select_related("order_line"))
        by_id = {t.pk: t for t in tickets}
        claimed = _claimed_by_other_runs(order_code=order.code, run_id=run_id)
        if ticket_ids is None:
            chosen = [t for t in tickets if t.status == TicketStatus.VALID]
            if claimed & {t.pk for t in chosen}:
                raise RefundInProgress(detail={"order": order.code, "ticket_ids": sorted(claimed)})
            amount = payment.refundable_cents if payment else 0
        else:
            foreign = sorted(set(ticket_ids) - set(by_id))
            if foreign:
                raise TicketNotInOrder(detail={"order": order.code, "ticket_ids": foreign})
            chosen = [by_id[i] for i in sorted(set(ticket_ids))]
            refunded = [t.pk for t in chosen if t.status == TicketStatus.REFUNDED]
            if refunded:
                raise TicketAlreadyRefunded(detail={"ticket_ids": refunded})
            invalid = [t.pk for t in chosen if t.status != TicketStatus.VALID]
            if invalid:
                raise TicketNotValid(detail={"ticket_ids": invalid})
            busy = sorted(claimed & set(ticket_ids))
            if busy:
                raise RefundInProgress(detail={"order": order.code, "ticket_ids": busy})
            shares = ticket_refund_shares(order=order, tickets=tickets)
            amount = sum(shares[t.pk] for t in chosen)
        if payment is None or amount <= 0:
            raise NothingToRefund(detail={"order": order.code})
        return {
            "order_id": order.pk,
            "payment_id": payment.pk,
            "ticket_ids": [t.pk for t in chosen],
            "amount_cents": amount,
        }


def refund_payment(*, claim: dict[str, Any], reason: str, by: Any, idempotency_key: str) -> dict[str, Any]:
    """Outside any transaction, with the step's idempotency key: a retry after
    a timeout resumes the same refund, and the provider pays it once."""
    payment = Payment.objects.get(pk=claim["payment_id"])
    refund = refund_create(
        payment=payment,
        amount_cents=claim["amount_cents"],
        idempotency_key=idempotency_key,
        reason=reason or "refund requested",
        by=actor_from(by),
    )
    return {"refund_id": refund.pk, "status": refund.status, "amount_cents": refund.amount_cents}


def refund_state(*, refund_id: int) -> dict[str, Any]:
    return {"status": Refund.objects.values_list("status", flat=True).get(pk=refund_id)}


def settle_refunded_order(*, claim: dict[str, Any], refund: dict[str, Any], by: Any, reason: str) -> dict[str, Any]:
    """One transaction (the step's): the refund's consequences for the order.

    Locks, in this order: the order; each ticket (by id); the freed seats (by
    id); each ticket type (by id), last, as CompleteCheckout does, so the hot
    counter row is held only for the end of the commit. A seat or unit comes
    back only for a ticket this transaction moved to refunded, so a retry
    never returns one twice."""
    assert transaction.get_connection().in_atomic_block, "one local step: one transaction"
    actor = actor_from(by)
    why = reason or f"refund {refund['refund_id']}"
    with lock_timeout():
        order = Order.objects.select_for_update().get(pk=claim["order_id"])
        refunded: list[Ticket] = []
        skipped: list[int] = []
        for ticket_id in sorted(claim["ticket_ids"]):
            try:
                ticket, changed = ticket_mark_refunded(ticket_id=ticket_id, by=actor, reason=why)
            except (TicketNotValid, TicketAlreadyRefunded):
                # Revoked by staff after validation: the money went back all
                # the same; its seat or unit stays out of sale, as for a revocation.
                skipped.append(ticket_id)
                continue
            if changed:
                refunded.append(ticket)
        seats = seat_return(seat_ids=[t.seat_id for t in refunded if t.seat_id is not None], by=actor, reason=why)
        units: dict[int, int] = defaultdict(int)
        kinds = dict(Ticket.objects.filter(pk__in=[t.pk for t in refunded]).values_list("pk", "ticket_type__kind"))
        for ticket in refunded:
            if ticket.seat_id is None and kinds[ticket.pk] == TicketKind.GENERAL_ADMISSION:
                units[ticket.ticket_type_id] += 1
        for ticket_type_id in sorted(units):
            capacity_return(ticket_type_id=ticket_type_id, quantity=units[ticket_type_id])
        payment = Payment.objects.get(pk=claim["payment_id"])
        if order.status != OrderStatus.REFUNDED:
            order, _ = order_mark_refunded(
                order_id=order.pk, full=payment.refunded_cents >= payment.captured_cents, by=actor, reason=why
            )
        send_buyer_email(
            order=order,
            kind=EmailKind.REFUND,
            dedup_key=f"refund:{refund['refund_id']}",
            context={"amount_cents": refund["amount_cents"]},
        )
        event_publish_if_wanted(
            organization_id=order.organization_id,
            event_type="order.refunded",
            payload={
                **order_payload(order),
                "refund": {"id": refund["refund_id"], "amount_cents": refund["amount_cents"]},
                "tickets": [t.pk for t in refunded],
            },
        )
        return {
            "tickets": [t.pk for t in refunded],
            "skipped": skipped,
            "seats": seats,
            "order_status": order.status,
        }


# --- the saga -----------------------------------------------------------------------------


@workflow(WORKFLOW, version=1)
def refund_order_flow(ctx: Context) -> dict[str, Any]:
    data = ctx.input
    claim = ctx.step(
        "validate",
        partial(validate_refund, run_id=ctx.run.pk, order_code=data["order_code"], ticket_ids=data["ticket_ids"]),
        retry=INLINE_RETRY,
    )
    refund = ctx.step(
        "refund",
        lambda key: refund_payment(claim=claim, reason=data["reason"], by=data["by"], idempotency_key=key),
        external=True,
        retry=PROVIDER_RETRY,
    )
    status = refund["status"]
    while status == RefundStatus.PENDING:
        # The provider confirms later: its webhook signals us (on_refund_settled).
        try:
            ctx.wait_signal("refund_settled", timeout=REFUND_CHECK_INTERVAL)
        except SignalTimeout:
            pass
        status = ctx.step("check_refund", partial(refund_state, refund_id=refund["refund_id"]))["status"]
    if status != RefundStatus.SUCCEEDED:
        raise RefundDeclined(detail={"refund": refund["refund_id"], "order": data["order_code"]})
    settled = ctx.step(
        "settle_order",
        partial(settle_refunded_order, claim=claim, refund=refund, by=data["by"], reason=data["reason"]),
        retry=NEVER_GIVE_UP,
    )
    return {
        "refund_id": refund["refund_id"],
        "amount_cents": refund["amount_cents"],
        "tickets": settled["tickets"],
        "order_status": settled["order_status"],
    }


@receiver([refund_succeeded, refund_failed], dispatch_uid="workflows.payments.refund_order")
def on_refund_settled(sender: type, *, refund_id: int, **kwargs: Any) -> None:
    """A refund the provider confirmed (or declined) later: wake the refund
    run that made it. The refund's idempotency key is its run's step key."""
    key = Refund.objects.filter(pk=refund_id).values_list("idempotency_key", flat=True).first()
    run_id = (
        WorkflowStep.objects.filter(idempotency_key=key, run__workflow_type=WORKFLOW)
        .values_list("run_id", flat=True)
        .first()
    )
    if run_id is not None:
        signal(run_id, "refund_settled", {"refund_id": refund_id}, dedup_key=f"refund:{refund_id}")


# --- the entry point ----------------------------------------------------------------------------


def _start(*, order: Order, key: str, input: dict[str, Any]) -> WorkflowRun:
    """The run of this business key; a run that failed (declined, nothing
    left then) is followed by a fresh attempt under `<key>#<n>`."""
    attempt = 1
    while True:
        run = start(WORKFLOW, key if attempt == 1 else f"{key}#{attempt}", input, organization=order.organization_id)
        if run.status not in (RunStatus.FAILED, RunStatus.COMPENSATED, RunStatus.CANCELLED):
            return run
        attempt += 1


def refund_order(
    *, order_code: str, ticket_ids: list[int] | None = None, by: Any = None, reason: str = ""
) -> dict[str, Any]:
    """Refund the whole order (`ticket_ids` None: whatever is left to refund)
    or the given tickets (their share of the total, fees included). Starts the
    RefundOrder run idempotently and advances it here.

    Returns {"run_id", "status", "refund_id", "amount_cents", "tickets"}:
    status "refunded" (done), "pending" (the provider confirms later; the run
    finishes on its webhook) or "processing" (the provider is unreachable;
    the run retries). Raises the domain error that stopped it (OrderNotPaid,
    TicketNotInOrder, TicketAlreadyRefunded, NothingToRefund, ...)."""
    if ticket_ids is not None and (
        not ticket_ids or any(isinstance(i, bool) or not isinstance(i, int) for i in ticket_ids)
    ):
        raise InvalidInput("Name the tickets to refund by id.", detail={"field": "ticket_ids"})
    order = Order.objects.filter(code=order_code).first()
    if order is None:
        raise NotFound("This order does not exist.", detail={"order": order_code})
    ids = None if ticket_ids is None else sorted(set(ticket_ids))
    run = _start(
        order=order,
        key=refund_business_key(order_code=order.code, ticket_ids=ids),
        input={"order_code": order.code, "ticket_ids": ids, "by": actor_ref(by), "reason": reason[:300]},
    )
    advance(run.pk)
    return refund_outcome(run_id=run.pk)


def refund_outcome(*, run_id: int) -> dict[str, Any]:
    run = WorkflowRun.objects.get(pk=run_id)
    steps = {s.name: s for s in WorkflowStep.objects.filter(run_id=run_id, kind="action").order_by("sequence")}
    refund = steps.get("refund")
    refund_result: dict[str, Any] = (refund.result or {}) if refund and refund.status == StepStatus.COMPLETED else {}
    claim = steps.get("validate")
    claimed: dict[str, Any] = (claim.result or {}) if claim and claim.status == StepStatus.COMPLETED else {}
    if run.status == RunStatus.COMPLETED:
        output: dict[str, Any] = run.output or {}
        return {
            "run_id": run.pk,
            "status": "refunded",
            "refund_id": output["refund_id"],
            "amount_cents": output["amount_cents"],
            "tickets": output["tickets"],
        }
    failed = [s for s in steps.values() if s.status == StepStatus.FAILED]
    if failed and (failed[0].error or {}).get("code") == Busy.code:
        raise Busy(detail={"order": run.input.get("order_code")})
    if failed:
        raise RefundFailed(failed[0].error or {})
    if run.is_finished:
        raise RefundFailed(run.error or {"code": "refund_failed", "message": "The refund failed."})
    pending = refund_result.get("status") == RefundStatus.PENDING
    return {
        "run_id": run.pk,
        "status": "pending" if pending else "processing",
        "refund_id": refund_result.get("refund_id"),
        "amount_cents": refund_result.get("amount_cents", claimed.get("amount_cents")),
        "tickets": claimed.get("ticket_ids", []),
    }
