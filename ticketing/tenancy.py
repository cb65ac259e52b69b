"""Tenant scoping: the one way to ask which organizations an actor may see.

An actor is a Django user (staff in the admin or on the API) or any object
with an `organization_ids()` method (API tokens, scanning devices). Superusers
see everything. Tenant-owned models use `TenantQuerySet` and name the path to
their organization in `tenant_field`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Generic, TypeVar

from django.db import models

_M = TypeVar("_M", bound=models.Model)

ALL_ROLES: frozenset[str] = frozenset({"owner", "manager", "finance", "box_office", "scanner"})


def organization_ids_for(actor: Any, *, roles: Iterable[str] | None = None) -> set[int] | None:
    """The organization ids `actor` belongs to (with one of `roles`, if given).

    None means "every organization" (superusers); an empty set means none."""
    if actor is None:
        return set()
    if hasattr(actor, "organization_ids"):
        return set(actor.organization_ids(roles=roles))
    if not getattr(actor, "is_authenticated", False) or not getattr(actor, "is_active", False):
        return set()
    if getattr(actor, "is_superuser", False):
        return None
    from ticketing.models import Membership

    memberships = Membership.objects.filter(user_id=actor.pk)
    if roles is not None:
        memberships = memberships.filter(role__in=list(roles))
    return set(memberships.values_list("organization_id", flat=True))


class TenantQuerySet(models.QuerySet[_M], Generic[_M]):
    def for_organizations(self, organization_ids: set[int] | None) -> TenantQuerySet[_M]:
        if organization_ids is None:
            return self
        field = getattr(self.model, "tenant_field", "organization")
        return self.filter(**{f"{field}__in": organization_ids})

    def visible_to(self, actor: Any, *, roles: Iterable[str] | None = None) -> TenantQuerySet[_M]:
        return self.for_organizations(organization_ids_for(actor, roles=roles))


def organization_id_of(obj: models.Model) -> int | None:
    """Follow a model's `tenant_field` path to its organization id."""
    field = getattr(type(obj), "tenant_field", "organization")
    if field == "pk":  # the Organization itself
        return obj.pk
    path = field.split("__")
    target: Any = obj
    for part in path[:-1]:
        target = getattr(target, part)
        if target is None:
            return None
    return getattr(target, f"{path[-1]}_id", None)
