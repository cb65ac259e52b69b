"""Celery tasks of the seating domain: thin interfaces over its services."""

from __future__ import annotations

from celery import shared_task

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
    return seat_holds_expire(batch=batch)
