"""Fire due workflow timers and retries without Celery beat.

The embedded default (SQLite, eager Celery) has no beat and no worker: this
command does one sweep (reap expired leases, relay the outbox, wake due runs,
start CancelCheckout for expired checkouts; in eager mode those runs advance
right here). `--loop` keeps sweeping, which
is also a stand-in for beat in small deployments.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from workflows.checkout.cancel import checkouts_expire_due
from workflows.engine import outbox, sweepers


class Command(BaseCommand):
    help = "Advance workflow runs whose timers, retries or deadlines are due (one pass; --loop to keep going)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--loop", action="store_true", help="keep sweeping until interrupted")
        parser.add_argument("--interval", type=float, default=5.0, help="seconds between sweeps with --loop")

    def handle(self, *args: Any, loop: bool, interval: float, **options: Any) -> None:
        while True:
            reaped = sweepers.reap_expired_leases()
            relayed = outbox.relay()
            woken = sweepers.wake_due_runs()
            expired = checkouts_expire_due()
            if options["verbosity"] > 0 and (reaped or relayed or woken or expired or not loop):
                self.stdout.write(
                    f"reaped {reaped} leases, relayed {relayed} messages, woke {woken} runs, "
                    f"ended {expired} expired checkouts"
                )
            if not loop:
                return
            time.sleep(interval)
