"""CSV exports of settlement statements, produced row by row.

Every export is a generator of encoded CSV lines fed to a
StreamingHttpResponse: rows are read from the database in chunks (server-side
cursors) and written out as they come, so memory stays flat whatever the
number of sales a statement covers.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import Any

from django.db.models import QuerySet
from django.http import StreamingHttpResponse

from finance.models import Settlement
from finance.selectors.settlements import settlement_statement_lines

CHUNK_SIZE = 2000

SUMMARY_HEADER = ["settlement", "organization", "event", "currency", "cutoff", "status", *Settlement.STATEMENT_FIELDS]
LINE_FIELDS = (
    "gross_cents",
    "platform_fees_cents",
    "processor_fees_cents",
    "refunds_cents",
    "chargebacks_cents",
    "pending_cents",
)
LINES_HEADER = ["settlement", "line", "transaction", "effective_at", "kind", "reference", "order", *LINE_FIELDS]


class _Echo:
    """A file-like object whose write() hands the line back (Django's
    recommended way to stream csv.writer output)."""

    def write(self, value: str) -> str:
        return value


def _csv_lines(rows: Iterable[list[Any]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    for row in rows:
        yield writer.writerow(row)


def _summary_rows(settlements: QuerySet[Settlement]) -> Iterator[list[Any]]:
    yield SUMMARY_HEADER
    rows = settlements.select_related("organization", "event").order_by("cutoff", "pk")
    for s in rows.iterator(chunk_size=CHUNK_SIZE):
        row = [s.pk, s.organization.slug, s.event.name, s.currency, s.cutoff.isoformat(), s.status]
        yield row + [getattr(s, name) for name in Settlement.STATEMENT_FIELDS]


def _line_rows(settlements: QuerySet[Settlement]) -> Iterator[list[Any]]:
    """Each settlement's postings, then a "total" line with the settlement's
    own (authoritative) figures."""
    yield LINES_HEADER
    for settlement in settlements.order_by("cutoff", "pk").iterator(chunk_size=100):
        for line in settlement_statement_lines(settlement=settlement, chunk_size=CHUNK_SIZE):
            yield [
                settlement.pk,
                "posting",
                line.transaction_id,
                line.effective_at.isoformat(),
                line.kind,
                line.reference,
                "" if line.order_id is None else line.order_id,
                *(getattr(line, name) for name in LINE_FIELDS),
            ]
        yield [
            settlement.pk,
            "total",
            "",
            settlement.cutoff.isoformat(),
            "settlement",
            f"settlement:{settlement.pk}",
            "",
            *(getattr(settlement, name) for name in LINE_FIELDS),
        ]


def statement_summary_csv(settlements: QuerySet[Settlement]) -> Iterator[str]:
    """One row per settlement: its statement (gross, fees, refunds,
    chargebacks, pending, reserve, recovered, net)."""
    return _csv_lines(_summary_rows(settlements))


def statement_lines_csv(settlements: QuerySet[Settlement]) -> Iterator[str]:
    """Every posting each settlement covers, one row each, and its total."""
    return _csv_lines(_line_rows(settlements))


def csv_streaming_response(lines: Iterator[str], *, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(lines, content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
