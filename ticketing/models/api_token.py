"""API tokens: how integrators authenticate, one organization and one role each.

The secret is shown once, when the token is created, and stored only as a
SHA-256 hash: the secret has 256 bits of entropy, so a plain hash is as strong
as a slow password hash here and costs nothing per request. The public
`prefix` finds the row without scanning hashes."""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.db import models

from ticketing.models.organization import Role
from ticketing.tenancy import TenantQuerySet


class ApiToken(models.Model):
    organization = models.ForeignKey("ticketing.Organization", on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. 'Box office app'.")
    role = models.CharField(max_length=20, choices=Role.choices)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = TenantQuerySet.as_manager()
    tenant_field = "organization"

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"API token {self.name} ({self.prefix})"

    # --- the actor protocol of ticketing.tenancy and DRF ---------------------------
    # An authenticated token stands in for request.user on the API.

    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = False

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def organization_ids(self, *, roles: Iterable[str] | None = None) -> set[int]:
        if not self.is_active:
            return set()
        if roles is not None and self.role not in set(roles):
            return set()
        return {self.organization_id}
