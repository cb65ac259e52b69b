from __future__ import annotations

from django.db import models
from django.db.models import Q

from ticketing.tenancy import TenantQuerySet


class EmailKind(models.TextChoices):
    TICKETS = "tickets", "Your tickets"
    ORDER_CANCELLED = "order_cancelled", "Order cancelled"
    LATE_PAYMENT_REFUNDED = "late_payment_refunded", "Late payment refunded"
    REFUND = "refund", "Refund"
    TICKET_TRANSFERRED = "ticket_transferred", "Ticket transferred to you"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class EmailDelivery(models.Model):
    """An e-mail that must go out, written in the transaction that causes it.

    The message is rendered when it is sent, not when it is recorded. Sending
    claims the row with a compare-and-set (pending -> sending), so two workers
    never send the same delivery; `dedup_key` stops a retried workflow step
    from recording it twice."""

    organization = models.ForeignKey("ticketing.Organization", on_delete=models.PROTECT, related_name="+")
    order = models.ForeignKey("ticketing.Order", on_delete=models.CASCADE, related_name="email_deliveries")
    kind = models.CharField(max_length=30, choices=EmailKind.choices)
    to_email = models.EmailField()
    dedup_key = models.CharField(max_length=120, unique=True)
    context = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    # Who holds the claim (a Celery task id): the same message, redelivered
    # after its worker died or retried after the database went away, may take
    # its own claim again at once instead of waiting out EMAIL_CLAIM_SECONDS.
    claimed_by = models.CharField(max_length=64, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantQuerySet.as_manager()
    tenant_field = "organization"

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["status", "created_at"]),
            # The drain's claim walks the pending deliveries in id order
            # (ticketing.services.emails): this index holds only them, so
            # the walk never steps over the sent ones, however many.
            models.Index(fields=["id"], condition=Q(status="pending"), name="ticketing_email_pending_idx"),
        ]
        verbose_name_plural = "e-mail deliveries"

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.to_email} ({self.status})"
