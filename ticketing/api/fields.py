"""Input fields that turn every odd value into a 400, never a 500."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rest_framework import serializers

MAX_ID = 2**63 - 1
MAX_INT = 2**31 - 1
MAX_SMALL = 32767


class SafeDateTimeField(serializers.DateTimeField):
    """DRF's, but an instant outside what time zones can convert (year 1 or
    9999 with an offset) is a validation error, not an OverflowError."""

    def to_internal_value(self, value: Any) -> datetime:
        try:
            parsed = super().to_internal_value(value)
            parsed.astimezone(UTC)
        except OverflowError as exc:
            raise serializers.ValidationError("This date and time is out of range.") from exc
        if not 1900 <= parsed.year <= 9000:
            raise serializers.ValidationError("This date and time is out of range.")
        return parsed


class IdField(serializers.IntegerField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(**kwargs)


class TimezoneField(serializers.CharField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 64)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
            raise serializers.ValidationError("Unknown time zone; use an IANA name like 'Europe/Paris'.") from exc
        return value


class CurrencyField(serializers.RegexField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(r"^[A-Z]{3}\Z", max_length=3, **kwargs)
        self.error_messages["invalid"] = "Use a three-letter ISO 4217 code, e.g. 'EUR'."


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
