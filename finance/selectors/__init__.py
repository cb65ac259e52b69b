"""Reads of the finance domain; import them from here."""

from finance.selectors.fees import DEFAULT_FEE_RULES, fee_rules_for
from finance.selectors.ledger import (
    Difference,
    account_balance,
    account_balance_by_ref,
    account_totals_recomputed,
    ledger_differences,
    reconciliation_differences,
)

__all__ = [
    "DEFAULT_FEE_RULES",
    "Difference",
    "account_balance",
    "account_balance_by_ref",
    "account_totals_recomputed",
    "fee_rules_for",
    "ledger_differences",
    "reconciliation_differences",
]
