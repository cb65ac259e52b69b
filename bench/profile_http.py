"""Profile the three HTTP requests of a buyer in a rush, through Django's whole
WSGI stack, in-process against PostgreSQL and Redis, with pyinstrument.

    .venv/bin/python -m bench.profile_http [--iterations 300] [--buyers 32]

It profiles the code of the checkout it runs from (this repository). Per
iteration one buyer (of --buyers, each with its own IP address and cookie jar,
as bench/loadgen.py's buyers) makes exactly what the load generator sends:

  checkout   POST /api/v1/public/checkouts/   (JSON, 1-4 tickets, no Idempotency-Key)
  pay_page   GET  /pay/sandbox/<token>/       (the hosted pay page, CSRF cookie)
  pay_submit POST /pay/sandbox/<token>/       (card 4242..., the page's CSRF token: 302)

Requests are WSGI calls to django.core.handlers.wsgi.WSGIHandler, as gunicorn
makes them: every middleware, the request_started/finished signals (the
connection's health check), CSRF enforced. Settings are the bench stack's
(bench.stack.stack_env: DEBUG=0, persistent connections, django-redis).
Celery messages are captured and run in-process between requests, unmeasured.

Three passes, so that measuring does not distort what is measured:

1. timing: CPU (this process, time.process_time) and wall time per request,
   and the CPU of the PostgreSQL backend serving the connection (/proc), with
   the part spent in the business code (start_checkout, order_created_publish,
   sandbox_charge) timed apart, so "outside" = request - business;
2. counting (a few iterations): SQL statements by kind and table, split into
   business and outside; Redis commands and round trips; connection health
   checks (an unlogged `SELECT 1` per request);
3. profiling: pyinstrument per request kind, paused while the business calls
   run (their cost is in pass 1), so the profile is the middleware, DRF,
   session, CSRF and template work around them: a tree, and self time by
   where the code lives and by function. pyinstrument samples wall time: it
   includes waiting for PostgreSQL and Redis, time the process was not on a
   core (the machine is shared) and the profiler's own overhead, so read it
   for proportions; the CPU numbers are pass 1's. (A CPU-clock timer_func
   costs a system call per Python call and distorts far more.)

Makes a database of its own (`bench_profile_http`, dropped afterwards) and uses
Redis database 12 (flushed before and after; refused if it holds keys that are
not the bench's). Writes bench/results/profile-http[-<tag>]-<request>.txt and
profile-http[-<tag>]-summary.txt.
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from bench.profile import kinds_report
from bench.stack import ROOT, StackConfig, django_in_process, redis_reset, redis_url, stack_env

DB_NAME = "bench_profile_http"
REDIS_DB = 12
RESULTS = ROOT / "bench" / "results"
HOST = "127.0.0.1:8000"
CARD_OK = "4242424242424242"
CSRF_INPUT = re.compile(rb'name="csrfmiddlewaretoken" value="([^"]+)"')
CHECKOUTS = "/api/v1/public/checkouts/"
KINDS = ("checkout", "pay_page", "pay_submit")
# The business code each request calls (module, attribute as the view imports
# it): timed apart and collapsed in the profile. Everything else is overhead.
BUSINESS: dict[str, list[tuple[str, str]]] = {
    "checkout": [
        ("ticketing.api.views.checkouts", "start_checkout"),
        ("ticketing.api.views.checkouts", "order_created_publish"),
    ],
    "pay_page": [],
    "pay_submit": [("payments.views", "sandbox_charge")],
}
BUSINESS_FUNCTIONS = frozenset(name for calls in BUSINESS.values() for _, name in calls)
Message = tuple[str, list[Any], dict[str, Any]]


# --- a WSGI client -----------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class Buyer:
    """One simulated buyer: its address and its cookies (csrftoken, ...)."""

    ip: str
    cookies: dict[str, str] = field(default_factory=dict)


class WsgiClient:
    def __init__(self) -> None:
        from django.core.handlers.wsgi import WSGIHandler

        self.app = WSGIHandler()

    def request(
        self, buyer: Buyer, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Response:
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": buyer.ip,
            "REMOTE_PORT": "40000",
            "HTTP_HOST": HOST,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        if body:
            environ["CONTENT_LENGTH"] = str(len(body))
        for name, value in (headers or {}).items():
            key = name.upper().replace("-", "_")
            if key == "CONTENT_TYPE":
                environ[key] = value
            else:
                environ[f"HTTP_{key}"] = value
        if buyer.cookies:
            environ["HTTP_COOKIE"] = "; ".join(f"{k}={v}" for k, v in buyer.cookies.items())
        started: list[Any] = []

        def start_response(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            started[:] = [status, response_headers]
            return None

        result = self.app(environ, start_response)  # type: ignore[arg-type]
        try:
            body_out = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()  # request_finished: close_old_connections, as gunicorn does
        status_line, response_headers = started
        for name, value in response_headers:
            if name.lower() == "set-cookie":
                key, _, rest = value.strip().partition("=")
                value_only = rest.split(";", 1)[0]
                if value_only:
                    buyer.cookies[key.strip()] = value_only
                else:
                    buyer.cookies.pop(key.strip(), None)
        return Response(int(status_line.split()[0]), response_headers, body_out)


# --- instruments -------------------------------------------------------------------------


class Business:
    """Wraps the business calls: their CPU and wall time, the SQL log position
    at their start and end, and a flag for the other instruments."""

    def __init__(self) -> None:
        self.active = 0
        self.cpu = 0.0
        self.wall = 0.0
        self.sql_spans: list[tuple[int, int]] = []
        # A profiler to pause while business code runs: its samples (deep
        # stacks, most of a request's time) are not what this script is about.
        self.profiler: Any = None

    def reset(self) -> None:
        self.cpu = self.wall = 0.0
        self.sql_spans.clear()

    def install(self) -> None:
        import importlib

        from django.db import connection

        for calls in BUSINESS.values():
            for module_name, attr in calls:
                module = importlib.import_module(module_name)
                original = getattr(module, attr)
                if getattr(original, "_bench_business", False):
                    continue

                def wrapped(*args: Any, _original: Callable[..., Any] = original, **kwargs: Any) -> Any:
                    self.active += 1
                    profiler = self.profiler if self.active == 1 else None
                    if profiler is not None:
                        profiler.stop()
                    sql_start = len(connection.queries_log)
                    cpu0, wall0 = time.process_time(), time.perf_counter()
                    try:
                        return _original(*args, **kwargs)
                    finally:
                        self.cpu += time.process_time() - cpu0
                        self.wall += time.perf_counter() - wall0
                        self.sql_spans.append((sql_start, len(connection.queries_log)))
                        self.active -= 1
                        if profiler is not None:
                            profiler.start()

                functools.update_wrapper(wrapped, original)
                wrapped._bench_business = True  # type: ignore[attr-defined]
                setattr(module, attr, wrapped)


class RedisCounter:
    """Redis commands (by name, inside/outside business code) and round trips."""

    def __init__(self, business: Business) -> None:
        self.business = business
        self.enabled = False
        self.commands: Counter[str] = Counter()
        self.round_trips = 0

    def reset(self) -> None:
        self.commands.clear()
        self.round_trips = 0

    def install(self) -> None:
        import redis.client
        import redis.connection

        counter = self
        execute_command = redis.client.Redis.execute_command
        send_packed_command = redis.connection.AbstractConnection.send_packed_command

        def counted_execute(self: Any, *args: Any, **options: Any) -> Any:
            if counter.enabled and not isinstance(self, redis.client.Pipeline):
                where = "business" if counter.business.active else "outside"
                counter.commands[f"{where}: {str(args[0]).upper()}"] += 1
            return execute_command(self, *args, **options)

        def counted_send(self: Any, command: Any, check_health: bool = True) -> Any:
            if counter.enabled:
                counter.round_trips += 1
            return send_packed_command(self, command, check_health)

        redis.client.Redis.execute_command = counted_execute  # type: ignore[method-assign]
        redis.connection.AbstractConnection.send_packed_command = counted_send  # type: ignore[method-assign]


class HealthChecks:
    """Django's connection health check (CONN_HEALTH_CHECKS): a `SELECT 1`
    per request that no query log shows."""

    def __init__(self) -> None:
        self.count = 0

    def install(self) -> None:
        from django.db import connections

        klass = type(connections["default"])
        original = klass.is_usable
        checks = self

        def counted(self: Any) -> bool:
            checks.count += 1
            return bool(original(self))

        klass.is_usable = counted  # type: ignore[method-assign]


def backend_cpu_seconds(pid: int) -> float:
    """utime + stime of a PostgreSQL backend (same machine), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the buyer's requests ---------------------------------------------------------------


