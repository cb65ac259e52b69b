"""Settlements: pending -> available, minus the rolling reserve.

settlement_create is idempotent on (organization, event, cutoff): running it
twice (two cron runs, a workflow timer and the command) creates one
settlement. It serializes per event with an advisory lock (sales, which
write the same pending account, are not blocked) and posts in the same
transaction as the settlement row, unless the organization wants finance
staff to approve settlements first.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from finance import accounts as chart
from finance.accounts import AccountKind
from finance.exceptions import SettlementNotDue
from finance.fees import share_of
from finance.locks import lock_ledger_reference, lock_settlement
from finance.models import Settlement, SettlementStatus, TransactionKind
from finance.selectors.ledger import account_balance_by_ref
from finance.selectors.settlements import finance_settings_for, statement_unsettled
from finance.services.ledger import Posting, credit, debit, ledger_post
from ticketing.exceptions import InvalidState
from ticketing.models import Event


def settlement_create(*, event_id: int, cutoff: datetime, by: Any = None) -> tuple[Settlement | None, bool]:
    """Create (and, unless approval is required, post) the settlement of an
    event at `cutoff`. Returns (settlement, created); (None, False) when
    there is nothing to settle. Idempotent on (organization, event, cutoff).
    Raises SettlementNotDue for a cutoff in the future, InvalidState while an
    earlier settlement of the event awaits approval. Own transaction (or the
    caller's); advisory lock on the event's settlements."""
    cutoff = cutoff.astimezone(UTC)  # one spelling of the instant in the idempotency key
    if cutoff > timezone.now():
        raise SettlementNotDue(detail={"event": event_id, "cutoff": cutoff.isoformat()})
    event = Event.objects.get(pk=event_id)
    with transaction.atomic():
        lock_ledger_reference(f"settle:{event.pk}")
        existing = Settlement.objects.filter(
            organization_id=event.organization_id, event_id=event.pk, cutoff=cutoff
        ).first()
        if existing is not None:
            return existing, False
        if Settlement.objects.filter(event_id=event.pk, status=SettlementStatus.AWAITING_APPROVAL).exists():
            raise InvalidState("An earlier settlement of this event awaits approval.", detail={"event": event.pk})
        currency = event.currency.upper()
        statement = statement_unsettled(
            organization_id=event.organization_id, event_id=event.pk, currency=currency, cutoff=cutoff
        )
        pending = account_balance_by_ref(ref=chart.pending(event.organization_id, event.pk, currency), as_of=cutoff)
        # The statement explains the pending balance; they differ only if an
        # earlier settlement was posted while postings were backdated before
        # its cutoff, and then the balance is what moves.
        if pending == 0 and statement.pending_cents == 0 and not statement.gross_cents:
            return None, False
        terms = finance_settings_for(organization_id=event.organization_id)
        reserve = share_of(pending, terms.reserve_percent_bp) if pending > 0 else 0
        owed = account_balance_by_ref(ref=chart.org(AccountKind.ORG_RECEIVABLE, event.organization_id, currency))
        recovered = min(owed, pending - reserve) if pending > 0 else 0
        settlement = Settlement.objects.create(
            organization_id=event.organization_id,
            event_id=event.pk,
            currency=currency,
            cutoff=cutoff,
            gross_cents=statement.gross_cents,
            platform_fees_cents=statement.platform_fees_cents,
            processor_fees_cents=statement.processor_fees_cents,
            refunds_cents=statement.refunds_cents,
            chargebacks_cents=statement.chargebacks_cents + (statement.pending_cents - pending),
            pending_cents=pending,
            reserve_cents=reserve,
            receivable_recovered_cents=recovered,
            net_cents=pending - reserve - recovered if pending > 0 else 0,
            reserve_release_at=cutoff + timedelta(days=terms.reserve_days) if reserve else None,
        )
        if not terms.require_settlement_approval:
            _settlement_post(settlement, by=by, reason="automatic settlement")
        return settlement, True


def settlement_approve(*, settlement_id: int, by: Any = None) -> tuple[Settlement, bool]:
    """Finance staff approve a settlement: its money moves. Locks the
    settlement row; idempotent ((settlement, False) if already posted)."""
    with transaction.atomic():
        settlement = lock_settlement(settlement_id=settlement_id)
        if settlement.status == SettlementStatus.POSTED:
            return settlement, False
        _settlement_post(settlement, by=by, reason="approved")
        return settlement, True


def _settlement_post(settlement: Settlement, *, by: Any, reason: str) -> None:
    org, currency = settlement.organization_id, settlement.currency
    pending_ref = chart.pending(org, settlement.event_id, currency)
    entries: list[Posting]
    if settlement.pending_cents > 0:
        entries = [
            debit(pending_ref, settlement.pending_cents),
            credit(chart.org(AccountKind.ORG_RESERVE, org, currency), settlement.reserve_cents),
            credit(chart.org(AccountKind.ORG_RECEIVABLE, org, currency), settlement.receivable_recovered_cents),
            credit(chart.org(AccountKind.ORG_AVAILABLE, org, currency), settlement.net_cents),
        ]
    else:
        # The organizer owes (refunds or chargebacks after an earlier payout):
        # recover it from later settlements through the receivable.
        owed = -settlement.pending_cents
        entries = [debit(chart.org(AccountKind.ORG_RECEIVABLE, org, currency), owed), credit(pending_ref, owed)]
    entries = [e for e in entries if e.amount_cents > 0]
    if entries:
        txn = ledger_post(
            key=f"settle:{org}:{settlement.event_id}:{settlement.cutoff.isoformat()}",
            kind=TransactionKind.SETTLEMENT,
            entries=entries,
            source=("finance.settlement", settlement.pk),
            effective_at=settlement.cutoff,
            memo=f"Settlement of event {settlement.event_id}",
            organization_id=org,
            reference=f"settlement:{settlement.pk}",
        )
        settlement.journal_transaction_id = txn.pk
    settlement.post(at=timezone.now(), by=by, reason=reason)
    settlement.save(update_fields=["status", "posted_at", "journal_transaction"])


def settlement_reserve_release(*, settlement_id: int, now: datetime | None = None) -> tuple[Settlement, bool]:
    """Release a posted settlement's reserve once its hold has passed: to the
    organizer's receivable first if they owe, the rest to available. Locks the
    settlement row; idempotent ((settlement, False) if nothing to release).
    Raises SettlementNotDue before `reserve_release_at`."""
    now = now or timezone.now()
    with transaction.atomic():
        settlement = lock_settlement(settlement_id=settlement_id)
        if settlement.reserve_released_at is not None or not settlement.reserve_cents:
            return settlement, False
        if settlement.status != SettlementStatus.POSTED:
            raise InvalidState("The settlement is not posted yet.", detail={"settlement": settlement.pk})
        if settlement.reserve_release_at and settlement.reserve_release_at > now:
            raise SettlementNotDue(
                detail={"settlement": settlement.pk, "release_at": settlement.reserve_release_at.isoformat()}
            )
        org, currency, amount = settlement.organization_id, settlement.currency, settlement.reserve_cents
        owed = account_balance_by_ref(ref=chart.org(AccountKind.ORG_RECEIVABLE, org, currency))
        to_receivable = min(owed, amount)
        entries = [
            debit(chart.org(AccountKind.ORG_RESERVE, org, currency), amount),
            credit(chart.org(AccountKind.ORG_RECEIVABLE, org, currency), to_receivable),
            credit(chart.org(AccountKind.ORG_AVAILABLE, org, currency), amount - to_receivable),
        ]
        ledger_post(
            key=f"reserve_release:{settlement.pk}",
            kind=TransactionKind.RESERVE_RELEASE,
            entries=[e for e in entries if e.amount_cents > 0],
            source=("finance.settlement", settlement.pk),
            effective_at=now,
            memo=f"Reserve release of settlement {settlement.pk}",
            organization_id=org,
            reference=f"settlement:{settlement.pk}",
        )
        settlement.reserve_released_at = now
        settlement.save(update_fields=["reserve_released_at"])
        return settlement, True
