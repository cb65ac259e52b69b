"""Receiving provider webhooks: verify, deduplicate, match, apply.

Webhooks arrive late, repeated and out of order. webhook_receive:
  1. verifies the signature and freshness (provider.verify_webhook); a body
     that fails is rejected before anything is written;
  2. in one transaction, records the event as a WebhookEvent row, whose
     unique (provider, provider_event_id) makes a replay a no-op, matches it
     to our records and applies it. The order depends on the event:
     - a payment event (the hot path of every sale) is matched first: its
       session and payment are locked by the statement that finds them, the
       change is applied, and only then is the row inserted, with its
       outcome, in one INSERT ... ON CONFLICT DO NOTHING, which the change's
       writes travel with (ticketing.rows.deferred). A concurrent
       duplicate waits on the session's lock until the first commits, then
       finds the payment moved on; a delivery whose insert runs into the row
       of an earlier one is a duplicate, and what it changed (nothing, as
       long as a payment's transitions only move it on) is rolled back;
     - any other event inserts its row first (a concurrent duplicate waits on
       the unique index until the first commits, then finds its row), then is
       matched (refund, disputed payment, payout) and applied in a savepoint
       that a rejection rolls back, and the row gets its outcome;
  3. a mismatch (amount, currency, order reference, provider ids) or an
     unknown session keeps the row as REJECTED and changes nothing else (a
     payment event is rejected before anything is written); a REJECTED event
     delivered again is evaluated again;
  4. changes go through the idempotent payment/refund services, which lock
     session -> payment -> refund and send their signals after commit.
The event row and the change commit together: exactly once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django.utils import timezone

from payments.exceptions import WebhookMismatch, WebhookUnknownSession
from payments.locks import lock_session_with_payment
from payments.models import Dispute, Payment, PaymentSession, Refund, WebhookEvent, WebhookOutcome
from payments.providers import get_provider
from payments.providers.base import EventKind, NormalizedEvent
from payments.services.disputes import dispute_close, dispute_open
from payments.services.payments import (
    payment_mark_cancelled,
    payment_mark_failed,
    payment_mark_pending,
    payment_mark_succeeded,
)
from payments.services.payouts import payout_event_apply
from payments.services.refunds import refund_mark_failed, refund_mark_succeeded
from ticketing import rows
from ticketing.locks import lock_timeout
from ticketing.rows import insert_unless_exists

_EVENT_FIELDS = (
    "provider",
    "provider_event_id",
    "event_type",
    "payload",
    "signature_verified",
    "outcome",
    "delivery_count",
    "received_at",
)

# What applying an event (or rejecting it) sets on its row; the rest is the delivery as received.
_RESULT_FIELDS = ("outcome", "error", "organization", "session", "payment", "refund", "dispute", "processed_at")
_APPLIED_FIELDS = (*_RESULT_FIELDS, "delivery_count")
_EVENT_KEY = ("provider", "provider_event_id")


class _AlreadyApplied(Exception):
    """A payment event's delivery changed something, then found the event
    applied by an earlier one: raised to roll its change back."""


def _event_new(*, provider: str, event: NormalizedEvent) -> WebhookEvent:
    """The event's row as this delivery received it, not written yet."""
    return WebhookEvent(
        provider=provider,
        provider_event_id=event.provider_event_id,
        event_type=event.event_type[:100],
        payload=event.payload,
        signature_verified=True,
    )


def _event_first(*, provider: str, event: NormalizedEvent) -> WebhookEvent:
    """The row of an earlier delivery of the event, locked: the one an insert
    just ran into (committed: the insert waited for that)."""
    first = rows.select_one(
        WebhookEvent, "provider = %s AND provider_event_id = %s", [provider, event.provider_event_id], lock=True
    )
    assert first is not None, "the row that the insert ran into is committed"
    first.delivery_count += 1  # exact: the row is locked
    return first


