"""Writes of the finance domain; import them from here."""

from finance.services.fees import fee_schedule_publish
from finance.services.ledger import (
    Posting,
    credit,
    debit,
    ledger_post,
    ledger_record_chargeback_closed,
    ledger_record_chargeback_opened,
    ledger_record_payout,
    ledger_record_refund,
    ledger_record_sale,
    ledger_reverse,
)
from finance.services.payouts import payout_mark_failed, payout_mark_in_transit, payout_mark_paid, payout_request
from finance.services.settlements import settlement_approve, settlement_create, settlement_reserve_release

__all__ = [
    "Posting",
    "credit",
    "debit",
    "fee_schedule_publish",
    "ledger_post",
    "ledger_record_chargeback_closed",
    "ledger_record_chargeback_opened",
    "ledger_record_payout",
    "ledger_record_refund",
    "ledger_record_sale",
    "ledger_reverse",
    "payout_mark_failed",
    "payout_mark_in_transit",
    "payout_mark_paid",
    "payout_request",
    "settlement_approve",
    "settlement_create",
    "settlement_reserve_release",
]
