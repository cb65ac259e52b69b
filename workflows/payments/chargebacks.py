"""RecordChargeback: a dispute's journal entries, as the provider reports it.

Disputes arrive by webhook (payments verifies, deduplicates and records them,
then announces `dispute_changed` after commit). Here each announcement books
what the dispute's state calls for:
  opened: the processor takes the disputed amount and its fee from our
          clearing balance; the amount waits in disputes_open;
  won:    the amount comes back to clearing;
  lost:   the organizer bears it, from the event's pending balance. After a
          payout that balance goes negative: the organizer owes it, and the
          next settlement nets it (finance.services.settlements).
A closed dispute books its opening too (a "lost" may arrive before its
"opened"), so any order of delivery gives the same ledger. Every posting is
idempotent on the dispute (`chargeback_opened|won|lost:<dispute id>`), so a
replayed webhook or a second announcement books nothing more.

The announcement is not durable; chargebacks_record_missing() (for a
periodic sweep) books disputes whose entries are missing."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.dispatch import receiver
from django.utils import timezone

from finance.models import JournalTransaction
from finance.services import ledger_record_chargeback_closed, ledger_record_chargeback_opened
from payments.models import Dispute, DisputeStatus
from payments.signals import dispute_changed


def record_chargeback(*, dispute_id: int) -> list[str]:
    """Book the dispute's entries up to its current state; returns the keys
    of the journal transactions it stands on."""
    dispute = Dispute.objects.select_related("payment__order").get(pk=dispute_id)
    order = dispute.payment.order
    keys = []
    with transaction.atomic():
        opened = ledger_record_chargeback_opened(
            dispute_id=str(dispute.pk),
            payment_id=dispute.payment_id,
            organization_id=order.organization_id,
            currency=dispute.currency,
            amount_cents=dispute.amount_cents,
            fee_cents=dispute.fee_cents,
            occurred_at=dispute.opened_at,
        )
        keys.append(opened.idempotency_key)
        if dispute.status in (DisputeStatus.WON, DisputeStatus.LOST):
            closed = ledger_record_chargeback_closed(
                dispute_id=str(dispute.pk),
                won=dispute.status == DisputeStatus.WON,
                payment_id=dispute.payment_id,
                organization_id=order.organization_id,
                event_id=order.event_id,
                currency=dispute.currency,
                amount_cents=dispute.amount_cents,
                occurred_at=dispute.closed_at or timezone.now(),
            )
            keys.append(closed.idempotency_key)
    return keys


@receiver(dispute_changed, dispatch_uid="workflows.payments.chargebacks")
def on_dispute_changed(sender: type, *, dispute_id: int, **kwargs: Any) -> None:
    record_chargeback(dispute_id=dispute_id)


def chargebacks_record_missing(*, limit: int = 200) -> int:
    """The safety net: book every dispute whose entries for its current state
    are missing (a lost announcement). Idempotent; returns how many it booked."""
    booked = set(
        JournalTransaction.objects.filter(kind__startswith="chargeback_").values_list("idempotency_key", flat=True)
    )
    done = 0
    for dispute in Dispute.objects.order_by("pk").only("pk", "status")[: limit * 10]:
        wanted = {f"chargeback_opened:{dispute.pk}"}
        if dispute.status != DisputeStatus.OPEN:
            wanted.add(f"chargeback_{dispute.status}:{dispute.pk}")
        if wanted - booked:
            record_chargeback(dispute_id=dispute.pk)
            done += 1
            if done >= limit:
                break
    return done
