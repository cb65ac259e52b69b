"""The payments domain's write services; import them from here."""

from payments.services.disputes import dispute_close, dispute_open
from payments.services.payments import (
    payment_apply_provider_status,
    payment_mark_cancelled,
    payment_mark_failed,
    payment_mark_pending,
    payment_mark_succeeded,
    payment_status_fetch,
)
from payments.services.payouts import payout_create, payout_event_apply, payout_status_fetch
from payments.services.refunds import refund_create, refund_mark_failed, refund_mark_succeeded
from payments.services.sessions import payment_session_create, payment_session_expire
from payments.services.webhooks import webhook_receive

__all__ = [
    "dispute_close",
    "dispute_open",
    "payment_apply_provider_status",
    "payment_mark_cancelled",
    "payment_mark_failed",
    "payment_mark_pending",
    "payment_mark_succeeded",
    "payment_session_create",
    "payment_session_expire",
    "payment_status_fetch",
    "payout_create",
    "payout_event_apply",
    "payout_status_fetch",
    "refund_create",
    "refund_mark_failed",
    "refund_mark_succeeded",
    "webhook_receive",
]
