"""The load generator: closed-loop simulated buyers, one thread each, in a
process of its own (it never imports Django).

    python -m bench.loadgen <config.json> <result.json>

Every buyer has its own loopback source address (127.1.x.y), so per-IP rules
see many buyers as they would in a real rush, and its own seeded random
generator. HTTP is the standard library's http.client: the cheapest client
there is, so the load generator takes as little of the machine's two cores as
possible (gunicorn's sync workers close the connection after every response,
so a keep-alive pool would not help).

Buyers talk only HTTP, like browsers and integrators do:
  POST /api/v1/public/checkouts/            start a checkout
  GET  /pay/sandbox/<token>/                the sandbox's hosted pay page
  POST /pay/sandbox/<token>/                card 4242 4242 4242 4242 (+ CSRF)
  GET  /api/v1/public/events/<id>/seat-map/ seat-rush "clickers"
  POST /api/v1/public/events/<id>/seat-holds/  seat-rush best-available: hold 2 seats
  POST /api/v1/public/seat-holds/<token>/release/  only when its checkout failed
  GET  /api/v1/public/orders/<code>/        only with wait_paid
"""

from __future__ import annotations

import http.client
import itertools
import json
import random
import re
import sys
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

CARD_OK = "4242424242424242"
CSRF_INPUT = re.compile(rb'name="csrfmiddlewaretoken" value="([^"]+)"')
CHECKOUTS = "/api/v1/public/checkouts/"
# Retry-After says 1 s; a buyer in a rush clicks again sooner.
MAX_BACKOFF_SECONDS = 0.5


def source_address(index: int) -> str:
    return f"127.1.{index // 250}.{index % 250 + 1}"


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None


class Browser:
    """One buyer's HTTP connection and cookies."""

    def __init__(self, port: int, source_ip: str, timeout: float) -> None:
        self.port = port
        self.source_ip = source_ip
        self.timeout = timeout
        self.cookies: dict[str, str] = {}
        self.conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(
                "127.0.0.1", self.port, timeout=self.timeout, source_address=(self.source_ip, 0)
            )
        return self.conn

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Response:
        all_headers = {"Host": f"127.0.0.1:{self.port}", **(headers or {})}
        if self.cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(method, path, body=body, headers=all_headers)
                raw = conn.getresponse()
                data = raw.read()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                self.conn = None
                # Only a read is tried again: a POST may have reached the app.
                if attempt == 2 or method != "GET":
                    raise ConnectionError(f"{type(exc).__name__}: {exc}") from exc
                continue
            headers_out = {k.lower(): v for k, v in raw.getheaders()}
            for name, value in raw.getheaders():
                if name.lower() == "set-cookie":
                    key, _, rest = value.partition("=")
                    self.cookies[key.strip()] = rest.split(";", 1)[0]
            if raw.will_close:
                conn.close()
                self.conn = None
            return Response(raw.status, headers_out, data)
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


@dataclass
class Tally:
    """What one buyer saw; merged at the end."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    statuses: Counter[str] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    paid: list[dict[str, Any]] = field(default_factory=list)  # {"code", "t_pay", "quantity", "paid_seen"?}
    errors: list[str] = field(default_factory=list)
    first_request: float | None = None
    last_response: float | None = None
    outcome: str = ""
    conflicts: int = 0

    def timed(self, browser: Browser, kind: str, method: str, path: str, **kwargs: Any) -> Response:
        started_wall = time.time()
        if self.first_request is None:
            self.first_request = started_wall
        started = time.perf_counter()
        try:
            response = browser.request(method, path, **kwargs)
        except OSError as exc:
            self.statuses[f"{kind} error"] += 1
            self.note(f"{kind}: {type(exc).__name__}: {exc}")
            raise
        self.latencies.setdefault(kind, []).append(time.perf_counter() - started)
        self.statuses[f"{kind} {response.status}"] += 1
        self.last_response = time.time()
        return response

    def note(self, message: str) -> None:
        if len(self.errors) < 20:
            self.errors.append(message[:500])


class Run:
    """Shared state of one load run: the stop flag, the time limit and the
    budget of checkout attempts (all buyers together)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.port = int(config["port"])
        self.deadline = time.monotonic() + float(config["max_seconds"])
        self.max_checkouts = int(config["max_checkouts"])
        self.attempts = itertools.count()
        self.stop = threading.Event()
        self.stop_reason = ""
        # Events some buyer found sold out: the event page would say so, so
        # the other buyers stop asking (set.add and `in` are atomic).
        self.sold_out: set[int] = set()

    def budget_ok(self) -> bool:
        if self.stop.is_set():
            return False
        if time.monotonic() > self.deadline:
            self.halt("time limit")
        elif next(self.attempts) >= self.max_checkouts:
            self.halt("checkout attempt limit")
        return not self.stop.is_set()

    def halt(self, reason: str) -> None:
        if not self.stop.is_set():
            self.stop_reason = reason
            self.stop.set()


