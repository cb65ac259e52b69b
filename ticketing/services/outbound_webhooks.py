"""Outbound webhooks: events for integrators, through the outbox.

`webhook_event_publish` runs inside the caller's transaction: it writes one
WebhookDelivery per interested subscription and an outbox message for each
(workflows.engine.enqueue), so an event is recorded if and only if the change
that caused it commits. `webhook_delivery_attempt` sends one delivery: it
claims the row briefly (no lock is held during the HTTP call), POSTs the
signed body and records the outcome; failures are retried with exponential
backoff on a timer in the database (`next_attempt_at`), which the beat task
`ticketing.tasks.deliver_due_webhooks` honours.

Signature (like Stripe's): header `Ticketing-Signature: t=<unix>,v1=<hex>`
where hex = HMAC-SHA256(secret, f"{t}.{body}").
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from ticketing.exceptions import InvalidInput, NotFound
from ticketing.models import WEBHOOK_EVENT_TYPES, WebhookDelivery, WebhookDeliveryStatus, WebhookSubscription
from workflows.engine import enqueue

logger = logging.getLogger(__name__)

DELIVER_TASK = "ticketing.tasks.deliver_webhook"
SIGNATURE_HEADER = "Ticketing-Signature"


def _setting(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


def max_attempts() -> int:
    return int(_setting("WEBHOOK_MAX_ATTEMPTS", 8))


def backoff(attempt: int) -> timedelta:
    """The wait after failed attempt number `attempt` (1-based): base * 2^(n-1), capped."""
    base = float(_setting("WEBHOOK_BACKOFF_SECONDS", 30))
    cap = float(_setting("WEBHOOK_BACKOFF_MAX_SECONDS", 6 * 3600))
    return timedelta(seconds=min(cap, base * 2 ** max(attempt - 1, 0)))


# While an attempt is in flight its row's timer is pushed this far, so a
# duplicate message or the sweeper does not send it a second time meanwhile.
ATTEMPT_LEASE = timedelta(seconds=60)


def webhook_sign(*, secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def webhook_signature_verify(
    *, secret: str, header: str, body: bytes, now: datetime | None = None, tolerance: int = 300
) -> bool:
    """What a receiver does (and what our tests do): check the MAC and the age."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    now_ts = int((now or timezone.now()).timestamp())
    if abs(now_ts - timestamp) > tolerance:
        return False
    expected = webhook_sign(secret=secret, timestamp=timestamp, body=body)
    return hmac.compare_digest(expected, f"t={timestamp},v1={parts.get('v1', '')}")


def webhook_event_publish(*, organization_id: int, event_type: str, payload: dict[str, Any]) -> list[WebhookDelivery]:
    """Record `event_type` for every active subscription of the organization
    that wants it, and queue their delivery through the outbox. Must run in
    the transaction of the change it reports."""
    assert transaction.get_connection().in_atomic_block, "webhook events share the change's transaction"
    if event_type not in WEBHOOK_EVENT_TYPES:
        raise InvalidInput(f"Unknown webhook event type {event_type!r}.", detail={"event_type": event_type})
    # Few subscriptions per organization: filter in Python (JSON containment
    # is not portable to SQLite, the embedded default).
    subscriptions = [
        s
        for s in WebhookSubscription.objects.filter(organization_id=organization_id, is_active=True)
        if s.wants(event_type)
    ]
    deliveries = WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(
                organization_id=organization_id,
                subscription=subscription,
                event_type=event_type,
                payload=payload,
                next_attempt_at=timezone.now(),
            )
            for subscription in subscriptions
        ]
    )
    for delivery in deliveries:
        enqueue(DELIVER_TASK, [delivery.pk], dedup_key=f"webhook-delivery:{delivery.pk}")
    return deliveries


def webhook_body(delivery: WebhookDelivery) -> bytes:
    envelope = {
        "id": str(delivery.event_id),
        "type": delivery.event_type,
        "created": delivery.created_at.isoformat(),
        "organization": delivery.organization_id,
        "data": delivery.payload,
    }
    return json.dumps(envelope, cls=DjangoJSONEncoder, separators=(",", ":"), sort_keys=True).encode()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect is a failed delivery: following it would re-POST the body to
    # an address the integrator did not register.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


