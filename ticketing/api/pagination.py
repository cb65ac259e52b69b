from __future__ import annotations

from rest_framework.pagination import LimitOffsetPagination


class ApiPagination(LimitOffsetPagination):
    """`?limit=&offset=`; the envelope is {"count", "next", "previous", "results"}."""

    default_limit = 50
    max_limit = 200
