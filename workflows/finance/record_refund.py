"""RecordRefund: a succeeded refund's journal entries (the mirror of its share).

Refunds succeed at the provider, sometimes synchronously and sometimes by a
later webhook; either way the payments domain announces it and the entries are
booked here. Idempotent: the ledger keys the refund on its id. The announcement
is sent after commit; verify_ledger reconciles refunds with the ledger and
reports any refund whose entries are missing."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.dispatch import receiver
from django.utils import timezone

from finance.services import ledger_record_refund
from payments.models import Refund
from payments.signals import refund_succeeded


def record_refund(*, refund_id: int) -> None:
    refund = Refund.objects.select_related("payment__order").get(pk=refund_id)
    order = refund.payment.order
    with transaction.atomic():
        ledger_record_refund(
            refund_id=refund.pk,
            payment_id=refund.payment_id,
            organization_id=order.organization_id,
            event_id=order.event_id,
            currency=refund.payment.currency,
            amount_cents=refund.amount_cents,
            fee_snapshot=order.fee_snapshot,
            occurred_at=refund.completed_at or timezone.now(),
        )


@receiver(refund_succeeded, dispatch_uid="workflows.finance.record_refund")
def on_refund_succeeded(sender: type, *, refund_id: int, **kwargs: Any) -> None:
    record_refund(refund_id=refund_id)
