"""The admin base for tenant-owned models.

Staff see and change only their own organizations' rows: the changelist, the
change form, foreign-key choices and saves are all scoped through
ticketing.tenancy. Which roles may view and which may change is declared per
admin class. Superusers see everything.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import models
from django.forms import ModelChoiceField
from django.http import HttpRequest

from ticketing.tenancy import ALL_ROLES, organization_id_of, organization_ids_for


class TenantAdmin(admin.ModelAdmin):
    view_roles: frozenset[str] = ALL_ROLES
    change_roles: frozenset[str] = frozenset({"owner", "manager"})

    # --- what the user may see --------------------------------------------------

    def _org_ids(self, request: HttpRequest, roles: frozenset[str]) -> set[int] | None:
        cache_attr = f"_tenant_org_ids_{'_'.join(sorted(roles))}"
        if not hasattr(request, cache_attr):
            setattr(request, cache_attr, organization_ids_for(request.user, roles=roles))
        return getattr(request, cache_attr)

    def get_queryset(self, request: HttpRequest) -> models.QuerySet[Any]:
        queryset = super().get_queryset(request)
        org_ids = self._org_ids(request, self.view_roles)
        if org_ids is None:
            return queryset
        field = getattr(self.model, "tenant_field", "organization")
        return queryset.filter(**{f"{field}__in": org_ids})

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> ModelChoiceField | None:
        formfield = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if formfield is not None and formfield.queryset is not None:
            formfield.queryset = self._scope_related(request, formfield.queryset)
        return formfield

    def _scope_related(self, request: HttpRequest, queryset: models.QuerySet[Any]) -> models.QuerySet[Any]:
        org_ids = self._org_ids(request, self.change_roles)
        if org_ids is None:
            return queryset
        from ticketing.models import Organization

        if queryset.model is Organization:
            return queryset.filter(pk__in=org_ids)
        field = getattr(queryset.model, "tenant_field", None)
        if field is None:
            return queryset
        return queryset.filter(**{f"{field}__in": org_ids})

    # --- what the user may do -----------------------------------------------------

    def _allowed(self, request: HttpRequest, roles: frozenset[str], obj: models.Model | None) -> bool:
        if not request.user.is_active or not request.user.is_staff:
            return False
        org_ids = self._org_ids(request, roles)
        if org_ids is None:
            return True
        if obj is None:
            return bool(org_ids)
        return organization_id_of(obj) in org_ids

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request, self.view_roles, None)

    def has_view_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return self._allowed(request, self.view_roles, obj)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return self._allowed(request, self.change_roles, None)

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return self._allowed(request, self.change_roles, obj)

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return self._allowed(request, self.change_roles, obj)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        # Scoped choices already keep foreign organizations out of the form;
        # this guards against a crafted POST all the same.
        org_id = organization_id_of(obj)
        org_ids = self._org_ids(request, self.change_roles)
        if org_ids is not None and org_id not in org_ids:
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied("You can only change your own organization's data.")
        super().save_model(request, obj, form, change)


class ReadOnlyTenantAdmin(TenantAdmin):
    """For history and ledger-like rows: staff read them, nobody edits them."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False
