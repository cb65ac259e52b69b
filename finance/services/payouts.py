"""Payouts: requested -> in transit -> paid | failed.

payout_request moves the amount from the organizer's available balance to
"in transit" in the same transaction that records the payout, through a
guarded conditional UPDATE on the available account: two concurrent
requests can never take more than is available. The provider is called
outside any transaction (workflows/finance/initiate_payout.py), with the
payout's idempotency key, and the outcome recorded by payout_mark_in_transit,
payout_mark_paid or payout_mark_failed; a failure moves the money back,
once, also when it comes after the payout was paid (a bank return): the
provider's news may arrive in any order and any number of times.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django_fsm import can_proceed

from finance import accounts as chart
from finance.accounts import AccountKind
from finance.exceptions import IdempotencyConflict, InvalidPosting
from finance.locks import lock_payout
from finance.models import JournalTransaction, Payout, PayoutStatus
from finance.selectors.ledger import account_balance_by_ref
from finance.selectors.settlements import finance_settings_for
from finance.services.ledger import ledger_record_payout, ledger_reverse


def payout_request(
    *, organization_id: int, currency: str, amount_cents: int | None = None, idempotency_key: str, by: Any = None
) -> Payout | None:
    """Record a payout of `amount_cents` (default: everything available) and
    move it out of available. Idempotent on `idempotency_key` (the same key
    with another organization or amount raises IdempotencyConflict). Returns
    None when nothing (or less than the minimum) is available and no amount
    was asked for; raises InsufficientFunds when an asked amount is not
    available. Own transaction; locks the organizer's available account."""
    currency = currency.upper()
    terms = finance_settings_for(organization_id=organization_id)
    try:
        with transaction.atomic():
            existing = Payout.objects.filter(idempotency_key=idempotency_key).first()
            if existing is None:
                available = account_balance_by_ref(ref=chart.org(AccountKind.ORG_AVAILABLE, organization_id, currency))
                amount = available if amount_cents is None else amount_cents
                if amount_cents is None and amount < max(terms.minimum_payout_cents, 1):
                    return None
                if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
                    raise InvalidPosting(detail={"amount_cents": amount})
                payout = Payout.objects.create(
                    organization_id=organization_id,
                    currency=currency,
                    amount_cents=amount,
                    provider=terms.payout_provider,
                    destination=terms.payout_destination,
                    idempotency_key=idempotency_key,
                )
                # The guarded UPDATE: raises InsufficientFunds (rolling all of
                # this back) if a concurrent payout took the money first.
                ledger_record_payout(
                    payout_id=payout.pk,
                    stage="initiated",
                    organization_id=organization_id,
                    currency=currency,
                    amount_cents=amount,
                    occurred_at=timezone.now(),
                )
                return payout
    except IntegrityError:
        existing = Payout.objects.get(idempotency_key=idempotency_key)  # a concurrent request with the key won
    if existing.organization_id != organization_id or (
        amount_cents is not None and existing.amount_cents != amount_cents
    ):
        raise IdempotencyConflict(detail={"idempotency_key": idempotency_key, "payout": existing.pk})
    return existing


def _remember_provider_id(payout: Payout, provider_payout_id: str) -> bool:
    """Keep the provider's payout id once known, whichever news came first
    (its webhook can arrive before the run marks the payout in transit)."""
    if provider_payout_id and not payout.provider_payout_id:
        payout.provider_payout_id = provider_payout_id
        return True
    return False


def payout_mark_in_transit(*, payout_id: int, provider_payout_id: str, by: Any = None) -> tuple[Payout, bool]:
    """The provider accepted the payout. Locks the payout; idempotent (and a
    payout whose outcome is already known keeps it, only learning the id)."""
    with transaction.atomic():
        payout = lock_payout(payout_id=payout_id)
        if not can_proceed(payout.mark_in_transit):
            if _remember_provider_id(payout, provider_payout_id):
                payout.save(update_fields=["provider_payout_id"])
            return payout, False
        payout.mark_in_transit(provider_payout_id=provider_payout_id, at=timezone.now(), by=by)
        payout.save(update_fields=["status", "provider_payout_id", "in_transit_at"])
        return payout, True


def payout_mark_paid(
    *, payout_id: int, by: Any = None, reason: str = "", provider_payout_id: str = ""
) -> tuple[Payout, bool]:
    """The money arrived: in transit -> out of processor clearing. Locks the
    payout; idempotent ((payout, False) once paid or failed: a failed payout
    is never paid later, whatever order the provider's news arrives in)."""
    with transaction.atomic():
        payout = lock_payout(payout_id=payout_id)
        learned = _remember_provider_id(payout, provider_payout_id)
        if not can_proceed(payout.mark_paid):
            if learned:
                payout.save(update_fields=["provider_payout_id"])
            return payout, False
        now = timezone.now()
        payout.mark_paid(at=now, by=by, reason=reason)
        payout.save(update_fields=["status", "paid_at", "provider_payout_id"])
        ledger_record_payout(
            payout_id=payout.pk,
            stage="paid",
            organization_id=payout.organization_id,
            currency=payout.currency,
            amount_cents=payout.amount_cents,
            occurred_at=now,
        )
        return payout, True


def payout_mark_failed(
    *,
    payout_id: int,
    failure_code: str,
    by: Any = None,
    reason: str = "",
    provider_payout_id: str = "",
    only_if_unsent: bool = False,
) -> tuple[Payout, bool]:
    """The payout failed (rejected, or returned by the bank, also after it
    was paid): its amount goes back to available, once. Returned after
    paid, the paid posting is reversed first, so the ledger ends as if it had
    failed in transit. With `only_if_unsent` (a compensation), only a payout
    the provider never accepted fails: one in transit or paid waits for the
    provider's word instead. Locks the payout; idempotent ((payout, False)
    once failed)."""
    with transaction.atomic():
        payout = lock_payout(payout_id=payout_id)
        learned = _remember_provider_id(payout, provider_payout_id)
        unsent = payout.status == PayoutStatus.REQUESTED and not payout.provider_payout_id
        if not can_proceed(payout.mark_failed) or (only_if_unsent and not unsent):
            if learned:
                payout.save(update_fields=["provider_payout_id"])
            return payout, False
        now = timezone.now()
        was_paid = payout.status == PayoutStatus.PAID
        payout.mark_failed(failure_code=failure_code or "failed", at=now, by=by, reason=reason)
        payout.save(update_fields=["status", "failure_code", "failed_at", "provider_payout_id"])
        if was_paid:
            paid = JournalTransaction.objects.get(idempotency_key=f"payout:{payout.pk}:paid")
            ledger_reverse(
                transaction_id=paid.pk, effective_at=now, memo=f"Payout {payout.pk} returned after it was paid"
            )
        ledger_record_payout(
            payout_id=payout.pk,
            stage="failed",
            organization_id=payout.organization_id,
            currency=payout.currency,
            amount_cents=payout.amount_cents,
            occurred_at=now,
        )
        return payout, True
