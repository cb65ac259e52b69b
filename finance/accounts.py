"""The chart of accounts: which accounts exist, what they are, and their codes.

Codes are deterministic (`org_pending:{org}:{event}:{currency}`), so a
posting can name its accounts before they exist and an idempotency hash can
be computed from codes alone. Accounts are created on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from finance.models import AccountType, NormalBalance


class AccountKind(StrEnum):
    PROCESSOR_CLEARING = "processor_clearing"
    PROCESSOR_FEE_EXPENSE = "processor_fee_expense"
    PROCESSOR_FEE_RECOVERED = "processor_fee_recovered"
    PLATFORM_FEE_REVENUE = "platform_fee_revenue"
    DISPUTES_OPEN = "disputes_open"
    DISPUTE_FEE_EXPENSE = "dispute_fee_expense"
    DONATIONS_PAYABLE = "donations_payable"
    ORG_PENDING = "org_pending"
    ORG_AVAILABLE = "org_available"
    ORG_RESERVE = "org_reserve"
    ORG_RECEIVABLE = "org_receivable"
    PAYOUT_IN_TRANSIT = "payout_in_transit"


@dataclass(frozen=True)
class KindSpec:
    type: str
    normal_balance: str
    scope: str  # "system", "org" or "event": which ids the code carries
    tracks_balance: bool  # running totals on the row; False for hot accounts
    may_go_negative: bool


_D, _C = NormalBalance.DEBIT, NormalBalance.CREDIT

CHART: dict[AccountKind, KindSpec] = {
    # Hot: touched by every sale, so balances are sums of entries, never a locked row.
    AccountKind.PROCESSOR_CLEARING: KindSpec(AccountType.ASSET, _D, "system", False, True),
    AccountKind.PROCESSOR_FEE_EXPENSE: KindSpec(AccountType.EXPENSE, _D, "system", False, True),
    AccountKind.PROCESSOR_FEE_RECOVERED: KindSpec(AccountType.REVENUE, _C, "system", False, True),
    AccountKind.PLATFORM_FEE_REVENUE: KindSpec(AccountType.REVENUE, _C, "system", False, True),
    AccountKind.DISPUTES_OPEN: KindSpec(AccountType.ASSET, _D, "system", False, True),
    AccountKind.DISPUTE_FEE_EXPENSE: KindSpec(AccountType.EXPENSE, _D, "system", False, True),
    AccountKind.DONATIONS_PAYABLE: KindSpec(AccountType.LIABILITY, _C, "org", False, True),
    # Per event and hot during its on-sale; refunds and chargebacks after a
    # settlement may take it below zero until the next settlement nets it.
    AccountKind.ORG_PENDING: KindSpec(AccountType.LIABILITY, _C, "event", False, True),
    # Guarded: payouts draw on these, so they keep a checked running balance.
    AccountKind.ORG_AVAILABLE: KindSpec(AccountType.LIABILITY, _C, "org", True, False),
    AccountKind.ORG_RESERVE: KindSpec(AccountType.LIABILITY, _C, "org", True, False),
    AccountKind.ORG_RECEIVABLE: KindSpec(AccountType.ASSET, _D, "org", True, False),
    AccountKind.PAYOUT_IN_TRANSIT: KindSpec(AccountType.LIABILITY, _C, "org", True, False),
}


@dataclass(frozen=True)
class AccountRef:
    """An account named by its code, resolved (and created) when posting."""

    kind: AccountKind
    currency: str
    organization_id: int | None = None
    event_id: int | None = None

    def __post_init__(self) -> None:
        scope = CHART[self.kind].scope
        if (self.organization_id is None) != (scope == "system") or (self.event_id is None) != (scope != "event"):
            raise ValueError(f"{self.kind} accounts are {scope}-scoped")
        if len(self.currency) != 3 or not self.currency.isalpha() or not self.currency.isupper():
            raise ValueError("currency must be an upper-case ISO 4217 code")

    @property
    def code(self) -> str:
        parts: list[object] = [self.kind.value]
        if self.organization_id is not None:
            parts.append(self.organization_id)
        if self.event_id is not None:
            parts.append(self.event_id)
        parts.append(self.currency)
        return ":".join(str(p) for p in parts)

    @property
    def spec(self) -> KindSpec:
        return CHART[self.kind]


def system(kind: AccountKind, currency: str) -> AccountRef:
    return AccountRef(kind, currency)


def org(kind: AccountKind, organization_id: int, currency: str) -> AccountRef:
    return AccountRef(kind, currency, organization_id)


def pending(organization_id: int, event_id: int, currency: str) -> AccountRef:
    return AccountRef(AccountKind.ORG_PENDING, currency, organization_id, event_id)
