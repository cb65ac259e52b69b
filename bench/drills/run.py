"""One command per fault drill:

    .venv/bin/python -m bench.drills worker-kill      [--short]
    .venv/bin/python -m bench.drills pg-restart       [--short]
    .venv/bin/python -m bench.drills redis-outage     [--short]
    .venv/bin/python -m bench.drills webhook-shuffle  [--short]
    .venv/bin/python -m bench.drills all              [--short]

Each starts the production-style stack (bench.stack: gunicorn, Celery worker,
beat) on a PostgreSQL cluster and a Redis server of its own, runs a rush of
buyers (bench/drills/buyers.py), injects its fault at set moments while the
buyers go on, waits (bounded) for the asynchronous part, audits the database
(bench/drills/audit.py) and prints a JSON summary and the line

    lost: N, duplicated: N, oversold: N, ledger: balanced|UNBALANCED

Exit code 0 when the drill is clean, 1 when it found a problem, 2 when the
drill itself could not run. See bench/README.md, "Fault drills".
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.drills.services import OwnPostgres, OwnRedis, missing_programs
from bench.drills.stack import DrillStack
from bench.stack import ROOT, StackConfig, running, source_commit, source_dir_for, stack_env

DRILLS = ("worker-kill", "pg-restart", "redis-outage", "webhook-shuffle")
DB_NAME = "bench_drill"
WEBHOOK_SECRET = "whsec_bench_drills_0123456789"  # the drill's own sandbox secret
CARDS_MIXED = {"4242424242424242": 0.6, "4000000000000077": 0.25, "4000000000000002": 0.15}


def log(message: str) -> None:
    print(f"[drill {datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


# --- the plan of each drill -------------------------------------------------------------------------


@dataclass
class Fault:
    at: float  # seconds after the buyers started
    kind: str  # kill-worker | kill-pool-child | pg-stop | redis-stop
    duration: float = 0.0  # how long the service stays down (or the worker stays dead)
    mode: str = ""  # pg: fast | immediate
    # Wait (up to 10 s) for a moment when no ticket e-mail is being sent: a
    # send cut off mid-way is retried only after the e-mail claim timeout
    # (EMAIL_CLAIM_SECONDS, set to the lease seconds here, like
    # EMAIL_RESEND_AFTER_SECONDS) and the next resend sweep (60 s). The full
    # drills strike at any moment.
    avoid_email_in_flight: bool = False


@dataclass
class Plan:
    rush_seconds: float
    faults: list[Fault] = field(default_factory=list)
    settle_timeout: float = 420.0
    pay_patience: float = 60.0
    cards: dict[str, float] = field(default_factory=lambda: {"4242424242424242": 1.0})
    webhook_spread: float = 4.0  # webhook-shuffle: each copy goes out within this many seconds
    redis_keeps_data: bool = False  # Redis with an append-only file: a restart keeps the queues


def plan_for(drill: str, short: bool, args: argparse.Namespace) -> Plan:
    outage = args.outage_seconds
    careful = args.moment == "no-email-in-flight" or (short and args.moment is None)
    if drill == "worker-kill":
        if short:
            plan = Plan(15, [Fault(6, "kill-worker", 2, avoid_email_in_flight=careful)])
        else:
            plan = Plan(
                80,
                [
                    Fault(10, "kill-worker", 2, avoid_email_in_flight=careful),
                    Fault(25, "kill-pool-child", avoid_email_in_flight=careful),
                    Fault(40, "kill-worker", 5, avoid_email_in_flight=careful),
                    Fault(55, "kill-pool-child", avoid_email_in_flight=careful),
                    Fault(65, "kill-worker", 2, avoid_email_in_flight=careful),
                ],
            )
    elif drill == "pg-restart":
        mode = args.pg_stop_mode
        if short:
            plan = Plan(15, [Fault(6, "pg-stop", outage or 5, mode or "fast", avoid_email_in_flight=careful)])
        else:
            plan = Plan(
                80,
                [
                    Fault(10, "pg-stop", outage or 10, mode or "fast", avoid_email_in_flight=careful),
                    Fault(45, "pg-stop", outage or 10, mode or "immediate", avoid_email_in_flight=careful),
                ],
            )
    elif drill == "redis-outage":
        if short:
            plan = Plan(20, [Fault(6, "redis-stop", outage or 10)])
        else:
            plan = Plan(75, [Fault(10, "redis-stop", outage or 30)])
    elif drill == "webhook-shuffle":
        plan = Plan(15 if short else 60, cards=CARDS_MIXED, webhook_spread=4.0 if short else 8.0)
    else:
        raise ValueError(drill)
    if short:
        plan.settle_timeout, plan.pay_patience = 150.0, 30.0
    plan.redis_keeps_data = (args.redis_data or ("keep" if short else "lose")) == "keep"
    if args.rush_seconds:
        plan.rush_seconds = args.rush_seconds
    if args.settle_timeout:
        plan.settle_timeout = args.settle_timeout
    return plan


# --- arguments -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.drills",
        description="Fault drills: a rush on the production-style stack while a fault is injected, then an audit "
        "(lost, duplicated, oversold, ledger). See bench/README.md.",
    )
    parser.add_argument("drill", choices=(*DRILLS, "all"))
    parser.add_argument("--short", action="store_true", help="the CI version: one fault, a 15-20 s rush")
    parser.add_argument("--clients", type=int, help="concurrent buyers (8; short 6)")
    parser.add_argument("--capacity", type=int, default=10_000, help="tickets on sale (10,000: no sell-out)")
    parser.add_argument(
        "--rush-seconds", type=float, help="how long the buyers go on (per drill: short 15-20 s, full 60-80 s)"
    )
    parser.add_argument(
        "--settle-timeout", type=float, help="wait this long for the asynchronous part (420; short 150)"
    )
    parser.add_argument("--outage-seconds", type=float, help="pg-restart / redis-outage: how long the service is down")
    parser.add_argument("--pg-stop-mode", choices=("fast", "immediate"), help="pg-restart: pg_ctl stop mode")
    parser.add_argument(
        "--redis-data",
        choices=("keep", "lose"),
        help="redis-outage: Redis keeps its data across the restart (append-only file; short default) or loses "
        "everything it held, queued Celery messages included (like this machine's Redis; full default)",
    )
    parser.add_argument(
        "--moment",
        choices=("any", "no-email-in-flight"),
        help="worker-kill / pg-restart: strike when no ticket e-mail is being sent (the short drills' default) "
        "or at any moment (the full drills' default)",
    )
    parser.add_argument(
        "--lease-seconds",
        type=int,
        help="WORKFLOW_LEASE_SECONDS of the stack (30, short 15; the production default is 300): how soon "
        "a run whose worker died is taken over",
    )
    parser.add_argument("--stuck-after", type=int, default=60, help="a busy run not updated for this long is stuck")
    parser.add_argument(
        "--idempotency-keys",
        action="store_true",
        help="buyers send an Idempotency-Key with each checkout and repeat it after a 5xx or a dropped connection",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--web-workers", type=int, default=3)
    parser.add_argument("--celery-concurrency", type=int, default=2)
    parser.add_argument(
        "--source",
        default="snapshot",
        help="snapshot: a frozen copy of the working tree (default); tree: the repository in place; or a directory",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the drill's PostgreSQL cluster (stopped) for a post-mortem"
    )
    parser.add_argument("--out", type=Path, help="also write the JSON summary here")
    args = parser.parse_args(argv)
    args.clients = args.clients or (6 if args.short else 8)
    args.lease_seconds = args.lease_seconds or (15 if args.short else 30)
    return args


# --- running one drill ------------------------------------------------------------------------------------


class Injector:
    """Applies the plan's faults at their moments, in a thread, and records when."""

    def __init__(self, *, stack: DrillStack, pg: OwnPostgres, rds: OwnRedis, plan: Plan, t0: float) -> None:
        self.stack, self.pg, self.rds, self.plan, self.t0 = stack, pg, rds, plan, t0
        self.events: list[dict[str, Any]] = []
        self.windows: list[tuple[float, float, str]] = []  # (down from, back at, what), epoch seconds
        self.killed: set[str] = set()
        self.restarted: list[str] = []
        self.error: str | None = None
        self.thread = threading.Thread(target=self._run, name="fault-injector", daemon=True)

    def note(self, what: str, **extra: Any) -> None:
        now = time.time()
        self.events.append({"t": round(now - self.t0, 2), "what": what, **extra})
        log(f"fault: {what} {extra if extra else ''}".rstrip())

    def _sleep_until(self, offset: float) -> None:
        delay = self.t0 + offset - time.time()
        if delay > 0:
            time.sleep(delay)

    def _run(self) -> None:
        try:
            for fault in self.plan.faults:
                self._sleep_until(fault.at)
                if fault.avoid_email_in_flight:
                    self._wait_no_email_in_flight()
                getattr(self, "_" + fault.kind.replace("-", "_"))(fault)
                self._supervise_workers()
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            log(f"fault injection failed: {self.error}")
            traceback.print_exc()

    def _wait_no_email_in_flight(self, limit: float = 10.0) -> None:
        from django.db import connection

        from ticketing.models import EmailDelivery
        from ticketing.models.email_delivery import DeliveryStatus

        started = time.monotonic()
        sending = -1
        try:
            while time.monotonic() - started < limit:
                sending = EmailDelivery.objects.filter(status=DeliveryStatus.SENDING).count()
                if sending == 0:
                    break
                time.sleep(0.01)
        finally:
            connection.close()  # not left open across a PostgreSQL stop
        self.note("moment chosen", waited_s=round(time.monotonic() - started, 2), emails_being_sent=sending)

    def _kill_worker(self, fault: Fault) -> None:
        victims = self.stack.workers()
        if not victims:
            self.note("no live worker to kill")
            return
        proc = victims[0]
        children = self.stack.pool_children(proc)
        started = time.time()
        self.stack.kill_group(proc)
        self.killed.add(proc.name)
        self.note("SIGKILL worker process group", worker=proc.name, pid=proc.popen.pid, pool=children)
        time.sleep(fault.duration)
        new = self.stack.respawn_worker(proc)
        self.windows.append((started, time.time(), "worker dead"))
        self.note("worker started in its place", worker=new.name, pid=new.popen.pid)

    def _kill_pool_child(self, fault: Fault) -> None:
        for proc in self.stack.workers():
            children = self.stack.pool_children(proc)
            if children:
                try:
                    os.kill(children[0], signal.SIGKILL)
                except ProcessLookupError:
                    continue
                self.note("SIGKILL one prefork pool process", worker=proc.name, pid=children[0])
                self.windows.append((time.time(), time.time() + 1, "pool process killed"))
                return
        self.note("no pool process to kill")

    def _pg_stop(self, fault: Fault) -> None:
        started = time.time()
        self.note("PostgreSQL stop", mode=fault.mode)
        self.pg.stop(fault.mode)
        self.note("PostgreSQL down", stop_took_s=round(time.time() - started, 2))
        time.sleep(fault.duration)
        self.note("PostgreSQL start")
        self.pg.start()
        self.windows.append((started, time.time(), f"PostgreSQL down ({fault.mode})"))
        self.note("PostgreSQL accepting connections", down_s=round(time.time() - started, 2))

    def _redis_stop(self, fault: Fault) -> None:
        started = time.time()
        self.rds.stop()
        keeps = self.rds.persist
        self.note(
            "Redis stopped (SIGTERM; "
            + (
                "its append-only file keeps the queues)"
                if keeps
                else "nothing on disk: queued messages and cache are gone)"
            )
        )
        time.sleep(fault.duration)
        self.rds.start()
        self.windows.append((started, time.time(), "Redis down"))
        self.note("Redis answering again" + ("" if keeps else " (empty)"), down_s=round(time.time() - started, 2))

    def _supervise_workers(self) -> None:
        """After a fault: start again a worker that exited, as its supervisor
        (systemd's Restart=always, README) does in production. A Celery worker that
        loses Redis while it holds an unacknowledged message can exit: kombu
        re-queues that message on the way out through a connection it has
        already dropped (AttributeError in the Redis transport's
        _connparams), which Celery treats as unrecoverable. Nothing depends on
        that message: what it carried is re-derived from the database (the
        e-mail resend and workflow wake-up sweepers). Restarts are reported,
        not hidden (`restarted_by_supervisor`)."""
        for proc in self.stack.dead_workers():
            self.restarted.append(f"{proc.name} exited with {proc.popen.returncode}")
            self.killed.add(proc.name)
            new = self.stack.respawn_worker(proc)
            self.note("worker had exited: started again, as its supervisor would", worker=proc.name, new=new.name)


