from payments.models.payment import Payment, PaymentStatus
from payments.models.refund import Refund, RefundStatus
from payments.models.sandbox import (
    SandboxPayout,
    SandboxRefund,
    SandboxSession,
    SandboxSessionStatus,
    SandboxWebhook,
)
from payments.models.session import PaymentSession, PaymentSessionStatus
from payments.models.webhook import WebhookEvent, WebhookOutcome

__all__ = [
    "Payment",
    "PaymentSession",
    "PaymentSessionStatus",
    "PaymentStatus",
    "Refund",
    "RefundStatus",
    "SandboxPayout",
    "SandboxRefund",
    "SandboxSession",
    "SandboxSessionStatus",
    "SandboxWebhook",
    "WebhookEvent",
    "WebhookOutcome",
]
