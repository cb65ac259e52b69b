"""Celery tasks of the seating domain: thin interfaces over its services."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from seating.services.holds import seat_holds_expire
from ticketing.exceptions import Busy


@shared_task(
    name="seating.tasks.expire_seat_holds",
    acks_late=True,
    autoretry_for=(Busy,),
    retry_backoff=True,
    max_retries=3,
)
def expire_seat_holds(batch: int = 500) -> int:
    """Beat-scheduled sweeper (config.settings.CELERY_BEAT_SCHEDULE). Safe to
    run twice or concurrently: each hold is closed at most once, and busy
    holds are skipped for the next run. Sales never depend on it running."""
    # Lapsed holds whose checkout is still alive are released by that checkout
    # after it asks the payment provider; the sweeper only collects the rest.
    grace = timedelta(seconds=settings.HOLD_SWEEP_GRACE_SECONDS)
    return seat_holds_expire(now=timezone.now() - grace, batch=batch)
