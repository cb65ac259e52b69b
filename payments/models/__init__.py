from payments.models.dispute import Dispute, DisputeStatus
from payments.models.payment import Payment, PaymentStatus
from payments.models.refund import Refund, RefundStatus
from payments.models.sandbox import (
    SandboxDispute,
    SandboxPayout,
    SandboxPayoutStatus,
    SandboxRefund,
    SandboxSession,
    SandboxSessionStatus,
    SandboxWebhook,
)
from payments.models.session import PaymentSession, PaymentSessionStatus
from payments.models.webhook import WebhookEvent, WebhookOutcome

__all__ = [
    "Dispute",
    "DisputeStatus",
    "Payment",
    "PaymentSession",
    "PaymentSessionStatus",
    "PaymentStatus",
    "Refund",
    "RefundStatus",
    "SandboxDispute",
    "SandboxPayout",
    "SandboxPayoutStatus",
    "SandboxRefund",
    "SandboxSession",
    "SandboxSessionStatus",
    "SandboxWebhook",
    "WebhookEvent",
    "WebhookOutcome",
]