# --- the steps every buyer takes ---------------------------------------------------------


def _error_code(response: Response) -> str:
    data = response.json()
    return str(data.get("code")) if isinstance(data, dict) else ""


def start_checkout(run: Run, browser: Browser, tally: Tally, payload: dict[str, Any]) -> Response:
    return tally.timed(
        browser,
        "checkout_start",
        "POST",
        CHECKOUTS,
        body=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )


def pay(run: Run, browser: Browser, tally: Tally, started: dict[str, Any], quantity: int) -> bool:
    """Pay like the sandbox's hosted page: GET it, POST the test card with the
    page's CSRF token. True when the page took the money (302 to success_url)."""
    path = urllib.parse.urlsplit(str(started["payment_url"])).path
    page = tally.timed(browser, "pay_page", "GET", path)
    match = CSRF_INPUT.search(page.body)
    if page.status != 200 or match is None:
        tally.note(f"pay page {page.status}: {page.body[:200]!r}")
        return False
    form = urllib.parse.urlencode({"csrfmiddlewaretoken": match.group(1).decode(), "card_number": CARD_OK})
    t_pay = time.time()
    posted = tally.timed(
        browser,
        "pay_submit",
        "POST",
        path,
        body=form.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Referer": f"http://127.0.0.1:{run.port}{path}"},
    )
    if posted.status != 302:
        tally.note(f"pay submit {posted.status}: {posted.body[:200]!r}")
        return False
    record: dict[str, Any] = {"code": started["order_code"], "t_pay": t_pay, "quantity": quantity}
    if run.config.get("wait_paid"):
        record["paid_seen"] = wait_paid(run, browser, tally, started["order_code"])
    tally.paid.append(record)
    return True


