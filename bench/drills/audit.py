"""After a drill: wait (bounded) for the asynchronous part, then count what
was lost, duplicated, oversold or left half-done, from the database.

Definitions (per drill run, over the drill database):

lost
  - an order whose payment webhook was accepted (the sender got a 2xx) that
    is not, at the end, paid with all its tickets (valid tickets = the
    quantity of its lines) and exactly one ticket e-mail delivery, sent;
  - a webhook the sender got a 2xx for with no recorded event (no
    WebhookEvent for its provider event id, or one left rejected/received);
  - an order the buyer paid on the provider's page (302, or "processing" for
    the delayed card) that is not paid with its tickets and its e-mail at the
    end: the money was taken and the customer has nothing.
duplicated
  - an order with more valid tickets than its lines' quantity;
  - more than one ticket e-mail delivery for an order (or one sent twice);
  - more than one captured payment for an order;
  - more than one sale in the ledger for an order, or for a payment.
oversold
  - valid tickets above capacity plus sold + held above capacity, summed over
    ticket types (bench.audit), and any inventory invariant broken
    (tests/invariants.py: counters agree with holds and tickets).
partial orders
  - an order without lines; a paid order without tickets; a pending order
    without an active capacity hold whose checkout is no longer running; an
    order that is cancelled or expired but still holds capacity; a paid order
    whose hold was not converted.
ledger
  - `manage.py verify_ledger` (every transaction balances, reconciles with
    payments and refunds).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from django.db import InterfaceError, OperationalError, connections
from django.db.models import Count, Q, Sum
from django.utils import timezone

from bench.audit import audit as bench_audit
from finance.models.ledger import JournalTransaction, TransactionKind
from payments.models import Payment, SandboxWebhook, WebhookEvent
from payments.models.payment import CAPTURED_STATES
from payments.models.webhook import WebhookOutcome
from ticketing.models import (
    CapacityHold,
    EmailDelivery,
    EmailKind,
    HoldStatus,
    Order,
    OrderLine,
    OrderStatus,
    Ticket,
    TicketStatus,
)
from ticketing.models.email_delivery import DeliveryStatus
from workflows.models import OutboxMessage, RunStatus, WorkflowRun

PAID = (OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED)
T = TypeVar("T")


def with_database(fn: Callable[[], T], *, attempts: int = 30) -> T:
    """Run a read, reconnecting while the database is briefly away."""
    for attempt in range(attempts):
        try:
            return fn()
        except (OperationalError, InterfaceError):
            connections.close_all()
            if attempt == attempts - 1:
                raise
            time.sleep(1)
    raise AssertionError("unreachable")


# --- what was accepted ------------------------------------------------------------------------


def sandbox_accepted_events() -> dict[str, dict[str, Any]]:
    """Webhooks the sandbox delivered with a 2xx answer (its own record of it)."""
    rows = SandboxWebhook.objects.filter(delivered_at__isnull=False).values_list(
        "event_id", "event_type", "session__order_reference"
    )
    return {event_id: {"type": kind, "order": order or "", "accepted": 1} for event_id, kind, order in rows}


# --- waiting for the asynchronous part -----------------------------------------------------------


def pending_work(*, must_complete: Iterable[str], sandbox_delivers: bool) -> dict[str, int]:
    """What is still to be done; all zero means settled. Checkout runs that
    wait for a payment that never came (the buyer gave up) may wait: they
    end when their hold expires."""
    codes = set(must_complete)
    done = Order.objects.filter(code__in=codes, status__in=PAID).annotate(
        n_sent=Count(
            "email_deliveries",
            filter=Q(email_deliveries__kind=EmailKind.TICKETS, email_deliveries__status=DeliveryStatus.SENT),
        )
    )
    complete = done.filter(n_sent__gte=1).count()
    captured_orders = set(
        Payment.objects.filter(status__in=CAPTURED_STATES).values_list("order__code", flat=True).distinct()
    )
    unpaid_captured = Order.objects.filter(code__in=captured_orders).exclude(status__in=PAID).count()
    busy_runs = WorkflowRun.objects.filter(
        status__in=(RunStatus.PENDING, RunStatus.RUNNING, RunStatus.COMPENSATING)
    ).count()
    paid_codes = Order.objects.filter(status__in=PAID).values_list("code", flat=True)
    waiting_for_paid = WorkflowRun.objects.filter(
        status=RunStatus.WAITING, business_key__in=[f"order:{c}" for c in paid_codes]
    ).count()
    result = {
        "orders_not_complete": len(codes) - complete,
        "captured_but_unpaid": unpaid_captured,
        "runs_busy": busy_runs,
        "runs_waiting_on_paid_orders": waiting_for_paid,
        "outbox_unpublished": OutboxMessage.objects.filter(published_at__isnull=True).count(),
        "emails_unsent": EmailDelivery.objects.exclude(status__in=(DeliveryStatus.SENT, DeliveryStatus.FAILED)).count(),
    }
    if sandbox_delivers:
        result["sandbox_webhooks_due"] = SandboxWebhook.objects.filter(
            delivered_at__isnull=True, next_attempt_at__isnull=False
        ).count()
    return result


def settle(
    *, must_complete: Callable[[], set[str]], sandbox_delivers: bool, timeout: float, log: Callable[[str], None]
) -> dict[str, Any]:
    started = time.monotonic()
    last: dict[str, int] = {}
    last_print = 0.0
    while True:
        try:
            last = pending_work(must_complete=must_complete(), sandbox_delivers=sandbox_delivers)
        except (OperationalError, InterfaceError) as exc:
            connections.close_all()
            last = {"database_unreachable": 1, "error": str(exc)[:100]}  # type: ignore[dict-item]
        elapsed = time.monotonic() - started
        if not any(v for k, v in last.items() if k != "error"):
            break
        if elapsed > timeout:
            break
        if elapsed - last_print > 15:
            log(f"settling ({elapsed:.0f} s): {last}")
            last_print = elapsed
        time.sleep(0.5)
    timed_out = any(v for k, v in last.items() if k != "error")
    return {"settle_seconds": round(time.monotonic() - started, 1), "timed_out": timed_out, "left": last}


# --- the audit --------------------------------------------------------------------------------------


def _counts(queryset: Any, key: str) -> dict[Any, int]:
    return dict(queryset.values(key).annotate(n=Count("id")).values_list(key, "n"))


def order_state(codes: Iterable[str]) -> dict[str, dict[str, Any]]:
    """For each order code: status, tickets wanted and valid, ticket e-mails recorded and sent."""
    codes = list(set(codes))
    orders = {o.code: o for o in Order.objects.filter(code__in=codes).only("id", "code", "status")}
    ids = [o.pk for o in orders.values()]
    wanted = dict(
        OrderLine.objects.filter(order_id__in=ids)
        .values("order_id")
        .annotate(n=Sum("quantity"))
        .values_list("order_id", "n")
    )
    valid = _counts(Ticket.objects.filter(order_id__in=ids, status=TicketStatus.VALID), "order_id")
    emails = _counts(EmailDelivery.objects.filter(order_id__in=ids, kind=EmailKind.TICKETS), "order_id")
    sent = _counts(
        EmailDelivery.objects.filter(order_id__in=ids, kind=EmailKind.TICKETS, status=DeliveryStatus.SENT), "order_id"
    )
    out: dict[str, dict[str, Any]] = {}
    for code in codes:
        order = orders.get(code)
        if order is None:
            out[code] = {"status": "missing"}
            continue
        out[code] = {
            "status": order.status,
            "tickets_wanted": wanted.get(order.pk, 0),
            "tickets_valid": valid.get(order.pk, 0),
            "ticket_emails": emails.get(order.pk, 0),
            "ticket_emails_sent": sent.get(order.pk, 0),
        }
    return out


def _complete(state: dict[str, Any]) -> bool:
    return (
        state.get("status") in PAID
        and state["tickets_valid"] == state["tickets_wanted"] > 0
        and state["ticket_emails"] == 1
        and state["ticket_emails_sent"] == 1
    )


def lost_and_duplicated(
    *, accepted: dict[str, dict[str, Any]], buyer_paid: Iterable[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    succeeded_orders = {e["order"] for e in accepted.values() if e["type"] == "payment.succeeded" and e["order"]}
    buyer_paid = set(buyer_paid)
    states = order_state(succeeded_orders | buyer_paid)
    lost_accepted = {c: states[c] for c in sorted(succeeded_orders) if not _complete(states[c])}
    lost_buyer = {c: states[c] for c in sorted(buyer_paid - succeeded_orders) if not _complete(states[c])}
    recorded = dict(
        WebhookEvent.objects.filter(provider="sandbox", provider_event_id__in=list(accepted)).values_list(
            "provider_event_id", "outcome"
        )
    )
    delivery_counts = dict(
        WebhookEvent.objects.filter(provider="sandbox", provider_event_id__in=list(accepted)).values_list(
            "provider_event_id", "delivery_count"
        )
    )
    unrecorded = {
        event_id: {"type": e["type"], "order": e["order"], "outcome": recorded.get(event_id, "no event row")}
        for event_id, e in accepted.items()
        if recorded.get(event_id) in (None, WebhookOutcome.REJECTED, WebhookOutcome.RECEIVED)
    }
    count_mismatch = {
        event_id: {"accepted": e["accepted"], "delivery_count": delivery_counts.get(event_id)}
        for event_id, e in accepted.items()
        if event_id in delivery_counts and delivery_counts[event_id] != e["accepted"]
    }
    lost = {
        "count": len(lost_accepted) + len(unrecorded) + len(lost_buyer),
        "accepted_payment_not_complete": len(lost_accepted),
        "webhook_2xx_without_recorded_event": len(unrecorded),
        "buyer_paid_not_complete": len(lost_buyer),
        "examples": {
            "accepted_payment_not_complete": dict(list(lost_accepted.items())[:10]),
            "webhook_2xx_without_recorded_event": dict(list(unrecorded.items())[:10]),
            "buyer_paid_not_complete": dict(list(lost_buyer.items())[:10]),
        },
        "orders_with_accepted_payment_webhook": len(succeeded_orders),
        "orders_paid_by_buyers": len(buyer_paid),
        "accepted_webhooks_whose_delivery_count_differs": len(count_mismatch),
        "delivery_count_examples": dict(list(count_mismatch.items())[:5]),
    }

    # Duplicates, over every order of the drill database.
    wanted = dict(OrderLine.objects.values("order_id").annotate(n=Sum("quantity")).values_list("order_id", "n"))
    valid = _counts(Ticket.objects.filter(status=TicketStatus.VALID), "order_id")
    extra_tickets = {oid: (n, wanted.get(oid, 0)) for oid, n in valid.items() if n > wanted.get(oid, 0)}
    emails = _counts(EmailDelivery.objects.filter(kind=EmailKind.TICKETS), "order_id")
    sends = dict(
        EmailDelivery.objects.filter(kind=EmailKind.TICKETS)
        .values("order_id")
        .annotate(n=Sum("attempts"), sent=Count("id", filter=Q(status=DeliveryStatus.SENT)))
        .values_list("order_id", "sent")
    )
    two_emails = {oid: n for oid, n in emails.items() if n > 1}
    two_sent = {oid: n for oid, n in sends.items() if n > 1}
    captured = _counts(Payment.objects.filter(status__in=CAPTURED_STATES), "order_id")
    two_payments = {oid: n for oid, n in captured.items() if n > 1}
    sales = Counter(
        str(data.get("order_id"))
        for data in JournalTransaction.objects.filter(kind=TransactionKind.SALE, reversed_by__isnull=True).values_list(
            "data", flat=True
        )
    )
    two_sales = {oid: n for oid, n in sales.items() if n > 1}
    duplicated = {
        "count": len(extra_tickets) + len(two_emails) + len(two_sent) + len(two_payments) + len(two_sales),
        "orders_with_extra_tickets": len(extra_tickets),
        "orders_with_more_than_one_ticket_email": len(two_emails),
        "orders_with_ticket_email_sent_twice": len(two_sent),
        "orders_with_two_captured_payments": len(two_payments),
        "orders_with_two_ledger_sales": len(two_sales),
        "examples": {
            "extra_tickets": dict(list(extra_tickets.items())[:5]),
            "two_emails": dict(list(two_emails.items())[:5]),
            "two_payments": dict(list(two_payments.items())[:5]),
            "two_sales": dict(list(two_sales.items())[:5]),
        },
    }
    return lost, duplicated


def partial_orders() -> dict[str, Any]:
    holds_by_ref: dict[str, list[str]] = {}
    for reference, status in CapacityHold.objects.values_list("reference", "status"):
        holds_by_ref.setdefault(reference, []).append(status)
    without_lines = list(Order.objects.filter(lines__isnull=True).values_list("code", flat=True)[:20])
    paid_without_tickets = list(
        Order.objects.filter(status__in=PAID)
        .annotate(n=Count("tickets", filter=Q(tickets__status=TicketStatus.VALID)))
        .filter(n=0)
        .values_list("code", flat=True)[:20]
    )
    running = set(
        WorkflowRun.objects.filter(
            status__in=(RunStatus.PENDING, RunStatus.RUNNING, RunStatus.COMPENSATING)
        ).values_list("business_key", flat=True)
    )
    problems: dict[str, list[str]] = {
        "without_lines": without_lines,
        "paid_without_tickets": paid_without_tickets,
        "pending_without_active_hold": [],
        "ended_still_holding": [],
        "paid_hold_not_converted": [],
    }
    for code, status in Order.objects.values_list("code", "status"):
        holds = holds_by_ref.get(code, [])
        if status == OrderStatus.PENDING and HoldStatus.ACTIVE not in holds and f"order:{code}" not in running:
            problems["pending_without_active_hold"].append(code)
        if status in (OrderStatus.CANCELLED, OrderStatus.EXPIRED) and HoldStatus.ACTIVE in holds:
            problems["ended_still_holding"].append(code)
        if status == OrderStatus.PAID and HoldStatus.CONVERTED not in holds:
            problems["paid_hold_not_converted"].append(code)
    return {
        "count": sum(len(v) for v in problems.values()),
        **{k: len(v) for k, v in problems.items()},
        "examples": {k: v[:10] for k, v in problems.items() if v},
    }


def runs_and_queues(*, stuck_after_seconds: int) -> dict[str, Any]:
    now = timezone.now()
    by_status = dict(
        WorkflowRun.objects.values("status").annotate(n=Count("id")).order_by("status").values_list("status", "n")
    )
    busy = WorkflowRun.objects.filter(status__in=(RunStatus.PENDING, RunStatus.RUNNING, RunStatus.COMPENSATING))
    stuck = busy.filter(updated_at__lt=now - timedelta(seconds=stuck_after_seconds))
    # A run that failed on a domain rule (sold out: its error carries a 4xx
    # status, and the buyer got that answer) is the product working; one that
    # failed on anything else, or could not compensate, is a finding.
    failed = WorkflowRun.objects.filter(status=RunStatus.COMPENSATION_FAILED) | WorkflowRun.objects.filter(
        status=RunStatus.FAILED
    ).exclude(error__status__lt=500)
    by_rule = WorkflowRun.objects.filter(status=RunStatus.FAILED, error__status__lt=500)
    unpublished = OutboxMessage.objects.filter(published_at__isnull=True)
    oldest = unpublished.order_by("created_at").values_list("created_at", flat=True).first()
    return {
        "runs_by_status": by_status,
        "runs_busy_at_end": busy.count(),
        "stuck_runs": stuck.count(),
        "stuck_examples": list(stuck.values("id", "workflow_type", "business_key", "status", "updated_at")[:5]),
        "failed_runs": failed.count(),
        "failed_on_a_domain_rule": dict(
            Counter(str((e or {}).get("code")) for e in by_rule.values_list("error", flat=True))
        ),
        "failed_examples": list(failed.values("id", "workflow_type", "business_key", "status", "error")[:5]),
        "outbox_unpublished": unpublished.count(),
        "outbox_oldest_unpublished_s": round((now - oldest).total_seconds(), 1) if oldest else None,
        "outbox_messages": OutboxMessage.objects.count(),
        "outbox_relayed_after_a_failed_publish": OutboxMessage.objects.filter(
            published_at__isnull=False, attempts__gt=1
        ).count(),
        "emails_by_status": dict(
            EmailDelivery.objects.values("status").annotate(n=Count("id")).order_by("status").values_list("status", "n")
        ),
        "orders_by_status": dict(
            Order.objects.values("status").annotate(n=Count("id")).order_by("status").values_list("status", "n")
        ),
    }


def orders_unknown_to_buyers(buyer_started: Iterable[str]) -> dict[str, Any]:
    """Orders no buyer got a 201 for: the request that created them failed
    (a 503 while the database went away mid-request, a dropped connection)
    and the checkout was finished in the background. Not lost (nobody paid),
    but their capacity stays held until the hold expires."""
    started = set(buyer_started)
    rows = [(c, st) for c, st in Order.objects.values_list("code", "status") if c not in started]
    return {
        "count": len(rows),
        "by_status": dict(Counter(st for _, st in rows)),
        "examples": [c for c, _ in rows[:5]],
    }


def drill_audit(
    *,
    accepted: dict[str, dict[str, Any]],
    buyer_paid: Iterable[str],
    buyer_started: Iterable[str],
    ticket_type_ids: list[int],
    stuck_after_seconds: int,
    env: dict[str, str],
    cwd: Path,
) -> dict[str, Any]:
    lost, duplicated = lost_and_duplicated(accepted=accepted, buyer_paid=buyer_paid)
    inventory = bench_audit(ticket_type_ids=ticket_type_ids, stuck_after_seconds=stuck_after_seconds, env=env, cwd=cwd)
    return {
        "lost": lost,
        "duplicated": duplicated,
        "oversold": inventory["oversold"] + len(inventory["inventory_problems"]),
        "inventory": {
            k: inventory[k]
            for k in ("capacity", "tickets_sold", "held_at_end", "unsold", "oversold", "inventory_problems")
        },
        "ledger_balanced": inventory["ledger_balanced"],
        "verify_ledger": {k: inventory[k] for k in ("verify_ledger_exit", "verify_ledger_stderr")},
        "partial_orders": partial_orders(),
        "orders_unknown_to_buyers": orders_unknown_to_buyers(buyer_started),
        "runs": runs_and_queues(stuck_after_seconds=stuck_after_seconds),
    }
