"""StartCheckout version 1, kept so that runs started before version 2 finish
on their own path (released steps are never reordered or renamed).

Version 1 held the order and its inventory in two steps and then waited for
a "settled" signal until the hold expired. Version 2 (workflows.checkout.start)
ends once the payment page is open; expiry and the buyer's cancel are
CancelCheckout runs. No new run starts on this version; CompleteCheckout no
longer signals, so a version-1 run still waiting ends at its expiry: it closes
the payment session and, finding the order paid, leaves it as it is."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.utils import timezone

from workflows.checkout.cancel import CANCEL_GRACE, close_payment_session, end_unpaid_checkout
from workflows.checkout.complete import complete_order
from workflows.checkout.start import (
    INLINE_RETRY,
    SESSION_RETRY,
    WORKFLOW,
    create_order,
    open_payment_session,
    void_order,
)
from workflows.engine import Context, workflow
from workflows.exceptions import SignalTimeout
from workflows.seating.release_seats import release_inventory
from workflows.seating.reserve_seats import reserve_inventory


@workflow(WORKFLOW, version=1)
def checkout_v1(ctx: Context) -> dict[str, Any]:
    data = ctx.input
    cart = data["cart"]
    expires_at = datetime.fromisoformat(data["expires_at"])
    order = ctx.step("create_order", partial(create_order, data), compensate=void_order, retry=INLINE_RETRY)
    ctx.step(
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
        return ctx.step("complete_free_order", partial(complete_order, order_code=data["order_code"], payment_id=None))
    session = ctx.step(
        "create_payment_session",
        lambda key: open_payment_session(data, order["order_id"], key),
        external=True,
        retry=SESSION_RETRY,
        compensate=lambda result, key: close_payment_session(result),
    )
    try:
        settled = ctx.wait_signal("settled", timeout=max(expires_at - timezone.now(), timedelta(0)))
    except SignalTimeout:
        settled = {"outcome": "expired"}
    if settled["outcome"] in ("expired", "cancel"):
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
                    order_code=data["order_code"],
                    cancelled_by_buyer=settled["outcome"] == "cancel",
                ),
            )
    return {"outcome": settled["outcome"], "order_id": order["order_id"]}
