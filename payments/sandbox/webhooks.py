"""The sandbox's outgoing webhooks: recorded with the charge, delivered after.

A webhook row is written in the same transaction as the sandbox state change
that causes it, so it is never lost. One that is due at once is delivered in
the same process right after that transaction commits (a robust on_commit
callback: no Celery round trip, so the buyer's pay POST returns once our
endpoint has processed the payment). A delivery that fails, or never runs
because the process died after the commit, leaves the row due; the
deliver_due_sandbox_webhooks sweeper (Celery beat, or `manage.py
sandbox_deliver_webhooks`) retries it with exponential backoff
(next_attempt_at in the row). Delayed confirmations, delayed refunds and
payouts are simply rows due in the future, left to the sweeper: no long
Celery ETA is needed.

Every delivery, inline or swept, goes through sandbox_webhook_deliver and
holds a lease on the row (next_attempt_at pushed DELIVERY_LEASE_SECONDS
ahead) while it delivers, so a row is delivered once even when the sweeper
and the inline delivery race. The sweeper, a task or a late inline delivery
takes its lease with a conditional UPDATE; the inline delivery's lease is
written by the INSERT itself (the row is recorded already claimed for it),
so the sweeper never sees the row due before the inline delivery had its
chance, and sees it due again once the lease runs out if that delivery never
happened (the process died between the commit and the delivery). Delivery is
in-process: the signed raw body and headers go through the very view that
serves POST /webhooks/payments/sandbox/, so it never touches the network.

settings.SANDBOX_WEBHOOKS_DELIVER_ON_COMMIT = False switches the after-commit
delivery off (rows are then delivered by the sweeper only, or by whoever
plays the provider: the webhook-shuffle drill).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.test import RequestFactory
from django.urls import resolve, reverse
from django.utils import timezone

from payments.models import SandboxPayout, SandboxPayoutStatus, SandboxSession, SandboxSessionStatus, SandboxWebhook
from ticketing import rows

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "Sandbox-Signature"
# Development-only default; deployments that enable the sandbox set their own.
DEFAULT_WEBHOOK_SECRET = "whsec_sandbox_development_only"  # noqa: S105

MAX_ATTEMPTS = 12
BACKOFF_BASE_SECONDS = 5
BACKOFF_MAX_SECONDS = 3600
# While one worker delivers a row, others skip it for this long.
DELIVERY_LEASE_SECONDS = 60
# An inline delivery that starts with less of its lease left than this (its
# recording transaction ran on long before committing) renews it first.
DELIVERY_LEASE_RENEW_SECONDS = DELIVERY_LEASE_SECONDS // 2


def webhook_secret() -> str:
    return str(getattr(settings, "SANDBOX_WEBHOOK_SECRET", DEFAULT_WEBHOOK_SECRET))


def compute_signature(*, secret: str, timestamp: int, raw_body: bytes) -> str:
    """HMAC-SHA256 over f"{timestamp}.{raw_body}", hex-encoded."""
    signed = str(timestamp).encode("ascii") + b"." + raw_body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def signature_header(*, raw_body: bytes, secret: str | None = None, timestamp: int | None = None) -> str:
    """The value of the Sandbox-Signature header for `raw_body`: t=<ts>,v1=<hex>."""
    ts = int(time.time()) if timestamp is None else timestamp
    signature = compute_signature(
        secret=secret if secret is not None else webhook_secret(), timestamp=ts, raw_body=raw_body
    )
    return f"t={ts},v1={signature}"


def backoff_seconds(attempts: int) -> int:
    """5 s, 10 s, 20 s, ... capped at an hour."""
    return int(min(BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0), BACKOFF_MAX_SECONDS))


def event_data(session: SandboxSession, *, failure_code: str = "") -> dict[str, Any]:
    return {
        "session_id": session.session_id,
        "session_reference": session.session_reference,
        "payment_id": session.payment_id,
        "amount_cents": session.amount_cents,
        "currency": session.currency,
        "order_reference": session.order_reference,
        "failure_code": failure_code,
    }


def sandbox_webhook_record(
    *,
    session: SandboxSession | None,
    event_type: str,
    data: dict[str, Any],
    due_at: datetime | None = None,
    payout: SandboxPayout | None = None,
) -> SandboxWebhook:
    """Record an outgoing webhook in the caller's transaction; if it is due now,
    deliver it in this process once the outermost transaction commits. Such a
    row is inserted already claimed for that delivery (see the module
    docstring): due to the sweeper only once the lease runs out."""
    assert transaction.get_connection().in_atomic_block, "webhooks are recorded with the change that causes them"
    now = timezone.now()
    due_at = due_at or now
    deliver_inline = due_at <= now and getattr(settings, "SANDBOX_WEBHOOKS_DELIVER_ON_COMMIT", True)
    webhook = SandboxWebhook(
        event_type=event_type,
        session=session,
        payout=payout,
        next_attempt_at=now + _lease() if deliver_inline else due_at,
    )
    webhook.body = json.dumps(
        {"id": webhook.event_id, "type": event_type, "created": int(now.timestamp()), "data": data},
        separators=(",", ":"),
        sort_keys=True,
    )
    rows.insert([webhook])
    if deliver_inline:
        _queue_delivery_on_commit(webhook)
    return webhook


def _queue_delivery_on_commit(webhook: SandboxWebhook) -> None:
    """Deliver `webhook`, recorded claimed for this delivery, right after the
    transaction that recorded it commits.

    robust: the sandbox's change (the buyer's charge) is committed by then, so
    nothing that goes wrong in delivery may turn the caller's request into an
    error; Django logs what escapes, and the row is the sweeper's once its
    lease runs out. The recorded row is handed over so delivery need not read
    it back nor claim it."""

    def deliver() -> None:
        result = sandbox_webhook_deliver(webhook_id=webhook.pk, recorded=webhook)
        webhook.delivered_inline = result is not None and result.delivered

    transaction.on_commit(deliver, robust=True)


@dataclass(frozen=True)
class DeliveryResult:
    webhook_id: int
    status_code: int
    delivered: bool
    next_attempt_at: datetime | None


def _dispatch(*, raw_body: bytes, header: str) -> tuple[int, str]:
    """POST the signed body to our webhook endpoint, in-process, through the
    URL resolver and the same view a real HTTP request reaches."""
    path = reverse("payments:webhook", kwargs={"provider": "sandbox"})
    request = RequestFactory().post(
        path, data=raw_body, content_type="application/json", headers={SIGNATURE_HEADER: header}
    )
    match = resolve(path)
    response = match.func(request, *match.args, **match.kwargs)
    return response.status_code, response.content.decode("utf-8", "replace")


def _lease() -> timedelta:
    return timedelta(seconds=DELIVERY_LEASE_SECONDS)


def _claimed(*, webhook_id: int, now: datetime) -> bool:
    """Claim a due, undelivered row for one delivery (the sweeper's, a task's)."""
    return bool(
        SandboxWebhook.objects.filter(pk=webhook_id, delivered_at__isnull=True, next_attempt_at__lte=now).update(
            next_attempt_at=now + _lease()
        )
    )


def _lease_kept(recorded: SandboxWebhook, *, now: datetime) -> bool:
    """Whether the inline delivery still holds the lease its row was recorded
    with: yes without a statement while enough of it is left; otherwise it is
    renewed, only if nobody claimed the row since (its next_attempt_at is
    still the recorded one) or the lease has run out with the row undelivered."""
    assert recorded.next_attempt_at is not None, "the recorded row is claimed for its inline delivery"
    if recorded.next_attempt_at - now >= timedelta(seconds=DELIVERY_LEASE_RENEW_SECONDS):
        return True
    return bool(
        SandboxWebhook.objects.filter(
            Q(next_attempt_at=recorded.next_attempt_at) | Q(next_attempt_at__lte=now),
            pk=recorded.pk,
            delivered_at__isnull=True,
        ).update(next_attempt_at=now + _lease())
    )


# What a delivery writes on its row, every time: one statement, built once.
_DELIVERY_FIELDS = ("last_status_code", "last_error", "next_attempt_at", "delivered_at")


@cache
def _delivery_sql(vendor: str, lazy_from: str) -> str:
    quote = transaction.get_connection().ops.quote_name
    meta = SandboxWebhook._meta
    columns = [quote(meta.get_field(name).column) for name in _DELIVERY_FIELDS]  # type: ignore[union-attr]
    assignments = ", ".join(f"{column} = %s" for column in columns)
    attempts = quote("attempts")
    # Identifiers come from the model's meta; every value is a parameter.
    return (
        f"UPDATE {quote(meta.db_table)} SET {attempts} = {attempts} + 1, {assignments}{lazy_from} "  # noqa: S608
        f"WHERE {quote(meta.db_table)}.{quote('id')} = %s"
    )


def _delivery_write(*, webhook_id: int, **values: Any) -> None:
    """Record one delivery attempt. The attempt is counted in the database: a
    row handed over by its recorder may have been tried by the sweeper in
    between.

    On its own (outside a caller's transaction) on PostgreSQL its commit
    does not wait for the disk: a record lost in a database crash only makes
    the sweeper deliver the webhook again, which our endpoint takes as the
    repeat it is. The delivery itself is never lazy: our endpoint commits
    what it received synchronously."""
    connection = transaction.get_connection()
    meta = SandboxWebhook._meta
    params: list[Any] = [meta.get_field(name).get_db_prep_save(values[name], connection) for name in _DELIVERY_FIELDS]  # type: ignore[union-attr]
    rows.execute(_delivery_sql(connection.vendor, rows.lazy_commit_from()), [*params, webhook_id])


def sandbox_webhook_deliver(
    *,
    webhook_id: int,
    force: bool = False,
    now: datetime | None = None,
    recorded: SandboxWebhook | None = None,
) -> DeliveryResult | None:
    """Deliver one webhook if it is due and undelivered (or always, with
    `force`: that is a replay). Returns None when there was nothing to do.

    The row is claimed with a lease that pushes next_attempt_at ahead, so two
    deliverers (the after-commit delivery, the sweeper, a task) never deliver
    it at the same moment and a delivered row is never delivered again; no
    transaction is held while our endpoint runs, because the endpoint commits
    its own work exactly as it would for a real HTTP delivery.

    `recorded` is the row as sandbox_webhook_record wrote it, already claimed
    for this (inline) delivery until its next_attempt_at: undelivered, and its
    body never changes, so it is neither read back nor claimed again, unless
    little of that lease is left (the recording transaction ran on long before
    it committed): then it is renewed first (_lease_kept)."""
    now = now or timezone.now()
    if recorded is not None and not force:
        assert recorded.pk == webhook_id, "the recorded row is the one being delivered"
        if not _lease_kept(recorded, now=now):
            return None
        webhook: SandboxWebhook | None = recorded
    else:
        if not force and not _claimed(webhook_id=webhook_id, now=now):
            return None
        webhook = SandboxWebhook.objects.filter(pk=webhook_id).first()
    if webhook is None:
        return None
    raw_body = webhook.body.encode("utf-8")
    try:
        status_code, text = _dispatch(raw_body=raw_body, header=signature_header(raw_body=raw_body))
    except Exception as exc:  # any failure of the receiver is a failed delivery, retried later
        logger.exception("sandbox webhook %s: delivery raised", webhook.event_id)
        status_code, text = 500, f"{type(exc).__name__}: {exc}"
    attempts = webhook.attempts + 1
    delivered = 200 <= status_code < 300
    already_delivered = webhook.delivered_at is not None
    if delivered or already_delivered:
        next_attempt_at = None
    elif attempts >= MAX_ATTEMPTS:
        next_attempt_at = None
        logger.warning("sandbox webhook %s: giving up after %s attempts", webhook.event_id, attempts)
    else:
        next_attempt_at = now + timedelta(seconds=backoff_seconds(attempts))
    _delivery_write(
        webhook_id=webhook.pk,
        last_status_code=status_code,
        last_error="" if delivered else text[:2000],
        next_attempt_at=next_attempt_at,
        delivered_at=webhook.delivered_at or (now if delivered else None),
    )
    return DeliveryResult(
        webhook_id=webhook.pk, status_code=status_code, delivered=delivered, next_attempt_at=next_attempt_at
    )


def sandbox_sessions_settle_due(*, now: datetime | None = None) -> int:
    """Delayed confirmations whose time has come become succeeded at the sandbox."""
    now = now or timezone.now()
    return SandboxSession.objects.filter(status=SandboxSessionStatus.PENDING, settles_at__lte=now).update(
        status=SandboxSessionStatus.SUCCEEDED
    )


def sandbox_payouts_settle_due(*, now: datetime | None = None) -> int:
    """Payouts whose time has come arrive (or fail) at the sandbox; returned
    ones fail once their return is due. Their webhooks were recorded with them."""
    now = now or timezone.now()
    settled = SandboxPayout.objects.filter(
        status=SandboxPayoutStatus.IN_TRANSIT, settles_at__isnull=False, settles_at__lte=now
    ).update(status=F("outcome"), updated_at=now)
    returned = SandboxPayout.objects.filter(
        status=SandboxPayoutStatus.PAID, returns_at__isnull=False, returns_at__lte=now
    ).update(status=SandboxPayoutStatus.FAILED, updated_at=now)
    return settled + returned


def sandbox_webhooks_deliver_due(*, now: datetime | None = None, limit: int = 100) -> list[DeliveryResult]:
    """The sweeper: settle due delayed confirmations and payouts, then deliver
    every due undelivered webhook, oldest first. Pass a future `now` to fast-forward."""
    now = now or timezone.now()
    sandbox_sessions_settle_due(now=now)
    sandbox_payouts_settle_due(now=now)
    due_ids = list(
        SandboxWebhook.objects.filter(delivered_at__isnull=True, next_attempt_at__lte=now)
        .order_by("next_attempt_at", "id")
        .values_list("pk", flat=True)[:limit]
    )
    results = [sandbox_webhook_deliver(webhook_id=webhook_id, now=now) for webhook_id in due_ids]
    return [result for result in results if result is not None]


def sandbox_webhook_replay(*, webhook_id: int, times: int = 1) -> list[DeliveryResult]:
    """Deliver a webhook again, `times` times, delivered or not (tests, support)."""
    results = [sandbox_webhook_deliver(webhook_id=webhook_id, force=True) for _ in range(times)]
    return [result for result in results if result is not None]


def sandbox_webhooks_deliver_shuffled(*, webhook_ids: Sequence[int], seed: int | None = None) -> list[DeliveryResult]:
    """Deliver (force) the given webhooks in a shuffled order, as a real
    provider may: ids may repeat to simulate duplicates."""
    order = list(webhook_ids)
    random.Random(seed).shuffle(order)
    results = [sandbox_webhook_deliver(webhook_id=webhook_id, force=True) for webhook_id in order]
    return [result for result in results if result is not None]
