"""The base classes of every API view.

`ApiView` is authenticated, role-checked (ticketing.api.permissions), throttled
and idempotent on writes. `PublicApiView` needs no credentials and is throttled
per IP. Views stay thin: parse with a serializer, check permission (here),
call one service or selector, render."""

from __future__ import annotations

from typing import Any, TypeVar

from django.db import models
from django.http import Http404
from rest_framework.pagination import BasePagination
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from ticketing.api.idempotency import IdempotentMixin
from ticketing.api.pagination import ApiPagination
from ticketing.api.permissions import OWNER_MANAGER, HasRole, organization_ids_allowed
from ticketing.tenancy import ALL_ROLES, TenantQuerySet

M = TypeVar("M", bound=models.Model)

# The largest id PostgreSQL's bigint holds: bigger ids are simply not found.
MAX_ID = 2**63 - 1


class ApiView(IdempotentMixin, APIView):
    permission_classes = [HasRole]
    read_roles: frozenset[str] = ALL_ROLES
    write_roles: frozenset[str] = OWNER_MANAGER

    def organization_ids(self) -> set[int] | None:
        return organization_ids_allowed(self.request, self)

    def scoped(self, queryset: TenantQuerySet[M]) -> TenantQuerySet[M]:
        return queryset.for_organizations(self.organization_ids())

    def get_scoped(self, queryset: TenantQuerySet[M], pk: int) -> M:
        """The object if it exists in one of the caller's organizations, else 404."""
        obj = self.scoped(queryset).filter(pk=pk).first() if 0 < pk <= MAX_ID else None
        if obj is None:
            raise Http404
        return obj

    def parse(self, serializer_class: type[BaseSerializer[Any]], data: Any) -> dict[str, Any]:
        serializer = serializer_class(data=data)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    def paginated(self, request: Request, queryset: Any, serializer_class: type[BaseSerializer[Any]]) -> Response:
        paginator: BasePagination = ApiPagination()
        page: list[Any] | None = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(serializer_class(page, many=True).data)


class PublicApiView(ApiView):
    permission_classes = [AllowAny]
