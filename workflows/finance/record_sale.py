"""RecordSale: a captured payment's journal entries (sale, fees, donation).

Runs inside CompleteCheckout's transaction, so the entries commit or roll back
with the order. Idempotent: the ledger keys the sale on the payment."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from finance.services import ledger_record_sale
from payments.models import Payment
from ticketing.models import Order


def record_sale(*, order: Order, payment_id: int | None, paid: tuple[datetime, str] | None = None) -> None:
    """`paid`: the payment's succeeded_at and currency, if the caller has
    them; otherwise they are read."""
    if payment_id is None:
        return  # a free order: no money moved
    if paid is None:
        try:
            payment = Payment.objects.values("succeeded_at", "currency").get(pk=payment_id)
        except Payment.DoesNotExist:
            return
        paid = (payment["succeeded_at"] or timezone.now(), payment["currency"])
    succeeded_at, currency = paid
    ledger_record_sale(
        order_id=order.pk,
        payment_id=payment_id,
        organization_id=order.organization_id,
        event_id=order.event_id,
        currency=currency,
        fee_snapshot=order.fee_snapshot,
        occurred_at=succeeded_at,
    )
