"""Finance benchmark (issue 7): settle one event with N paid orders and verify the ledger.

    .venv/bin/python -m bench.finance_settle --orders 100000 [--keep-db] [--tracemalloc] [--database NAME]

Not a test. Local and bounded: it drops and recreates the dedicated PostgreSQL
database `bench_finance` (or --database) on 127.0.0.1:5432 (user postgres),
migrates it, and then:

1. setup (timed apart, not a figure of merit): one organization, one event that
   ended 30 days ago (its default 3-day clearing period is long over) and N paid
   orders, each with a completed payment session and a succeeded payment, written
   with bulk_create in batches, as tests/finance/factories.py makes them one by one;
2. sales: books the N sales through the real `ledger_record_sale`, `--per-txn`
   (500) sales per database transaction, as CompleteCheckout's atomic block would
   (one sale each): seconds and journal transactions per second;
3. settle: `manage.py run_settlements --event <id>` (settlements_run ->
   settlement_create), then checks the settlement against the sums of the fee
   snapshots and runs the command a second time (it must create nothing);
4. export: streams the settlement's statement with every posting as CSV
   (finance.exports, what the admin's StreamingHttpResponse sends): seconds,
   rows (N + header + total) and megabytes;
5. verify: `manage.py verify_ledger` (recomputes every balance, reconciles the
   payments with the sales); it must exit 0.

Prints one JSON summary on stdout. Peak memory is ru_maxrss of this process (the
PostgreSQL server is not counted); `--tracemalloc` adds the Python-side peak of
each phase, at the price of slower phases (so it is off by default). Exit code 0
when the ledger verifies, the settlement adds up and the export has every
line, 1 when not, 2 when the run failed. The database is dropped at the end
unless --keep-db.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import sys
import time
import traceback
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

DB_NAME = "bench_finance"  # --database changes it (two benchmarks at once need two names)
DB_HOST, DB_PORT, DB_USER = "127.0.0.1", 5432, "postgres"
MAX_ORDERS = 1_000_000  # a bound, not a target
SETUP_BATCH = 5_000


# --- the database ----------------------------------------------------------------------


def _admin_connection() -> Any:
    import psycopg

    return psycopg.connect(
        host=DB_HOST, port=DB_PORT, user=DB_USER, dbname="postgres", autocommit=True, connect_timeout=5
    )


def recreate_database() -> str:
    """Drop and create bench_finance; return the server version."""
    with _admin_connection() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


def drop_database() -> None:
    with _admin_connection() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


def setup_django() -> None:
    # Before django.setup(): the settings read these once.
    os.environ["DATABASE_URL"] = f"postgres://{DB_USER}@{DB_HOST}:{DB_PORT}/{DB_NAME}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["DEBUG"] = "0"  # DEBUG keeps every query in memory: it would distort peak memory
    for name in ("REDIS_URL", "CELERY_BROKER_URL"):  # local only: locmem cache, in-memory broker
        os.environ.pop(name, None)
    import django

    django.setup()


# --- measuring -------------------------------------------------------------------------


def rss_mb() -> float:
    """Peak resident set size of this process so far (Linux: ru_maxrss is in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


@dataclass
class Phases:
    trace: bool
    seconds: dict[str, float] = field(default_factory=dict)
    rss_after_mb: dict[str, float] = field(default_factory=dict)
    py_peak_mb: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        if self.trace:
            tracemalloc.reset_peak()
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - started, 3)
            self.rss_after_mb[name] = rss_mb()
            if self.trace:
                self.py_peak_mb[name] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
            print(f"[bench.finance_settle] {name}: {self.seconds[name]:.2f}s", file=sys.stderr, flush=True)


def call(name: str, **options: Any) -> tuple[int, str, str]:
    """call_command, returning (exit code, stdout, stderr): the finance commands
    sys.exit(1) on errors and differences."""
    from django.core.management import call_command

    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(name, stdout=out, stderr=err, **options)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue(), err.getvalue()


# --- the data --------------------------------------------------------------------------


