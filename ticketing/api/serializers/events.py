from __future__ import annotations

from typing import Any

from rest_framework import serializers

from ticketing.api.fields import CurrencyField, IdField, SafeDateTimeField, TimezoneField
from ticketing.models import Event, EventStatus


class EventSerializer(serializers.ModelSerializer):
    """Staff view of an event (read only)."""

    class Meta:
        model = Event
        fields = [
            "id",
            "organization",
            "name",
            "slug",
            "description",
            "venue_name",
            "venue_address",
            "timezone",
            "currency",
            "starts_at",
            "ends_at",
            "status",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class PublicEventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    organization_name = serializers.CharField(source="organization.name")
    name = serializers.CharField()
    slug = serializers.CharField()
    description = serializers.CharField()
    venue_name = serializers.CharField()
    venue_address = serializers.CharField()
    timezone = serializers.CharField()
    currency = serializers.CharField()
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()
    min_price_cents = serializers.IntegerField(allow_null=True)
    max_price_cents = serializers.IntegerField(allow_null=True)


class _EventFieldsSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    slug = serializers.SlugField(max_length=120)
    description = serializers.CharField(allow_blank=True, max_length=10_000)
    venue_name = serializers.CharField(max_length=200)
    venue_address = serializers.CharField(allow_blank=True, max_length=300)
    timezone = TimezoneField()
    starts_at = SafeDateTimeField()
    ends_at = SafeDateTimeField()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        starts, ends = attrs.get("starts_at"), attrs.get("ends_at")
        if starts and ends and ends < starts:
            raise serializers.ValidationError({"ends_at": "The event cannot end before it starts."})
        return attrs


class EventCreateSerializer(_EventFieldsSerializer):
    organization = IdField(required=False, help_text="Required when the caller belongs to several organizations.")
    currency = CurrencyField(required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("description", "venue_address", "timezone"):
            self.fields[name].required = False


class EventUpdateSerializer(_EventFieldsSerializer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False


class EventFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=EventStatus.choices, required=False)
    starts_after = SafeDateTimeField(required=False)
    starts_before = SafeDateTimeField(required=False)
    ordering = serializers.ChoiceField(
        choices=["starts_at", "-starts_at", "name", "-name", "created_at", "-created_at"],
        required=False,
        default="starts_at",
    )
