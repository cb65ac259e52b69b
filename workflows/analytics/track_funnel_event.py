"""TrackFunnelEvent: record that a buyer reached a step of the funnel.

Cheap on the hot path by design: one INSERT into an append-only table with no
foreign keys (no row locks, no reads first), outside any transaction of the
caller's business (it runs after the page's own work). Order-scoped steps are
deduplicated by a unique constraint and ON CONFLICT DO NOTHING, so a refresh or a
retried payment counts once. A failure to record is logged and swallowed:
analytics never costs a buyer a sale.

"paid" is recorded from ticketing's `order_completed` signal, which
CompleteCheckout sends after commit, so it counts buyers who never come back
to the order page too."""

from __future__ import annotations

import logging
from contextlib import nullcontext
from typing import Any

from django.db import DatabaseError, transaction
from django.dispatch import receiver
from django.utils import timezone

from ticketing.inserts import insert_unless_exists
from ticketing.models import FunnelEvent, FunnelStep
from ticketing.signals import order_completed

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
            insert_unless_exists(row, conflict=())
    except DatabaseError:
        logger.warning("funnel event %s for event %s not recorded", step, event_id, exc_info=True)


@receiver(order_completed, dispatch_uid="analytics.funnel.paid")
def _order_paid(sender: Any, *, order_code: str, event_id: int, tickets: int = 0, **kwargs: Any) -> None:
    track_funnel_event(step=FunnelStep.PAID, event_id=event_id, order_code=order_code, quantity=tickets)
