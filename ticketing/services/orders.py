"""Orders: create pending, mark paid, expire, cancel, mark refunded.

Each state change locks the order row, re-checks its state (returning early
when the change is already done, so retried workflow steps are harmless),
applies the transition (which writes the audit row) and saves."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django_fsm import TransitionNotAllowed

from ticketing import rows
from ticketing.exceptions import InvalidState, NotFound
from ticketing.locks import lock_timeout
from ticketing.models import Event, Order, OrderLine, OrderStatus

# What a transition may change (the state machine's methods set nothing else).
_TRANSITION_FIELDS = ("status", "paid_at", "updated_at")


@dataclass(frozen=True)
class LineSpec:
    ticket_type_id: int
    quantity: int
    unit_price_cents: int
    seat_id: int | None = None


def order_create_pending(
    *,
    event: Event,
    buyer_name: str,
    buyer_email: str,
    lines: Sequence[LineSpec],
    subtotal_cents: int,
    fees_cents: int,
    donation_cents: int,
    fee_snapshot: dict[str, Any],
    expires_at: datetime,
    code: str | None = None,
) -> Order:
    """A pending order and its lines (one INSERT for all lines). Amounts come
    from the fee calculation; the database checks that they add up."""
    # No savepoint inside a caller's transaction: a failure here fails it too.
    with transaction.atomic(savepoint=False):
        order = Order(
            organization_id=event.organization_id,
            event=event,
            buyer_name=buyer_name,
            buyer_email=buyer_email,
            currency=event.currency,
            subtotal_cents=subtotal_cents,
            fees_cents=fees_cents,
            donation_cents=donation_cents,
            total_cents=subtotal_cents + fees_cents + donation_cents,
            fee_snapshot=fee_snapshot,
            expires_at=expires_at,
        )
        if code:
            order.code = code
        rows.insert([order])
        # Nobody refers to the lines in this transaction: they may travel with
        # its next statement (ticketing.rows.deferred).
        rows.insert_later(
            [
                OrderLine(
                    organization_id=event.organization_id,
                    order=order,
                    ticket_type_id=line.ticket_type_id,
                    quantity=line.quantity,
                    unit_price_cents=line.unit_price_cents,
                    seat_id=line.seat_id,
                )
                for line in lines
            ]
        )
        return order


def _transition(
    *, order_id: int, done: frozenset[str], apply: Callable[[Order], None], verb: str, locked: Order | None = None
) -> tuple[Order, bool]:
    """Lock, return early if the order is already in one of `done`, else apply
    and save. Returns (order, changed). `locked`: the order, already locked by
    the caller in this transaction (not read again). No savepoint inside a
    caller's transaction: a failure here fails it too."""
    # The refusals are raised after the block, which then wrote nothing, so a
    # caller may go on after catching one.
    refusal: InvalidState | None = None
    changed = False
    with transaction.atomic(savepoint=False), lock_timeout():
        order = locked if locked is not None else rows.select_one(Order, "id = %s", [order_id], lock=True)
        if order is not None and order.status not in done:
            try:
                apply(order)
            except TransitionNotAllowed:
                refusal = InvalidState(
                    f"An order that is {order.get_status_display().lower()} cannot be {verb}.",
                    detail={"order": order.code, "status": order.status},
                )
            else:
                # Locked above: the UPDATE cannot miss, and may travel with
                # the next statement (ticketing.rows.deferred).
                rows.save_fields_later(order, _TRANSITION_FIELDS)
                changed = True
    if order is None:
        raise NotFound("This order does not exist.")
    if refusal is not None:
        raise refusal
    return order, changed


def order_mark_paid(
    *, order_id: int, paid_at: datetime, by: Any = None, reason: str = "", locked: Order | None = None
) -> tuple[Order, bool]:
    return _transition(
        order_id=order_id,
        done=frozenset({OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED}),
        apply=lambda o: o.mark_paid(paid_at=paid_at, by=by, reason=reason),
        verb="paid",
        locked=locked,
    )


def order_expire(*, order_id: int, reason: str = "hold expired") -> tuple[Order, bool]:
    return _transition(
        order_id=order_id,
        done=frozenset({OrderStatus.EXPIRED, OrderStatus.CANCELLED}),
        apply=lambda o: o.expire(reason=reason),
        verb="expired",
    )


def order_cancel(*, order_id: int, by: Any = None, reason: str = "") -> tuple[Order, bool]:
    return _transition(
        order_id=order_id,
        done=frozenset({OrderStatus.CANCELLED, OrderStatus.EXPIRED}),
        apply=lambda o: o.cancel(by=by, reason=reason),
        verb="cancelled",
    )


def order_mark_refunded(*, order_id: int, full: bool, by: Any = None, reason: str = "") -> tuple[Order, bool]:
    """After a refund: the order is refunded (`full`: nothing is left to refund)
    or partially refunded. A partial refund of a partially refunded order is a
    change of amount, not of state (no audit row). Raises InvalidState for an
    order that was never paid."""
    if full:
        return _transition(
            order_id=order_id,
            done=frozenset({OrderStatus.REFUNDED}),
            apply=lambda o: o.refund(by=by, reason=reason),
            verb="refunded",
        )
    return _transition(
        order_id=order_id,
        done=frozenset(),
        apply=lambda o: o.refund_partially(by=by, reason=reason),
        verb="partially refunded",
    )