@dataclass
class Step:
    """The three requests of one buyer's purchase; each callable makes one."""

    client: WsgiClient
    buyer: Buyer
    target: Any
    quantity: int
    n: int
    path: str = ""
    csrf: str = ""

    def checkout(self) -> Response:
        payload = {
            "event": self.target.event,
            "tickets": [{"ticket_type": self.target.ticket_type, "quantity": self.quantity}],
            "buyer_name": f"Buyer {self.n}",
            "buyer_email": f"buyer{self.n}@bench.example",
        }
        import json

        response = self.client.request(
            self.buyer,
            "POST",
            CHECKOUTS,
            body=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        if response.status != 201:
            raise RuntimeError(f"checkout answered {response.status}: {response.body[:300]!r}")
        self.path = urlsplit(json.loads(response.body)["payment_url"]).path
        return response

    def pay_page(self) -> Response:
        response = self.client.request(self.buyer, "GET", self.path)
        match = CSRF_INPUT.search(response.body)
        if response.status != 200 or match is None:
            raise RuntimeError(f"pay page answered {response.status}: {response.body[:300]!r}")
        self.csrf = match.group(1).decode()
        return response

    def pay_submit(self) -> Response:
        form = urlencode({"csrfmiddlewaretoken": self.csrf, "card_number": CARD_OK})
        response = self.client.request(
            self.buyer,
            "POST",
            self.path,
            body=form.encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded", "Referer": f"http://{HOST}{self.path}"},
        )
        if response.status != 302:
            raise RuntimeError(f"pay submit answered {response.status}: {response.body[:300]!r}")
        return response


# --- main --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_http", description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--buyers", type=int, default=32)
    parser.add_argument("--count-iterations", type=int, default=5)
    parser.add_argument("--profile-iterations", type=int, default=200)
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--label", default="", help="a note for the report headers")
    parser.add_argument("--tag", default="", help="in the file names: profile-http-<tag>-<request>.txt")
    args = parser.parse_args(argv)
    env = stack_env(StackConfig(db_name=DB_NAME, redis_db=REDIS_DB), port=8000)
    env.update(
        {
            "CACHE_KEY_PREFIX": "bench-profile-http",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
        }
    )
    redis_reset(REDIS_DB)
    try:
        with django_in_process(DB_NAME, env, keep_db=args.keep_db):
            profile(args)
    finally:
        if not args.keep_db:
            import redis

            redis.Redis.from_url(redis_url(REDIS_DB)).flushdb()
    return 0


@dataclass
class Timing:
    cpu: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    business_cpu: list[float] = field(default_factory=list)
    business_wall: list[float] = field(default_factory=list)
    backend_cpu: float = 0.0


def profile(args: argparse.Namespace) -> None:
    from celery import current_app
    from celery.app.task import Task
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from pyinstrument import Profiler

    from bench.data import ga_events_create

    broker: list[Message] = []

    def apply_async(self: Task, args: Any = None, kwargs: Any = None, **options: Any) -> None:
        broker.append((self.name, list(args or []), dict(kwargs or {})))

    Task.apply_async = apply_async  # type: ignore[method-assign]

    def run_tasks() -> None:
        while broker:
            name, task_args, task_kwargs = broker.pop(0)
            current_app.tasks[name](*task_args, **task_kwargs)

    business = Business()
    business.install()
    redis_counter = RedisCounter(business)
    redis_counter.install()
    health = HealthChecks()
    health.install()

    iterations, buyers_n = args.iterations, args.buyers
    purchases = buyers_n + 5 + iterations + args.count_iterations + min(iterations, args.profile_iterations)
    target = ga_events_create(count=1, capacity=4 * purchases + 100, prefix="profile-http")[0]
    client = WsgiClient()
    buyers = [Buyer(ip=f"127.1.{i // 250}.{i % 250 + 1}") for i in range(buyers_n)]
    counter = iter(range(10**9))

    def new_step() -> Step:
        n = next(counter)
        return Step(client, buyers[n % buyers_n], target, quantity=1 + n % 4, n=n)

    def purchase(measure: Callable[[str, Callable[[], Response]], Response]) -> None:
        step = new_step()
        for kind in KINDS:
            measure(kind, getattr(step, kind))
            run_tasks()  # the worker's part (webhook delivery, e-mail): not measured

    def plain(kind: str, call: Callable[[], Response]) -> Response:
        return call()

    # Warm up: every buyer once (csrftoken cookies), per-process caches.
    for _ in range(buyers_n + 5):
        purchase(plain)

    # 1. timing
    backend_pid = connection.cursor().connection.info.backend_pid
    timings = {kind: Timing() for kind in KINDS}

    def timed(kind: str, call: Callable[[], Response]) -> Response:
        timing = timings[kind]
        business.reset()
        backend0 = backend_cpu_seconds(backend_pid)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        response = call()
        timing.cpu.append(time.process_time() - cpu0)
        timing.wall.append(time.perf_counter() - wall0)
        timing.backend_cpu += backend_cpu_seconds(backend_pid) - backend0
        timing.business_cpu.append(business.cpu)
        timing.business_wall.append(business.wall)
        return response

    for _ in range(iterations):
        purchase(timed)
    if connection.cursor().connection.info.backend_pid != backend_pid:
        print("warning: the database connection changed during the timing pass; backend CPU is partial")

    # 2. counting
    sql: dict[str, list[list[tuple[str, bool]]]] = {kind: [] for kind in KINDS}
    redis_commands: dict[str, Counter[str]] = {kind: Counter() for kind in KINDS}
    redis_trips: dict[str, int] = dict.fromkeys(KINDS, 0)
    health_checks: dict[str, int] = dict.fromkeys(KINDS, 0)

    def counted(kind: str, call: Callable[[], Response]) -> Response:
        business.reset()
        redis_counter.reset()
        redis_counter.enabled = True
        health.count = 0
        connection.queries_log.clear()
        with CaptureQueriesContext(connection):
            response = call()
            log = list(connection.queries_log)
        redis_counter.enabled = False
        inside: set[int] = set()
        for start, end in business.sql_spans:
            inside.update(range(start, end))
        sql[kind].append([(q["sql"], i in inside) for i, q in enumerate(log)])
        redis_commands[kind].update(redis_counter.commands)
        redis_trips[kind] += redis_counter.round_trips
        health_checks[kind] += health.count
        return response

    for _ in range(args.count_iterations):
        purchase(counted)

    # 3. profiling, with the profiler paused inside the business calls
    profilers = {kind: Profiler(interval=0.0002) for kind in KINDS}

    def profiled(kind: str, call: Callable[[], Response]) -> Response:
        business.profiler = profilers[kind]
        profilers[kind].start()
        try:
            return call()
        finally:
            profilers[kind].stop()
            business.profiler = None

    for _ in range(min(iterations, args.profile_iterations)):
        purchase(profiled)

    write_reports(args, timings, sql, redis_commands, redis_trips, health_checks, profilers)


# --- reports -----------------------------------------------------------------------------


def _ms(values: list[float]) -> str:
    return f"{statistics.mean(values) * 1000:6.2f} ms (median {statistics.median(values) * 1000:.2f})"


def collapse_business(frame: Any, options: dict[str, Any]) -> Any:
    """A pyinstrument processor: each business call becomes one leaf, its
    time kept (the rest of the tree is what this profile is about)."""
    if frame is None:
        return None
    stack = [frame]
    while stack:
        node = stack.pop()
        path = (node.file_path or "").replace(os.sep, "/")
        if node.function in BUSINESS_FUNCTIONS and "/bench/" not in path:
            for child in node.children:
                node.absorbed_time += child.time
                child.remove_from_parent()
            continue
        stack.extend(node.children)
    return frame


def _business_root(frame: Any) -> bool:
    path = (frame.file_path or "").replace(os.sep, "/")
    return frame.function in BUSINESS_FUNCTIONS and "/bench/" not in path


def _area(frame: Any) -> str:
    """Where a frame's code lives: the package (and module for Django and
    DRF), or the app module for our code."""
    path = (frame.file_path or "").replace(os.sep, "/")
    if "site-packages/" in path:
        parts = path.split("site-packages/", 1)[1].removesuffix(".py").split("/")
        if parts[0] in ("django", "rest_framework") and len(parts) > 2:
            return "/".join(parts[:3])
        return "/".join(parts[:2]) if parts[0] in ("django", "rest_framework") else parts[0]
    if "/lib/python" in path:
        return "stdlib:" + path.rsplit("/", 1)[-1].removesuffix(".py")
    if str(ROOT) in path:
        return path.split(str(ROOT) + "/", 1)[1].removesuffix(".py")
    return path or frame.function


def self_times(session: Any) -> tuple[float, Counter[str], Counter[str]]:
    """Self time outside the business calls: total, per function, per area
    (the code a sample was in, not its callers)."""
    by_function: Counter[str] = Counter()
    by_area: Counter[str] = Counter()
    total = 0.0
    root = session.root_frame()
    stack = [root] if root is not None else []
    while stack:
        frame = stack.pop()
        if _business_root(frame):
            continue
        own = frame.time - sum(child.time for child in frame.children)
        # pyinstrument puts a frame's own time in a synthetic "[self]" child.
        owner = frame.parent if frame.is_synthetic and frame.parent is not None else frame
        if own > 0:
            total += own
            by_function[f"{owner.function}  {owner.code_position_short() or ''}"] += own
            by_area[_area(owner)] += own
        stack.extend(frame.children)
    return total, by_function, by_area


def self_time_report(profiler: Any, requests: int, top: int) -> str:
    total, by_function, by_area = self_times(profiler.last_session)
    lines = [f"Self time outside the business calls: {total / requests * 1000:.2f} ms per request (sampled wall time)"]
    lines.append("  by where the code lives:")
    lines += [
        f"    {seconds / requests * 1000:6.3f} ms  {seconds / total * 100:5.1f}%  {area}"
        for area, seconds in by_area.most_common(top)
    ]
    lines.append("  by function:")
    lines += [
        f"    {seconds / requests * 1000:6.3f} ms  {seconds / total * 100:5.1f}%  {name}"
        for name, seconds in by_function.most_common(top)
    ]
    return "\n".join(lines)


def profile_text(profiler: Any, lines: int) -> str:
    from pyinstrument.renderers import ConsoleRenderer

    renderer = ConsoleRenderer(unicode=True, color=False, show_all=True, short_mode=False)
    renderer.processors.insert(0, collapse_business)
    renderer.processor_options["filter_threshold"] = 0.01
    text = renderer.render(profiler.last_session)
    kept = text.splitlines()[:lines]
    return "\n".join(kept) + ("\n[...]" if len(text.splitlines()) > lines else "")


def write_reports(
    args: argparse.Namespace,
    timings: dict[str, Timing],
    sql: dict[str, list[list[tuple[str, bool]]]],
    redis_commands: dict[str, Counter[str]],
    redis_trips: dict[str, int],
    health_checks: dict[str, int],
    profilers: dict[str, Any],
) -> None:
    import pyinstrument

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    n_count = args.count_iterations
    tag = f"-{args.tag}" if args.tag else ""
    profiled_requests = min(args.iterations, args.profile_iterations)
    header = (
        f"{args.iterations} iterations ({args.buyers} buyers), WSGI in-process against PostgreSQL 15 and Redis on "
        f"127.0.0.1 (shared, noisy machine), DEBUG=0, pyinstrument {pyinstrument.__version__}"
        + (f", {args.label}" if args.label else "")
        + "\n"
    )
    summary = [f"profile-http summary: {header}"]
    summary.append(
        f"{'request':<11} {'CPU/req':>9} {'outside':>9} {'business':>9} {'wall/req':>9} {'PG CPU':>8} "
        f"{'SQL':>5} {'outside':>8} {'redis':>6} {'health':>7}"
    )
    for kind in KINDS:
        timing = timings[kind]
        one = sql[kind][-1]
        outside_sql = [s for s, inside in one if not inside]
        business_sql = [s for s, inside in one if inside]
        cpu = statistics.median(timing.cpu) * 1000
        business_cpu = statistics.median(timing.business_cpu) * 1000
        outside_cpu = statistics.median([a - b for a, b in zip(timing.cpu, timing.business_cpu, strict=True)]) * 1000
        summary.append(
            f"{kind:<11} {cpu:7.2f}ms {outside_cpu:7.2f}ms {business_cpu:7.2f}ms "
            f"{statistics.median(timing.wall) * 1000:7.2f}ms "
            f"{timing.backend_cpu / len(timing.cpu) * 1000:6.2f}ms "
            f"{len(one):5d} {len(outside_sql):8d} "
            f"{redis_trips[kind] / n_count:6.1f} {health_checks[kind] / n_count:7.1f}"
        )
        redis_lines = [f"  {n / n_count:5.1f}  {command}" for command, n in sorted(redis_commands[kind].items())]
        body = (
            f"{kind}: {header}\n"
            f"CPU per request (this process): {_ms(timing.cpu)}\n"
            f"  of which business code ({', '.join(name for _, name in BUSINESS[kind]) or 'none'}): "
            f"{_ms(timing.business_cpu)}\n"
            f"  outside the business code: "
            f"{_ms([a - b for a, b in zip(timing.cpu, timing.business_cpu, strict=True)])}\n"
            f"wall time per request: {_ms(timing.wall)} (business {_ms(timing.business_wall)})\n"
            f"PostgreSQL backend CPU per request: {timing.backend_cpu / len(timing.cpu) * 1000:.2f} ms\n"
            f"connection health checks (unlogged SELECT 1) per request: {health_checks[kind] / n_count:.1f}\n"
            f"Redis round trips per request: {redis_trips[kind] / n_count:.1f}; commands per request:\n"
            + ("\n".join(redis_lines) or "  none")
            + "\n\n"
            + kinds_report("SQL statements of one request, outside the business code", outside_sql)
            + "\n\n"
            + kinds_report("SQL statements of one request, in the business code", business_sql)
            + "\n\n"
            + self_time_report(profilers[kind], requests=profiled_requests, top=30)
            + "\n\npyinstrument (paused inside the business calls):\n"
            + profile_text(profilers[kind], lines=220)
            + "\n"
        )
        path = out / f"profile-http{tag}-{kind.replace('_', '-')}.txt"
        path.write_text(body)
    summary.append("")
    summary.append(
        "CPU = this process (median per request); outside = CPU minus the business calls; PG CPU = the backend's "
        "CPU per request (mean, /proc, 10 ms ticks); SQL = statements of one request incl. BEGIN/COMMIT/SAVEPOINT; "
        "redis = round trips; health = unlogged connection health checks."
    )
    text = "\n".join(summary) + "\n"
    (out / f"profile-http{tag}-summary.txt").write_text(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
