"""StartCheckout: from a cart to a payment page, as one recorded saga run.

    validate and price the cart (before the run: bad input starts nothing)
    -> place the order: the pending order and its held inventory, together
    -> create the payment session
    -> return the payment URL and expiry

The run is started and advanced by the request itself (the buyer waits for
the payment page), with no round trip through a worker. Placing the order is
one local step: the order and its holds commit together or not at all, so a
sold-out or taken-seat attempt leaves nothing behind. If a later step fails
(the provider down) the engine undoes the order in reverse. No network call
is made while inventory locks are held: a payment session at a remote
provider is its own external step, after the order committed; the in-process
sandbox's session is a local step.

The run ends once the payment page is open. What happens next is other runs'
work: CompleteCheckout when the payment is confirmed, CancelCheckout when the
hold expires unpaid or the buyer gives up (workflows.checkout.cancel).
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.utils import timezone

from payments.exceptions import ProviderUnavailable
from payments.providers import get_provider
from payments.services import payment_session_create
from ticketing.exceptions import Busy, DomainError
from ticketing.models import Event, Order
from ticketing.models.order import new_public_code
from ticketing.services.orders import LineSpec, order_cancel, order_create_pending
from workflows.checkout.cancel import close_payment_session
from workflows.checkout.cart import CartRows, PricedCart, buyer_clean, cart_price
from workflows.checkout.complete import complete_order
from workflows.engine import Context, RetryPolicy, advance_claimed, cancel, start_claimed, workflow
from workflows.engine.one_transaction import run_in_one_transaction
from workflows.engine.retry import is_retryable
from workflows.models import RunStatus, StepStatus, WorkflowRun
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


# --- what the request already holds ------------------------------------------------


@dataclass
class _InMemory:
    """For the run's pass in one transaction, in the request that priced its
    cart: the rows the pricing read, and the order once placed."""

    order_code: str
    rows: CartRows
    order: Order | None = None


# Set only around that pass. The cart's rows were read moments before it, with
# no lock: read again inside it they would lock nothing and see no more (READ
# COMMITTED), and the reservation checks them again as they are. The order
# was made in that same transaction, which nobody else sees before it commits,
# so it is still as made. Any other pass (a retry, a worker) reads both.
_in_memory: ContextVar[_InMemory | None] = ContextVar("checkout_in_memory", default=None)


def _held(data: dict[str, Any]) -> _InMemory | None:
    held = _in_memory.get()
    return held if held is not None and held.order_code == data["order_code"] else None


# --- the steps ----------------------------------------------------------------------


def create_order(data: dict[str, Any]) -> dict[str, Any]:
    cart = data["cart"]
    held = _held(data)
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
        event=held.rows.event if held is not None else Event.objects.get(pk=cart["event_id"]),
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
    if held is not None:
        held.order = order
    return {"order_id": order.pk}


def void_order(result: dict[str, Any]) -> dict[str, Any]:
    order, changed = order_cancel(order_id=result["order_id"], reason="checkout could not be completed")
    return {"status": order.status, "changed": changed}


def place_order(data: dict[str, Any]) -> dict[str, Any]:
    """The pending order and its holds, in the step's one transaction. The
    ticket types' rows (the hot rows of a rush) are locked last, so each is
    held only for the end of this transaction."""
    cart = data["cart"]
    order = create_order(data)
    held = _held(data)
    reservation = reserve_inventory(
        event_id=cart["event_id"],
        order_code=data["order_code"],
        lines=cart["lines"],
        expires_at=datetime.fromisoformat(data["expires_at"]),
        seat_hold_token=data.get("seat_hold_token", ""),
        ticket_types=held.rows.ticket_types if held is not None else None,
    )
    return {**order, **reservation}


def unplace_order(result: dict[str, Any]) -> dict[str, Any]:
    """Compensation of place_order, in one transaction: the order (locked
    first: the documented lock order) and then its holds."""
    voided = void_order(result)
    return {**voided, **release_inventory(result)}


def open_payment_session(data: dict[str, Any], order_id: int, idempotency_key: str) -> dict[str, Any]:
    held = _held(data)
    if held is not None and held.order is not None and held.order.pk == order_id:
        order = held.order
    else:
        order = Order.objects.select_related("event").get(pk=order_id)
    session = payment_session_create(
        order=order,
        provider=data["provider"],
        idempotency_key=idempotency_key,
        success_url=f"{data['return_url']}?status=paid",
        cancel_url=f"{data['return_url']}?status=cancelled",
        expires_at=order.expires_at,
        # Made in this transaction or read just now: no second read of it.
        order_is_current=True,
    )
    return {"session_id": session.pk, "payment_url": session.payment_url}


def _provider_in_process(name: str) -> bool:
    return get_provider(name).in_process


# --- the saga ---------------------------------------------------------------------------


@workflow(WORKFLOW, version=2)
def checkout(ctx: Context) -> dict[str, Any]:
    data = ctx.input
    code = data["order_code"]
    order = ctx.step("place_order", partial(place_order, data), compensate=unplace_order, retry=INLINE_RETRY)
    if data["cart"]["fees"]["total_cents"] == 0:
        # Free tickets: nothing to pay, complete at once.
        ctx.step("complete_free_order", partial(complete_order, order_code=code, payment_id=None))
        return {"outcome": "paid", "order_id": order["order_id"], "payment_url": ""}
    if data.get("session_in_process"):
        session = ctx.step(
            "create_payment_session",
            partial(open_payment_session, data, order["order_id"], f"checkout:{code}:session"),
            retry=SESSION_RETRY,
            compensate=close_payment_session,
        )
    else:
        session = ctx.step(
            "create_payment_session",
            lambda key: open_payment_session(data, order["order_id"], key),
            external=True,
            retry=SESSION_RETRY,
            compensate=lambda result, key: close_payment_session(result),
        )
    return {"outcome": "awaiting_payment", "order_id": order["order_id"], "payment_url": session["payment_url"]}


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
    organization_id: int | None = None
    fees: dict[str, Any] | None = None  # the order's fee snapshot (finance.fees)
    # False: nobody subscribed to the organization's webhooks when the cart
    # was priced (order.created is then announced without a query).
    subscribed: bool = True


class CheckoutFailed(DomainError):
    """A domain error raised inside the run, handed back to the caller."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message") or None, detail=error.get("detail"))
        self.code = str(error.get("code") or "checkout_failed")
        self.status = int(error.get("status") or 409)


