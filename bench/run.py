"""One command per workload: start the stack, prepare the data, rush, audit, stop.

    .venv/bin/python -m bench.run quota-rush --clients 32
    .venv/bin/python -m bench.run seat-rush
    .venv/bin/python -m bench.run many-events
    .venv/bin/python -m bench.run quota-rush --smoke        # < 60 s, for CI

Prints one JSON summary on stdout (progress goes to stderr) and keeps it with
the processes' logs in var/bench/<run>/. Exit code 0 when the audit is clean,
1 when it is not, 2 when the run itself failed. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import cpu
from bench.stack import (
    ROOT,
    Stack,
    StackConfig,
    database_deadlocks,
    running,
    source_commit,
    source_dir_for,
    stack_env,
)
from bench.stats import latency_summary

WORKLOADS = ("quota-rush", "seat-rush", "many-events")


def log(message: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("workload", choices=WORKLOADS)
    parser.add_argument("--clients", type=int, help="concurrent buyers (quota-rush 32, seat-rush 200, many-events 64)")
    parser.add_argument("--capacity", type=int, help="tickets per ticket type (quota-rush 2000, many-events 100)")
    parser.add_argument("--events", type=int, default=20, help="many-events: events on sale at once")
    parser.add_argument("--rows", type=int, default=20, help="seat-rush: rows of the plan")
    parser.add_argument("--seats-per-row", type=int, default=25, help="seat-rush: seats per row")
    parser.add_argument("--smoke", action="store_true", help="a short run (capacity 100, 8 buyers, < 60 s)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--web-workers", type=int, default=3, help="gunicorn sync workers")
    parser.add_argument("--celery-workers", type=int, default=1, help="Celery worker processes")
    parser.add_argument("--celery-concurrency", type=int, default=2, help="prefork children per Celery worker")
    parser.add_argument(
        "--email-pool", choices=["prefork", "solo"], default="prefork", help="the e-mail worker's Celery pool"
    )
    parser.add_argument("--max-seconds", type=float, help="stop the buyers after this long (default 300, smoke 45)")
    parser.add_argument("--max-checkouts", type=int, default=100_000, help="stop after this many checkout attempts")
    parser.add_argument("--settle-timeout", type=float, default=120, help="wait this long for the asynchronous part")
    parser.add_argument("--stuck-after", type=int, default=30, help="an active run not updated for this long is stuck")
    parser.add_argument(
        "--api",
        choices=("auto", "real", "shim"),
        default="auto",
        help="real: POST /api/v1/public/checkouts/ of the project; shim: bench.shim's stand-in; auto: real if routed",
    )
    parser.add_argument("--wait-paid", action="store_true", help="buyers poll their order until paid before looping")
    parser.add_argument(
        "--source",
        default="snapshot",
        help="snapshot: run a frozen copy of the working tree (default); tree: run the repository in place; "
        "or a directory holding an earlier snapshot (var/bench/<run>/src), to run several workloads on one code",
    )
    parser.add_argument("--redis-db", type=int, default=14)
    parser.add_argument("--db-name", default="bench_ticketing")
    parser.add_argument("--keep-db", action="store_true", help="leave bench_ticketing in place for a post-mortem")
    parser.add_argument("--out", type=Path, help="also write the JSON summary here")
    args = parser.parse_args(argv)
    defaults = {
        "quota-rush": {"clients": 32, "capacity": 2000},
        "seat-rush": {"clients": 200, "capacity": 0},
        "many-events": {"clients": 64, "capacity": 100},
    }[args.workload]
    if args.smoke:
        defaults = {
            "quota-rush": {"clients": 8, "capacity": 100},
            "seat-rush": {"clients": 40, "capacity": 0},
            "many-events": {"clients": 16, "capacity": 20},
        }[args.workload]
        if args.workload == "seat-rush":
            args.rows = 4
        if args.workload == "many-events":
            args.events = 5
        args.max_seconds = args.max_seconds or 45
        args.settle_timeout = min(args.settle_timeout, 30)
    args.clients = args.clients or defaults["clients"]
    args.capacity = args.capacity or defaults["capacity"]
    args.max_seconds = args.max_seconds or 300
    return args


def setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()


def real_api_routed() -> bool:
    from django.urls import Resolver404, resolve

    try:
        match = resolve("/api/v1/public/checkouts/")
    except Resolver404:
        return False
    return match.url_name != "not-found"


def prepare(args: argparse.Namespace) -> tuple[dict[str, Any], list[int], dict[str, Any]]:
    """The workload's data; returns (load generator config part, ticket type ids, description)."""
    from bench.data import ga_events_create, seated_event_create

    if args.workload == "quota-rush":
        targets = ga_events_create(count=1, capacity=args.capacity, prefix="quota-rush")
        return (
            {"buyer": "ga", "targets": [t.as_json() for t in targets]},
            [t.ticket_type for t in targets],
            {"events": 1, "capacity_per_event": args.capacity},
        )
    if args.workload == "many-events":
        targets = ga_events_create(count=args.events, capacity=args.capacity, prefix="many-events")
        return (
            {"buyer": "ga", "targets": [t.as_json() for t in targets]},
            [t.ticket_type for t in targets],
            {"events": args.events, "capacity_per_event": args.capacity},
        )
    seated = seated_event_create(rows=args.rows, seats_per_row=args.seats_per_row)
    return (
        {"buyer": "seat", "targets": [], "seated": {"event": seated.event, "category": seated.category}},
        [seated.ticket_type],
        {"seats": seated.seats, "rows": args.rows, "seats_per_row": args.seats_per_row, "seats_per_buyer": 2},
    )


