from __future__ import annotations

from typing import Any

from rest_framework import serializers

from ticketing.api.fields import MAX_INT, MAX_SMALL, SafeDateTimeField
from ticketing.models import AdmissionPolicy, TicketKind, TicketType


class TicketTypeSerializer(serializers.ModelSerializer):
    class Meta:
        model = TicketType
        fields = [
            "id",
            "event",
            "name",
            "description",
            "kind",
            "price_cents",
            "currency",
            "capacity",
            "sold",
            "held",
            "sales_start",
            "sales_end",
            "min_per_order",
            "max_per_order",
            "admission_policy",
            "max_entries",
            "is_active",
            "position",
        ]
        read_only_fields = fields


class PublicTicketTypeSerializer(serializers.ModelSerializer):
    class Meta:
        model = TicketType
        fields = [
            "id",
            "event",
            "name",
            "description",
            "kind",
            "price_cents",
            "currency",
            "sales_start",
            "sales_end",
            "min_per_order",
            "max_per_order",
        ]
        read_only_fields = fields


class _TicketTypeFieldsSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(allow_blank=True, max_length=10_000)
    price_cents = serializers.IntegerField(min_value=0, max_value=MAX_INT)
    capacity = serializers.IntegerField(min_value=0, max_value=10_000_000)
    sales_start = SafeDateTimeField(allow_null=True)
    sales_end = SafeDateTimeField(allow_null=True)
    min_per_order = serializers.IntegerField(min_value=1, max_value=MAX_SMALL)
    max_per_order = serializers.IntegerField(min_value=1, max_value=MAX_SMALL)
    admission_policy = serializers.ChoiceField(choices=AdmissionPolicy.choices)
    max_entries = serializers.IntegerField(min_value=1, max_value=MAX_SMALL, allow_null=True)
    is_active = serializers.BooleanField()
    position = serializers.IntegerField(min_value=0, max_value=MAX_SMALL)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():
            if name not in self.required_fields:
                field.required = False

    required_fields: frozenset[str] = frozenset()


class TicketTypeCreateSerializer(_TicketTypeFieldsSerializer):
    required_fields = frozenset({"name", "price_cents", "capacity"})
    kind = serializers.ChoiceField(choices=TicketKind.choices, required=False)


class TicketTypeUpdateSerializer(_TicketTypeFieldsSerializer):
    pass


class AvailabilitySerializer(serializers.Serializer):
    ticket_type_id = serializers.IntegerField()
    capacity = serializers.IntegerField()
    sold = serializers.IntegerField()
    held = serializers.IntegerField()
    available = serializers.IntegerField()
