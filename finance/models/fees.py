"""Finance models. Fee schedules are versioned and never edited: a change is a
new version, and each order keeps the snapshot it was priced with."""

from __future__ import annotations

from django.db import models

from ticketing.tenancy import TenantQuerySet


class FeeSchedule(models.Model):
    organization = models.ForeignKey("ticketing.Organization", on_delete=models.PROTECT, related_name="+")
    event = models.ForeignKey(
        "ticketing.Event",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Leave empty for the organization's default schedule.",
    )
    version = models.PositiveIntegerField(editable=False)
    platform_rate_bp = models.PositiveIntegerField(default=350, help_text="Basis points: 350 = 3.5 %.")
    platform_fixed_per_ticket_cents = models.PositiveIntegerField(default=99)
    platform_fixed_per_order_cents = models.PositiveIntegerField(default=0)
    platform_min_per_ticket_cents = models.PositiveIntegerField(null=True, blank=True)
    platform_max_per_ticket_cents = models.PositiveIntegerField(null=True, blank=True)
    platform_fee_passed_on = models.BooleanField(default=True)
    processor_rate_bp = models.PositiveIntegerField(default=290)
    processor_fixed_cents = models.PositiveIntegerField(default=30)
    processor_fee_passed_on = models.BooleanField(
        default=True, help_text="Some jurisdictions forbid surcharges: switch off to absorb the processor fee."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantQuerySet.as_manager()
    tenant_field = "organization"

    class Meta:
        ordering = ["organization", "event", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "event", "version"], name="fee_schedule_unique_version"),
            models.CheckConstraint(
                condition=models.Q(platform_rate_bp__lt=10_000) & models.Q(processor_rate_bp__lt=10_000),
                name="fee_schedule_rates_below_100_percent",
            ),
        ]

    def __str__(self) -> str:
        scope = self.event or "all events"
        return f"Fees v{self.version} for {self.organization} ({scope})"
