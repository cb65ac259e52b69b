"""The drills' buyers: bench.loadgen's closed-loop buyers, made to keep going
through a fault, plus probes. A process of its own (standard library only):

    python -m bench.drills.buyers <config.json> <result.json>

Differences from bench.loadgen's general-admission buyer:
- a 503 (or 429) is "try again after Retry-After" (capped at 1 s), a refused
  connection or a 500 is tried again after 0.25 s; a buyer never gives up
  before the time limit, so the rush goes on across the outage;
- a buyer that got a payment page pays it, trying again through 5xx answers
  and refused connections for up to `pay_patience` seconds (the hosted page is
  idempotent: paying twice charges once), also after the time limit;
- the card is drawn from `cards` (weights): 4242... succeeds, 4000...0077 is a
  delayed confirmation (payment.pending now, payment.succeeded later), a
  declined card is followed by 4242... on the same page (payment.failed, then
  payment.succeeded);
- every request is written to a timeline (start, end, kind, status), so the
  drill can count the answers given during a fault window; every 5xx answer
  is kept as a sample (content type, Retry-After, body);
- probe threads GET /healthz, a public API list and an event page every
  `probe_interval` seconds.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.loadgen import CHECKOUTS, CSRF_INPUT, Browser, Response, source_address

CARD_OK = "4242424242424242"
CARD_DELAYED = "4000000000000077"
CARD_DECLINED = "4000000000000002"
CARD_NAMES = {CARD_OK: "ok", CARD_DELAYED: "delayed", CARD_DECLINED: "declined_then_ok"}
MAX_SAMPLES = 40


@dataclass
class Tally:
    timeline: list[tuple[float, float, str, int]] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    started: list[dict[str, Any]] = field(default_factory=list)  # every 201: {"code", "quantity", "t"}
    paid: list[dict[str, Any]] = field(default_factory=list)  # {"code", "quantity", "t_pay", "card"}
    unpaid: list[dict[str, Any]] = field(default_factory=list)  # a payment page given up on: {"code", "why"}
    samples_5xx: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    outcome: str = ""

    def request(self, browser: Browser, kind: str, method: str, path: str, **kwargs: Any) -> Response | None:
        """One request; None when the connection failed (refused, reset, timed out)."""
        started = time.time()
        try:
            response = browser.request(method, path, **kwargs)
        except OSError as exc:
            self.timeline.append((started, time.time(), kind, 0))
            self.statuses[f"{kind} error"] += 1
            self.note(f"{kind}: {type(exc).__name__}: {exc}")
            return None
        ended = time.time()
        self.timeline.append((started, ended, kind, response.status))
        self.statuses[f"{kind} {response.status}"] += 1
        if response.status >= 500 and len(self.samples_5xx) < MAX_SAMPLES:
            body = response.json()
            self.samples_5xx.append(
                {
                    "t": round(ended, 3),
                    "kind": kind,
                    "path": path,
                    "status": response.status,
                    "content_type": response.headers.get("content-type", ""),
                    "retry_after": response.headers.get("retry-after"),
                    "error_format": isinstance(body, dict) and {"code", "message", "detail"} <= set(body),
                    "body": response.body[:300].decode("utf-8", "replace"),
                }
            )
        return response

    def note(self, message: str) -> None:
        if len(self.errors) < 30:
            self.errors.append(message[:400])


class Run:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.port = int(config["port"])
        self.deadline = time.monotonic() + float(config["max_seconds"])
        self.stop = threading.Event()
        self.stop_reason = ""
        self.sold_out: set[int] = set()

    def going(self) -> bool:
        if not self.stop.is_set() and time.monotonic() > self.deadline:
            self.halt("time limit")
        return not self.stop.is_set()

    def halt(self, reason: str) -> None:
        if not self.stop.is_set():
            self.stop_reason = reason
            self.stop.set()


def _json_code(response: Response) -> str:
    data = response.json()
    return str(data.get("code")) if isinstance(data, dict) else ""


def _backoff(response: Response | None) -> None:
    if response is None or response.status not in (429, 503):
        time.sleep(0.25)
        return
    try:
        retry_after = float(response.headers.get("retry-after", "1"))
    except ValueError:
        retry_after = 1.0
    time.sleep(min(max(retry_after, 0.1), 1.0))


def pick_card(rng: random.Random, cards: dict[str, float]) -> str:
    numbers = list(cards)
    return rng.choices(numbers, weights=[cards[n] for n in numbers])[0]


def pay(run: Run, browser: Browser, tally: Tally, started: dict[str, Any], quantity: int, card: str) -> None:
    """Pay on the hosted page until it says paid (302) or processing (the
    delayed card), through 5xx answers and refused connections."""
    path = urllib.parse.urlsplit(str(started["payment_url"])).path
    code = started["order_code"]
    card_name = CARD_NAMES.get(card, card)
    give_up_at = time.monotonic() + float(run.config.get("pay_patience", 60))
    while time.monotonic() < give_up_at:
        page = tally.request(browser, "pay_page", "GET", path)
        if page is None or page.status >= 500:
            _backoff(page)
            continue
        match = CSRF_INPUT.search(page.body)
        if page.status != 200 or match is None:
            tally.note(f"pay page {page.status}: {page.body[:200]!r}")
            tally.unpaid.append({"code": code, "why": f"pay page {page.status}"})
            return
        form = urllib.parse.urlencode({"csrfmiddlewaretoken": match.group(1).decode(), "card_number": card})
        t_pay = time.time()
        posted = tally.request(
            browser,
            "pay_submit",
            "POST",
            path,
            body=form.encode(),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Referer": f"http://127.0.0.1:{run.port}{path}",
            },
        )
        if posted is None or posted.status >= 500:
            _backoff(posted)
            continue  # the charge may or may not have happened: the page tells on the next GET/POST
        processing = posted.status == 200 and b'data-outcome="processing"' in posted.body
        if posted.status == 302 or processing:
            tally.paid.append({"code": code, "quantity": quantity, "t_pay": t_pay, "card": card_name})
            return
        if posted.status == 402 and card != CARD_OK:
            card = CARD_OK  # declined: the buyer takes another card, on the same page
            continue
        tally.note(f"pay submit {posted.status}: {posted.body[:200]!r}")
        tally.unpaid.append({"code": code, "why": f"pay submit {posted.status}"})
        return
    tally.unpaid.append({"code": code, "why": "gave up paying (patience)"})


def buyer(run: Run, index: int, tally: Tally) -> None:
    """Loop: a checkout for 1-4 tickets, pay it. With `idempotency_keys`,
    each checkout carries an Idempotency-Key, and a checkout that got no
    clear answer (5xx, dropped connection, 409 idempotency_key_in_use) is
    sent again as it was, with the same key, as an integrator would."""
    rng = random.Random(f"{run.config['seed']}:{index}")
    browser = Browser(run.port, source_address(index), float(run.config.get("timeout", 30)))
    targets: list[dict[str, int]] = list(run.config["targets"])
    cards: dict[str, float] = run.config.get("cards") or {CARD_OK: 1.0}
    with_keys = bool(run.config.get("idempotency_keys"))
    max_quantity = 4
    intent: tuple[dict[str, Any], str, int, int] | None = None  # payload, key, quantity, event
    try:
        while run.going():
            if intent is None:
                live = [t for t in targets if t["event"] not in run.sold_out]
                if not live:
                    tally.outcome = "sold out"
                    return
                target = live[index % len(live)]
                quantity = rng.randint(1, max_quantity)
                payload = {
                    "event": target["event"],
                    "tickets": [{"ticket_type": target["ticket_type"], "quantity": quantity}],
                    "buyer_name": f"Drill buyer {index}",
                    "buyer_email": f"drill{index}@bench.example",
                }
                intent = (payload, f"drill-{index}-{rng.getrandbits(64):016x}", quantity, target["event"])
            payload, key, quantity, event = intent
            headers = {"Content-Type": "application/json", "Accept": "application/json"}
            if with_keys:
                headers["Idempotency-Key"] = key
            response = tally.request(
                browser, "checkout_start", "POST", CHECKOUTS, body=json.dumps(payload).encode(), headers=headers
            )
            if response is not None and response.status == 201:
                intent = None
                started = response.json()
                if response.headers.get("idempotent-replayed"):
                    tally.codes["201 idempotent replay"] += 1
                tally.started.append({"code": started["order_code"], "quantity": quantity, "t": time.time()})
                max_quantity = 4
                pay(run, browser, tally, started, quantity, pick_card(rng, cards))
                continue
            if response is not None and response.status < 500:
                code = _json_code(response)
                tally.codes[f"{response.status} {code}"] += 1
                if with_keys and response.status == 409 and code == "idempotency_key_in_use":
                    _backoff(response)
                    continue  # the same request again, later
                intent = None
                if response.status == 409 and code == "sold_out":
                    if quantity > 1:
                        max_quantity = 1
                        continue
                    run.sold_out.add(event)
                    continue
                if response.status != 429:
                    tally.note(f"checkout {response.status}: {response.body[:300]!r}")
            elif not with_keys:
                intent = None  # without a key a retry is a new checkout anyway
            _backoff(response)
        tally.outcome = f"stopped: {run.stop_reason}"
    finally:
        browser.close()


def probe(run: Run, index: int, tally: Tally) -> None:
    """GET /healthz, a public API list and an event page, every probe_interval s."""
    browser = Browser(run.port, source_address(index), 10)
    interval = float(run.config.get("probe_interval", 0.25))
    event = run.config["targets"][0]["event"]
    paths = [
        ("probe_healthz", "/healthz"),
        ("probe_api", "/api/v1/public/events/"),
        ("probe_page", f"/events/{event}/"),
    ]
    try:
        while run.going():
            for kind, path in paths:
                tally.request(browser, kind, "GET", path)
            time.sleep(interval)
        tally.outcome = "probe"
    finally:
        browser.close()


def run_load(config: dict[str, Any]) -> dict[str, Any]:
    run = Run(config)
    clients = int(config["clients"])
    tallies = [Tally() for _ in range(clients + 1)]
    threads = [
        threading.Thread(target=buyer, args=(run, i, tallies[i]), name=f"buyer-{i}", daemon=True)
        for i in range(clients)
    ]
    threads.append(threading.Thread(target=probe, args=(run, clients, tallies[clients]), name="probe", daemon=True))
    started_at = time.time()
    for thread in threads:
        thread.start()
    patience = float(config.get("pay_patience", 60))
    for thread in threads:
        thread.join(timeout=max(run.deadline - time.monotonic(), 0) + patience + 30)
    merged = Tally()
    outcomes: Counter[str] = Counter()
    for tally in tallies:
        merged.timeline.extend(tally.timeline)
        merged.statuses.update(tally.statuses)
        merged.codes.update(tally.codes)
        merged.started.extend(tally.started)
        merged.paid.extend(tally.paid)
        merged.unpaid.extend(tally.unpaid)
        merged.samples_5xx.extend(tally.samples_5xx[: max(0, MAX_SAMPLES - len(merged.samples_5xx))])
        merged.errors.extend(tally.errors[: max(0, 30 - len(merged.errors))])
        outcomes[tally.outcome or "unfinished"] += 1
    merged.timeline.sort()
    return {
        "started_at": started_at,
        "ended_at": time.time(),
        "statuses": dict(sorted(merged.statuses.items())),
        "error_codes": dict(sorted(merged.codes.items())),
        "started": merged.started,
        "paid": merged.paid,
        "unpaid": merged.unpaid,
        "timeline": merged.timeline,
        "samples_5xx": merged.samples_5xx,
        "errors": merged.errors,
        "outcomes": dict(sorted(outcomes.items())),
        "stop_reason": run.stop_reason,
        "threads_alive": sum(1 for t in threads if t.is_alive()),
    }


def main(argv: list[str]) -> int:
    with open(argv[1]) as f:
        config = json.load(f)
    result = run_load(config)
    with open(argv[2], "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
