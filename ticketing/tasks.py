"""Celery interfaces of the ticketing domain: take ids, call one service."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import shared_task
from django.conf import settings

from ticketing.services.capacity import capacity_expire_all
from ticketing.services.emails import email_deliveries_due, email_delivery_give_up, email_delivery_send


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
    """Send one recorded e-mail, and the fresh ones recorded just after it
    (a batch: see email_delivery_send); retried with exponential backoff on
    a failure of its own. Routed to the `email` queue (config/settings.py),
    whose worker may run behind the sales at a lower CPU priority: then one
    message sends a batch and the next messages find theirs sent."""
    try:
        return email_delivery_send(delivery_id=delivery_id, claimant=self.request.id or "")
    except Exception as exc:
        if self.request.retries >= self.max_retries:
            email_delivery_give_up(delivery_id=delivery_id, error=str(exc))
            raise
        raise self.retry(exc=exc, countdown=min(300, 5 * 2**self.request.retries)) from exc


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
