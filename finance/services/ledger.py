"""Posting to the ledger: the one generic write and the journal templates.

Every posting has a deterministic idempotency key derived from its business
event (`sale:{payment}`, `refund:{refund}`, `settle:{org}:{event}:{cutoff}`,
`payout:{payout}:initiated`, ...) and a hash of what it books (kind, source,
reversed transaction and entries by account code; not the memo or the
effective time). Posting a key again with the same input returns the
existing transaction; with other input it raises IdempotencyConflict. So a
webhook or a task delivered twice posts once.

Costs. A sale touches hot accounts only (clearing, fees, donations, the
event's pending account): no row is locked and no running total is
updated, so concurrent sales never queue behind one another. A posting to
hot accounts is two statements on the common path: insert the transaction
(ON CONFLICT DO NOTHING on its key), then insert its entries with their
accounts looked up by code in that same statement (INSERT ... SELECT ...
JOIN finance_account), which inserts nothing unless every account exists.
Only then (an account's first use: an event's first sale, a new currency)
are the accounts read, created and the entries inserted by id: four more.
A posting to guarded accounts (available, reserve, receivable, in transit;
the chart says which, without a query) reads its accounts first, inserts
the entries, and adds one conditional UPDATE per guarded account, in
ascending id order (no deadlocks), which refuses to take it below zero.

PostgreSQL checks the balance of every transaction again at commit
(migration 0003); the checks here make the error clear and early.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from finance import accounts as chart
from finance.accounts import AccountKind, AccountRef
from finance.exceptions import (
    AlreadyReversed,
    IdempotencyConflict,
    InvalidFeeSnapshot,
    InvalidPosting,
    LedgerError,
    RefundExceedsSale,
    UnbalancedTransaction,
)
from finance.fees import allocate
from finance.locks import lock_ledger_reference
from finance.models import Account, JournalEntry, JournalTransaction, NormalBalance, Side, TransactionKind
from ticketing import rows
from ticketing.exceptions import InvalidState


@dataclass(frozen=True)
class Posting:
    """One line of a posting: `amount_cents` (> 0) on `side` of `account`."""

    account: AccountRef
    side: str
    amount_cents: int


def debit(account: AccountRef, amount_cents: int) -> Posting:
    return Posting(account, Side.DEBIT, amount_cents)


def credit(account: AccountRef, amount_cents: int) -> Posting:
    return Posting(account, Side.CREDIT, amount_cents)


Source = tuple[str, int | str]


def _assert_in_transaction() -> None:
    assert transaction.get_connection().in_atomic_block, "this posting must run inside the caller's transaction"


# --- the generic posting -------------------------------------------------------------


def _validate(entries: Sequence[Posting]) -> None:
    if not entries:
        raise InvalidPosting("A journal transaction needs entries.")
    sums: dict[str, int] = defaultdict(int)
    for entry in entries:
        amount = entry.amount_cents
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise InvalidPosting(detail={"account": entry.account.code, "amount_cents": amount})
        if entry.side not in (Side.DEBIT, Side.CREDIT):
            raise InvalidPosting(detail={"account": entry.account.code, "side": entry.side})
        sums[entry.account.currency] += amount if entry.side == Side.DEBIT else -amount
    unbalanced = {currency: diff for currency, diff in sums.items() if diff}
    if unbalanced:
        raise UnbalancedTransaction(detail={"debits_minus_credits": unbalanced})


def input_hash(*, kind: str, entries: Sequence[Posting], source: Source | None, reverses_id: int | None) -> str:
    """What a posting books, independent of entry order, memo and time."""
    lines = sorted((e.account.code, str(e.side), e.amount_cents) for e in entries)
    payload = {
        "kind": str(kind),
        "source": [source[0], str(source[1])] if source else None,
        "reverses": reverses_id,
        "entries": lines,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _insert_transaction(txn: JournalTransaction) -> bool:
    """INSERT ... ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, in
    one cached statement that is also safe against a concurrent posting of
    the same key (it waits for that one to commit and then inserts nothing).
    True if `txn` was inserted (it then has its id and counts as saved).
    Other unique violations (a second reversal of one transaction) still
    raise."""
    return rows.insert_unless_exists(txn, conflict=("idempotency_key",)) is not None


@cache
def _entries_by_code_sql(count: int) -> str:
    """The entries of one transaction, each naming its account by code.

    The accounts are looked up in the INSERT itself instead of read first;
    it inserts every entry or, if one of the accounts does not exist yet,
    none (the caller then creates them: entries are append-only, so a part
    inserted could not be taken back). `n` keeps the entries' ids in the
    posting's order, as a bulk insert would. Plain SQL, for PostgreSQL and
    SQLite alike; every value is a parameter: each entry's code, side,
    amount and currency, then the transaction's id."""
    lines = " UNION ALL ".join(f"SELECT {n}, %s, %s, %s, %s" for n in range(count))
    return (
        "INSERT INTO finance_journalentry (transaction_id, account_id, side, amount_cents, currency) "  # noqa: S608
        f"WITH v (n, code, side, amount_cents, currency) AS ({lines}) "
        "SELECT %s, a.id, v.side, v.amount_cents, v.currency "
        "FROM v JOIN finance_account a ON a.code = v.code "
        "WHERE NOT EXISTS (SELECT 1 FROM v w WHERE NOT EXISTS "
        "(SELECT 1 FROM finance_account b WHERE b.code = w.code)) "
        "ORDER BY v.n"
    )


