"""What the payments domain tells the rest of the platform.

The workflows layer subscribes to these to drive checkout and refunds; payments
never imports workflows. Every signal is sent with `sender` = the model class,
only after the transaction that changed the row has committed (so a receiver
always sees the committed state), and only when the row actually changed state:
a replayed webhook or a repeated call sends nothing.

After-commit signals are not durable (a crash right after commit loses them), so
receivers that must not miss one also sweep the table, e.g. with
payments.selectors.payment_list_succeeded_for_unpaid_orders().

Keyword arguments:
  payment_succeeded / payment_failed / payment_cancelled / payment_pending:
    payment_id, order_id, order_code, organization_id, session_id, provider,
    amount_cents, currency, status; payment_failed adds failure_code.
  refund_succeeded / refund_failed:
    refund_id, payment_id, order_id, organization_id, provider, amount_cents,
    currency, payment_status (after the refund), refunded_cents (total so far).
  dispute_changed (a dispute was opened, won or lost):
    dispute_id, payment_id, order_id, organization_id, provider, status
    (open, won, lost), amount_cents, fee_cents, currency.

One exception: payout_result. Payouts belong to finance, so payments cannot
apply a payout webhook itself; it sends payout_result INSIDE the transaction
that records the webhook event, so the receiver's change (the payout's state,
its ledger entries, the InitiatePayout run's signal) commits with the event
row, exactly once, or not at all (a failing receiver fails the delivery,
which the provider retries). Receivers return a PayoutResultHandled for a
payout they know, None otherwise; an event no receiver knows is rejected.
  payout_result:
    provider, provider_payout_id, payout_reference, status ("paid" or
    "failed"), failure_code, amount_cents, currency, provider_event_id.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.dispatch import Signal

logger = logging.getLogger(__name__)

payment_pending = Signal()
payment_succeeded = Signal()
payment_failed = Signal()
payment_cancelled = Signal()
refund_succeeded = Signal()
refund_failed = Signal()
dispute_changed = Signal()
payout_result = Signal()


@dataclass(frozen=True)
class PayoutResultHandled:
    """A payout_result receiver's answer: whose payout it was, and whether
    the event changed anything (False for an outcome already recorded)."""

    organization_id: int
    changed: bool


def send_after_commit(signal: Signal, *, sender: type, **kwargs: Any) -> None:
    """The one way payments emits its signals: after the current transaction
    commits (at once when there is none), to every receiver, even if one
    fails; a failing receiver is logged and never undoes the committed change."""

    def send() -> None:
        for receiver, result in signal.send_robust(sender=sender, **kwargs):
            if isinstance(result, Exception):
                logger.error("payments signal receiver %r failed", receiver, exc_info=result)

    transaction.on_commit(send)
