"""The transactional outbox: Celery messages that must not be lost.

`enqueue` writes an OutboxMessage in the caller's transaction and publishes
it after commit. If the publish fails (broker down) or the process dies first,
`relay` publishes it later. A message may therefore be delivered twice;
consumers are idempotent (advance_run claims a lease and does nothing twice).

In eager mode (the embedded default) "publishing" runs the task inline, after
commit; a task that raises is recorded like a failed publish and relayed
again later.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from functools import partial
from importlib import import_module
from typing import Any

from celery import Task, current_app
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ticketing.rows import insert_unless_exists
from workflows.models import OutboxMessage

logger = logging.getLogger(__name__)

# How long the after-commit publisher has before the relay steps in, and how
# long the relay leaves a message it took before taking it again.
RELAY_GRACE = timedelta(seconds=10)
RELAY_VISIBILITY = timedelta(seconds=60)


def enqueue(
    task_name: str, args: list[Any], *, kwargs: dict[str, Any] | None = None, dedup_key: str | None = None
) -> OutboxMessage:
    """Record `task_name(*args, **kwargs)` in the caller's transaction; publish after commit.

    Idempotent on `dedup_key`: a second enqueue with the same key returns the
    first message and publishes nothing more."""
    assert transaction.get_connection().in_atomic_block, "enqueue must share the caller's transaction"
    now = timezone.now()
    message = OutboxMessage(
        task_name=task_name,
        args=args,
        kwargs=kwargs or {},
        dedup_key=dedup_key or f"{task_name}:{uuid.uuid4().hex}",
        created_at=now,
        available_at=now + RELAY_GRACE,
    )
    message.pk = insert_unless_exists(message, fields=_INSERT_FIELDS, conflict=("dedup_key",))
    if message.pk is None:
        return OutboxMessage.objects.get(dedup_key=message.dedup_key)
    transaction.on_commit(partial(publish, message), robust=True)
    return message


_INSERT_FIELDS = ("task_name", "args", "kwargs", "dedup_key", "created_at", "available_at", "attempts", "last_error")


def _task(task_name: str) -> Task:
    # A task registers when its module is imported; web processes may not have
    # imported it yet.
    if task_name not in current_app.tasks:
        import_module(task_name.rsplit(".", 1)[0])
    return current_app.tasks[task_name]


def send(task_name: str, args: list[Any], kwargs: dict[str, Any] | None = None) -> None:
    """Hand one message to Celery (or run it inline in eager mode). May raise."""
    _task(task_name).apply_async(args=args, kwargs=kwargs or {})


def send_quietly(task_name: str, args: list[Any]) -> None:
    """For sweepers, whose next beat is the retry: log a failure, do not raise."""
    try:
        send(task_name, args)
    except Exception:
        logger.warning("could not publish %s%r; the next sweep retries", task_name, args, exc_info=True)


def publish(message: OutboxMessage) -> bool:
    """Publish one message (outside any transaction) and record the outcome."""
    try:
        send(message.task_name, message.args, message.kwargs)
    except Exception as exc:
        logger.warning("outbox message %s not published: %s", message.pk, exc, exc_info=True)
        OutboxMessage.objects.filter(pk=message.pk).update(attempts=F("attempts") + 1, last_error=repr(exc)[:2000])
        return False
    OutboxMessage.objects.filter(pk=message.pk, published_at__isnull=True).update(
        published_at=timezone.now(), attempts=F("attempts") + 1
    )
    return True


def relay(*, now: datetime | None = None, batch: int = 200) -> int:
    """Publish messages that were not published after their commit.

    Takes a batch with SELECT ... FOR UPDATE SKIP LOCKED, so concurrent relays
    split the work, and pushes their `available_at` forward before committing:
    the publish itself happens outside the transaction (no network call while
    holding row locks), and a relay that dies mid-batch only delays them.
    Returns how many were published."""
    now = now or timezone.now()
    with transaction.atomic():
        messages = list(
            OutboxMessage.objects.select_for_update(skip_locked=True)
            .filter(published_at__isnull=True, available_at__lte=now)
            .order_by("available_at", "id")[:batch]
        )
        OutboxMessage.objects.filter(pk__in=[m.pk for m in messages]).update(available_at=now + RELAY_VISIBILITY)
    return sum(publish(message) for message in messages)
