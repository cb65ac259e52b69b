"""TrackFunnelEvent: record that a buyer reached a step of the funnel.

Cheap on the hot path by design: one INSERT into an append-only table with no
foreign keys (no row locks, no reads first), outside any transaction of the
caller's business (it runs after the page's own work). Order-scoped steps are
deduplicated by a unique constraint and ON CONFLICT DO NOTHING, so a refresh or a
retried payment counts once. A failure to record is logged and swallowed:
analytics never costs a buyer a sale.

"paid" is recorded by CompleteCheckout in the transaction that marks the
order paid (`track_order_paid`), so it commits if and only if the order is
paid, counts buyers who never come back to the order page too, and costs the
payment no transaction of its own: it travels with that transaction's next
statement (ticketing.rows.deferred), and a repeat is skipped by ON CONFLICT."""

from __future__ import annotations

import logging
from contextlib import nullcontext

from django.db import DatabaseError, transaction
from django.utils import timezone

from ticketing import rows
from ticketing.models import FunnelEvent, FunnelStep

logger = logging.getLogger(__name__)


def track_funnel_event(*, step: str, event_id: int, order_code: str = "", quantity: int = 0) -> None:
    """Record one funnel step; never raises."""
    row = FunnelEvent(
        event_id=event_id, step=FunnelStep(step), order_code=order_code, quantity=quantity, created_at=timezone.now()
    )
    try:
        # Inside a transaction, a savepoint, so a failed insert cannot poison
        # it; outside, the one statement is its own transaction (no BEGIN and
        # COMMIT round trips).
        with transaction.atomic() if transaction.get_connection().in_atomic_block else nullcontext():
            rows.insert_unless_exists(row, conflict=())
    except DatabaseError:
        logger.warning("funnel event %s for event %s not recorded", step, event_id, exc_info=True)


def track_order_paid(*, event_id: int, order_code: str, tickets: int) -> None:
    """The "paid" step, in the caller's transaction (the one that pays the
    order). It cannot fail short of the database failing the transaction:
    a second "paid" for the order is skipped, and the table has no foreign keys."""
    assert transaction.get_connection().in_atomic_block, "recorded with the payment"
    row = FunnelEvent(
        event_id=event_id, step=FunnelStep.PAID, order_code=order_code, quantity=tickets, created_at=timezone.now()
    )
    rows.insert_later([row], conflict=())
