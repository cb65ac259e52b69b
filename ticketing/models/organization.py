from __future__ import annotations

from django.conf import settings
from django.db import models

from ticketing.tenancy import TenantQuerySet


class Organization(models.Model):
    """A tenant: an organizer that sells tickets. Every domain row belongs to one."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    default_currency = models.CharField(max_length=3, default="EUR")
    timezone = models.CharField(max_length=64, default="UTC")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantQuerySet.as_manager()
    tenant_field = "pk"

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    MANAGER = "manager", "Manager"
    FINANCE = "finance", "Finance"
    BOX_OFFICE = "box_office", "Box office"
    SCANNER = "scanner", "Scanner"


class Membership(models.Model):
    """A staff user's role in one organization."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantQuerySet.as_manager()
    tenant_field = "organization"

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "organization"], name="membership_unique_user_org"),
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.organization} ({self.role})"
