"""Deliver the sandbox provider's due webhooks now.

What the Celery beat sweeper does, for the embedded default (eager Celery, no
beat): retries of failed deliveries, delayed confirmations and payout
outcomes (payout.paid / payout.failed, settings.SANDBOX_PAYOUT_DELAY_SECONDS).
`--all` fast-forwards: delayed confirmations and payouts are delivered at once.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from payments.sandbox.webhooks import sandbox_webhooks_deliver_due


class Command(BaseCommand):
    help = "Deliver the sandbox payment provider's due webhooks (--all: also the ones scheduled for later)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--all", action="store_true", help="Deliver webhooks scheduled for later too.")

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        if options["all"]:
            # Far enough ahead to cover any delayed confirmation or backoff.
            now += timedelta(days=1)
        results = sandbox_webhooks_deliver_due(now=now, limit=10_000)
        delivered = sum(1 for result in results if result.delivered)
        self.stdout.write(f"Delivered {delivered} sandbox webhook(s); {len(results) - delivered} failed.")