def _insert_entries_by_code(txn_id: int, entries: Sequence[Posting]) -> bool:
    """Insert the entries if all their accounts exist (True), else nothing."""
    params: list[Any] = []
    for e in entries:
        params += (e.account.code, str(e.side), e.amount_cents, e.account.currency)
    params.append(txn_id)
    inserted, _ = rows.execute(_entries_by_code_sql(len(entries)), params)
    if inserted not in (0, len(entries)):  # the SQL's all-or-nothing guard
        raise LedgerError("Journal entries were inserted in part.", detail={"transaction": txn_id})
    return inserted == len(entries)


def _insert_entries(txn_id: int, entries: Sequence[Posting], accounts: Mapping[str, Account]) -> None:
    JournalEntry.objects.bulk_create(
        [
            JournalEntry(
                transaction_id=txn_id,
                account_id=accounts[e.account.code].pk,
                side=e.side,
                amount_cents=e.amount_cents,
                currency=e.account.currency,
            )
            for e in entries
        ]
    )


def _resolve_accounts(refs: Sequence[AccountRef]) -> dict[str, Account]:
    """The accounts by code, created on first use. One SELECT when they all
    exist; concurrent first uses create each account once (ON CONFLICT DO
    NOTHING, which waits for the other's commit, then read again)."""
    wanted = {ref.code: ref for ref in refs}
    found = {a.code: a for a in Account.objects.filter(code__in=list(wanted))}
    missing = [ref for code, ref in wanted.items() if code not in found]
    if missing:
        Account.objects.bulk_create(
            [
                Account(
                    code=ref.code,
                    kind=ref.kind.value,
                    type=ref.spec.type,
                    normal_balance=ref.spec.normal_balance,
                    currency=ref.currency,
                    organization_id=ref.organization_id,
                    event_id=ref.event_id,
                    may_go_negative=ref.spec.may_go_negative,
                    tracks_balance=ref.spec.tracks_balance,
                )
                for ref in missing
            ],
            ignore_conflicts=True,
        )
        found.update({a.code: a for a in Account.objects.filter(code__in=[ref.code for ref in missing])})
    return found