def fee_snapshots() -> list[dict[str, Any]]:
    """A few realistic orders (price x quantity, some with a donation), priced by
    the real fee calculation with the schedule the finance tests use."""
    from finance.fees import FeeRules, LineInput, calculate_fees

    rules = FeeRules(
        platform_rate_bp=350, platform_fixed_per_ticket_cents=99, processor_rate_bp=290, processor_fixed_cents=30
    )
    snapshots = []
    for unit in (1500, 2500, 4000, 5000, 7500, 12000):
        for quantity in (1, 2, 4):
            for donation in (0, 0, 0, 500):
                lines = [LineInput(key="t", unit_price_cents=unit, quantity=quantity)]
                snapshots.append(
                    calculate_fees(rules=rules, currency="EUR", lines=lines, donation_cents=donation).as_snapshot()
                )
    return snapshots


@dataclass
class Sale:
    order_id: int
    payment_id: int
    snapshot: int  # index into the snapshots
    at: datetime


def create_paid_orders(n: int, snapshots: list[dict[str, Any]]) -> tuple[Any, list[Sale]]:
    """One organization, one event that ended 30 days ago, n paid orders with a
    completed session and a succeeded payment each (bulk_create, in batches)."""
    from django.utils import timezone

    from payments.models import Payment, PaymentSession, PaymentSessionStatus, PaymentStatus
    from ticketing.models import Event, EventStatus, Order, OrderStatus, Organization

    now = timezone.now()
    org = Organization.objects.create(name="Bench Finance Org", slug="bench-finance")
    event = Event.objects.create(
        organization=org,
        name="Bench settlement event",
        slug="bench-settlement",
        venue_name="Bench Hall",
        currency="EUR",
        starts_at=now - timedelta(days=30, hours=4),
        ends_at=now - timedelta(days=30),
        status=EventStatus.COMPLETED,
    )
    # Sales spread over the 30 days before the event started.
    first_sale, span = event.starts_at - timedelta(days=30), timedelta(days=30)
    sales: list[Sale] = []
    for start in range(0, n, SETUP_BATCH):
        idx = range(start, min(n, start + SETUP_BATCH))
        picks = [(i, i % len(snapshots), first_sale + span * i / n) for i in idx]
        orders = Order.objects.bulk_create(
            [
                Order(
                    organization=org,
                    event=event,
                    buyer_name=f"Buyer {i}",
                    buyer_email=f"buyer{i}@bench.invalid",
                    currency="EUR",
                    subtotal_cents=snapshots[s]["subtotal_cents"],
                    fees_cents=snapshots[s]["buyer_fees_cents"],
                    donation_cents=snapshots[s]["donation_cents"],
                    total_cents=snapshots[s]["total_cents"],
                    fee_snapshot=snapshots[s],
                    status=OrderStatus.PAID,
                    paid_at=at,
                )
                for i, s, at in picks
            ]
        )
        sessions = PaymentSession.objects.bulk_create(
            [
                PaymentSession(
                    organization=org,
                    order=order,
                    provider="sandbox",
                    amount_cents=order.total_cents,
                    currency="EUR",
                    status=PaymentSessionStatus.COMPLETE,
                    expires_at=order.paid_at + timedelta(minutes=15),
                    idempotency_key=f"bench-finance-session-{order.pk}",
                )
                for order in orders
            ]
        )
        payments = Payment.objects.bulk_create(
            [
                Payment(
                    organization=org,
                    order=order,
                    session=session,
                    provider="sandbox",
                    provider_payment_id=f"bench_pi_{order.pk}",
                    amount_cents=order.total_cents,
                    currency="EUR",
                    captured_cents=order.total_cents,
                    status=PaymentStatus.SUCCEEDED,
                    succeeded_at=order.paid_at,
                )
                for order, session in zip(orders, sessions, strict=True)
            ]
        )
        sales.extend(
            Sale(order.pk, payment.pk, s, order.paid_at)
            for order, payment, (_i, s, _at) in zip(orders, payments, picks, strict=True)
        )
    return event, sales