def _event_row(*, provider: str, event: NormalizedEvent) -> tuple[WebhookEvent, bool]:
    """The event's row: (new row, True), or (the first delivery's row, locked
    and counted, False)."""
    row = _event_new(provider=provider, event=event)
    if insert_unless_exists(row, fields=_EVENT_FIELDS, conflict=_EVENT_KEY) is not None:
        return row, True
    return _event_first(provider=provider, event=event), False


def _mismatches(*, expected: Mapping[str, Any], event: NormalizedEvent, required: bool) -> dict[str, Any]:
    """Fields where the event disagrees with our record. With `required`, a
    missing amount or currency counts too (a success must state what was paid)."""
    received = {
        "amount_cents": event.amount_cents,
        "currency": event.currency,
        "order_reference": event.order_reference,
    }
    problems: dict[str, Any] = {}
    for name, ours in expected.items():
        theirs = received[name]
        if theirs in (None, ""):
            if required and name != "order_reference":
                problems[name] = {"expected": ours, "received": None}
            continue
        if theirs != ours:
            problems[name] = {"expected": ours, "received": theirs}
    return problems


def _match_session(*, provider: str, event: NormalizedEvent) -> PaymentSession:
    """The event's session with its payment, both locked, and its order.
    Every rejection is raised before the one write (the provider's session id,
    stored once the event is known to match): webhook_receive relies on that
    to apply payment events without a savepoint."""
    session = None
    if event.provider_session_id:
        session = lock_session_with_payment(by="provider_session_id", params=[provider, event.provider_session_id])
    if session is None and event.session_reference:
        # Our own reference, echoed back: finds a session whose creation
        # crashed before we stored the provider's id.
        session = lock_session_with_payment(by="reference", params=[provider, event.session_reference])
        if session is not None and session.provider_session_id not in ("", event.provider_session_id):
            raise WebhookMismatch(detail={"provider_session_id": {"expected": session.provider_session_id}})
    if session is None:
        raise WebhookUnknownSession(
            detail={"provider_session_id": event.provider_session_id, "session_reference": event.session_reference}
        )
    if event.session_reference and event.session_reference != session.reference:
        raise WebhookMismatch(detail={"session_reference": {"expected": session.reference}})
    problems = _mismatches(
        expected={
            "amount_cents": session.amount_cents,
            "currency": session.currency,
            "order_reference": session.order.code,
        },
        event=event,
        required=event.kind == EventKind.PAYMENT_SUCCEEDED,
    )
    payment = session.payment
    if event.provider_payment_id and payment.provider_payment_id not in ("", event.provider_payment_id):
        problems["provider_payment_id"] = {
            "expected": payment.provider_payment_id,
            "received": event.provider_payment_id,
        }
    if problems:
        raise WebhookMismatch(detail=problems)
    if not session.provider_session_id and event.provider_session_id:
        PaymentSession.objects.filter(pk=session.pk, provider_session_id="").update(
            provider_session_id=event.provider_session_id
        )
    return session


def _apply_payment_event(*, row: WebhookEvent, provider: str, event: NormalizedEvent) -> bool:
    """Rejects (WebhookMismatch, WebhookUnknownSession) only in _match_session,
    before anything is written; the payment services' own refusals are not
    rejections and fail the whole delivery."""
    session = _match_session(provider=provider, event=event)
    payment = session.payment
    row.organization_id, row.session, row.payment = session.organization_id, session, payment
    reason = f"{provider} webhook {event.event_type} ({event.provider_event_id})"
    if event.kind == EventKind.PAYMENT_SUCCEEDED:
        assert event.amount_cents is not None  # _match_session requires it for a success
        return payment_mark_succeeded(
            payment_id=payment.pk,
            amount_cents=event.amount_cents,
            currency=event.currency,
            provider_payment_id=event.provider_payment_id,
            reason=reason,
            locked=session,
        )[1]
    if event.kind == EventKind.PAYMENT_PENDING:
        return payment_mark_pending(
            payment_id=payment.pk, provider_payment_id=event.provider_payment_id, reason=reason, locked=session
        )[1]
    if event.kind == EventKind.PAYMENT_FAILED:
        return payment_mark_failed(
            payment_id=payment.pk,
            failure_code=event.failure_code,
            failure_message=event.failure_message,
            provider_payment_id=event.provider_payment_id,
            reason=reason,
            locked=session,
        )[1]
    return payment_mark_cancelled(payment_id=payment.pk, reason=reason, locked=session)[1]