def _apply_running_totals(entries: Sequence[Posting], accounts: Mapping[str, Account]) -> None:
    """Guarded accounts: add this posting to their totals, refusing to cross zero.
    Ascending id order, so two postings on the same accounts cannot deadlock."""
    from finance.exceptions import InsufficientFunds

    moves: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for entry in entries:
        account = accounts[entry.account.code]
        if account.tracks_balance:
            moves[account.pk][0 if entry.side == Side.DEBIT else 1] += entry.amount_cents
    for account_id in sorted(moves):
        debits, credits = moves[account_id]
        guard = (
            Q(may_go_negative=True)
            | Q(
                normal_balance=NormalBalance.CREDIT,
                posted_credits_cents__gte=F("posted_debits_cents") + debits - credits,
            )
            | Q(
                normal_balance=NormalBalance.DEBIT,
                posted_debits_cents__gte=F("posted_credits_cents") + credits - debits,
            )
        )
        updated = Account.objects.filter(guard, pk=account_id).update(
            posted_debits_cents=F("posted_debits_cents") + debits,
            posted_credits_cents=F("posted_credits_cents") + credits,
            version=F("version") + 1,
        )
        if not updated:
            code = next(a.code for a in accounts.values() if a.pk == account_id)
            raise InsufficientFunds(detail={"account": code, "debits_cents": debits, "credits_cents": credits})


def _post(
    *,
    key: str,
    kind: str,
    entries: Sequence[Posting],
    source: Source | None,
    effective_at: datetime,
    memo: str = "",
    reverses: JournalTransaction | None = None,
    organization_id: int | None = None,
    reference: str = "",
    data: Mapping[str, Any] | None = None,
) -> tuple[JournalTransaction, bool]:
    """ledger_post in the caller's transaction; returns (transaction, created)."""
    _assert_in_transaction()
    if not key or len(key) > 255:
        raise InvalidPosting("An idempotency key of 1 to 255 characters is required.", detail={"key": key})
    if timezone.is_naive(effective_at):
        raise InvalidPosting("The effective time must be timezone-aware.", detail={"effective_at": str(effective_at)})
    _validate(entries)
    digest = input_hash(kind=kind, entries=entries, source=source, reverses_id=reverses.pk if reverses else None)
    # posted_at (auto_now_add) is set as it is inserted.
    txn = JournalTransaction(
        idempotency_key=key,
        input_hash=digest,
        kind=str(kind),
        reverses_id=reverses.pk if reverses else None,
        organization_id=organization_id,
        source_type=source[0] if source else "",
        source_id=str(source[1]) if source else "",
        reference=reference,
        effective_at=effective_at,
        memo=memo[:300],
        data=dict(data or {}),
    )
    if reverses is None:
        created = _insert_transaction(txn)
    else:
        try:
            # A savepoint: the unique `reverses` may refuse, and the caller's
            # transaction must survive to report it.
            with transaction.atomic():
                created = _insert_transaction(txn)
        except IntegrityError as exc:
            raise AlreadyReversed(detail={"transaction": reverses.pk}) from exc
    if not created:
        existing = rows.select_one(JournalTransaction, "idempotency_key = %s", [key])
        assert existing is not None  # the conflict: committed (ON CONFLICT waited), or ours earlier
        if existing.input_hash != digest:
            raise IdempotencyConflict(detail={"key": key, "transaction": existing.pk})
        return existing, False

    # The chart says which kinds keep running totals (accounts are created
    # only from it): a posting without them, every sale, needs no account
    # row in Python and never reads one.
    if any(e.account.spec.tracks_balance for e in entries):
        accounts = _resolve_accounts([e.account for e in entries])
        _insert_entries(txn.pk, entries, accounts)
        _apply_running_totals(entries, accounts)
    elif not _insert_entries_by_code(txn.pk, entries):
        _insert_entries(txn.pk, entries, _resolve_accounts([e.account for e in entries]))
    return txn, True


