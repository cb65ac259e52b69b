"""Finance's domain errors: subclasses of ticketing's one DomainError, each
with a stable `code` (never rename one: clients and dashboards match on it)."""

from __future__ import annotations

from ticketing.exceptions import DomainError, InvalidState


class LedgerError(DomainError):
    code = "ledger_error"
    message = "The ledger refused this posting."
    status = 409


class UnbalancedTransaction(LedgerError):
    code = "ledger_unbalanced"
    message = "Debits and credits of a journal transaction must be equal in every currency."
    status = 400


class InvalidPosting(LedgerError):
    code = "ledger_invalid_posting"
    message = "A journal entry needs a positive whole amount and its account's currency."
    status = 400


class IdempotencyConflict(LedgerError):
    """The key names a business event that was already posted with other numbers."""

    code = "ledger_idempotency_conflict"
    message = "This idempotency key was already used for a different posting."


class AlreadyReversed(LedgerError):
    code = "ledger_already_reversed"
    message = "This journal transaction has already been reversed."


class ImmutableLedger(LedgerError):
    code = "ledger_immutable"
    message = "Journal transactions and entries are append-only: post a reversal instead."


class InsufficientFunds(LedgerError):
    """A guarded account (organizer available, reserve, ...) would go negative."""

    code = "insufficient_funds"
    message = "There are not enough funds available for this."


class InvalidFeeSnapshot(LedgerError):
    code = "invalid_fee_snapshot"
    message = "The order's fee snapshot does not add up to what was charged."
    status = 400


class RefundExceedsSale(LedgerError):
    code = "ledger_refund_exceeds_sale"
    message = "The refunds would exceed what the sale booked."


class SettlementNotDue(InvalidState):
    code = "settlement_not_due"
    message = "The clearing period of this event has not ended yet."


class PayoutNotAllowed(InvalidState):
    code = "payout_not_allowed"
    message = "This payout cannot change from its current state."
