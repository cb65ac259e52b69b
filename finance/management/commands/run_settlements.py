"""manage.py run_settlements: settle every event whose clearing period has
ended and release due reserves. Idempotent: running it twice creates one
settlement per (organization, event, cutoff). Exits 1 if any item failed."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from finance.management.commands._runs import add_common_arguments, parse_as_of, run_and_report
from finance.services.runs import settlements_run


class Command(BaseCommand):
    help = "Settle events past their clearing period (pending -> available minus reserve) and release due reserves."

    def add_arguments(self, parser: CommandParser) -> None:
        add_common_arguments(parser)
        parser.add_argument("--event", type=int, help="Only this event (id).")

    def handle(self, *args: Any, **options: Any) -> None:
        as_of = parse_as_of(options["as_of"])
        rows = settlements_run(
            as_of=as_of, organization_id=options["org"], event_id=options["event"], dry_run=options["dry_run"]
        )
        run_and_report(self, rows, options=options, title=f"Settlements as of {as_of:%Y-%m-%d %H:%M %Z}")