def ledger_post(
    *,
    key: str,
    kind: str,
    entries: Sequence[Posting],
    source: Source | None,
    effective_at: datetime,
    memo: str = "",
    reverses: JournalTransaction | None = None,
    organization_id: int | None = None,
    reference: str = "",
    data: Mapping[str, Any] | None = None,
) -> JournalTransaction:
    """Post one balanced journal transaction and return it.

    Idempotent on `key`: the same key with the same input returns the
    existing transaction; the same key with other entries, kind, source or
    reversed transaction raises IdempotencyConflict. Raises
    UnbalancedTransaction / InvalidPosting for bad entries and
    InsufficientFunds when a guarded account would go below zero. Runs in
    the caller's transaction if there is one (and then adds no savepoint),
    else in its own. Locks only the guarded accounts it posts to."""
    if transaction.get_connection().in_atomic_block:
        return _post(
            key=key,
            kind=kind,
            entries=entries,
            source=source,
            effective_at=effective_at,
            memo=memo,
            reverses=reverses,
            organization_id=organization_id,
            reference=reference,
            data=data,
        )[0]
    with transaction.atomic():
        return ledger_post(
            key=key,
            kind=kind,
            entries=entries,
            source=source,
            effective_at=effective_at,
            memo=memo,
            reverses=reverses,
            organization_id=organization_id,
            reference=reference,
            data=data,
        )


def ledger_reverse(
    *, transaction_id: int, effective_at: datetime | None = None, memo: str = "", key: str | None = None
) -> JournalTransaction:
    """Post the mirror image of a transaction (debits and credits swapped), so
    that original + reversal nets to zero on every account. A transaction is
    reversed at most once (a unique constraint): calling again with the same
    key returns the reversal; another key raises AlreadyReversed. A reversal
    itself cannot be reversed (post the original again under a new key)."""
    with transaction.atomic():
        original = JournalTransaction.objects.get(pk=transaction_id)
        if original.kind == TransactionKind.REVERSAL:
            raise InvalidState("A reversal cannot be reversed.", detail={"transaction": original.pk})
        rows = JournalEntry.objects.filter(transaction_id=original.pk).select_related("account")
        entries = [
            Posting(_ref_of(row.account), Side.CREDIT if row.side == Side.DEBIT else Side.DEBIT, row.amount_cents)
            for row in rows
        ]
        return ledger_post(
            key=key or f"reversal:{original.idempotency_key}",
            kind=TransactionKind.REVERSAL,
            entries=entries,
            source=("finance.journaltransaction", original.pk),
            effective_at=effective_at or timezone.now(),
            memo=memo or f"Reversal of {original.idempotency_key}",
            reverses=original,
            organization_id=original.organization_id,
            reference=original.reference,
        )


def _ref_of(account: Account) -> AccountRef:
    return AccountRef(AccountKind(account.kind), account.currency, account.organization_id, account.event_id)


# --- sale ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SaleFigures:
    """A fee snapshot's numbers, checked to add up."""

    subtotal: int
    platform_fee: int
    processor_fee: int
    donation: int
    total: int
    organizer_net: int
    platform_absorbed: int
    processor_absorbed: int

    @property
    def components(self) -> list[int]:
        """Where the charged total goes: organizer pending, platform fee,
        donation, processor fee (recovered). Sums to `total`."""
        return [self.organizer_net, self.platform_fee, self.donation, self.processor_fee]


def sale_figures(fee_snapshot: Mapping[str, Any], *, currency: str) -> SaleFigures:
    """Read and check a finance.fees.FeeBreakdown.as_snapshot() dict."""

    def amount(name: str) -> int:
        value = fee_snapshot.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidFeeSnapshot(detail={"field": name, "value": value})
        return value

    if str(fee_snapshot.get("currency", "")).upper() != currency.upper():
        raise InvalidFeeSnapshot(detail={"field": "currency", "value": fee_snapshot.get("currency")})
    subtotal, platform, processor = (
        amount("subtotal_cents"),
        amount("platform_fee_cents"),
        amount("processor_fee_cents"),
    )
    donation, total, buyer_fees = amount("donation_cents"), amount("total_cents"), amount("buyer_fees_cents")
    net = fee_snapshot.get("organizer_net_cents")
    if isinstance(net, bool) or not isinstance(net, int):
        raise InvalidFeeSnapshot(detail={"field": "organizer_net_cents", "value": net})
    absorbed = subtotal - net
    # Each fee is either passed on in full or absorbed in full.
    platform_absorbed = platform if absorbed in (platform, platform + processor) and platform else 0
    processor_absorbed = absorbed - platform_absorbed
    checks = [
        total == subtotal + buyer_fees + donation,
        net + platform + donation + processor == total,
        processor_absorbed in (0, processor),
    ]
    if not all(checks):
        raise InvalidFeeSnapshot(detail={"snapshot": {k: v for k, v in fee_snapshot.items() if k != "lines"}})
    return SaleFigures(subtotal, platform, processor, donation, total, net, platform_absorbed, processor_absorbed)


