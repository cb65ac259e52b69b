from finance.models.fees import FeeSchedule
from finance.models.ledger import (
    Account,
    AccountType,
    JournalEntry,
    JournalTransaction,
    NormalBalance,
    Side,
    TransactionKind,
)
from finance.models.payout import Payout, PayoutStatus
from finance.models.settings import OrganizationFinanceSettings
from finance.models.settlement import Settlement, SettlementStatus

__all__ = [
    "Account",
    "AccountType",
    "FeeSchedule",
    "JournalEntry",
    "JournalTransaction",
    "NormalBalance",
    "OrganizationFinanceSettings",
    "Payout",
    "PayoutStatus",
    "Settlement",
    "SettlementStatus",
    "Side",
    "TransactionKind",
]
