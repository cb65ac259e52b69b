"""Reads for settlements and payouts: terms, due events, statements."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import BigIntegerField, Case, Exists, F, OuterRef, Q, Sum, Value, When
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from finance import accounts as chart
from finance.accounts import AccountKind
from finance.models import (
    Account,
    JournalEntry,
    JournalTransaction,
    OrganizationFinanceSettings,
    Settlement,
    TransactionKind,
)
from finance.models.settings import DEFAULT_CLEARING_DAYS, DEFAULT_RESERVE_DAYS, DEFAULT_RESERVE_PERCENT_BP
from finance.selectors.ledger import SIGNED_AMOUNT as _SIGNED
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


def _figure(path: str) -> Cast:
    """An integer figure of a transaction's `data`, in SQL: `path` is the
    JSONField (through relations, which KT() does not follow) + "__" + key."""
    data, _, key = path.rpartition("__")
    return Cast(KeyTextTransform(key, data), BigIntegerField())


# An entry's amount in the pending account's normal direction: credits positive.
_CREDITED = _SIGNED * Value(-1, output_field=BigIntegerField())


def _sale_figure(name: str) -> Case:
    """A sale's figure, negative for the reversal of a sale (whose figures
    are the original's)."""
    return Case(
        When(
            kind=TransactionKind.REVERSAL,
            then=_figure(f"reverses__data__{name}") * Value(-1, output_field=BigIntegerField()),
        ),
        default=_figure(f"data__{name}"),
        output_field=BigIntegerField(),
    )