def _sale_postings(
    figures: SaleFigures, *, shares: Sequence[int], organization_id: int, event_id: int, currency: str, refund: bool
) -> list[Posting]:
    """The sale template, or (refund=True) its mirror for the refunded shares.

    Sale: the processor collects the total charged (debit clearing) and keeps
    its fee (credit clearing, debit processor fee expense); the total is
    owed to the organizer (their net, in the event's pending account), the
    platform (its fee), the donation recipient, and the processor-fee
    recovery (what the buyer or organizer paid towards the processor fee)."""
    net, platform, donation, processor = shares
    total = sum(shares)
    to_parties, to_clearing = (debit, credit) if refund else (credit, debit)
    candidates = [
        to_clearing(chart.system(AccountKind.PROCESSOR_CLEARING, currency), total),
        to_parties(chart.pending(organization_id, event_id, currency), net),
        to_parties(chart.system(AccountKind.PLATFORM_FEE_REVENUE, currency), platform),
        to_parties(chart.org(AccountKind.DONATIONS_PAYABLE, organization_id, currency), donation),
        to_parties(chart.system(AccountKind.PROCESSOR_FEE_RECOVERED, currency), processor),
        to_clearing(chart.system(AccountKind.PROCESSOR_FEE_EXPENSE, currency), processor),
        to_parties(chart.system(AccountKind.PROCESSOR_CLEARING, currency), processor),
    ]
    return [p for p in candidates if p.amount_cents > 0]


def ledger_record_sale(
    *,
    order_id: int,
    payment_id: int,
    organization_id: int,
    event_id: int,
    currency: str,
    fee_snapshot: Mapping[str, Any],
    occurred_at: datetime,
) -> JournalTransaction | None:
    """Book a captured payment for an order, from the order's fee snapshot.

    MUST run inside the caller's transaction (CompleteCheckout's atomic
    block), so the entries commit or roll back with the order; asserts it.
    Idempotent on `sale:{payment_id}`. Locks nothing (all accounts it touches
    are hot and summed); two statements (six on an event's first sale). A
    free order books nothing and returns None. Raises InvalidFeeSnapshot if
    the snapshot does not add up."""
    _assert_in_transaction()
    currency = currency.upper()
    figures = sale_figures(fee_snapshot, currency=currency)
    if figures.total == 0:
        return None
    entries = _sale_postings(
        figures,
        shares=figures.components,
        organization_id=organization_id,
        event_id=event_id,
        currency=currency,
        refund=False,
    )
    txn, _created = _post(
        key=f"sale:{payment_id}",
        kind=TransactionKind.SALE,
        entries=entries,
        source=("payments.payment", payment_id),
        effective_at=occurred_at,
        memo=f"Sale, order {order_id}",
        organization_id=organization_id,
        reference=f"payment:{payment_id}",
        data={
            "order_id": order_id,
            "payment_id": payment_id,
            "event_id": event_id,
            "subtotal_cents": figures.subtotal,
            "platform_fee_cents": figures.platform_fee,
            "processor_fee_cents": figures.processor_fee,
            "donation_cents": figures.donation,
            "total_cents": figures.total,
            "organizer_net_cents": figures.organizer_net,
            "platform_absorbed_cents": figures.platform_absorbed,
            "processor_absorbed_cents": figures.processor_absorbed,
        },
    )
    return txn


# --- refund ------------------------------------------------------------------------------


