from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import serializers

from seating.models import SeatHold, SeatHoldStatus
from seating.services.holds import MAX_SEATS_PER_HOLD
from ticketing.api.fields import IdField


class SeatMapPlanSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()


class SeatMapCategorySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    code = serializers.CharField()
    name = serializers.CharField()
    color = serializers.CharField()
    ticket_type_id = serializers.IntegerField()
    price_cents = serializers.IntegerField()
    currency = serializers.CharField()
    free = serializers.IntegerField(help_text="Seats of this category a buyer can take now.")


class SeatMapRowSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    label = serializers.CharField()  # type: ignore[assignment]  # a field, not Field.label
    position = serializers.IntegerField()


class SeatMapSectionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    rows = SeatMapRowSerializer(many=True)


class SeatMapSeatSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    label = serializers.CharField()  # type: ignore[assignment]  # a field, not Field.label
    number = serializers.IntegerField()
    x = serializers.FloatField()
    y = serializers.FloatField()
    row_id = serializers.IntegerField()
    section_id = serializers.IntegerField()
    category_id = serializers.IntegerField()
    is_accessible = serializers.BooleanField()
    status = serializers.CharField(help_text="free, held, sold or blocked; a lapsed hold's seats show as free.")


class SeatMapSerializer(serializers.Serializer):
    plan = SeatMapPlanSerializer()
    categories = SeatMapCategorySerializer(many=True)
    sections = SeatMapSectionSerializer(many=True)
    seats = SeatMapSeatSerializer(many=True)


class SeatHoldSerializer(serializers.ModelSerializer):
    class Meta:
        model = SeatHold
        fields = ["id", "event", "token", "seat_ids", "status", "expires_at", "reference", "created_at", "closed_at"]
        read_only_fields = fields


class SeatHoldCreateSerializer(serializers.Serializer):
    """Either `seat_ids` (exactly these seats) or `category` + `quantity` (best available)."""

    seat_ids = serializers.ListField(child=IdField(), required=False, min_length=1, max_length=MAX_SEATS_PER_HOLD)
    category = IdField(required=False, help_text="A price category of the event's plan (best available).")
    quantity = serializers.IntegerField(required=False, min_value=1, max_value=MAX_SEATS_PER_HOLD)
    minutes = serializers.IntegerField(required=False, min_value=1, max_value=60, help_text="How long to hold.")
    reference = serializers.CharField(required=False, allow_blank=True, max_length=100, default="")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        explicit = "seat_ids" in attrs
        best = "category" in attrs or "quantity" in attrs
        if explicit == best:
            raise serializers.ValidationError(
                {"seat_ids": "Send either seat_ids, or category and quantity for best available."}
            )
        if best and not ("category" in attrs and "quantity" in attrs):
            missing = "category" if "category" not in attrs else "quantity"
            raise serializers.ValidationError({missing: "This field is required for best available."})
        attrs.setdefault("minutes", settings.SEAT_HOLD_MINUTES)
        return attrs


class SeatHoldFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=SeatHoldStatus.choices, required=False)
