"""Celery interfaces of the ticketing domain: take ids, call one service."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import shared_task
from django.conf import settings

from ticketing.services.capacity import capacity_expire_all
from ticketing.services.email_bell import email_bell_ring
from ticketing.services.emails import (
    email_deliveries_drain,
    email_deliveries_due,
    email_delivery_give_up,
    email_delivery_send,
)

logger = logging.getLogger(__name__)


@shared_task(name="ticketing.tasks.expire_capacity_holds", acks_late=True)
def expire_capacity_holds() -> int:
    """Return lapsed general-admission holds to the pool. Reservations do this
    lazily too, so a late or missing run of this task never blocks a sale."""
    return capacity_expire_all(grace=timedelta(seconds=settings.HOLD_SWEEP_GRACE_SECONDS))


@shared_task(
    name="ticketing.tasks.send_email_delivery",
    bind=True,
    acks_late=True,
    max_retries=8,
)
def send_email_delivery(self: Any, delivery_id: int) -> bool:
    """Send one recorded e-mail, whatever its attempts: a retry, a resend of
    the sweeper, a message of the outbox (the fresh ones of a rush go in
    batches through send_pending_emails). Retried with exponential backoff
    on a failure of its own. Routed to the `email` queue (config/settings.py),
    whose worker may run behind the sales at a lower CPU priority."""
    try:
        return email_delivery_send(delivery_id=delivery_id, claimant=self.request.id or "")
    except Exception as exc:
        if self.request.retries >= self.max_retries:
            email_delivery_give_up(delivery_id=delivery_id, error=str(exc))
            raise
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc


@shared_task(
    name="ticketing.tasks.send_pending_emails",
    bind=True,
    acks_late=True,
    max_retries=8,
)
def send_pending_emails(self: Any) -> int:
    """The e-mail bell's drain (ticketing.services.email_bell): send the
    fresh e-mails in batches until none is left; how many it sent. Routed to
    the `email` queue. A delivery whose send failed gets a message of its
    own, retried with backoff; a drain that stopped early (its cap of
    batches, a failure) rings the bell again, or publishes itself if it
    cannot. An error of its own (the database went away) retries it with
    backoff, and its message (the same task id) takes back its claims."""
    try:
        drained = email_deliveries_drain(claimant=self.request.id or "")
    except Exception as exc:
        if self.request.retries >= self.max_retries:
            raise  # the resend sweeper sends what is left
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc
    for delivery_id in drained.failed:
        _publish_quietly(send_email_delivery, args=[delivery_id], countdown=_backoff(0))
    if drained.more and not email_bell_ring():
        _publish_quietly(send_pending_emails)
    return drained.sent


def _backoff(retries: int) -> int:
    return min(300, 5 * 2**retries)


def _publish_quietly(task: Any, *, args: list[Any] | None = None, countdown: int | None = None) -> None:
    # What is not published is left pending: the resend sweeper finds it.
    try:
        task.apply_async(args=args or [], countdown=countdown)
    except Exception:
        logger.warning("could not publish %s%r; the resend sweeper sends it", task.name, args or [], exc_info=True)


@shared_task(name="ticketing.tasks.resend_lost_email_deliveries", acks_late=True)
def resend_lost_email_deliveries() -> int:
    """Beat: deliveries whose send message was lost are queued again."""
    ids = email_deliveries_due()
    for delivery_id in ids:
        send_email_delivery.delay(delivery_id)
    return len(ids)


@shared_task(name="ticketing.tasks.purge_idempotency_keys", acks_late=True)
def purge_idempotency_keys() -> int:
    """Beat: API idempotency keys expire after 24 hours."""
    from ticketing.api.idempotency import idempotency_records_purge

    return idempotency_records_purge()


@shared_task(name="ticketing.tasks.deliver_webhook", acks_late=True)
def deliver_webhook(delivery_id: int) -> str:
    """Send one outbound webhook delivery. A failure is not raised: the
    delivery row holds its retry time (exponential backoff) and the beat task
    below sends it again then, so the timer survives worker restarts."""
    from ticketing.services.outbound_webhooks import webhook_delivery_attempt

    return webhook_delivery_attempt(delivery_id=delivery_id).status


@shared_task(name="ticketing.tasks.deliver_due_webhooks", acks_late=True)
def deliver_due_webhooks() -> int:
    """Beat: queue the webhook deliveries whose retry time has come."""
    from ticketing.services.outbound_webhooks import webhook_deliveries_due

    ids = webhook_deliveries_due()
    for delivery_id in ids:
        deliver_webhook.delay(delivery_id)
    return len(ids)
