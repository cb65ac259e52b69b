"""The double-entry ledger: accounts, journal transactions and their entries.

Append-only. A journal transaction and its entries are inserted once and never
updated or deleted; a correction is a reversal (a new transaction that
`reverses` the original, at most once). PostgreSQL enforces it too
(migration 0003): a trigger rejects UPDATE and DELETE on both tables, and a
deferred constraint trigger checks at commit that every transaction balances
per currency, so even raw SQL cannot leave the ledger unbalanced.

Balances. Hot accounts (processor clearing, platform revenue, organizer
pending per event, ...) are written by every sale; keeping a running total on
their row would make concurrent sales queue on that row lock. Their balance is
derived by summing entries. Guarded accounts (organizer available, reserve,
receivable, payouts in transit) change only on settlements, payouts and
chargebacks, must never go negative, and keep posted debit/credit totals and
a version on the row, updated in the posting's transaction with a
conditional UPDATE (pgledger's running balances, TigerBeetle's
debits-must-not-exceed-credits flag).
"""

from __future__ import annotations

from typing import Any, NoReturn

from django.db import models

from ticketing.tenancy import TenantQuerySet


class AccountType(models.TextChoices):
    ASSET = "asset", "Asset"
    LIABILITY = "liability", "Liability"
    EQUITY = "equity", "Equity"
    REVENUE = "revenue", "Revenue"
    EXPENSE = "expense", "Expense"


class NormalBalance(models.TextChoices):
    DEBIT = "debit", "Debit"
    CREDIT = "credit", "Credit"


class Side(models.TextChoices):
    DEBIT = "D", "Debit"
    CREDIT = "C", "Credit"


class TransactionKind(models.TextChoices):
    SALE = "sale", "Sale"
    REFUND = "refund", "Refund"
    CHARGEBACK_OPENED = "chargeback_opened", "Chargeback opened"
    CHARGEBACK_WON = "chargeback_won", "Chargeback won"
    CHARGEBACK_LOST = "chargeback_lost", "Chargeback lost"
    SETTLEMENT = "settlement", "Settlement"
    RESERVE_RELEASE = "reserve_release", "Reserve release"
    PAYOUT_INITIATED = "payout_initiated", "Payout initiated"
    PAYOUT_PAID = "payout_paid", "Payout paid"
    PAYOUT_FAILED = "payout_failed", "Payout failed"
    REVERSAL = "reversal", "Reversal"
    ADJUSTMENT = "adjustment", "Adjustment"


class Account(models.Model):
    """One account of the chart (finance.accounts builds the codes)."""

    code = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=40, db_index=True, help_text="The chart entry, e.g. org_pending.")
    type = models.CharField(max_length=10, choices=AccountType.choices)
    normal_balance = models.CharField(max_length=6, choices=NormalBalance.choices)
    currency = models.CharField(max_length=3)
    organization = models.ForeignKey(
        "ticketing.Organization", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    event = models.ForeignKey("ticketing.Event", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    may_go_negative = models.BooleanField(default=True)
    tracks_balance = models.BooleanField(
        default=False, help_text="Keeps running totals on this row (guarded, low-traffic accounts only)."
    )
    posted_debits_cents = models.BigIntegerField(default=0)
    posted_credits_cents = models.BigIntegerField(default=0)
    version = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantQuerySet.as_manager()
    tenant_field = "organization"

    class Meta:
        ordering = ["code"]
        constraints = [
            # A guarded account's stored balance never crosses zero.
            models.CheckConstraint(
                condition=models.Q(may_go_negative=True)
                | models.Q(tracks_balance=False)
                | models.Q(normal_balance="credit", posted_credits_cents__gte=models.F("posted_debits_cents"))
                | models.Q(normal_balance="debit", posted_debits_cents__gte=models.F("posted_credits_cents")),
                name="account_guarded_balance_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return self.code

    @property
    def stored_balance_cents(self) -> int:
        """The running balance in the account's normal direction (tracked accounts only)."""
        if self.normal_balance == NormalBalance.DEBIT:
            return self.posted_debits_cents - self.posted_credits_cents
        return self.posted_credits_cents - self.posted_debits_cents


class AppendOnlyQuerySet(TenantQuerySet[Any]):
    """Bulk UPDATE and DELETE are refused in Python as well as by the database."""

    def update(self, **kwargs: Any) -> NoReturn:
        from finance.exceptions import ImmutableLedger

        raise ImmutableLedger()

    def delete(self) -> NoReturn:
        from finance.exceptions import ImmutableLedger

        raise ImmutableLedger()


class AppendOnlyModel(models.Model):
    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            from finance.exceptions import ImmutableLedger

            raise ImmutableLedger()
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        from finance.exceptions import ImmutableLedger

        raise ImmutableLedger()


class JournalTransaction(AppendOnlyModel):
    """One business event's posting. `idempotency_key` is derived from the
    event (`sale:{payment}`, `refund:{refund}`, ...) and `input_hash` from
    what it books: posting the same key again returns this row, posting it
    with other numbers is an error."""

    idempotency_key = models.CharField(max_length=255, unique=True)
    input_hash = models.CharField(max_length=64)
    kind = models.CharField(max_length=24, choices=TransactionKind.choices, db_index=True)
    reverses = models.OneToOneField("self", null=True, blank=True, on_delete=models.PROTECT, related_name="reversed_by")
    organization = models.ForeignKey(
        "ticketing.Organization", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    source_type = models.CharField(max_length=60, blank=True, help_text="app_label.model of the business object.")
    source_id = models.CharField(max_length=64, blank=True)
    reference = models.CharField(
        max_length=100, blank=True, db_index=True, help_text="Groups postings of one payment: payment:{id}."
    )
    effective_at = models.DateTimeField(db_index=True)
    posted_at = models.DateTimeField(auto_now_add=True)
    memo = models.CharField(max_length=300, blank=True)
    data = models.JSONField(default=dict, blank=True, help_text="Figures for statements (not part of the balance).")

    objects = AppendOnlyQuerySet.as_manager()
    tenant_field = "organization"

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["source_type", "source_id"])]

    def __str__(self) -> str:
        return self.idempotency_key


class JournalEntry(AppendOnlyModel):
    transaction = models.ForeignKey(JournalTransaction, on_delete=models.PROTECT, related_name="entries")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="entries")
    side = models.CharField(max_length=1, choices=Side.choices)
    amount_cents = models.BigIntegerField()
    currency = models.CharField(max_length=3)

    objects = AppendOnlyQuerySet.as_manager()
    tenant_field = "account__organization"

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["account", "transaction"])]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount_cents__gt=0), name="journal_entry_amount_positive"),
            models.CheckConstraint(condition=models.Q(side__in=["D", "C"]), name="journal_entry_side_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.get_side_display()} {self.account_id} {self.amount_cents} {self.currency}"
