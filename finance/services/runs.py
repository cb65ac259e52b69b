"""The batch runs finance staff start with manage.py and Celery beat runs
daily: the same code, one item at a time, each in its own transaction, so
one failure neither rolls back nor stops the others."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from django.db.models import Q

from finance import accounts as chart
from finance.accounts import AccountKind
from finance.models import Account
from finance.selectors.ledger import account_balance_by_ref
from finance.selectors.settlements import (
    events_due_for_settlement,
    finance_settings_for,
    settlements_awaiting_reserve_release,
    statement_unsettled,
)
from finance.services.payouts import payout_request
from finance.services.settlements import settlement_create, settlement_reserve_release
from ticketing.exceptions import DomainError


@dataclass
class RunRow:
    subject: str
    outcome: str  # created | existing | nothing | would create | error
    amount_cents: int = 0
    currency: str = ""
    detail: str = ""


def settlements_run(
    *, as_of: datetime, organization_id: int | None = None, event_id: int | None = None, dry_run: bool = False
) -> Iterator[RunRow]:
    """Settle every due event and release every due reserve, yielding one row
    per item (for a progress bar). Idempotent: a second run finds the
    settlements made by the first and creates nothing."""
    for event, cutoff in events_due_for_settlement(as_of=as_of, organization_id=organization_id, event_id=event_id):
        subject = f"event {event.pk} ({event.organization.slug}) at {cutoff:%Y-%m-%d %H:%M}"
        if dry_run:
            statement = statement_unsettled(
                organization_id=event.organization_id, event_id=event.pk, currency=event.currency, cutoff=cutoff
            )
            yield RunRow(subject, "would settle", statement.pending_cents, event.currency)
            continue
        yield _guarded(subject, event.currency, partial(_settle, event.pk, cutoff))
    for settlement in settlements_awaiting_reserve_release(as_of=as_of):
        if organization_id is not None and settlement.organization_id != organization_id:
            continue
        if event_id is not None and settlement.event_id != event_id:
            continue
        subject = f"reserve of settlement {settlement.pk}"
        if dry_run:
            yield RunRow(subject, "would release", settlement.reserve_cents, settlement.currency)
            continue
        yield _guarded(subject, settlement.currency, partial(_release, settlement.pk, as_of))


def _settle(event_id: int, cutoff: datetime) -> tuple[str, int]:
    settlement, created = settlement_create(event_id=event_id, cutoff=cutoff)
    if settlement is None:
        return "nothing", 0
    return ("settled" if created else "existing"), settlement.net_cents


def _release(settlement_id: int, as_of: datetime) -> tuple[str, int]:
    settlement, released = settlement_reserve_release(settlement_id=settlement_id, now=as_of)
    return ("released" if released else "existing"), settlement.reserve_cents


PayoutSender = Callable[[int, str, str], tuple[str, int]]


def payouts_run(
    *,
    as_of: datetime,
    organization_id: int | None = None,
    dry_run: bool = False,
    send: PayoutSender | None = None,
) -> Iterator[RunRow]:
    """Pay out everything available for each organization and currency
    (above its minimum). The idempotency key is per organization, currency
    and day, so a second run on the same day pays nothing new. `send(org,
    currency, key)` does it: the command and the beat task pass the
    InitiatePayout workflow's starter (which calls the provider); the
    default only books the request (payout_request)."""
    accounts = Account.objects.filter(kind=AccountKind.ORG_AVAILABLE).filter(
        Q(posted_credits_cents__gt=0) | Q(posted_debits_cents__gt=0)
    )
    if organization_id is not None:
        accounts = accounts.filter(organization_id=organization_id)
    for account in accounts.order_by("organization_id", "currency"):
        assert account.organization_id is not None
        org_id, currency = account.organization_id, account.currency
        subject = f"organization {org_id} {currency}"
        available = account_balance_by_ref(ref=chart.org(AccountKind.ORG_AVAILABLE, org_id, currency))
        if available < max(finance_settings_for(organization_id=org_id).minimum_payout_cents, 1):
            yield RunRow(subject, "nothing", available, currency)
            continue
        if dry_run:
            yield RunRow(subject, "would pay out", available, currency)
            continue
        key = f"payout:{org_id}:{currency}:{as_of:%Y-%m-%d}"
        yield _guarded(subject, currency, partial(send or _payout, org_id, currency, key))


def _payout(organization_id: int, currency: str, key: str) -> tuple[str, int]:
    payout = payout_request(organization_id=organization_id, currency=currency, idempotency_key=key)
    if payout is None:
        return "nothing", 0
    return f"payout {payout.pk} {payout.status}", payout.amount_cents


def _guarded(subject: str, currency: str, fn: Callable[[], tuple[str, int]]) -> RunRow:
    try:
        outcome, amount = fn()
    except DomainError as exc:
        return RunRow(subject, "error", 0, currency, f"{exc.code}: {exc.message}")
    return RunRow(subject, outcome, amount, currency)