def run_buyers(run_dir: Path, config: dict[str, Any], env: dict[str, str]) -> subprocess.Popen[bytes]:
    config_path = run_dir / "buyers-config.json"
    config_path.write_text(json.dumps(config, indent=1))
    log_file = (run_dir / "buyers.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "bench.drills.buyers", str(config_path), str(run_dir / "buyers-result.json")],
        cwd=ROOT,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


API_KINDS = ("checkout_start", "probe_api")


def classify(load: dict[str, Any], windows: list[tuple[float, float, str]], grace: float) -> dict[str, Any]:
    """Answers by kind and status, during the fault windows (+ grace) and
    outside them; the answers that are not clear (a 500, another 5xx than
    503, a dropped connection, an API 503 without the error format)."""
    during: Counter[str] = Counter()
    outside: Counter[str] = Counter()
    for start, end, kind, status in load["timeline"]:
        hit = any(start < w_end + grace and end > w_start for w_start, w_end, _ in windows)
        (during if hit else outside)[f"{kind} {status or 'connection error'}"] += 1
    unclear: Counter[str] = Counter()
    for _start, _end, kind, status in load["timeline"]:
        if status == 0:
            unclear[f"{kind} connection error"] += 1
        elif status >= 500 and status != 503:
            unclear[f"{kind} {status}"] += 1
    bad_format = [
        s for s in load["samples_5xx"] if s["status"] == 503 and s["kind"] in API_KINDS and not s["error_format"]
    ]
    no_retry_after = [
        s for s in load["samples_5xx"] if s["status"] == 503 and s["kind"] != "probe_healthz" and not s["retry_after"]
    ]
    return {
        "during_fault": dict(sorted(during.items())),
        "outside_fault": dict(sorted(outside.items())),
        "server_errors_500": sum(n for k, n in unclear.items() if k.endswith(" 500")),
        "unclear_answers": dict(sorted(unclear.items())),
        "api_503_without_error_format": len(bad_format),
        "503_without_retry_after": len(no_retry_after),
        "samples_5xx": load["samples_5xx"][:8],
    }


def recovery(load: dict[str, Any], windows: list[tuple[float, float, str]]) -> dict[str, Any]:
    """After each window: seconds until /healthz answered 200 and until a checkout got a 201."""
    out = []
    for w_start, w_end, what in windows:
        healthz = [e for s, e, k, st in load["timeline"] if k == "probe_healthz" and st == 200 and s >= w_end]
        checkout = [e for s, e, k, st in load["timeline"] if k == "checkout_start" and st == 201 and s >= w_end]
        out.append(
            {
                "what": what,
                "down_s": round(w_end - w_start, 1),
                "healthz_200_after_s": round(min(healthz) - w_end, 2) if healthz else None,
                "checkout_201_after_s": round(min(checkout) - w_end, 2) if checkout else None,
            }
        )
    return {"windows": out, "recovered": all(w["healthz_200_after_s"] is not None for w in out)}


def emails_on_disk(mail_dir: Path) -> dict[int, int]:
    """Messages the file e-mail backend wrote, per EmailDelivery id (Message-ID <delivery-N@...>)."""
    counts: Counter[int] = Counter()
    pattern = re.compile(rb"^Message-ID: <delivery-(\d+)@", re.MULTILINE | re.IGNORECASE)
    for path in sorted(mail_dir.glob("*.log")) if mail_dir.is_dir() else []:
        for match in pattern.finditer(path.read_bytes()):
            counts[int(match.group(1))] += 1
    return dict(counts)


def run_drill(args: argparse.Namespace) -> int:
    drill = args.drill
    plan = plan_for(drill, args.short, args)
    missing = missing_programs()
    if missing:
        log(f"cannot run: missing {', '.join(missing)}")
        return 2
    run_id = f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{drill}{'-short' if args.short else ''}"
    run_dir = ROOT / "var" / "drills" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    source_dir = source_dir_for(args.source, run_dir)
    wall_started = time.monotonic()

    def _terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    # SIGTERM too ends in the cleanup below: the drill's PostgreSQL and Redis
    # run in sessions of their own and would outlive it.
    signal.signal(signal.SIGTERM, _terminate)
    # Under the temporary directory, not the run directory: when the drill
    # runs as root the cluster belongs to the postgres user, which must be
    # able to reach it (a checkout's parent directories may be closed to it).
    pg = OwnPostgres(Path(tempfile.mkdtemp(prefix=f"bench-drill-pg-{run_id}-")))
    rds = OwnRedis(run_dir / "redis", persist=plan.redis_keeps_data)
    mail_dir = run_dir / "mail"
    extra_env = {
        "WORKFLOW_LEASE_SECONDS": str(args.lease_seconds),
        # Abandoned work is taken over as soon for e-mails as for runs.
        "EMAIL_CLAIM_SECONDS": str(args.lease_seconds),
        "EMAIL_RESEND_AFTER_SECONDS": str(args.lease_seconds),
        "SANDBOX_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "SANDBOX_DELAYED_CONFIRMATION_SECONDS": "2",
        "EMAIL_FILE_PATH": str(mail_dir),
    }
    if drill == "webhook-shuffle":
        extra_env["DJANGO_SETTINGS_MODULE"] = "bench.drills.settings"
    config = StackConfig(
        source_dir=source_dir,
        web_workers=args.web_workers,
        celery_workers=1,
        celery_concurrency=args.celery_concurrency,
        # The worker consumes the `email` queue too: the worker a drill kills
        # is the one that sends the ticket e-mails.
        email_worker=False,
        db_name=DB_NAME,
        redis_db=0,
        email_backend="django.core.mail.backends.filebased.EmailBackend",
        extra_env=extra_env,
    )
    log(f"{drill}{' (short)' if args.short else ''}: logs in {run_dir}")
    summary: dict[str, Any] = {}
    try:
        pg.init()
        pg.start()
        rds.start()
        extra_env["DATABASE_URL"] = pg.url(DB_NAME)
        extra_env["REDIS_URL"] = rds.url(0)
        summary = _run_with_services(args, plan, config, run_dir, pg, rds, source_dir, mail_dir)
    except KeyboardInterrupt:
        log("interrupted; everything started is stopped")
        return 2
    except Exception as exc:
        traceback.print_exc()
        log(f"drill failed to run: {type(exc).__name__}: {exc}; logs in {run_dir}")
        return 2
    finally:
        rds.remove()
        if args.keep:
            pg.stop("fast")
            log(f"PostgreSQL cluster kept (stopped) in {pg.data_dir}")
        else:
            pg.remove()
    summary["wall_seconds"] = round(time.monotonic() - wall_started, 1)
    text = json.dumps(summary, indent=2, default=str)
    (run_dir / "summary.json").write_text(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)
    verdict = summary["verdict"]
    print(
        f"lost: {verdict['lost']}, duplicated: {verdict['duplicated']}, oversold: {verdict['oversold']}, "
        f"ledger: {'balanced' if verdict['ledger_balanced'] else 'UNBALANCED'}"
    )
    print(f"drill {drill}: {'clean' if summary['clean'] else 'FAILED: ' + '; '.join(verdict['problems'])}")
    return 0 if summary["clean"] else 1


def _run_with_services(
    args: argparse.Namespace,
    plan: Plan,
    config: StackConfig,
    run_dir: Path,
    pg: OwnPostgres,
    rds: OwnRedis,
    source_dir: Path,
    mail_dir: Path,
) -> dict[str, Any]:
    from bench.run import setup_django

    setup_django(stack_env(config, port=0))
    from django.db import connections

    from bench.data import ga_events_create
    from bench.drills import audit as drill_audit

    stack = DrillStack(config, run_dir, pg, rds)
    with running(stack):
        os.environ["SITE_URL"] = stack.base_url
        log(f"stack up on {stack.base_url} (PostgreSQL :{pg.port}, Redis :{rds.port}); preparing data")
        targets = ga_events_create(count=1, capacity=args.capacity, prefix="drill")
        connections.close_all()  # the drill's own connection must not outlive a PostgreSQL restart unnoticed
        buyer_config = {
            "port": stack.port,
            "clients": args.clients,
            "seed": args.seed,
            "max_seconds": plan.rush_seconds,
            "targets": [t.as_json() for t in targets],
            "cards": plan.cards,
            "pay_patience": plan.pay_patience,
            "probe_interval": 0.25,
            "idempotency_keys": args.idempotency_keys,
        }
        deliverer = None
        if args.drill == "webhook-shuffle":
            from bench.drills.webhooks import ShuffledDelivery

            deliverer = ShuffledDelivery(
                port=stack.port, secret=WEBHOOK_SECRET, seed=args.seed, spread=plan.webhook_spread
            )
            deliverer.start()
        faults = [(f.at, f.kind) for f in plan.faults]
        log(f"rush: {args.clients} buyers for {plan.rush_seconds:.0f} s; faults: {faults}")
        t0 = time.time()
        buyers = run_buyers(run_dir, buyer_config, stack.env)
        injector = Injector(stack=stack, pg=pg, rds=rds, plan=plan, t0=t0)
        injector.thread.start()
        try:
            buyers.wait(timeout=plan.rush_seconds + plan.pay_patience + 120)
        except BaseException:
            buyers.kill()
            buyers.wait()
            raise
        injector.thread.join(timeout=120)
        if buyers.returncode != 0:
            raise RuntimeError(f"the buyers failed ({buyers.returncode}); see {run_dir / 'buyers.log'}")
        load = json.loads((run_dir / "buyers-result.json").read_text())
        log(
            f"buyers done: {len(load['started'])} checkouts started, {len(load['paid'])} paid; "
            "waiting for the asynchronous part"
        )
        deliveries: dict[str, Any] = {}
        if deliverer is not None:
            drained = deliverer.drain(timeout=120)
            deliveries = {**deliverer.summary(), "drained": drained}
        buyer_paid = {p["code"] for p in load["paid"]}

        def accepted() -> dict[str, dict[str, Any]]:
            if deliverer is not None:
                return deliverer.accepted_events()
            return drill_audit.with_database(drill_audit.sandbox_accepted_events)

        def must_complete() -> set[str]:
            events = accepted()
            return buyer_paid | {e["order"] for e in events.values() if e["type"] == "payment.succeeded"}

        settled = drill_audit.settle(
            must_complete=must_complete,
            sandbox_delivers=deliverer is None,
            timeout=plan.settle_timeout,
            log=log,
        )
        log(f"settled in {settled['settle_seconds']} s{' (TIMED OUT)' if settled['timed_out'] else ''}; audit")
        result = drill_audit.with_database(
            lambda: drill_audit.drill_audit(
                accepted=accepted(),
                buyer_paid=buyer_paid,
                buyer_started={o["code"] for o in load["started"]},
                ticket_type_ids=[t.ticket_type for t in targets],
                stuck_after_seconds=args.stuck_after,
                env=stack.env,
                cwd=source_dir,
            )
        )
        on_disk = emails_on_disk(mail_dir)
        result["emails_on_disk"] = {
            "messages": sum(on_disk.values()),
            "deliveries_sent_more_than_once": {k: v for k, v in on_disk.items() if v > 1},
        }
        deadlocks = stack.deadlocks() - stack.deadlocks_before
        died = [d for d in stack.check_alive() if d.split(" ")[0] not in injector.killed]
        connections.close_all()
    return summarize(
        args=args,
        plan=plan,
        load=load,
        injector=injector,
        settled=settled,
        result=result,
        deliveries=deliveries,
        deadlocks=deadlocks,
        died=died,
        source_dir=source_dir,
        run_dir=run_dir,
    )


def summarize(
    *,
    args: argparse.Namespace,
    plan: Plan,
    load: dict[str, Any],
    injector: Injector,
    settled: dict[str, Any],
    result: dict[str, Any],
    deliveries: dict[str, Any],
    deadlocks: int,
    died: list[str],
    source_dir: Path,
    run_dir: Path,
) -> dict[str, Any]:
    answers = classify(load, injector.windows, grace=2.0)
    recovered = recovery(load, injector.windows) if injector.windows else {"windows": [], "recovered": True}
    lost = result["lost"]["count"]
    duplicated = result["duplicated"]["count"]
    oversold = result["oversold"]
    problems = []
    if lost:
        problems.append(f"{lost} lost")
    if duplicated:
        problems.append(f"{duplicated} duplicated")
    if oversold:
        problems.append(f"oversold {oversold}")
    if not result["ledger_balanced"]:
        problems.append("ledger unbalanced")
    if result["partial_orders"]["count"]:
        problems.append(f"{result['partial_orders']['count']} partial orders")
    if result["runs"]["stuck_runs"]:
        problems.append(f"{result['runs']['stuck_runs']} stuck runs")
    if result["runs"]["failed_runs"]:
        problems.append(f"{result['runs']['failed_runs']} failed runs")
    if settled["timed_out"]:
        problems.append(f"not settled after {settled['settle_seconds']} s: {settled['left']}")
    if answers["unclear_answers"]:
        problems.append(f"unclear answers (500, dropped connections): {answers['unclear_answers']}")
    if answers["api_503_without_error_format"]:
        problems.append(f"{answers['api_503_without_error_format']} API 503s without the error format")
    if not recovered["recovered"]:
        problems.append("did not recover by itself (no /healthz 200 after the fault)")
    if injector.error:
        problems.append(f"fault injection failed: {injector.error}")
    if died:
        problems.append(f"processes died: {died}")
    if deliveries and not deliveries.get("drained"):
        problems.append("webhook deliveries not drained")
    if deliveries and result["lost"]["accepted_webhooks_whose_delivery_count_differs"]:
        # The drill counted every 2xx copy; the event row must have counted the same.
        problems.append(
            f"{result['lost']['accepted_webhooks_whose_delivery_count_differs']} events whose delivery_count "
            "differs from the copies that got a 2xx"
        )
    if deliveries and deliveries.get("events_never_accepted"):
        problems.append(f"{deliveries['events_never_accepted']} webhook events never accepted")
    if not load["paid"]:
        problems.append("no buyer paid anything: the rush did not happen")
    return {
        "drill": args.drill + (" (short)" if args.short else ""),
        "restarted_by_supervisor": injector.restarted,
        "commit": source_commit(source_dir),
        "run_dir": str(run_dir),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "stack": {
            "gunicorn_sync_workers": args.web_workers,
            "celery_workers": 1,
            "celery_concurrency": args.celery_concurrency,
            "workflow_lease_seconds": args.lease_seconds,
            "postgres": f"own cluster in {injector.pg.base_dir}",
            "redis": "own server, " + ("append-only file (keeps data)" if plan.redis_keeps_data else "nothing on disk"),
        },
        "plan": {
            "rush_seconds": plan.rush_seconds,
            "clients": args.clients,
            "capacity": args.capacity,
            "faults": [f.__dict__ for f in plan.faults],
            "settle_timeout": plan.settle_timeout,
            "cards": plan.cards,
        },
        "faults": injector.events,
        "rush": {
            "checkouts_started": len(load["started"]),
            "paid_by_buyers": len(load["paid"]),
            "paid_by_card": dict(Counter(p["card"] for p in load["paid"])),
            "payment_pages_given_up": len(load["unpaid"]),
            "unpaid_examples": load["unpaid"][:5],
            "responses": load["statuses"],
            "error_codes": load["error_codes"],
            "buyers": load["outcomes"],
            "errors_sample": load["errors"][:8],
        },
        "answers": answers,
        "recovery": recovered,
        "webhook_deliveries": deliveries,
        "settle": settled,
        "audit": result,
        "deadlocks": deadlocks,
        "verdict": {
            "lost": lost,
            "duplicated": duplicated,
            "oversold": oversold,
            "ledger_balanced": result["ledger_balanced"],
            "partial_orders": result["partial_orders"]["count"],
            "server_errors_500": answers["server_errors_500"],
            "problems": problems,
        },
        "clean": not problems,
    }


def run_all(args: argparse.Namespace, argv: list[str]) -> int:
    """Each drill in a process of its own (each sets Django up on its own database)."""
    rest = [a for a in argv if a != "all"]
    if args.out:  # one summary file per drill: <out stem>-<drill><suffix>
        at = rest.index("--out") if "--out" in rest else None
        rest = rest[:at] + rest[at + 2 :] if at is not None else [a for a in rest if not a.startswith("--out=")]
    results: dict[str, int] = {}
    for drill in DRILLS:
        started = time.monotonic()
        out = ["--out", str(args.out.with_name(f"{args.out.stem}-{drill}{args.out.suffix}"))] if args.out else []
        code = subprocess.run(
            [sys.executable, "-m", "bench.drills", drill, *rest, *out], cwd=ROOT, check=False
        ).returncode
        results[drill] = code
        log(f"{drill}: exit {code} in {time.monotonic() - started:.0f} s")
    print(json.dumps({"drills": results}))
    return 0 if all(code == 0 for code in results.values()) else max(results.values())


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.drill == "all":
        return run_all(args, argv)
    return run_drill(args)
