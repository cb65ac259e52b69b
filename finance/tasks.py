"""Celery interfaces of finance: the daily runs scheduled in
config.settings.CELERY_BEAT_SCHEDULE, the same code as the manage.py
commands. Idempotent, so a retried or duplicated message is harmless."""

from __future__ import annotations

import logging

from celery import shared_task
from django.utils import timezone

from finance.services.runs import payouts_run, settlements_run

logger = logging.getLogger(__name__)


@shared_task(name="finance.tasks.run_settlements", acks_late=True, ignore_result=True)
def run_settlements() -> int:
    rows = list(settlements_run(as_of=timezone.now()))
    for row in rows:
        if row.outcome == "error":
            logger.error("settlement failed: %s: %s", row.subject, row.detail)
    return sum(1 for row in rows if row.outcome in ("settled", "released"))


@shared_task(name="finance.tasks.run_payouts", acks_late=True, ignore_result=True)
def run_payouts() -> int:
    from workflows.finance.initiate_payout import payout_send  # the workflow calls the provider

    rows = list(payouts_run(as_of=timezone.now(), send=payout_send))
    for row in rows:
        if row.outcome == "error":
            logger.error("payout failed: %s: %s", row.subject, row.detail)
    return sum(1 for row in rows if row.outcome.startswith("payout"))
