"""manage.py verify_ledger: recompute the ledger and reconcile it with payments.

Recomputes every account from its entries, checks that every transaction and
the whole ledger balance per currency, compares stored running balances,
and reconciles captured payments, succeeded refunds and payouts with what
the ledger booked (finance.selectors.ledger_verify, one snapshot). Prints
each difference; exits 1 if there is any.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from finance.selectors import ledger_verify


class Command(BaseCommand):
    help = "Recompute every balance from the entries and reconcile the ledger with payments, refunds and payouts."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--skip-reconciliation", action="store_true", help="Only check the ledger itself.")

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.monotonic()
        verification = ledger_verify(reconcile=not options["skip_reconciliation"])

        self.stdout.write(f"{'currency':<10}{'debits':>16}{'credits':>16}{'transactions':>14}")
        for currency, (debits, credits, count) in sorted(verification.totals.items()):
            self.stdout.write(f"{currency:<10}{debits:>16}{credits:>16}{count:>14}")
        elapsed = time.monotonic() - started
        if verification.differences:
            for difference in verification.differences:
                self.stderr.write(f"DIFFERENCE {difference}")
            self.stderr.write(self.style.ERROR(f"{len(verification.differences)} differences ({elapsed:.2f}s)"))
            sys.exit(1)
        self.stdout.write(self.style.SUCCESS(f"Ledger verified: no differences ({elapsed:.2f}s)."))
