"""The webhook-shuffle drill plays the payment provider's delivery: every
webhook the sandbox recorded is POSTed to /webhooks/payments/sandbox/ over
HTTP three times, each copy at a random moment within `spread` seconds of
the webhook falling due, by several senders at once. So copies of one event
arrive concurrently or seconds apart, and events of one payment arrive in any
order (payment.succeeded before payment.pending or payment.failed). A copy
that gets no 2xx is tried again, as a provider does, up to `max_attempts`.

The sandbox's own delivery is switched off for this drill (bench/drills/
settings.py); reading its recorded webhooks is reading the provider's side.
Runs in the drill's process, which has Django set up on the drill database.
"""

from __future__ import annotations

import heapq
import http.client
import itertools
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from django.db import close_old_connections, connection
from django.utils import timezone

from payments.models import SandboxWebhook
from payments.sandbox.webhooks import SIGNATURE_HEADER, signature_header

PATH = "/webhooks/payments/sandbox/"


@dataclass
class Delivery:
    webhook_id: int
    event_id: str
    event_type: str
    order_code: str
    body: bytes
    copy: int
    attempt: int = 1


@dataclass
class ShuffledDelivery:
    port: int
    secret: str
    copies: int = 3
    spread: float = 3.0
    senders: int = 4
    max_attempts: int = 10
    seed: int = 1
    log: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.heap: list[tuple[float, int, Delivery]] = []
        self.counter = itertools.count()
        self.cond = threading.Condition()
        self.in_flight = 0
        self.known: dict[int, float] = {}  # webhook id -> when due (epoch), not yet scheduled
        self.scheduled: set[int] = set()
        self.last_id = 0
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.rows: dict[int, tuple[str, str, str, bytes]] = {}

    # --- collecting the provider's recorded webhooks -----------------------------------

    def _collect(self) -> None:
        rows = list(
            SandboxWebhook.objects.filter(pk__gt=self.last_id)
            .select_related("session")
            .order_by("pk")
            .values_list("pk", "event_id", "event_type", "session__order_reference", "body", "next_attempt_at")
        )
        for pk, event_id, event_type, order_code, body, due in rows:
            self.last_id = max(self.last_id, pk)
            self.rows[pk] = (event_id, event_type, order_code or "", body.encode("utf-8"))
            self.known[pk] = due.timestamp() if due else time.time()
        now = time.time()
        for pk, due in list(self.known.items()):
            if due <= now:
                del self.known[pk]
                self._schedule(pk, now)

    def _schedule(self, pk: int, now: float) -> None:
        event_id, event_type, order_code, body = self.rows[pk]
        self.scheduled.add(pk)
        with self.cond:
            for copy in range(1, self.copies + 1):
                delivery = Delivery(pk, event_id, event_type, order_code, body, copy)
                heapq.heappush(self.heap, (now + self.rng.uniform(0, self.spread), next(self.counter), delivery))
            self.cond.notify_all()

    def _collector(self) -> None:
        while not self.stop.is_set():
            try:
                self._collect()
            except Exception:  # the database may be briefly away; try again
                connection.close()
            time.sleep(0.3)
        close_old_connections()
        connection.close()

    # --- sending -------------------------------------------------------------------------

    def _post(self, delivery: Delivery) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            header = signature_header(raw_body=delivery.body, secret=self.secret)
            conn.request(
                "POST",
                PATH,
                body=delivery.body,
                headers={"Content-Type": "application/json", SIGNATURE_HEADER: header},
            )
            response = conn.getresponse()
            return response.status, response.read()[:300].decode("utf-8", "replace")
        except (OSError, http.client.HTTPException) as exc:
            return 0, f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()

    def _sender(self) -> None:
        while True:
            with self.cond:
                while True:
                    if self.stop.is_set() and not self.heap:
                        return
                    now = time.time()
                    if self.heap and self.heap[0][0] <= now:
                        _, _, delivery = heapq.heappop(self.heap)
                        self.in_flight += 1
                        break
                    self.cond.wait(timeout=(self.heap[0][0] - now) if self.heap else 0.2)
            started = time.time()
            status, text = self._post(delivery)
            self.log.append(
                {
                    "event_id": delivery.event_id,
                    "event_type": delivery.event_type,
                    "order": delivery.order_code,
                    "copy": delivery.copy,
                    "attempt": delivery.attempt,
                    "status": status,
                    "t": round(started, 3),
                    "body": text if not 200 <= status < 300 else "",
                }
            )
            with self.cond:
                self.in_flight -= 1
                if not 200 <= status < 300 and delivery.attempt < self.max_attempts:
                    delivery.attempt += 1
                    retry_at = time.time() + min(0.5 * 2 ** (delivery.attempt - 2), 5.0)
                    heapq.heappush(self.heap, (retry_at, next(self.counter), delivery))
                self.cond.notify_all()

    # --- the drill's interface ---------------------------------------------------------------

    def start(self) -> None:
        self.threads = [threading.Thread(target=self._collector, name="webhook-collector", daemon=True)]
        self.threads += [
            threading.Thread(target=self._sender, name=f"webhook-sender-{n}", daemon=True) for n in range(self.senders)
        ]
        for thread in self.threads:
            thread.start()

    def drain(self, timeout: float) -> bool:
        """After the buyers stopped: deliver what is left (webhooks falling due
        later included); True when everything was delivered in time."""
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            with self.cond:
                busy = bool(self.heap) or self.in_flight > 0 or bool(self.known)
            if busy:
                quiet_since = None
            else:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 2.0:  # nothing new for 2 s (the collector polls every 0.3 s)
                    break
            time.sleep(0.2)
        self.stop.set()
        with self.cond:
            self.cond.notify_all()
        for thread in self.threads:
            thread.join(timeout=max(deadline - time.monotonic(), 0) + 35)
        return not self.heap and not self.known and self.in_flight == 0

    def summary(self) -> dict[str, Any]:
        statuses = Counter(str(entry["status"]) for entry in self.log)
        accepted: dict[str, int] = Counter(e["event_id"] for e in self.log if 200 <= e["status"] < 300)
        by_order: dict[str, list[dict[str, Any]]] = {}
        for entry in sorted(self.log, key=lambda e: e["t"]):
            if entry["order"]:
                by_order.setdefault(entry["order"], []).append(entry)
        reordered = 0
        for entries in by_order.values():
            first_seen = list(dict.fromkeys(e["event_type"] for e in entries))
            recorded = [t for t in ("payment.failed", "payment.pending", "payment.succeeded") if t in first_seen]
            if first_seen != recorded:
                reordered += 1
        concurrent = 0
        by_event: dict[str, list[float]] = {}
        for entry in self.log:
            by_event.setdefault(entry["event_id"], []).append(entry["t"])
        for times in by_event.values():
            times.sort()
            concurrent += any(b - a < 0.05 for a, b in itertools.pairwise(times))
        return {
            "webhooks_recorded_by_sandbox": len(self.rows),
            "webhooks_by_type": dict(Counter(row[1] for row in self.rows.values())),
            "deliveries": len(self.log),
            "deliveries_by_status": dict(sorted(statuses.items())),
            "events_accepted": len(accepted),
            "events_with_fewer_than_copies_accepted": sum(1 for n in accepted.values() if n < self.copies),
            "events_never_accepted": len(set(by_event) - set(accepted)),
            "orders_whose_events_arrived_out_of_order": reordered,
            "events_with_copies_under_50ms_apart": concurrent,
            "non_2xx_samples": [e for e in self.log if not 200 <= e["status"] < 300][:10],
            "copies": self.copies,
            "spread_seconds": self.spread,
            "finished_at": timezone.now().isoformat(timespec="seconds"),
        }

    def accepted_events(self) -> dict[str, dict[str, Any]]:
        """Event id -> {"type", "order", "accepted": 2xx count} for every event that got a 2xx."""
        out: dict[str, dict[str, Any]] = {}
        for entry in self.log:
            if 200 <= entry["status"] < 300:
                item = out.setdefault(entry["event_id"], {"type": entry["event_type"], "order": entry["order"]})
                item["accepted"] = item.get("accepted", 0) + 1
        return out