def postgres_backends(db_name: str) -> list[int]:
    from bench.stack import _pg_admin

    with _pg_admin() as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [db_name]).fetchall()
    return [int(r[0]) for r in rows]


def run_loadgen(run_dir: Path, config: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    config_path, result_path = run_dir / "loadgen-config.json", run_dir / "loadgen-result.json"
    config_path.write_text(json.dumps(config, indent=1))
    with (run_dir / "loadgen.log").open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.loadgen", str(config_path), str(result_path)],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    if proc.returncode != 0:
        raise RuntimeError(f"the load generator failed ({proc.returncode}); see {run_dir / 'loadgen.log'}")
    result: dict[str, Any] = json.loads(result_path.read_text())
    result["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    return result


def summarize(
    *,
    args: argparse.Namespace,
    api: str,
    load: dict[str, Any],
    settled: dict[str, Any],
    audit: dict[str, Any],
    cpu_spent: dict[str, float],
    extra: dict[str, Any],
    source_dir: Path,
) -> dict[str, Any]:
    from bench.audit import paid_times

    paid = load["paid"]
    times = paid_times(p["code"] for p in paid)
    confirmations: list[float] = []
    issued: list[float] = []
    tickets = 0
    for record in paid:
        paid_at, issued_at = times.get(record["code"], (None, None))
        if paid_at is None:
            continue
        tickets += int(record["quantity"])
        confirmations.append(paid_at.timestamp() - record["t_pay"])
        if issued_at is not None:
            issued.append(issued_at.timestamp())
    start = load["first_request"]
    end = max(issued) if issued else load["last_response"]
    seconds = (end - start) if start and end else None
    orders = len(confirmations)
    per_order = (lambda s: round(s * 1000 / orders, 1)) if orders else (lambda s: None)
    latencies = {
        "checkout_start": latency_summary(load["latencies"].get("checkout_start", [])),
        "payment_confirmation": latency_summary(confirmations),
    }
    for kind in ("pay_page", "pay_submit", "seat_map", "best_available", "order_status"):
        if load["latencies"].get(kind):
            latencies[kind] = latency_summary(load["latencies"][kind])
    status_5xx = sum(n for key, n in load["statuses"].items() if key.rsplit(" ", 1)[-1].startswith("5"))
    return {
        "workload": f"{args.workload}/v1" + (" (smoke)" if args.smoke else ""),
        "api": api,
        "clients": args.clients,
        "seed": args.seed,
        "commit": source_commit(source_dir),
        "source": str(args.source),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "stack": {
            "gunicorn_sync_workers": args.web_workers,
            "celery_workers": args.celery_workers,
            "celery_concurrency": args.celery_concurrency,
            "email_pool": args.email_pool,
            "database": args.db_name,
            "redis_db": args.redis_db,
        },
        "data": extra.get("data", {}),
        "figures": {
            "paid_orders": orders,
            "tickets": tickets,
            "seconds": round(seconds, 2) if seconds else None,
            "orders_per_s": round(orders / seconds, 1) if seconds else None,
            "tickets_per_s": round(tickets / seconds, 1) if seconds else None,
            "measured": "first request -> last ticket issued (includes the asynchronous payment confirmation)",
        },
        "latency_ms": latencies,
        "responses": load["statuses"],
        "error_codes": load["error_codes"],
        "responses_5xx": status_5xx,
        "buyers": load["outcomes"],
        "conflicts": load["conflicts"],
        "stop_reason": load["stop_reason"] or "every buyer done",
        "settle": settled,
        "audit": audit,
        "cpu_ms_per_order": {name: per_order(seconds) for name, seconds in cpu_spent.items()},
        "cpu_note": "machine = all cores, everything running on the box (others' jobs too); "
        "postgres = this database's backends only; postgres-all = every PostgreSQL process (WAL writer, "
        "checkpointer and other databases' backends too); redis = the Redis server (broker, cache, throttling)",
        "errors_sample": load["errors"][:10],
        **{k: v for k, v in extra.items() if k != "data"},
    }


def audit_clean(summary: dict[str, Any]) -> bool:
    audit = summary["audit"]
    return (
        audit["oversold"] == 0
        and audit["double_sold_seats"] == 0
        and not audit["inventory_problems"]
        and audit["paid_orders_missing_tickets"] == 0
        and audit["paid_orders_without_exactly_one_ticket_email"] == 0
        and audit["ledger_balanced"]
        and audit["stuck_runs"] == 0
        and summary["deadlocks"]["postgres"] == 0
        and not summary["settle"]["timed_out"]
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run_id = f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{args.workload}-{args.clients}"
    run_dir = ROOT / "var" / "bench" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    source_dir = source_dir_for(args.source, run_dir)
    config = StackConfig(
        source_dir=source_dir,
        web_workers=args.web_workers,
        celery_workers=args.celery_workers,
        celery_concurrency=args.celery_concurrency,
        email_pool=args.email_pool,
        db_name=args.db_name,
        redis_db=args.redis_db,
        keep_db=args.keep_db,
    )
    # The bench's own Django (data and audit) talks to the bench database.
    setup_django(stack_env(config, port=0))
    api = args.api if args.api != "auto" else ("real" if real_api_routed() else "shim")
    config.shim = api == "shim"
    log(f"{args.workload}: {args.clients} buyers, api={api}, logs in {run_dir}")
    stack = Stack(config, run_dir)
    try:
        with running(stack):
            os.environ["SITE_URL"] = stack.base_url
            from django.db import connections

            log(f"stack up on {stack.base_url}; preparing data")
            load_config, ticket_type_ids, data = prepare(args)
            load_config.update(
                port=stack.port,
                clients=args.clients,
                seed=args.seed,
                max_seconds=args.max_seconds,
                max_checkouts=args.max_checkouts,
                wait_paid=args.wait_paid,
            )
            groups = {p.name: p.popen.pid for p in stack.procs}
            before = cpu.snapshot(groups, postgres_backends(args.db_name))
            log("rush")
            load = run_loadgen(run_dir, load_config, stack.env)
            log(f"buyers done ({load['stop_reason'] or 'every buyer done'}); waiting for the asynchronous part")
            from bench.audit import audit, seats_left, settle

            settled = settle(codes=[p["code"] for p in load["paid"]], timeout=args.settle_timeout)
            after = cpu.snapshot(groups, postgres_backends(args.db_name))
            spent = cpu.delta(before, after)
            spent["loadgen"] = load["cpu_seconds"]
            log("audit")
            result = audit(
                ticket_type_ids=ticket_type_ids, stuck_after_seconds=args.stuck_after, env=stack.env, cwd=source_dir
            )
            extra: dict[str, Any] = {"data": data}
            if args.workload == "seat-rush":
                left = seats_left(load_config["seated"]["event"])
                unsatisfied = sum(n for outcome, n in load["outcomes"].items() if not outcome.endswith("bought"))
                extra["seats"] = {
                    **left,
                    "buyers_unsatisfied": unsatisfied,
                    "unsold_while_wanted": 2 * min(left["free_disjoint_pairs"], unsatisfied),
                }
            extra["deadlocks"] = {
                "postgres": database_deadlocks(args.db_name) - stack.deadlocks_before,
                "in_logs": stack.log_grep("deadlock detected"),
            }
            extra["processes_died"] = stack.check_alive()
            summary = summarize(
                args=args,
                api=api,
                load=load,
                settled=settled,
                audit=result,
                cpu_spent=spent,
                extra=extra,
                source_dir=source_dir,
            )
            connections.close_all()
    except KeyboardInterrupt:
        log("interrupted; the stack is stopped")
        return 2
    except Exception as exc:
        traceback.print_exc()
        log(f"run failed: {type(exc).__name__}: {exc}; the stack is stopped, logs in {run_dir}")
        return 2
    finally:
        stack.cleanup()
    summary["clean"] = audit_clean(summary)
    text = json.dumps(summary, indent=2, default=str)
    (run_dir / "summary.json").write_text(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)
    return 0 if summary["clean"] else 1


if __name__ == "__main__":
    sys.exit(main())
