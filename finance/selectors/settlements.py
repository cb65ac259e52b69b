"""Reads for settlements and payouts: terms, due events, statements."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q

from finance import accounts as chart
from finance.accounts import AccountKind
from finance.models import JournalEntry, JournalTransaction, OrganizationFinanceSettings, Settlement, Side
from finance.models.settings import DEFAULT_CLEARING_DAYS, DEFAULT_RESERVE_DAYS, DEFAULT_RESERVE_PERCENT_BP
from finance.selectors.ledger import account_balance_by_ref
from ticketing.models import Event


def finance_settings_for(*, organization_id: int) -> OrganizationFinanceSettings:
    """The organization's terms, or unsaved defaults if it has none."""
    found = OrganizationFinanceSettings.objects.filter(organization_id=organization_id).first()
    return found or OrganizationFinanceSettings(
        organization_id=organization_id,
        clearing_days=DEFAULT_CLEARING_DAYS,
        reserve_percent_bp=DEFAULT_RESERVE_PERCENT_BP,
        reserve_days=DEFAULT_RESERVE_DAYS,
    )


def settlement_cutoff_for(*, event: Event) -> datetime:
    """The end of an event's clearing period: event end + the organization's clearing days."""
    terms = finance_settings_for(organization_id=event.organization_id)
    return event.ends_at + timedelta(days=terms.clearing_days)


@dataclass(frozen=True)
class Statement:
    gross_cents: int = 0
    platform_fees_cents: int = 0
    processor_fees_cents: int = 0
    refunds_cents: int = 0
    chargebacks_cents: int = 0

    @property
    def pending_cents(self) -> int:
        return (
            self.gross_cents
            - self.platform_fees_cents
            - self.processor_fees_cents
            - self.refunds_cents
            - self.chargebacks_cents
        )


_FIELDS = ("gross_cents", "platform_fees_cents", "processor_fees_cents", "refunds_cents", "chargebacks_cents")


def statement_cumulative(*, organization_id: int, event_id: int, currency: str, cutoff: datetime) -> Statement:
    """Everything booked on the event's pending account effective up to
    `cutoff`, by business kind. A reversal counts against the kind it reverses."""
    code = chart.pending(organization_id, event_id, currency).code
    rows = (
        JournalEntry.objects.filter(account__code=code, transaction__effective_at__lte=cutoff)
        .exclude(transaction__kind="settlement")
        .values_list("transaction_id", "transaction__kind", "transaction__reverses__kind", "side", "amount_cents")
    )
    net_by_kind: dict[str, int] = defaultdict(int)
    sale_ids: dict[int, int] = {}
    for txn_id, kind, reversed_kind, side, amount in rows:
        signed = amount if side == Side.CREDIT else -amount
        business_kind = reversed_kind if kind == "reversal" else kind
        net_by_kind[business_kind] += signed
        if business_kind == "sale":
            sale_ids[txn_id] = -1 if kind == "reversal" else 1
    gross = platform = processor = 0
    if sale_ids:
        reversal_of = dict(
            JournalTransaction.objects.filter(pk__in=list(sale_ids), kind="reversal").values_list("pk", "reverses_id")
        )
        data_ids = {reversal_of.get(pk, pk) for pk in sale_ids}
        data = dict(JournalTransaction.objects.filter(pk__in=data_ids).values_list("pk", "data"))
        for pk, sign in sale_ids.items():
            figures = data[reversal_of.get(pk, pk)]
            gross += sign * int(figures.get("subtotal_cents", 0))
            platform += sign * int(figures.get("platform_absorbed_cents", 0))
            processor += sign * int(figures.get("processor_absorbed_cents", 0))
    # Anything not a sale, refund or chargeback (a manual adjustment) is
    # shown with the chargebacks, so the statement still adds up.
    other = sum(v for k, v in net_by_kind.items() if k not in ("sale", "refund", "chargeback_lost"))
    return Statement(
        gross_cents=gross,
        platform_fees_cents=platform,
        processor_fees_cents=processor,
        refunds_cents=-net_by_kind.get("refund", 0),
        chargebacks_cents=-net_by_kind.get("chargeback_lost", 0) - other,
    )


def statement_unsettled(*, organization_id: int, event_id: int, currency: str, cutoff: datetime) -> Statement:
    """The cumulative statement minus what earlier settlements already covered."""
    total = statement_cumulative(organization_id=organization_id, event_id=event_id, currency=currency, cutoff=cutoff)
    earlier = Settlement.objects.filter(organization_id=organization_id, event_id=event_id, currency=currency)
    values = {f: getattr(total, f) for f in _FIELDS}
    for settlement in earlier:
        for f in _FIELDS:
            values[f] -= getattr(settlement, f)
    return Statement(**values)


def events_due_for_settlement(
    *, as_of: datetime, organization_id: int | None = None, event_id: int | None = None
) -> list[tuple[Event, datetime]]:
    """(event, cutoff) for every event whose clearing period ended by `as_of`
    and whose pending account holds unsettled money (or debt)."""
    pending_events = set(
        JournalEntry.objects.filter(account__kind=AccountKind.ORG_PENDING).values_list("account__event_id", flat=True)
    )
    events = Event.objects.filter(pk__in=pending_events).select_related("organization").order_by("pk")
    if organization_id is not None:
        events = events.filter(organization_id=organization_id)
    if event_id is not None:
        events = events.filter(pk=event_id)
    due: list[tuple[Event, datetime]] = []
    for event in events:
        cutoff = settlement_cutoff_for(event=event)
        if cutoff > as_of:
            continue
        last = Settlement.objects.filter(event_id=event.pk).order_by("-cutoff").first()
        if last is not None and last.cutoff >= cutoff:
            # Already settled at its cutoff: later activity settles at the run's date.
            cutoff = as_of.replace(hour=0, minute=0, second=0, microsecond=0)
            if last.cutoff >= cutoff:
                continue
            balance = account_balance_by_ref(
                ref=chart.pending(event.organization_id, event.pk, event.currency), as_of=cutoff
            )
            if balance == 0:
                continue
        due.append((event, cutoff))
    return due


def settlements_awaiting_reserve_release(*, as_of: datetime) -> list[Settlement]:
    return list(
        Settlement.objects.filter(
            Q(reserve_release_at__lte=as_of), reserve_cents__gt=0, reserve_released_at__isnull=True, status="posted"
        ).order_by("pk")
    )
