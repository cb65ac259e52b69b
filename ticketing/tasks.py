"""Celery interfaces of the ticketing domain: take ids, call one service."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings

from ticketing.services.capacity import capacity_expire_all


@shared_task(name="ticketing.tasks.expire_capacity_holds", acks_late=True)
def expire_capacity_holds() -> int:
    """Return lapsed general-admission holds to the pool. Reservations do this
    lazily too, so a late or missing run of this task never blocks a sale."""
    return capacity_expire_all(grace=timedelta(seconds=settings.HOLD_SWEEP_GRACE_SECONDS))