def ledger_record_refund(
    *,
    refund_id: int,
    payment_id: int,
    organization_id: int,
    event_id: int,
    currency: str,
    amount_cents: int,
    fee_snapshot: Mapping[str, Any],
    occurred_at: datetime,
) -> JournalTransaction:
    """Book a succeeded refund of `amount_cents` of a payment: the mirror of
    the refunded share of the sale.

    The refund is split across what the sale booked (organizer net, platform
    fee, donation, processor fee) in proportion to what is still unrefunded,
    by largest remainder; so partial refunds never take more than a part
    holds, and refunds that add up to the total charged return every part
    exactly (a fully refunded sale nets to zero on every account). Does not
    depend on the sale being posted first (webhooks come in any order).

    Idempotent on `refund:{refund_id}` (the same refund with another amount
    raises IdempotencyConflict). Raises RefundExceedsSale if the refunds
    would exceed the total charged. Serializes the postings of one payment
    with an advisory lock (no row locks). Runs in the caller's transaction
    if there is one."""
    currency = currency.upper()
    key = f"refund:{refund_id}"
    reference = f"payment:{payment_id}"
    with transaction.atomic():
        lock_ledger_reference(reference)
        existing = JournalTransaction.objects.filter(idempotency_key=key).first()
        if existing is not None:
            if existing.data.get("amount_cents") != amount_cents or existing.reference != reference:
                raise IdempotencyConflict(detail={"key": key, "transaction": existing.pk})
            return existing
        figures = sale_figures(fee_snapshot, currency=currency)
        remaining = figures.components
        for prior in _refund_components(reference):
            remaining = [r - p for r, p in zip(remaining, prior, strict=True)]
        if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) or amount_cents <= 0:
            raise InvalidPosting(detail={"amount_cents": amount_cents})
        if amount_cents > sum(remaining):
            raise RefundExceedsSale(detail={"refund": refund_id, "refundable_cents": sum(remaining)})
        shares = allocate(amount_cents, remaining)
        entries = _sale_postings(
            figures, shares=shares, organization_id=organization_id, event_id=event_id, currency=currency, refund=True
        )
        return _post(
            key=key,
            kind=TransactionKind.REFUND,
            entries=entries,
            source=("payments.refund", refund_id),
            effective_at=occurred_at,
            memo=f"Refund {refund_id} of payment {payment_id}",
            organization_id=organization_id,
            reference=reference,
            data={
                "refund_id": refund_id,
                "payment_id": payment_id,
                "event_id": event_id,
                "amount_cents": amount_cents,
                "components": shares,
            },
        )[0]


def _refund_components(reference: str) -> list[list[int]]:
    rows = JournalTransaction.objects.filter(
        reference=reference, kind=TransactionKind.REFUND, reversed_by__isnull=True
    ).values_list("data", flat=True)
    return [list(data["components"]) for data in rows]


# --- chargebacks ------------------------------------------------------------------------------


def ledger_record_chargeback_opened(
    *,
    dispute_id: str,
    payment_id: int,
    organization_id: int,
    currency: str,
    amount_cents: int,
    fee_cents: int,
    occurred_at: datetime,
) -> JournalTransaction:
    """A dispute opened: the processor takes the disputed amount and its
    dispute fee out of our balance. The amount waits in `disputes_open` for
    the outcome; the fee is the platform's expense. Idempotent on
    `chargeback_opened:{dispute_id}`."""
    currency = currency.upper()
    entries = [
        credit(chart.system(AccountKind.PROCESSOR_CLEARING, currency), amount_cents + fee_cents),
        debit(chart.system(AccountKind.DISPUTES_OPEN, currency), amount_cents),
    ]
    if fee_cents:
        entries.append(debit(chart.system(AccountKind.DISPUTE_FEE_EXPENSE, currency), fee_cents))
    return ledger_post(
        key=f"chargeback_opened:{dispute_id}",
        kind=TransactionKind.CHARGEBACK_OPENED,
        entries=entries,
        source=("payments.payment", payment_id),
        effective_at=occurred_at,
        memo=f"Dispute {dispute_id} opened",
        organization_id=organization_id,
        reference=f"payment:{payment_id}",
        data={"dispute_id": dispute_id, "amount_cents": amount_cents, "fee_cents": fee_cents},
    )