def checkout_input(
    *,
    event_id: int,
    buyer_name: str,
    buyer_email: str,
    tickets: list[dict[str, Any]] | None = None,
    seat_ids: list[Any] | None = None,
    donation_cents: Any = 0,
    provider: str = "sandbox",
    return_url: str | None = None,
    seat_hold_token: str = "",
    order_code: str | None = None,
) -> tuple[dict[str, Any], PricedCart]:
    """Validate and price the cart: the run's input. Raises the domain error
    of the first problem; reads only. `order_code`: the code the order will
    have (by default a new random one); a repeated request that passes the
    same code gets the same checkout."""
    now = timezone.now()
    name, email = buyer_clean(name=buyer_name, email=buyer_email)
    cart: PricedCart = cart_price(
        event_id=event_id, tickets=tickets or [], seat_ids=seat_ids or [], donation_cents=donation_cents, now=now
    )
    code = order_code or new_public_code()
    expires_at = now + timedelta(minutes=settings.CHECKOUT_HOLD_MINUTES)
    data = {
        "order_code": code,
        "buyer_name": name,
        "buyer_email": email,
        "cart": cart.as_json(),
        "expires_at": expires_at.isoformat(),
        "provider": provider,
        "session_in_process": _provider_in_process(provider),
        "return_url": return_url or f"{settings.SITE_URL}/orders/{code}/",
        "seat_hold_token": seat_hold_token,
    }
    return data, cart


def start_checkout(**request: Any) -> CheckoutStarted:
    """StartCheckout in this request, up to the payment page (see
    checkout_input for the arguments). Raises the domain error that stopped
    it; in that case everything it did has been undone."""
    data, cart = checkout_input(**request)
    key = f"order:{data['order_code']}"
    if data["session_in_process"]:
        # Every step is local: the whole start is one transaction, unless
        # something fails, which the recorded way below then does and records.
        token = _in_memory.set(_InMemory(data["order_code"], cart.rows) if cart.rows is not None else None)
        try:
            done = run_in_one_transaction(WORKFLOW, key, data, organization_id=cart.organization_id)
        finally:
            _in_memory.reset(token)
        if done is not None:
            return replace(checkout_outcome(done), subscribed=cart.rows is None or cart.rows.subscribed)
    run, lease = start_claimed(WORKFLOW, key, data, organization=cart.organization_id)
    if lease is None:
        # This checkout was started before (a repeated request with the same
        # order code): its outcome, once it has one.
        if not run.is_finished:
            raise Busy(detail={"order": data["order_code"]})
        return checkout_outcome(run)
    run = advance_claimed(run, lease)
    return checkout_outcome(run)


def checkout_exists(*, order_code: str) -> bool:
    return WorkflowRun.objects.filter(workflow_type=WORKFLOW, business_key=f"order:{order_code}").exists()


def checkout_outcome(run: WorkflowRun) -> CheckoutStarted:
    data = run.input
    if run.status == RunStatus.COMPLETED:
        output = run.output or {}
        return CheckoutStarted(
            order_code=data["order_code"],
            order_id=output["order_id"],
            payment_url=output["payment_url"],
            expires_at=datetime.fromisoformat(data["expires_at"]),
            total_cents=int(data["cart"]["fees"]["total_cents"]),
            currency=data["cart"]["currency"],
            run_id=run.pk,
            organization_id=data["cart"]["organization_id"],
            fees=data["cart"]["fees"],
        )
    failed = run.steps.filter(status=StepStatus.FAILED, kind="action").order_by("sequence").first()
    error = (failed.error if failed else None) or {}
    if error.get("code") == Busy.code:
        raise Busy(detail={"order": data.get("order_code")})
    if error:
        raise CheckoutFailed(error)
    if run.is_finished:
        raise CheckoutFailed(run.error or {"code": "checkout_failed", "message": "Checkout failed."})
    # Still retrying (locks busy under a rush): give the buyer a clear "try
    # again" now rather than a payment page later; the run undoes itself.
    cancel(run, reason="start phase did not finish in the request")
    raise Busy(detail={"order": data.get("order_code")})
