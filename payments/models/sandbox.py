"""The sandbox provider's own tables: the state of a pretend payment service.

These rows are the sandbox's side of the wire, not our domain: the hosted pay
page, its charges, refunds and payouts, and its outgoing webhooks. Our side
(PaymentSession, Payment, ...) learns about them only through signed webhooks
and the provider interface, exactly as it would from Stripe.
"""

from __future__ import annotations

import secrets

from django.db import models
from django.utils import timezone


def _token(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(12)}"


def new_page_token() -> str:
    return secrets.token_urlsafe(24)


def new_sandbox_session_id() -> str:
    return _token("sbx_cs_")


def new_sandbox_payment_id() -> str:
    return _token("sbx_pi_")


def new_sandbox_refund_id() -> str:
    return _token("sbx_re_")


def new_sandbox_dispute_id() -> str:
    return _token("sbx_dp_")


def new_sandbox_payout_id() -> str:
    return _token("sbx_po_")


def new_sandbox_event_id() -> str:
    return _token("evt_sbx_")


class SandboxSessionStatus(models.TextChoices):
    OPEN = "open", "Open"
    PENDING = "pending", "Pending (delayed confirmation)"
    SUCCEEDED = "succeeded", "Succeeded"
    EXPIRED = "expired", "Expired"


class SandboxSession(models.Model):
    token = models.CharField(max_length=64, unique=True, default=new_page_token, editable=False)
    session_id = models.CharField(max_length=64, unique=True, default=new_sandbox_session_id, editable=False)
    payment_id = models.CharField(max_length=64, unique=True, default=new_sandbox_payment_id, editable=False)
    idempotency_key = models.CharField(max_length=255, unique=True)
    amount_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    order_reference = models.CharField(max_length=64)
    session_reference = models.CharField(max_length=64)
    description = models.CharField(max_length=300, blank=True)
    success_url = models.CharField(max_length=2000, blank=True)
    cancel_url = models.CharField(max_length=2000, blank=True)
    # A pretend service, not our domain model: a plain field the sandbox
    # services change under a row lock.
    status = models.CharField(max_length=20, choices=SandboxSessionStatus.choices, default=SandboxSessionStatus.OPEN)
    failure_code = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    settles_at = models.DateTimeField(null=True, blank=True)
    refunded_cents = models.PositiveIntegerField(default=0)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.session_id


class SandboxRefund(models.Model):
    refund_id = models.CharField(max_length=64, unique=True, default=new_sandbox_refund_id, editable=False)
    session = models.ForeignKey(SandboxSession, on_delete=models.CASCADE, related_name="refunds")
    amount_cents = models.PositiveIntegerField()
    idempotency_key = models.CharField(max_length=255, unique=True)
    # Set when the sandbox was told to confirm refunds later (settings.
    # SANDBOX_REFUND_DELAY_SECONDS): the refund is pending until then and a
    # refund.succeeded webhook is due at that time.
    settles_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.refund_id


class SandboxDispute(models.Model):
    """A card dispute raised against a sandbox payment (by a test or support
    tooling, as a card issuer would). Opening and closing it record the
    dispute webhooks in the same transaction."""

    dispute_id = models.CharField(max_length=64, unique=True, default=new_sandbox_dispute_id, editable=False)
    session = models.ForeignKey(SandboxSession, on_delete=models.CASCADE, related_name="disputes")
    amount_cents = models.PositiveIntegerField()
    fee_cents = models.PositiveIntegerField(default=0)
    reason = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=10, default="open")  # open, won, lost
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.dispute_id


class SandboxPayoutStatus(models.TextChoices):
    IN_TRANSIT = "in_transit", "In transit"
    PAID = "paid", "Paid"
    FAILED = "failed", "Failed"


class SandboxPayout(models.Model):
    """A payout at the sandbox. Its fate is decided when it is made (by the
    test destination, see payments.sandbox.gateway) and told by webhooks due
    at `settles_at` (paid or failed) and, for a returned payout, at
    `returns_at` (failed after paid)."""

    payout_id = models.CharField(max_length=64, unique=True, default=new_sandbox_payout_id, editable=False)
    amount_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    destination = models.CharField(max_length=255, blank=True)
    idempotency_key = models.CharField(max_length=255, unique=True)
    reference = models.CharField(max_length=255, blank=True, help_text="The caller's reference, echoed in webhooks.")
    # A pretend service: plain fields the gateway changes (the sweeper moves
    # `status` on when `settles_at` / `returns_at` pass).
    status = models.CharField(
        max_length=20, choices=SandboxPayoutStatus.choices, default=SandboxPayoutStatus.IN_TRANSIT
    )
    outcome = models.CharField(
        max_length=20,
        choices=SandboxPayoutStatus.choices,
        default=SandboxPayoutStatus.PAID,
        help_text="What the payout becomes at settles_at.",
    )
    failure_code = models.CharField(max_length=64, blank=True)
    settles_at = models.DateTimeField(null=True, blank=True, help_text="Empty: it never arrives (stuck in transit).")
    returns_at = models.DateTimeField(null=True, blank=True, help_text="Set: the bank returns it after it was paid.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.payout_id


class SandboxWebhook(models.Model):
    """An outgoing webhook of the sandbox, written in the same transaction as
    the charge that causes it (so it is never lost), delivered right after it
    commits and retried by the sweeper (payments.sandbox.webhooks). `body` is
    the exact JSON that is signed and sent, every time."""

    event_id = models.CharField(max_length=64, unique=True, default=new_sandbox_event_id, editable=False)
    event_type = models.CharField(max_length=64)
    session = models.ForeignKey(SandboxSession, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    payout = models.ForeignKey(SandboxPayout, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    body = models.TextField()
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    # Not stored: set on the recorded instance once its after-commit delivery
    # got a 2xx from our endpoint (payments.sandbox.webhooks).
    delivered_inline: bool = False

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(delivered_at__isnull=True),
                name="sandbox_webhook_due",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"
