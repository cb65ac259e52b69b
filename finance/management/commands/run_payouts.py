"""manage.py run_payouts: request a payout of each organization's available
balance. Idempotent per organization, currency and day. Exits 1 if any item
failed. The provider is called by the finance.initiate_payout workflow."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from finance.management.commands._runs import add_common_arguments, parse_as_of, run_and_report
from finance.services.runs import payouts_run


class Command(BaseCommand):
    help = "Request payouts of every organization's available balance."

    def add_arguments(self, parser: CommandParser) -> None:
        add_common_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        as_of = parse_as_of(options["as_of"])
        # A command is an interface, like a task: it may start the workflow
        # that calls the provider (finance's services never do).
        from workflows.finance.initiate_payout import payout_send

        rows = payouts_run(as_of=as_of, organization_id=options["org"], dry_run=options["dry_run"], send=payout_send)
        run_and_report(self, rows, options=options, title=f"Payouts as of {as_of:%Y-%m-%d %H:%M %Z}")
