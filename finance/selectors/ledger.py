"""Reads of the ledger: balances, and the verification finance staff run.

A hot account's balance is the sum of its entries; a guarded account's is
its stored running total, which verification compares with the sum.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import BigIntegerField, Case, Count, F, Q, Sum, When
from django.db.models.fields.json import KT

from finance.accounts import AccountRef
from finance.models import Account, JournalEntry, JournalTransaction, NormalBalance, Payout, PayoutStatus, Side

# An entry's amount, debits positive (BigInteger: sums of cents outgrow 32 bits).
SIGNED_AMOUNT = Case(
    When(side=Side.DEBIT, then=F("amount_cents")), default=-F("amount_cents"), output_field=BigIntegerField()
)
_SIGNED = SIGNED_AMOUNT


def _in_normal_direction(account: Account, debits_minus_credits: int) -> int:
    return debits_minus_credits if account.normal_balance == NormalBalance.DEBIT else -debits_minus_credits


def account_balance(*, account: Account, as_of: datetime | None = None) -> int:
    """The balance in the account's normal direction (credit-normal accounts
    are positive when we owe). `as_of` sums entries effective up to then."""
    if account.tracks_balance and as_of is None:
        return account.stored_balance_cents
    entries = JournalEntry.objects.filter(account_id=account.pk)
    if as_of is not None:
        entries = entries.filter(transaction__effective_at__lte=as_of)
    total = entries.aggregate(s=Sum(_SIGNED))["s"] or 0
    return _in_normal_direction(account, int(total))


def account_balance_by_ref(*, ref: AccountRef, as_of: datetime | None = None) -> int:
    account = Account.objects.filter(code=ref.code).first()
    return 0 if account is None else account_balance(account=account, as_of=as_of)


def account_totals_recomputed() -> dict[int, tuple[int, int]]:
    """(debits, credits) of every account with entries, summed from the entries."""
    rows = JournalEntry.objects.values("account_id").annotate(
        d=Sum("amount_cents", filter=Q(side=Side.DEBIT)), c=Sum("amount_cents", filter=Q(side=Side.CREDIT))
    )
    return {row["account_id"]: (int(row["d"] or 0), int(row["c"] or 0)) for row in rows}


@dataclass(frozen=True)
class Difference:
    check: str
    subject: str
    expected: object
    actual: object

    def __str__(self) -> str:
        return f"{self.check}: {self.subject}: expected {self.expected}, found {self.actual}"


def ledger_differences() -> list[Difference]:
    """Everything that does not add up; empty when the ledger is sound.

    Checks: each transaction balances per currency and has entries; the
    whole ledger balances per currency; entries carry their account's
    currency; stored running totals equal the sums of entries; guarded
    accounts are not negative; reversals net to zero with their original."""
    found: list[Difference] = []
    unbalanced = (
        JournalEntry.objects.values("transaction_id", "currency")
        .annotate(diff=Sum(_SIGNED))
        .exclude(diff=0)
        .order_by("transaction_id")
    )
    for row in unbalanced:
        found.append(
            Difference("transaction balances", f"transaction {row['transaction_id']} {row['currency']}", 0, row["diff"])
        )
    per_currency = JournalEntry.objects.values("currency").annotate(diff=Sum(_SIGNED)).exclude(diff=0)
    for total in per_currency:
        found.append(Difference("ledger balances", f"debits - credits in {total['currency']}", 0, total["diff"]))
    for txn_id in JournalTransaction.objects.annotate(n=Count("entries")).filter(n=0).values_list("pk", flat=True):
        found.append(Difference("transaction has entries", f"transaction {txn_id}", ">= 2", 0))
    for entry in JournalEntry.objects.exclude(currency=F("account__currency")).values(
        "pk", "currency", "account__code"
    ):
        found.append(
            Difference(
                "entry currency", f"entry {entry['pk']} on {entry['account__code']}", "account's", entry["currency"]
            )
        )

    recomputed = account_totals_recomputed()
    for account in Account.objects.filter(tracks_balance=True):
        debits, credits = recomputed.get(account.pk, (0, 0))
        stored = (account.posted_debits_cents, account.posted_credits_cents)
        if stored != (debits, credits):
            found.append(Difference("stored balance", account.code, (debits, credits), stored))
    for account in Account.objects.filter(may_go_negative=False):
        debits, credits = recomputed.get(account.pk, (0, 0))
        balance = _in_normal_direction(account, debits - credits)
        if balance < 0:
            found.append(Difference("not negative", account.code, ">= 0", balance))
    return found


def _booked(found: list[Difference], check: str, kinds: Q, figure: str) -> Iterator[tuple[int, str, int]]:
    """(business object id, kind, figure) of the unreversed transactions of
    `kinds`, read as columns (only the figure compared, not every sale's
    data) in chunks. A transaction without a business object (no source id)
    is a difference of its own."""
    rows = (
        JournalTransaction.objects.filter(kinds, reversed_by__isnull=True)
        .order_by()
        .values_list("pk", "source_id", "kind", KT(f"data__{figure}"))
        .iterator(chunk_size=5000)
    )
    for pk, source_id, kind, amount in rows:
        if not str(source_id).isdigit():
            found.append(Difference(check, f"transaction {pk} ({kind})", "a source", source_id or None))
            continue
        yield int(source_id), kind, int(amount or 0)


def reconciliation_differences() -> list[Difference]:
    """Captured payments, succeeded refunds and payouts against the ledger."""
    from payments.models import Payment, Refund, RefundStatus
    from payments.models.payment import CAPTURED_STATES

    found: list[Difference] = []
    # Flat {id: cents} dicts: 100,000 sales cost a few MB, not one dict each.
    sales = {
        payment_id: total for payment_id, _, total in _booked(found, "sale = captured", Q(kind="sale"), "total_cents")
    }
    captured = dict(
        Payment.objects.filter(status__in=CAPTURED_STATES, captured_cents__gt=0)
        .order_by()
        .values_list("pk", "captured_cents")
        .iterator(chunk_size=5000)
    )
    for payment_id in sorted(set(sales) | set(captured)):
        if sales.get(payment_id, 0) != captured.get(payment_id, 0):
            found.append(
                Difference(
                    "sale = captured", f"payment {payment_id}", captured.get(payment_id, 0), sales.get(payment_id, 0)
                )
            )

    refunds_booked = {
        refund_id: amount
        for refund_id, _, amount in _booked(found, "refund = booked", Q(kind="refund"), "amount_cents")
    }
    refunds_paid = dict(
        Refund.objects.filter(status=RefundStatus.SUCCEEDED)
        .order_by()
        .values_list("pk", "amount_cents")
        .iterator(chunk_size=5000)
    )
    for refund_id in sorted(set(refunds_booked) | set(refunds_paid)):
        if refunds_booked.get(refund_id, 0) != refunds_paid.get(refund_id, 0):
            found.append(
                Difference(
                    "refund = booked",
                    f"refund {refund_id}",
                    refunds_paid.get(refund_id, 0),
                    refunds_booked.get(refund_id, 0),
                )
            )

    stages: dict[int, dict[str, int]] = defaultdict(dict)
    for payout_id, kind, amount in _booked(found, "payout = booked", Q(kind__startswith="payout_"), "amount_cents"):
        stages[payout_id][kind.removeprefix("payout_")] = amount
    expected_stages = {
        PayoutStatus.REQUESTED: {"initiated"},
        PayoutStatus.IN_TRANSIT: {"initiated"},
        PayoutStatus.PAID: {"initiated", "paid"},
        PayoutStatus.FAILED: {"initiated", "failed"},  # a returned payout's "paid" is reversed
    }
    payouts = {p.pk: p for p in Payout.objects.all()}
    for payout_id in sorted(set(stages) | set(payouts)):
        payout = payouts.get(payout_id)
        want = dict.fromkeys(expected_stages[payout.status], payout.amount_cents) if payout else {}
        if stages.get(payout_id, {}) != want:
            found.append(Difference("payout = booked", f"payout {payout_id}", want, stages.get(payout_id, {})))
    return found


def ledger_totals() -> dict[str, tuple[int, int, int]]:
    """(debits, credits, transactions) per currency."""
    rows = JournalEntry.objects.values("currency").annotate(
        d=Sum("amount_cents", filter=Q(side=Side.DEBIT)),
        c=Sum("amount_cents", filter=Q(side=Side.CREDIT)),
        n=Count("transaction_id", distinct=True),
    )
    return {row["currency"]: (int(row["d"] or 0), int(row["c"] or 0), int(row["n"])) for row in rows}


@dataclass(frozen=True)
class LedgerVerification:
    totals: dict[str, tuple[int, int, int]]  # per currency: debits, credits, transactions
    differences: list[Difference]

    @property
    def ok(self) -> bool:
        return not self.differences


def ledger_verify(*, reconcile: bool = True) -> LedgerVerification:
    """What `manage.py verify_ledger` checks: recompute every balance and
    check that the ledger balances (ledger_differences) and, with
    `reconcile`, that it agrees with payments, refunds and payouts
    (reconciliation_differences). Every check reads one snapshot: on its own
    (outside a transaction) it runs in a REPEATABLE READ, READ ONLY
    transaction on PostgreSQL, so postings committing meanwhile cannot show
    up as differences between two queries; inside a caller's transaction it
    reads what that transaction sees."""
    connection = transaction.get_connection()
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        totals = ledger_totals()
        differences = ledger_differences()
        if reconcile:
            differences += reconciliation_differences()
    return LedgerVerification(totals=totals, differences=differences)
