"""Small workflows shared by the tests that run in other processes.

The crash tests' child process and the real Celery worker import this module
(the worker with `--include tests.workflows.flows`), so these definitions
exist there too. Workflows used by one test only live in that test module.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import redis
from celery import shared_task
from django.conf import settings
from django.db import connection
from django.utils import timezone

from ticketing.models import TicketType
from ticketing.services.capacity import capacity_release, capacity_reserve
from workflows.engine import NO_RETRY, Context, RetryPolicy, workflow


class FakeProvider:
    """A payment provider that, like a real one, deduplicates by idempotency
    key. Its state lives in Redis (the test database 2) so a killed child
    process and a Celery worker share it with the test."""

    def __init__(self) -> None:
        self.redis = redis.Redis.from_url(settings.REDIS_URL)

    def charge(self, key: str, amount: int) -> dict[str, Any]:
        self.redis.incr(f"provider:calls:{key}")
        if self.redis.set(f"provider:charge:{key}", amount, nx=True):
            self.redis.incrby("provider:charged_total", amount)
        return {"charge_id": f"ch_{key}", "amount": amount}

    def refund(self, charge_id: str, key: str) -> dict[str, Any]:
        if self.redis.set(f"provider:refund:{key}", charge_id, nx=True):
            amount = int(self.redis.get(f"provider:charge:{charge_id.removeprefix('ch_')}") or 0)
            self.redis.incrby("provider:charged_total", -amount)
        return {"refund_id": f"re_{key}"}

    def calls(self, key: str) -> int:
        return int(self.redis.get(f"provider:calls:{key}") or 0)

    def charged_total(self) -> int:
        return int(self.redis.get("provider:charged_total") or 0)


def reserve(ticket_type_id: int, quantity: int, reference: str) -> dict[str, int]:
    ticket_type = TicketType.objects.select_related("event").get(pk=ticket_type_id)
    hold = capacity_reserve(
        ticket_type=ticket_type,
        quantity=quantity,
        expires_at=timezone.now() + timedelta(minutes=15),
        reference=reference,
    )
    return {"hold": hold.pk}


@workflow("test.reserve_and_charge")
def reserve_and_charge(ctx: Context) -> dict[str, Any]:
    """A local step (capacity hold) then an external one (provider charge)."""
    hold = ctx.step(
        "reserve",
        lambda: reserve(ctx.input["ticket_type"], ctx.input["quantity"], ctx.business_key),
        compensate=lambda result: capacity_release(hold_id=result["hold"]),
    )
    charge = ctx.step(
        "charge",
        lambda key: FakeProvider().charge(key, ctx.input["amount"]),
        external=True,
        retry=RetryPolicy(max_attempts=3, initial_delay=0),
        compensate=lambda result, key: FakeProvider().refund(result["charge_id"], key),
    )
    return {"hold": hold["hold"], "charge": charge["charge_id"]}


@workflow("test.checkout_like")
def checkout_like(ctx: Context) -> dict[str, Any]:
    """Reserve, charge, then wait for the provider's confirmation webhook."""
    result = reserve_and_charge(ctx)
    confirmation = ctx.wait_signal("payment.confirmed", timeout=timedelta(minutes=15))
    return {**result, "confirmation": confirmation}


@workflow("test.nap")
def nap(ctx: Context) -> str:
    """Sleep on a durable timer, then do one step."""
    ctx.sleep("nap", timedelta(seconds=ctx.input.get("seconds", 3600)))
    return ctx.step("after the nap", lambda: "woke up")


@workflow("test.reserve_twice")
def reserve_twice(ctx: Context) -> dict[str, Any]:
    """Two local steps (two capacity holds); fails after them if asked to."""
    first = ctx.step("reserve", lambda: reserve(ctx.input["ticket_type"], 1, f"{ctx.business_key}:1"))
    second = ctx.step("reserve again", lambda: reserve(ctx.input["ticket_type"], 1, f"{ctx.business_key}:2"))
    if ctx.input.get("then_fail"):
        ctx.step("fail", _fail, retry=NO_RETRY)
    return {"holds": [first["hold"], second["hold"]]}


def _fail() -> None:
    raise RuntimeError("asked to fail")


@shared_task(name="tests.workflows.flows.note_backend")
def note_backend(key: str) -> None:
    """Append the PostgreSQL backend (the connection) that served this task
    to the Redis list `key`."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    redis.Redis.from_url(settings.REDIS_URL).rpush(key, pid)