def wait_paid(run: Run, browser: Browser, tally: Tally, code: str, timeout: float = 30.0) -> float | None:
    """Poll the public order endpoint like the confirming page does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not run.stop.is_set():
        response = tally.timed(browser, "order_status", "GET", f"/api/v1/public/orders/{code}/")
        data = response.json()
        if isinstance(data, dict) and data.get("status") in ("paid", "partially_refunded", "refunded"):
            return time.time()
        time.sleep(0.05)
    return None


def handle_busy(response: Response) -> None:
    try:
        retry_after = float(response.headers.get("retry-after", "1"))
    except ValueError:
        retry_after = 1.0
    time.sleep(min(retry_after, MAX_BACKOFF_SECONDS))


# --- general admission: quota-rush and many-events ------------------------------------------


def ga_buyer(run: Run, index: int, tally: Tally) -> None:
    """Loop: a checkout for 1-4 tickets, pay it; until every event it may buy
    for answers sold out (asking for 1 ticket after a bigger order was refused,
    so the last few tickets sell too)."""
    rng = random.Random(f"{run.config['seed']}:{index}")
    browser = Browser(run.port, source_address(index), float(run.config.get("timeout", 30)))
    targets: list[dict[str, int]] = list(run.config["targets"])
    position = index % len(targets)
    max_quantity = 4
    failures = 0
    try:
        while run.budget_ok():
            targets = [t for t in targets if t["event"] not in run.sold_out]
            if not targets:
                break
            target = targets[position % len(targets)]
            quantity = rng.randint(1, max_quantity)
            payload = {
                "event": target["event"],
                "tickets": [{"ticket_type": target["ticket_type"], "quantity": quantity}],
                "buyer_name": f"Buyer {index}",
                "buyer_email": f"buyer{index}@bench.example",
            }
            try:
                response = start_checkout(run, browser, tally, payload)
                if response.status == 201:
                    max_quantity = 4
                    if not pay(run, browser, tally, response.json(), quantity):
                        failures += 1
                    continue
                code = _error_code(response)
                tally.codes[f"{response.status} {code}"] += 1
                if response.status == 409 and code == "sold_out":
                    if max_quantity > 1 and quantity > 1:
                        max_quantity = 1
                        continue
                    run.sold_out.add(target["event"])  # on to the next event, if any
                    max_quantity = 4
                    continue
                if response.status == 429:
                    handle_busy(response)
                    continue
                failures += 1
                tally.note(f"checkout {response.status}: {response.body[:300]!r}")
            except OSError:
                failures += 1
                time.sleep(0.05)
            if failures > 50:
                tally.outcome = "gave up after errors"
                return
        tally.outcome = f"stopped: {run.stop_reason}" if run.stop.is_set() else "sold out"
    finally:
        browser.close()


# --- seat-rush -------------------------------------------------------------------------------


def free_pairs(seat_map: dict[str, Any]) -> list[tuple[int, int]]:
    """Adjacent free seats: same row, consecutive numbers."""
    by_row: dict[int, dict[int, dict[str, Any]]] = {}
    for seat in seat_map.get("seats", []):
        by_row.setdefault(seat["row_id"], {})[seat["number"]] = seat
    pairs: list[tuple[int, int]] = []
    for seats in by_row.values():
        for number, seat in seats.items():
            right = seats.get(number + 1)
            if right is not None and seat["status"] == "free" and right["status"] == "free":
                pairs.append((seat["id"], right["id"]))
    return pairs


def seat_buyer(run: Run, index: int, tally: Tally) -> None:
    """Wants 2 adjacent seats, once. Even-numbered buyers ("clickers") click a
    random free pair on the public seat map and check out with those seats; a
    seat taken meanwhile (409) means: look again and choose again.
    Odd-numbered buyers hold the best available pair through the public API
    (POST /api/v1/public/events/<id>/seat-holds/: chosen and held under the
    seats' locks, so no two buyers get the same pair) and check out with the
    held seats and the hold's token, which the order adopts; a 409 on holding
    (the race for the best pair lost) means: hold again. Both kinds of 409
    count as conflicts; the hold's are under "hold 409 <code>" in the codes."""
    rng = random.Random(f"{run.config['seed']}:{index}")
    browser = Browser(run.port, source_address(index), float(run.config.get("timeout", 30)))
    seated = run.config["seated"]
    event_id = seated["event"]
    clicker = index % 2 == 0
    tally.outcome = "clicker" if clicker else "best"
    json_headers = {"Content-Type": "application/json", "Accept": "application/json"}
    try:
        for _attempt in range(int(seated.get("max_attempts", 30))):
            if not run.budget_ok():
                tally.outcome += ": stopped"
                return
            seats: list[int] | None
            token = ""
            if clicker:
                response = tally.timed(browser, "seat_map", "GET", f"/api/v1/public/events/{event_id}/seat-map/")
                pairs = free_pairs(response.json() or {}) if response.status == 200 else []
                seats = list(rng.choice(pairs)) if pairs else None
            else:
                try:
                    response = tally.timed(
                        browser,
                        "best_available",
                        "POST",
                        f"/api/v1/public/events/{event_id}/seat-holds/",
                        body=json.dumps({"category": seated["category"], "quantity": 2}).encode(),
                        headers=json_headers,
                    )
                except OSError:
                    continue
                held = response.json()
                if response.status != 201 or not isinstance(held, dict):
                    code = _error_code(response)
                    tally.codes[f"hold {response.status} {code}"] += 1
                    detail = held.get("detail") if isinstance(held, dict) else None
                    lost_race = isinstance(detail, dict) and detail.get("reason") == "lost_race"
                    if response.status == 409 and code == "no_seats_available" and not lost_race:
                        tally.outcome += ": no adjacent pair left"
                        return
                    if response.status == 409:
                        tally.conflicts += 1
                        time.sleep(rng.uniform(0, 0.05))
                    elif response.status == 429:
                        handle_busy(response)
                    else:
                        tally.note(f"hold {response.status}: {response.body[:300]!r}")
                    continue
                seats = [int(seat["id"]) for seat in held["seats"]]
                token = str(held["token"])
            if seats is None:
                tally.outcome += ": no adjacent pair left"
                return
            payload: dict[str, Any] = {
                "event": event_id,
                "tickets": [],
                "seats": seats,
                "buyer_name": f"Seat buyer {index}",
                "buyer_email": f"seat{index}@bench.example",
            }
            if token:
                payload["seat_hold_token"] = token
            try:
                started = start_checkout(run, browser, tally, payload)
            except OSError:
                continue
            if started.status == 201:
                if pay(run, browser, tally, started.json(), len(seats)):
                    tally.outcome += ": bought"
                    return
                continue
            code = _error_code(started)
            tally.codes[f"{started.status} {code}"] += 1
            if token:
                # Our hold was not adopted: give its seats back rather than
                # keep them from everyone until it expires, then hold again.
                try:
                    tally.timed(browser, "seat_hold_release", "POST", f"/api/v1/public/seat-holds/{token}/release/")
                except OSError:
                    pass
            if started.status == 409:
                tally.conflicts += 1
                time.sleep(rng.uniform(0, 0.05))  # the map is cached for a moment: look again shortly
            elif started.status == 429:
                handle_busy(started)
            else:
                tally.note(f"checkout {started.status}: {started.body[:300]!r}")
        tally.outcome += ": gave up after conflicts"
    finally:
        browser.close()


# --- running it --------------------------------------------------------------------------------


BUYERS = {"ga": ga_buyer, "seat": seat_buyer}


def run_load(config: dict[str, Any]) -> dict[str, Any]:
    run = Run(config)
    behaviour = BUYERS[config["buyer"]]
    clients = int(config["clients"])
    tallies = [Tally() for _ in range(clients)]
    barrier = threading.Barrier(clients)

    def body(i: int) -> None:
        barrier.wait()
        try:
            behaviour(run, i, tallies[i])
        except Exception as exc:
            tallies[i].outcome = f"crashed: {type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=body, args=(i,), name=f"buyer-{i}", daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(run.deadline - time.monotonic(), 0) + 60)

    merged = Tally()
    outcomes: Counter[str] = Counter()
    for tally in tallies:
        for kind, values in tally.latencies.items():
            merged.latencies.setdefault(kind, []).extend(values)
        merged.statuses.update(tally.statuses)
        merged.codes.update(tally.codes)
        merged.paid.extend(tally.paid)
        merged.errors.extend(tally.errors[: max(0, 20 - len(merged.errors))])
        merged.conflicts += tally.conflicts
        outcomes[tally.outcome] += 1
    firsts = [t.first_request for t in tallies if t.first_request is not None]
    lasts = [t.last_response for t in tallies if t.last_response is not None]
    return {
        "first_request": min(firsts) if firsts else None,
        "last_response": max(lasts) if lasts else None,
        "latencies": merged.latencies,
        "statuses": dict(sorted(merged.statuses.items())),
        "error_codes": dict(sorted(merged.codes.items())),
        "paid": merged.paid,
        "errors": merged.errors,
        "conflicts": merged.conflicts,
        "outcomes": dict(sorted(outcomes.items())),
        "stop_reason": run.stop_reason,
        "threads_alive": sum(1 for t in threads if t.is_alive()),
    }


def main(argv: list[str]) -> int:
    config_path, result_path = argv[1], argv[2]
    with open(config_path) as f:
        config = json.load(f)
    result = run_load(config)
    with open(result_path, "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
