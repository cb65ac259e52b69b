"""What run_settlements and run_payouts share: options, a progress bar and
the summary table."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from datetime import datetime, time
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from finance.services.runs import RunRow


def add_common_arguments(parser: CommandParser) -> None:
    parser.add_argument("--org", type=int, help="Only this organization (id).")
    parser.add_argument("--as-of", help="Run as of this date or ISO datetime (default: now).")
    parser.add_argument("--dry-run", action="store_true", help="Show what would happen; change nothing.")
    parser.add_argument("--no-progress", action="store_true", help="No progress bar (for logs).")


def parse_as_of(value: str | None) -> datetime:
    if not value:
        return timezone.now()
    parsed = parse_datetime(value)
    if parsed is None:
        day = parse_date(value)
        if day is None:
            raise CommandError(f"--as-of {value!r} is neither a date nor an ISO datetime")
        # A date means the end of that day.
        parsed = datetime.combine(day, time(23, 59, 59))
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed)
    if parsed > timezone.now():
        raise CommandError("--as-of cannot be in the future")
    return parsed


def _progress(stream: TextIO, done: int, row: RunRow) -> None:
    if not stream.isatty():
        return
    stream.write(f"\r[{'#' * min(done, 40):<40}] {done} {row.subject[:50]:<50}")
    stream.flush()


def run_and_report(command: BaseCommand, rows: Iterable[RunRow], *, options: dict[str, Any], title: str) -> None:
    """Consume the rows with a progress bar, print the table, exit 1 on any error."""
    results: list[RunRow] = []
    for row in rows:
        results.append(row)
        if not options.get("no_progress"):
            _progress(sys.stderr, len(results), row)
    if results and not options.get("no_progress") and sys.stderr.isatty():
        sys.stderr.write("\n")
    prefix = "[dry run] " if options.get("dry_run") else ""
    command.stdout.write(f"{prefix}{title}")
    command.stdout.write(f"{'subject':<52}{'outcome':<22}{'amount':>14} cur  detail")
    for row in results:
        command.stdout.write(
            f"{row.subject[:51]:<52}{row.outcome[:21]:<22}{row.amount_cents:>14} {row.currency:<4} {row.detail}"
        )
    errors = [r for r in results if r.outcome == "error"]
    totals: dict[str, int] = {}
    for row in results:
        totals[row.outcome] = totals.get(row.outcome, 0) + 1
    summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(totals.items())) or "nothing to do"
    if errors:
        command.stderr.write(command.style.ERROR(f"{len(results)} items: {summary}"))
        sys.exit(1)
    command.stdout.write(command.style.SUCCESS(f"{len(results)} items: {summary}"))
