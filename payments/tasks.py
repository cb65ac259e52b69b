"""Celery interfaces of the payments domain: take ids, call one function,
own their retries. Every task is idempotent, so a duplicate or retried message
is harmless (acks_late)."""

from __future__ import annotations

from celery import current_app, shared_task
from django.utils import timezone

from payments.sandbox.webhooks import DELIVERY_LEASE_SECONDS, sandbox_webhook_deliver, sandbox_webhooks_deliver_due

# A retry scheduled through the broker is kept short; longer backoffs are left
# to the database row and the sweeper (a Redis broker re-delivers long ETAs).
MAX_COUNTDOWN_SECONDS = 300


@shared_task(name="payments.tasks.deliver_sandbox_webhook", acks_late=True)
def deliver_sandbox_webhook(webhook_id: int) -> int | None:
    """Deliver one sandbox webhook if it is due; schedule a short retry on
    failure. Returns the HTTP status our endpoint answered, or None if there
    was nothing to do (delivered already, not due, or claimed elsewhere).

    Recording a webhook no longer sends this message: a due-now webhook is
    delivered in the recording process right after commit
    (payments.sandbox.webhooks). The task stays for messages already queued
    and for whoever wants one delivery done by a worker."""
    result = sandbox_webhook_deliver(webhook_id=webhook_id)
    if result is None:
        return None
    if not result.delivered and result.next_attempt_at is not None and not current_app.conf.task_always_eager:
        # Eager mode would run the retry inline at once; there the sweeper or
        # `manage.py sandbox_deliver_webhooks` picks the row up instead.
        countdown = max(int((result.next_attempt_at - timezone.now()).total_seconds()), 1)
        if countdown <= MAX_COUNTDOWN_SECONDS:
            deliver_sandbox_webhook.apply_async(args=[webhook_id], countdown=countdown + 1)
    return result.status_code


@shared_task(
    name="payments.tasks.deliver_due_sandbox_webhooks",
    acks_late=True,
    soft_time_limit=DELIVERY_LEASE_SECONDS * 5,
)
def deliver_due_sandbox_webhooks() -> int:
    """The sweeper (Celery beat): settle due delayed confirmations and deliver
    every due webhook, including retries. Returns how many were delivered."""
    return sum(1 for result in sandbox_webhooks_deliver_due() if result.delivered)
