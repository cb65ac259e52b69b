from __future__ import annotations

from django.db import models

from ticketing.tenancy import TenantQuerySet


class HoldStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    RELEASED = "released", "Released"
    EXPIRED = "expired", "Expired"
    CONVERTED = "converted", "Converted to a sale"


class CapacityHold(models.Model):
    """Units of a general-admission ticket type held for one checkout.

    The units are counted in TicketType.held while the hold is active. Status
    changes are compare-and-set UPDATEs in ticketing.services.capacity, so a
    hold is released, expired or converted exactly once."""

    organization = models.ForeignKey("ticketing.Organization", on_delete=models.PROTECT, related_name="+")
    ticket_type = models.ForeignKey("ticketing.TicketType", on_delete=models.PROTECT, related_name="holds")
    quantity = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=HoldStatus.choices, default=HoldStatus.ACTIVE)
    expires_at = models.DateTimeField()
    reference = models.CharField(max_length=100, blank=True, help_text="What the hold is for, e.g. an order code.")
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    objects = TenantQuerySet.as_manager()
    tenant_field = "organization"

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(
                fields=["ticket_type", "expires_at"],
                condition=models.Q(status="active"),
                name="capacity_hold_active_expiry",
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(quantity__gte=1), name="capacity_hold_quantity_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.ticket_type_id} ({self.status})"
