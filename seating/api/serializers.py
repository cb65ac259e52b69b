from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import serializers

from seating.models import SeatHold, SeatHoldStatus
from seating.services.holds import MAX_SEATS_PER_HOLD
from ticketing.api.fields import IdField

# A seat hold's token as the API accepts it (new_hold_token makes 24 URL-safe
# characters): anything else is refused before it reaches the database.
HOLD_TOKEN_PATTERN = r"[A-Za-z0-9_-]{1,64}"  # noqa: S105 - a pattern, not a secret
# Longer seat lists are refused as a request, shorter ones by the domain
# (seat_ids_clean), which says how many seats one hold may have.
MAX_SEATS_IN_REQUEST = 100


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


class PublicSeatHoldCreateSerializer(serializers.Serializer):
    """Either `seats` (hold exactly these) or `category` and `quantity` (hold the best available)."""

    seats = serializers.ListField(
        child=IdField(),
        required=False,
        min_length=1,
        max_length=MAX_SEATS_IN_REQUEST,
        help_text=f"Seat ids from the event's seat map; at most {MAX_SEATS_PER_HOLD} per hold.",
    )
    category = IdField(required=False, help_text="Best available: the `id` of one of the seat map's `categories`.")
    quantity = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_SEATS_PER_HOLD,
        help_text="Best available: how many seats, adjacent in one row where possible.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        explicit = "seats" in attrs
        best = "category" in attrs or "quantity" in attrs
        if explicit == best:
            raise serializers.ValidationError(
                {"seats": "Send either seats, or category and quantity for best available."}
            )
        if best and not ("category" in attrs and "quantity" in attrs):
            missing = "category" if "category" not in attrs else "quantity"
            raise serializers.ValidationError({missing: "This field is required for best available."})
        return attrs


class HeldSeatSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    label = serializers.CharField()  # type: ignore[assignment]  # a field, not Field.label
    section = serializers.CharField()
    row = serializers.CharField()
    number = serializers.IntegerField()
    category = serializers.IntegerField(help_text="The seat map's category id.")
    ticket_type = serializers.IntegerField(help_text="The ticket type the seat is sold as.")
    price_cents = serializers.IntegerField()


class PublicSeatHoldSerializer(serializers.Serializer):
    """A buyer's seat hold. The token is the only proof of ownership: keep it
    secret and send it with the same seats to POST /api/v1/public/checkouts/."""

    token = serializers.CharField()
    event = serializers.IntegerField()
    status = serializers.ChoiceField(
        choices=SeatHoldStatus.choices,
        help_text="active while it protects the seats (see seconds_left); released or expired once let go.",
    )
    seats = HeldSeatSerializer(many=True)
    expires_at = serializers.DateTimeField()
    seconds_left = serializers.IntegerField(help_text="0 once the seats are no longer held for you.")
