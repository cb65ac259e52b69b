"""ProcessPayment / VerifyPayment: a verified payment drives its checkout.

The payments domain verifies and deduplicates provider webhooks (unsigned,
stale, unknown or mismatched ones are refused with 400 and change nothing)
and announces a payment that really changed to succeeded. Here that
announcement becomes a deduplicated start of the order's CompleteCheckout
run: however many times the provider confirms, one run completes the order.

The announcement is sent after commit and so could be lost in a crash; the
sweeper below finds succeeded payments of unpaid orders and starts their
runs, so no payment is ever dropped."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.dispatch import receiver

from payments.selectors import payment_list_succeeded_for_unpaid_orders
from payments.signals import payment_succeeded
from workflows.checkout.complete import complete_checkout_start

logger = logging.getLogger(__name__)


@receiver(payment_succeeded, dispatch_uid="workflows.payments.process_payment")
def on_payment_succeeded(
    sender: type,
    *,
    payment_id: int,
    order_code: str,
    organization_id: int,
    succeeded_at: datetime | None = None,
    currency: str = "",
    **kwargs: Any,
) -> None:
    complete_checkout_start(
        order_code=order_code,
        organization_id=organization_id,
        payment_id=payment_id,
        succeeded_at=succeeded_at,
        currency=currency,
    )


def complete_paid_orders(*, limit: int = 100) -> int:
    """The safety net: start CompleteCheckout for every succeeded payment
    whose order is not paid yet. Idempotent (runs are keyed by order)."""
    started = 0
    for payment in payment_list_succeeded_for_unpaid_orders(limit=limit):
        complete_checkout_start(
            order_code=payment.order.code,
            organization_id=payment.order.organization_id,
            payment_id=payment.pk,
            succeeded_at=payment.succeeded_at,
            currency=payment.currency,
        )
        started += 1
    return started