@dataclass(frozen=True)
class AttemptResult:
    delivery_id: int
    sent: bool  # False: nothing was due (already delivered, given up, or not yet due)
    status: str
    response_status: int | None = None
    retry_at: datetime | None = None


def _post(*, url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, str]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - http(s) only, checked
    timeout = float(_setting("WEBHOOK_TIMEOUT_SECONDS", 10))
    try:
        with _opener.open(request, timeout=timeout) as response:
            return response.status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return None, repr(exc)[:2000]


def webhook_delivery_attempt(*, delivery_id: int, now: datetime | None = None) -> AttemptResult:
    """Send one delivery if it is due. Safe to call twice: a delivery already
    succeeded, given up, or claimed by another attempt is left alone."""
    now = now or timezone.now()
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(skip_locked=True)
            .select_related("subscription")
            .filter(pk=delivery_id)
            .first()
        )
        if delivery is None or delivery.status != WebhookDeliveryStatus.PENDING:
            return AttemptResult(delivery_id, sent=False, status=delivery.status if delivery else "missing")
        if delivery.next_attempt_at and delivery.next_attempt_at > now:
            return AttemptResult(delivery_id, sent=False, status=delivery.status, retry_at=delivery.next_attempt_at)
        delivery.attempts += 1
        delivery.last_attempt_at = now
        delivery.next_attempt_at = now + ATTEMPT_LEASE
        delivery.save(update_fields=["attempts", "last_attempt_at", "next_attempt_at"])
    subscription = delivery.subscription

    if not subscription.url.lower().startswith(("http://", "https://")):
        code, error = None, "only http and https URLs are delivered"
    else:
        body = webhook_body(delivery)
        timestamp = int(now.timestamp())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Ticketing-Webhooks/1",
            SIGNATURE_HEADER: webhook_sign(secret=subscription.secret, timestamp=timestamp, body=body),
            "Ticketing-Event-Type": delivery.event_type,
            "Ticketing-Event-Id": str(delivery.event_id),
            "Ticketing-Delivery": str(delivery.pk),
        }
        code, error = _post(url=subscription.url, body=body, headers=headers)

    delivery.response_status = code
    delivery.last_error = error
    retry_at: datetime | None = None
    if code is not None and 200 <= code < 300:
        delivery.status = WebhookDeliveryStatus.SUCCEEDED
        delivery.delivered_at = timezone.now()
        delivery.next_attempt_at = None
    elif delivery.attempts >= max_attempts() or not subscription.is_active:
        delivery.status = WebhookDeliveryStatus.FAILED
        delivery.next_attempt_at = None
    else:
        retry_at = now + backoff(delivery.attempts)
        delivery.next_attempt_at = retry_at
    delivery.save(update_fields=["response_status", "last_error", "status", "delivered_at", "next_attempt_at"])
    if delivery.status == WebhookDeliveryStatus.FAILED:
        logger.warning("webhook delivery %s failed for good after %s attempts", delivery.pk, delivery.attempts)
    return AttemptResult(delivery.pk, sent=True, status=delivery.status, response_status=code, retry_at=retry_at)


def webhook_deliveries_due(*, now: datetime | None = None, batch: int = 200) -> list[int]:
    now = now or timezone.now()
    return list(
        WebhookDelivery.objects.filter(status=WebhookDeliveryStatus.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at", "id")
        .values_list("pk", flat=True)[:batch]
    )


def webhook_delivery_resend(*, delivery_id: int) -> WebhookDelivery:
    """Send a delivery again (staff, from the log): a new delivery row with the
    same event id, so the receiver can tell it is the same event."""
    with transaction.atomic():
        original = WebhookDelivery.objects.filter(pk=delivery_id).first()
        if original is None:
            raise NotFound("This webhook delivery does not exist.")
        copy = WebhookDelivery.objects.create(
            organization_id=original.organization_id,
            subscription_id=original.subscription_id,
            event_id=original.event_id,
            event_type=original.event_type,
            payload=original.payload,
            next_attempt_at=timezone.now(),
        )
        enqueue(DELIVER_TASK, [copy.pk], dedup_key=f"webhook-delivery:{copy.pk}")
        return copy
