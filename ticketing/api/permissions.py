"""Who may call what: roles per view, organizations per object.

A view names `read_roles` (safe methods) and `write_roles`. A caller with none
of those roles in any organization gets 403; objects of organizations where
the caller lacks the role are simply not in the view's querysets, so they are
404 (another tenant's ids are indistinguishable from ids that do not exist)."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from ticketing.models import ApiToken
from ticketing.tenancy import organization_ids_for

OWNER_MANAGER = frozenset({"owner", "manager"})
ORDER_READERS = frozenset({"owner", "manager", "finance", "box_office"})
BOX_OFFICE = frozenset({"owner", "manager", "box_office"})
RUN_READERS = frozenset({"owner", "manager", "finance"})
REFUNDERS = frozenset({"owner", "manager", "finance"})


def roles_for(view: Any, method: str) -> frozenset[str]:
    return view.read_roles if method in SAFE_METHODS else view.write_roles


def organization_ids_allowed(request: Request, view: Any) -> set[int] | None:
    """The caller's organization ids for this view and method (None: all, for superusers)."""
    cache = request.__dict__.setdefault("_api_org_ids", {})
    roles = roles_for(view, request.method or "GET")
    if roles not in cache:
        cache[roles] = organization_ids_for(request.user, roles=roles)
    return cache[roles]


class HasRole(BasePermission):
    message = "Your role does not allow this."

    def has_permission(self, request: Request, view: Any) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        org_ids = organization_ids_allowed(request, view)
        return org_ids is None or bool(org_ids)


def audit_actor(request: Request) -> Any:
    """What services record as `by`: the staff user, or the token's description
    (audit rows reference users only)."""
    user = request.user
    if isinstance(user, ApiToken):
        return str(user)
    return user