# --- the phases ------------------------------------------------------------------------


def book_sales(event: Any, sales: list[Sale], snapshots: list[dict[str, Any]], per_txn: int) -> int:
    """The real ledger_record_sale, per_txn sales per database transaction."""
    from django.db import transaction

    from finance.services.ledger import ledger_record_sale

    booked = 0
    for start in range(0, len(sales), per_txn):
        with transaction.atomic():
            for sale in sales[start : start + per_txn]:
                txn = ledger_record_sale(
                    order_id=sale.order_id,
                    payment_id=sale.payment_id,
                    organization_id=event.organization_id,
                    event_id=event.pk,
                    currency=event.currency,
                    fee_snapshot=snapshots[sale.snapshot],
                    occurred_at=sale.at,
                )
                booked += txn is not None
        done = start + per_txn
        if done % max(per_txn, len(sales) // 10 // per_txn * per_txn) == 0 and done < len(sales):
            print(f"[bench.finance_settle]   {done} sales booked", file=sys.stderr, flush=True)
    return booked


def expected_settlement(sales: list[Sale], snapshots: list[dict[str, Any]]) -> dict[str, int]:
    from finance.fees import share_of
    from finance.models.settings import DEFAULT_RESERVE_PERCENT_BP

    gross = sum(snapshots[s.snapshot]["subtotal_cents"] for s in sales)
    pending = sum(snapshots[s.snapshot]["organizer_net_cents"] for s in sales)
    reserve = share_of(pending, DEFAULT_RESERVE_PERCENT_BP)
    return {"gross_cents": gross, "pending_cents": pending, "reserve_cents": reserve, "net_cents": pending - reserve}


def check_settlement(event: Any, expected: dict[str, int]) -> tuple[bool, dict[str, Any]]:
    from finance.models import Settlement, SettlementStatus

    settlements = list(Settlement.objects.filter(event_id=event.pk))
    if len(settlements) != 1:
        return False, {"settlements": len(settlements)}
    found = settlements[0]
    actual = {name: getattr(found, name) for name in expected}
    ok = actual == expected and found.status == SettlementStatus.POSTED and found.journal_transaction_id is not None
    return ok, {"settlement_id": found.pk, "status": found.status, **actual}


def export_statement(event: Any) -> tuple[int, int]:
    """Stream the settlement's statement with every posting as CSV, exactly
    what the admin's StreamingHttpResponse sends, and count rows and bytes."""
    from django.http import StreamingHttpResponse

    from finance.exports import statement_lines_csv
    from finance.models import Settlement

    response = StreamingHttpResponse(statement_lines_csv(Settlement.objects.filter(event_id=event.pk)))
    rows = size = 0
    for chunk in response.streaming_content:
        rows += 1
        size += len(chunk)
    response.close()
    return rows, size


def run(args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    from django.db import connection

    from finance.models import JournalEntry, JournalTransaction, TransactionKind

    phases = Phases(trace=args.tracemalloc)
    summary: dict[str, Any] = {"orders": args.orders}
    with phases.phase("migrate"):
        code, _out, err = call("migrate", interactive=False, verbosity=0)
        if code:
            raise RuntimeError(f"migrate failed: {err}")

    with phases.phase("setup"):
        snapshots = fee_snapshots()
        event, sales = create_paid_orders(args.orders, snapshots)
        expected = expected_settlement(sales, snapshots)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # as autovacuum would after a load this size

    with phases.phase("sales"):
        booked = book_sales(event, sales, snapshots, args.per_txn)
    journal_sales = JournalTransaction.objects.filter(kind=TransactionKind.SALE).count()

    with phases.phase("settle"):
        settle_code, settle_out, settle_err = call("run_settlements", event=event.pk, no_progress=True)
    settlement_ok, settlement = check_settlement(event, expected)
    with phases.phase("settle_again"):
        again_code, again_out, _ = call("run_settlements", event=event.pk, no_progress=True)
    idempotent = again_code == 0 and check_settlement(event, expected)[0]

    with phases.phase("export"):
        export_rows, export_bytes = export_statement(event)

    with phases.phase("verify"):
        verify_code, verify_out, verify_err = call("verify_ledger")

    sales_s = phases.seconds["sales"]
    summary.update(
        {
            "setup_s": phases.seconds["setup"],
            "sales_s": sales_s,
            "sales_tx_per_s": round(booked / sales_s, 1) if sales_s else None,
            "settle_s": phases.seconds["settle"],
            "export_s": phases.seconds["export"],
            "verify_s": phases.seconds["verify"],
            "peak_rss_mb": rss_mb(),
            "ledger_balanced": verify_code == 0,
            # details
            "migrate_s": phases.seconds["migrate"],
            "settle_again_s": phases.seconds["settle_again"],
            "sales_per_db_transaction": args.per_txn,
            "journal_sale_transactions": journal_sales,
            "journal_entries": JournalEntry.objects.count(),
            "settle_exit": settle_code,
            "settlement_ok": settlement_ok,
            "settlement": settlement,
            "settle_again_idempotent": idempotent,
            "export_rows": export_rows,
            "export_mb": round(export_bytes / 2**20, 1),
            "verify_exit": verify_code,
            "rss_after_mb": phases.rss_after_mb,
        }
    )
    if phases.trace:
        summary["tracemalloc_peak_mb"] = phases.py_peak_mb
    if settle_code or not settlement_ok:
        print(settle_out, settle_err, file=sys.stderr)
    if not idempotent:
        print(again_out, file=sys.stderr)
    if verify_code:
        print(verify_out, verify_err[-5000:], file=sys.stderr)
    exported_all = export_rows == args.orders + 2  # header, one line per sale, the total
    ok = (
        verify_code == 0
        and settle_code == 0
        and settlement_ok
        and idempotent
        and booked == args.orders
        and exported_all
    )
    return summary, ok


def main(argv: list[str] | None = None) -> int:
    global DB_NAME  # the one knob the helpers above read
    parser = argparse.ArgumentParser(prog="python -m bench.finance_settle", description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=100_000, help="Paid orders to book and settle (100000).")
    parser.add_argument("--per-txn", type=int, default=500, help="Sales per database transaction (500).")
    parser.add_argument("--keep-db", action="store_true", help="Keep the database afterwards.")
    parser.add_argument("--database", default=DB_NAME, help=f"The database to drop, create and use ({DB_NAME}).")
    parser.add_argument("--tracemalloc", action="store_true", help="Also measure the Python-side peak (slower).")
    args = parser.parse_args(argv)
    if not 1 <= args.orders <= MAX_ORDERS:
        parser.error(f"--orders must be between 1 and {MAX_ORDERS}")
    if args.per_txn < 1:
        parser.error("--per-txn must be at least 1")

    DB_NAME = args.database
    load_before = os.getloadavg()
    server_version = recreate_database()
    setup_django()
    if args.tracemalloc:
        tracemalloc.start()
    code = 2
    try:
        summary, ok = run(args)
        code = 0 if ok else 1
    except Exception as exc:
        summary = {"orders": args.orders, "error": f"{type(exc).__name__}: {exc}"}
        raise
    finally:
        summary["machine"] = {
            "python": platform.python_version(),
            "postgres": server_version,
            "cpus": os.cpu_count(),
            "loadavg_1m_before": round(load_before[0], 2),
            "loadavg_1m_after": round(os.getloadavg()[0], 2),
        }
        summary["database"] = DB_NAME if args.keep_db else f"{DB_NAME} (dropped)"
        _close_and_drop(keep=args.keep_db)
        print(json.dumps(summary, indent=2, default=str))
    return code


def _close_and_drop(*, keep: bool) -> None:
    from django.db import connections

    connections.close_all()
    if not keep:
        drop_database()


def _guard(fn: Callable[[], int]) -> int:
    try:
        return fn()
    except KeyboardInterrupt:
        return 2
    except Exception:
        traceback.print_exc()
        return 2


if __name__ == "__main__":
    sys.exit(_guard(main))
