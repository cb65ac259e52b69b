"""Reads of the finance domain; import them from here."""

from finance.selectors.fees import DEFAULT_FEE_RULES, fee_rules_for, fee_rules_from_sql, fee_rules_sql
from finance.selectors.ledger import (
    Difference,
    LedgerVerification,
    account_balance,
    account_balance_by_ref,
    account_totals_recomputed,
    ledger_differences,
    ledger_verify,
    reconciliation_differences,
)
from finance.selectors.payouts import payout_for_provider

__all__ = [
    "DEFAULT_FEE_RULES",
    "Difference",
    "LedgerVerification",
    "account_balance",
    "account_balance_by_ref",
    "account_totals_recomputed",
    "fee_rules_for",
    "fee_rules_from_sql",
    "fee_rules_sql",
    "ledger_differences",
    "ledger_verify",
    "payout_for_provider",
    "reconciliation_differences",
]