def statement_cumulative(*, organization_id: int, event_id: int, currency: str, cutoff: datetime) -> Statement:
    """Everything booked on the event's pending account effective up to
    `cutoff`, by business kind. A reversal counts against the kind it reverses.
    Summed by the database (two aggregate queries): nothing per sale is read
    into Python, whatever the number of sales."""
    account_id = (
        Account.objects.filter(code=chart.pending(organization_id, event_id, currency).code)
        .values_list("pk", flat=True)
        .first()
    )
    if account_id is None:
        return Statement()
    business_kind = Case(
        When(transaction__kind=TransactionKind.REVERSAL, then=F("transaction__reverses__kind")),
        default=F("transaction__kind"),
    )
    net_by_kind = {
        kind: int(net or 0)
        for kind, net in JournalEntry.objects.filter(account_id=account_id, transaction__effective_at__lte=cutoff)
        .exclude(transaction__kind=TransactionKind.SETTLEMENT)
        .annotate(business_kind=business_kind)
        .values("business_kind")
        .annotate(net=Sum(_CREDITED))
        .order_by()
        .values_list("business_kind", "net")
    }
    sales = (
        JournalTransaction.objects.filter(
            Exists(JournalEntry.objects.filter(account_id=account_id, transaction_id=OuterRef("pk"))),
            Q(kind=TransactionKind.SALE) | Q(kind=TransactionKind.REVERSAL, reverses__kind=TransactionKind.SALE),
            effective_at__lte=cutoff,
        )
        .order_by()
        .aggregate(
            gross=Sum(_sale_figure("subtotal_cents")),
            platform=Sum(_sale_figure("platform_absorbed_cents")),
            processor=Sum(_sale_figure("processor_absorbed_cents")),
        )
    )
    # Anything not a sale, refund or chargeback (a manual adjustment) is
    # shown with the chargebacks, so the statement still adds up.
    other = sum(v for k, v in net_by_kind.items() if k not in ("sale", "refund", "chargeback_lost"))
    return Statement(
        gross_cents=int(sales["gross"] or 0),
        platform_fees_cents=int(sales["platform"] or 0),
        processor_fees_cents=int(sales["processor"] or 0),
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


@dataclass(frozen=True)
class StatementLine:
    """One posting a settlement covers: a sale (or its reversal), a refund,
    a chargeback or an adjustment on the event's pending account. The
    columns add up like the statement: gross - fees - refunds - chargebacks
    = pending."""

    transaction_id: int
    effective_at: datetime
    kind: str  # the business kind; a reversal shows as "reversal of <kind>"
    reference: str
    order_id: int | None
    gross_cents: int
    platform_fees_cents: int
    processor_fees_cents: int
    refunds_cents: int
    chargebacks_cents: int
    pending_cents: int


def settlement_statement_lines(*, settlement: Settlement, chunk_size: int = 2000) -> Iterator[StatementLine]:
    """The postings behind a settlement, oldest first, streamed from a
    server-side cursor `chunk_size` rows at a time (constant memory for any
    number of sales). A settlement covers what was booked on the event's
    pending account, effective by its cutoff, when it was created, and not
    covered by the previous settlement of the event (a posting committed in
    the very instant a settlement was made may show on the neighbouring
    statement; the settlement's own totals are authoritative)."""
    account_id = (
        Account.objects.filter(
            code=chart.pending(settlement.organization_id, settlement.event_id, settlement.currency).code
        )
        .values_list("pk", flat=True)
        .first()
    )
    if account_id is None:
        return
    entries = JournalEntry.objects.filter(
        account_id=account_id,
        transaction__effective_at__lte=settlement.cutoff,
        transaction__posted_at__lte=settlement.created_at,
    ).exclude(transaction__kind=TransactionKind.SETTLEMENT)
    previous = (
        Settlement.objects.filter(
            organization_id=settlement.organization_id,
            event_id=settlement.event_id,
            currency=settlement.currency,
            cutoff__lt=settlement.cutoff,
        )
        .order_by("-cutoff")
        .only("cutoff", "created_at")
        .first()
    )
    if previous is not None:
        entries = entries.exclude(
            transaction__effective_at__lte=previous.cutoff, transaction__posted_at__lte=previous.created_at
        )
    rows = (
        entries.values(
            "transaction_id",
            "transaction__effective_at",
            "transaction__kind",
            "transaction__reverses__kind",
            "transaction__reference",
        )
        .annotate(
            net=Sum(_CREDITED),
            subtotal=_figure("transaction__data__subtotal_cents"),
            platform=_figure("transaction__data__platform_absorbed_cents"),
            processor=_figure("transaction__data__processor_absorbed_cents"),
            order_id=_figure("transaction__data__order_id"),
            reversed_subtotal=_figure("transaction__reverses__data__subtotal_cents"),
            reversed_platform=_figure("transaction__reverses__data__platform_absorbed_cents"),
            reversed_processor=_figure("transaction__reverses__data__processor_absorbed_cents"),
            reversed_order_id=_figure("transaction__reverses__data__order_id"),
        )
        .order_by("transaction__effective_at", "transaction_id")
        .values_list(
            "transaction_id",
            "transaction__effective_at",
            "transaction__kind",
            "transaction__reverses__kind",
            "transaction__reference",
            "net",
            "subtotal",
            "platform",
            "processor",
            "order_id",
            "reversed_subtotal",
            "reversed_platform",
            "reversed_processor",
            "reversed_order_id",
        )
    )
    for row in rows.iterator(chunk_size=chunk_size):
        txn_id, at, kind, reversed_kind, reference, net, subtotal, platform, processor, order_id = row[:10]
        r_subtotal, r_platform, r_processor, r_order_id = row[10:]
        pending = int(net or 0)
        sign, business_kind, label = 1, kind, kind
        if kind == TransactionKind.REVERSAL:
            sign, business_kind, label = -1, reversed_kind, f"reversal of {reversed_kind}"
            subtotal, platform, processor, order_id = r_subtotal, r_platform, r_processor, r_order_id
        gross = platform_fees = processor_fees = refunds = chargebacks = 0
        if business_kind == TransactionKind.SALE:
            gross = sign * int(subtotal or 0)
            platform_fees = sign * int(platform or 0)
            processor_fees = sign * int(processor or 0)
        elif business_kind == TransactionKind.REFUND:
            refunds = -pending
        else:
            chargebacks = -pending
        yield StatementLine(
            transaction_id=txn_id,
            effective_at=at,
            kind=label,
            reference=reference,
            order_id=int(order_id) if order_id is not None else None,
            gross_cents=gross,
            platform_fees_cents=platform_fees,
            processor_fees_cents=processor_fees,
            refunds_cents=refunds,
            chargebacks_cents=chargebacks,
            pending_cents=pending,
        )