def _apply_refund_event(*, row: WebhookEvent, provider: str, event: NormalizedEvent) -> bool:
    refund = None
    if event.provider_refund_id:
        refund = (
            Refund.objects.select_related("payment")
            .filter(provider=provider, provider_refund_id=event.provider_refund_id)
            .first()
        )
    if refund is None:
        raise WebhookUnknownSession(
            "The webhook refers to a refund we do not know.", detail={"provider_refund_id": event.provider_refund_id}
        )
    problems = _mismatches(
        expected={"amount_cents": refund.amount_cents, "currency": refund.currency}, event=event, required=False
    )
    if problems:
        raise WebhookMismatch(detail=problems)
    row.organization_id, row.payment, row.refund = refund.organization_id, refund.payment, refund
    reason = f"{provider} webhook {event.event_type} ({event.provider_event_id})"
    if event.kind == EventKind.REFUND_SUCCEEDED:
        return refund_mark_succeeded(refund_id=refund.pk, reason=reason)[1]
    return refund_mark_failed(refund_id=refund.pk, failure_code=event.failure_code, reason=reason)[1]


def _apply_dispute_event(*, row: WebhookEvent, provider: str, event: NormalizedEvent) -> bool:
    """Open or close a dispute. A closing event for a dispute we never heard
    of (the opening one is late) opens it first, so any order of delivery
    ends in the same state."""
    if not event.provider_dispute_id:
        raise WebhookMismatch(detail={"provider_dispute_id": {"received": None}})
    reason = f"{provider} webhook {event.event_type} ({event.provider_event_id})"
    dispute = Dispute.objects.filter(provider=provider, provider_dispute_id=event.provider_dispute_id).first()
    changed = False
    if dispute is None:
        payment = None
        if event.provider_payment_id:
            payment = Payment.objects.filter(provider=provider, provider_payment_id=event.provider_payment_id).first()
        if payment is None:
            raise WebhookUnknownSession(
                "The webhook refers to a payment we do not know.",
                detail={"provider_payment_id": event.provider_payment_id},
            )
        if event.amount_cents is None:
            raise WebhookMismatch(detail={"amount_cents": {"received": None}})
        dispute, changed = dispute_open(
            payment_id=payment.pk,
            provider_dispute_id=event.provider_dispute_id,
            amount_cents=event.amount_cents,
            currency=event.currency or payment.currency,
            fee_cents=event.fee_cents or 0,
            dispute_reason=event.reason,
            reason=reason,
        )
    else:
        problems = _mismatches(
            expected={"amount_cents": dispute.amount_cents, "currency": dispute.currency}, event=event, required=False
        )
        if problems:
            raise WebhookMismatch(detail=problems)
    row.organization_id, row.payment_id, row.dispute = dispute.organization_id, dispute.payment_id, dispute
    if event.kind in (EventKind.DISPUTE_WON, EventKind.DISPUTE_LOST):
        changed = (
            dispute_close(dispute_id=dispute.pk, won=event.kind == EventKind.DISPUTE_WON, reason=reason)[1] or changed
        )
    return changed


def _apply_event(*, row: WebhookEvent, provider: str, event: NormalizedEvent) -> bool | None:
    """Apply a verified event; None if it is of a kind we do not act on.
    Raises WebhookMismatch or WebhookUnknownSession, having written nothing."""
    if event.kind == EventKind.IGNORED:
        return None
    if event.kind.is_payment:
        # No savepoint (two statements of the payment confirmation's hot
        # path): a payment event is rejected before anything is written, and
        # its REJECTED row is then all that commits.
        return _apply_payment_event(row=row, provider=provider, event=event)
    # The others may reject after a write (a dispute opened for a closing
    # event, then found not to match): a savepoint undoes it, and the event
    # row stays, marked rejected.
    with transaction.atomic():
        if event.kind.is_refund:
            return _apply_refund_event(row=row, provider=provider, event=event)
        if event.kind.is_dispute:
            return _apply_dispute_event(row=row, provider=provider, event=event)
        assert event.kind.is_payout, event.kind
        return payout_event_apply(row=row, provider=provider, event=event)


