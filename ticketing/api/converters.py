"""The `api_id` path converter of /api/v1/ urls.

Registered on import by every urls module of the API (the workflow engine's
autodiscovery may import workflows/api/urls.py before ticketing's)."""

from __future__ import annotations

from django.urls.converters import get_converters, register_converter


class ApiIdConverter:
    # At most 18 digits: every id fits PostgreSQL's bigint, so no lookup overflows.
    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


if "api_id" not in get_converters():
    register_converter(ApiIdConverter, "api_id")