def ledger_record_chargeback_closed(
    *,
    dispute_id: str,
    won: bool,
    payment_id: int,
    organization_id: int,
    event_id: int,
    currency: str,
    amount_cents: int,
    occurred_at: datetime,
) -> JournalTransaction:
    """A dispute ended. Won: the processor returns the amount to clearing.
    Lost: the organizer bears it, from the event's pending account (after a
    payout that account goes negative and the next settlement recovers it
    through the organizer's receivable). A dispute ends once: posting the
    other outcome raises InvalidState. Idempotent on
    `chargeback_won|lost:{dispute_id}`."""
    currency = currency.upper()
    outcome, other = ("won", "lost") if won else ("lost", "won")
    with transaction.atomic():
        lock_ledger_reference(f"payment:{payment_id}")
        if JournalTransaction.objects.filter(idempotency_key=f"chargeback_{other}:{dispute_id}").exists():
            raise InvalidState("This dispute already has an outcome.", detail={"dispute": dispute_id, "outcome": other})
        disputes_open = chart.system(AccountKind.DISPUTES_OPEN, currency)
        if won:
            entries = [debit(chart.system(AccountKind.PROCESSOR_CLEARING, currency), amount_cents)]
        else:
            entries = [debit(chart.pending(organization_id, event_id, currency), amount_cents)]
        entries.append(credit(disputes_open, amount_cents))
        return ledger_post(
            key=f"chargeback_{outcome}:{dispute_id}",
            kind=TransactionKind.CHARGEBACK_WON if won else TransactionKind.CHARGEBACK_LOST,
            entries=entries,
            source=("payments.payment", payment_id),
            effective_at=occurred_at,
            memo=f"Dispute {dispute_id} {outcome}",
            organization_id=organization_id,
            reference=f"payment:{payment_id}",
            data={"dispute_id": dispute_id, "event_id": event_id, "amount_cents": amount_cents},
        )


# --- payouts ------------------------------------------------------------------------------


def ledger_record_payout(
    *, payout_id: int, stage: str, organization_id: int, currency: str, amount_cents: int, occurred_at: datetime
) -> JournalTransaction:
    """The payout templates, by `stage`:
    initiated: available -> in transit (guarded: never more than available);
    paid: in transit -> out of processor clearing;
    failed: in transit -> back to available.
    Idempotent on `payout:{payout_id}:{stage}`. Locks the organizer's
    guarded accounts involved (conditional UPDATEs)."""
    currency = currency.upper()
    available = chart.org(AccountKind.ORG_AVAILABLE, organization_id, currency)
    in_transit = chart.org(AccountKind.PAYOUT_IN_TRANSIT, organization_id, currency)
    templates = {
        "initiated": (
            TransactionKind.PAYOUT_INITIATED,
            [debit(available, amount_cents), credit(in_transit, amount_cents)],
        ),
        "paid": (
            TransactionKind.PAYOUT_PAID,
            [
                debit(in_transit, amount_cents),
                credit(chart.system(AccountKind.PROCESSOR_CLEARING, currency), amount_cents),
            ],
        ),
        "failed": (TransactionKind.PAYOUT_FAILED, [debit(in_transit, amount_cents), credit(available, amount_cents)]),
    }
    if stage not in templates:
        raise LedgerError(f"Unknown payout stage {stage!r}.")
    kind, entries = templates[stage]
    return ledger_post(
        key=f"payout:{payout_id}:{stage}",
        kind=kind,
        entries=entries,
        source=("finance.payout", payout_id),
        effective_at=occurred_at,
        memo=f"Payout {payout_id} {stage}",
        organization_id=organization_id,
        reference=f"payout:{payout_id}",
        data={"payout_id": payout_id, "amount_cents": amount_cents},
    )
