"""Profile the two hot paths in-process against PostgreSQL, with pyinstrument.

    .venv/bin/python -m bench.profile [--iterations 300]

It profiles the code of the checkout it runs from (this repository).

Makes a database of its own (`bench_profile`, dropped afterwards), one event
with one general-admission ticket type, and then, per iteration:

  checkout start        start_checkout for 2 tickets (what the web request runs)
  payment confirmation  the pay page's charge of the card, after whose commit
                        the sandbox delivers its webhook in the same process,
                        which completes the order inline (paid, tickets,
                        ledger, e-mail intent)
  ticket e-mail         the worker's send of the ticket e-mail (QR images)

Celery messages are captured and run in-process, so each phase is measured
alone. Writes the top of each pyinstrument report and the SQL statements of
one iteration by kind and table to bench/results/profile-*.txt.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from bench.stack import ROOT, database_url, django_in_process, redis_url

DB_NAME = "bench_profile"
RESULTS = ROOT / "bench" / "results"
Message = tuple[str, list[Any], dict[str, Any]]


def statement_kinds(sqls: list[str]) -> Counter[str]:
    """'SELECT ticketing_order', 'INSERT workflows_workflowstep', 'BEGIN', ..."""
    kinds: Counter[str] = Counter()
    for sql in sqls:
        verb = sql.split(None, 1)[0].upper() if sql.strip() else "?"
        if verb in ("SELECT", "DELETE"):
            match = re.search(r'\bFROM "([^"]+)"', sql)
        elif verb == "INSERT":
            match = re.search(r'\bINTO "([^"]+)"', sql)
        elif verb == "UPDATE":
            match = re.search(r'^UPDATE "([^"]+)"', sql)
        else:
            match = None
        if verb == "RELEASE":
            verb = "RELEASE SAVEPOINT"
        kinds[f"{verb} {match.group(1)}" if match else verb] += 1
    return kinds


def kinds_report(title: str, sqls: list[str]) -> str:
    kinds = statement_kinds(sqls)
    lines = [f"{title}: {len(sqls)} statements"]
    lines += [f"  {n:3d}  {kind}" for kind, n in kinds.most_common()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--redis-db", type=int, default=14)
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    env = {
        "DATABASE_URL": database_url(DB_NAME),
        "REDIS_URL": redis_url(args.redis_db),
        "CACHE_KEY_PREFIX": "bench-profile",
        "SECRET_KEY": "bench-secret-key-not-for-production-0123456789abcdef",
        "SITE_URL": "http://127.0.0.1:8000",
        "PAYMENT_PROVIDERS": "sandbox",
        "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",
        # One e-mail's cost, not the drain's wait for more (it runs its tasks
        # one by one, with nothing else coming).
        "EMAIL_DRAIN_LINGER_SECONDS": "0",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    with django_in_process(DB_NAME, env, keep_db=args.keep_db):
        profile(args.iterations, args.out)
    return 0


def profile(iterations: int, out: Path) -> None:
    from celery import current_app
    from celery.app.task import Task
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from pyinstrument import Profiler

    from bench.data import ga_events_create
    from payments.sandbox.gateway import sandbox_charge
    from ticketing.models import Order, OrderStatus
    from workflows.checkout.start import start_checkout

    broker: list[Message] = []

    def apply_async(self: Task, args: Any = None, kwargs: Any = None, **options: Any) -> None:
        broker.append((self.name, list(args or []), dict(kwargs or {})))

    Task.apply_async = apply_async  # type: ignore[method-assign]

    def run_tasks(limit: int | None = None) -> None:
        done = 0
        while broker and (limit is None or done < limit):
            name, task_args, task_kwargs = broker.pop(0)
            current_app.tasks[name](*task_args, **task_kwargs)
            done += 1

    target = ga_events_create(count=1, capacity=10 * iterations + 100, prefix="profile")[0]

    def start(n: int) -> Any:
        return start_checkout(
            event_id=target.event,
            buyer_name=f"Buyer {n}",
            buyer_email=f"buyer{n}@bench.example",
            tickets=[{"ticket_type": target.ticket_type, "quantity": 2}],
        )

    def pay(started: Any) -> None:
        token = urlparse(started.payment_url).path.rstrip("/").split("/")[-1]
        sandbox_charge(token=token, card_number="4242424242424242")

    # Warm up: per-process caches, the event's signing key, the fee policy.
    for n in range(5):
        started = start(n)
        run_tasks()
        pay(started)
        run_tasks()

    with CaptureQueriesContext(connection) as start_sql:
        started = start(-1)
    run_tasks()
    with CaptureQueriesContext(connection) as confirm_sql:
        pay(started)
    assert Order.objects.get(code=started.order_code).status == OrderStatus.PAID
    with CaptureQueriesContext(connection) as email_sql:
        run_tasks()

    start_profiler, confirm_profiler = Profiler(interval=0.0005), Profiler(interval=0.0005)
    email_profiler = Profiler(interval=0.0005)
    start_seconds = confirm_seconds = email_seconds = 0.0
    for n in range(iterations):
        t0 = time.perf_counter()
        start_profiler.start()
        started = start(n + 1000)
        start_profiler.stop()
        start_seconds += time.perf_counter() - t0
        run_tasks()
        t0 = time.perf_counter()
        confirm_profiler.start()
        pay(started)  # the charge, then its webhook delivered after commit: the order is completed inline
        confirm_profiler.stop()
        confirm_seconds += time.perf_counter() - t0
        t0 = time.perf_counter()
        email_profiler.start()
        run_tasks()  # the ticket e-mail
        email_profiler.stop()
        email_seconds += time.perf_counter() - t0

    out.mkdir(parents=True, exist_ok=True)
    header = (
        f"{iterations} iterations, in-process against PostgreSQL 15 on 127.0.0.1 (shared, noisy machine), "
        f"pyinstrument {__import__('pyinstrument').__version__}\n"
    )
    reports: list[tuple[str, Profiler, float, list[str]]] = [
        ("checkout-start", start_profiler, start_seconds, [q["sql"] for q in start_sql.captured_queries]),
        ("payment-confirmation", confirm_profiler, confirm_seconds, [q["sql"] for q in confirm_sql.captured_queries]),
        ("ticket-email", email_profiler, email_seconds, [q["sql"] for q in email_sql.captured_queries]),
    ]
    for name, profiler, seconds, sqls in reports:
        text = profiler.output_text(unicode=True, color=False, show_all=False, short_mode=False)
        top = _top(text, lines=240)
        body = (
            f"{name}: {header}"
            f"wall time per iteration: {seconds / iterations * 1000:.1f} ms\n\n"
            f"{kinds_report('SQL statements of one iteration', sqls)}\n\n{top}\n"
        )
        (out / f"profile-{name}.txt").write_text(body)
        print(
            f"{name}: {seconds / iterations * 1000:.1f} ms per iteration, {len(sqls)} statements -> "
            f"{out / f'profile-{name}.txt'}"
        )


def _top(text: str, lines: int) -> str:
    kept = text.splitlines()[:lines]
    return "\n".join(kept) + ("\n[...]" if len(text.splitlines()) > lines else "")


if __name__ == "__main__":
    sys.exit(main())