def _apply(
    *, row: WebhookEvent, provider: str, event: NormalizedEvent
) -> WebhookMismatch | WebhookUnknownSession | None:
    """Apply the event and set its row's outcome (in memory); returns the
    rejection, if it was rejected (having written nothing)."""
    rejection: WebhookMismatch | WebhookUnknownSession | None = None
    row.outcome = WebhookOutcome.IGNORED
    row.error = None
    try:
        changed = _apply_event(row=row, provider=provider, event=event)
    except (WebhookMismatch, WebhookUnknownSession) as exc:
        rejection = exc
        row.outcome = WebhookOutcome.REJECTED
        row.error = exc.as_dict()
        row.organization_id = row.session_id = row.payment_id = row.refund_id = row.dispute_id = None
    else:
        if changed is not None:
            row.outcome = WebhookOutcome.PROCESSED if changed else WebhookOutcome.NO_CHANGE
    row.processed_at = timezone.now()
    return rejection


def _receive_payment_event(*, provider: str, event: NormalizedEvent) -> tuple[WebhookEvent, bool]:
    """Match, lock and apply, then insert the row with its outcome (see the
    module docstring). On the hot path that is BEGIN, the SELECT ... FOR
    UPDATE of the session and the payment, the INSERT of the row, COMMIT:
    the change's writes (the UPDATEs of the rows locked, the audit rows)
    travel with the INSERT (ticketing.rows.deferred)."""
    try:
        with transaction.atomic(), lock_timeout(), rows.deferred():
            row = _event_new(provider=provider, event=event)
            rejection = _apply(row=row, provider=provider, event=event)
            if insert_unless_exists(row, conflict=_EVENT_KEY) is None:
                first = _event_first(provider=provider, event=event)
                if first.outcome != WebhookOutcome.REJECTED:
                    if row.outcome == WebhookOutcome.PROCESSED:
                        raise _AlreadyApplied()
                    rows.save_fields(first, ["delivery_count"])
                    return first, False
                # Rejected before, evaluated again: this delivery's outcome replaces it.
                for name in _RESULT_FIELDS:
                    attname = WebhookEvent._meta.get_field(name).attname  # type: ignore[union-attr]
                    setattr(first, attname, getattr(row, attname))
                rows.save_fields(first, _APPLIED_FIELDS)
                row = first
    except _AlreadyApplied:
        with transaction.atomic(), lock_timeout():
            first = _event_first(provider=provider, event=event)
            rows.save_fields(first, ["delivery_count"])
            return first, False
    if rejection is not None:
        raise rejection
    return row, True


def webhook_receive(*, provider: str, raw_body: bytes, headers: Mapping[str, str]) -> tuple[WebhookEvent, bool]:
    """Verify and apply one webhook delivery; see the module docstring.

    Returns (event, True) when this delivery was applied (its outcome says
    whether it changed anything), (event, False) for a duplicate of an event
    already applied. Raises ProviderUnknown, WebhookInvalidSignature,
    WebhookStale or WebhookMalformed (nothing written), WebhookUnknownSession
    or WebhookMismatch (only the REJECTED event row is written; delivered again,
    it is evaluated again), or Busy on lock timeout (nothing written)."""
    event = get_provider(provider).verify_webhook(raw_body=raw_body, headers=headers)
    if event.kind.is_payment:
        return _receive_payment_event(provider=provider, event=event)
    with transaction.atomic(), lock_timeout():
        row, created = _event_row(provider=provider, event=event)
        if not created and row.outcome != WebhookOutcome.REJECTED:
            rows.save_fields(row, ["delivery_count"])
            return row, False
        rejection = _apply(row=row, provider=provider, event=event)
        rows.save_fields(row, _APPLIED_FIELDS)
    if rejection is not None:
        raise rejection
    return row, True
