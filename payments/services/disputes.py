"""Disputes (chargebacks): opened, then won or lost, as the provider reports.

Each change locks payment -> dispute (payments' lock order), re-checks,
changes, audits and announces `dispute_changed` after commit; a replayed
webhook finds nothing to change and announces nothing. The money side (the
chargeback's journal entries) is the workflows layer's, on that signal."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from django_fsm import can_proceed

from payments.exceptions import DisputeMismatch
from payments.locks import lock_payment
from payments.models import Dispute, Payment
from payments.models.payment import CAPTURED_STATES
from payments.signals import dispute_changed, send_after_commit
from ticketing.locks import lock_timeout
from ticketing.models import AuditLogEntry


def _signal_payload(dispute: Dispute, payment: Payment) -> dict[str, Any]:
    return {
        "dispute_id": dispute.pk,
        "payment_id": payment.pk,
        "order_id": payment.order_id,
        "organization_id": payment.organization_id,
        "provider": dispute.provider,
        "status": dispute.status,
        "amount_cents": dispute.amount_cents,
        "fee_cents": dispute.fee_cents,
        "currency": dispute.currency,
    }


def dispute_open(
    *,
    payment_id: int,
    provider_dispute_id: str,
    amount_cents: int,
    currency: str,
    fee_cents: int = 0,
    dispute_reason: str = "",
    opened_at: datetime | None = None,
    by: Any = None,
    reason: str = "",
) -> tuple[Dispute, bool]:
    """Record a dispute of a captured payment. Idempotent on the provider's
    dispute id: (dispute, False) if it is known already. Raises
    DisputeMismatch if the amount or currency cannot be this payment's."""
    with transaction.atomic(), lock_timeout():
        payment = lock_payment(payment_id=payment_id)
        existing = Dispute.objects.filter(provider=payment.provider, provider_dispute_id=provider_dispute_id).first()
        if existing is not None:
            return existing, False
        problems: dict[str, Any] = {}
        if payment.status not in CAPTURED_STATES:
            problems["payment_status"] = payment.status
        if currency.upper() != payment.currency:
            problems["currency"] = {"expected": payment.currency, "received": currency}
        if not 0 < amount_cents <= payment.captured_cents:
            problems["amount_cents"] = {"captured": payment.captured_cents, "received": amount_cents}
        if fee_cents < 0:
            problems["fee_cents"] = fee_cents
        if problems:
            raise DisputeMismatch(detail=problems)
        dispute = Dispute.objects.create(
            organization_id=payment.organization_id,
            payment=payment,
            provider=payment.provider,
            provider_dispute_id=provider_dispute_id,
            amount_cents=amount_cents,
            currency=payment.currency,
            fee_cents=fee_cents,
            reason=dispute_reason[:100],
            opened_at=opened_at or timezone.now(),
        )
        AuditLogEntry.objects.record_many(
            objects=[dispute],
            field="status",
            source="",
            target=dispute.status,
            transition="open",
            actor=by,
            reason=reason,
        )
        send_after_commit(dispute_changed, sender=Dispute, **_signal_payload(dispute, payment))
        return dispute, True


def dispute_close(*, dispute_id: int, won: bool, by: Any = None, reason: str = "") -> tuple[Dispute, bool]:
    """The dispute ended. Locks payment then dispute. Idempotent: (dispute,
    False) if it had already ended (a dispute ends once; a later contrary
    report is not applied)."""
    with transaction.atomic(), lock_timeout():
        payment_id = Dispute.objects.filter(pk=dispute_id).values_list("payment_id", flat=True).get()
        payment = lock_payment(payment_id=payment_id)
        dispute = Dispute.objects.select_for_update().get(pk=dispute_id)
        transition = dispute.win if won else dispute.lose
        if not can_proceed(transition):
            return dispute, False
        transition(at=timezone.now(), by=by, reason=reason)
        dispute.save(update_fields=["status", "closed_at", "updated_at"])
        send_after_commit(dispute_changed, sender=Dispute, **_signal_payload(dispute, payment))
        return dispute, True
