from __future__ import annotations

from django.db import models

from ticketing.tenancy import TenantQuerySet

DEFAULT_CLEARING_DAYS = 3
DEFAULT_RESERVE_PERCENT_BP = 1_000
DEFAULT_RESERVE_DAYS = 90


class OrganizationFinanceSettings(models.Model):
    """Per-organization settlement and payout terms. An organization without a
    row gets the defaults (finance.selectors.finance_settings_for)."""

    organization = models.OneToOneField(
        "ticketing.Organization", on_delete=models.PROTECT, related_name="finance_settings"
    )
    clearing_days = models.PositiveIntegerField(
        default=DEFAULT_CLEARING_DAYS, help_text="Days after the event ends before its money settles."
    )
    reserve_percent_bp = models.PositiveIntegerField(
        default=DEFAULT_RESERVE_PERCENT_BP, help_text="Rolling reserve in basis points: 1000 = 10 %."
    )
    reserve_days = models.PositiveIntegerField(default=DEFAULT_RESERVE_DAYS)
    require_settlement_approval = models.BooleanField(
        default=False, help_text="Settlements wait for finance staff to approve them before money moves."
    )
    payout_provider = models.CharField(max_length=32, default="sandbox")
    payout_destination = models.CharField(max_length=255, blank=True)
    minimum_payout_cents = models.PositiveIntegerField(default=100)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantQuerySet.as_manager()
    tenant_field = "organization"

    class Meta:
        verbose_name = "finance settings"
        verbose_name_plural = "finance settings"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(reserve_percent_bp__lte=10_000), name="finance_settings_reserve_at_most_100"
            ),
        ]

    def __str__(self) -> str:
        return f"Finance settings of {self.organization}"
