from __future__ import annotations

from rest_framework import serializers

from ticketing.api.fields import IdField, SafeDateTimeField
from ticketing.models import Order, OrderLine, OrderStatus, Ticket


class OrderLineSerializer(serializers.ModelSerializer):
    total_cents = serializers.IntegerField(read_only=True)

    class Meta:
        model = OrderLine
        fields = ["id", "ticket_type", "quantity", "unit_price_cents", "seat", "total_cents"]
        read_only_fields = fields


class TicketSerializer(serializers.ModelSerializer):
    order_code = serializers.CharField(source="order.code", read_only=True)

    class Meta:
        model = Ticket
        fields = [
            "id",
            "code",
            "order",
            "order_code",
            "event",
            "ticket_type",
            "seat",
            "holder_name",
            "holder_email",
            "status",
            "generation",
            "issued_at",
        ]
        read_only_fields = fields


class OrderSerializer(serializers.ModelSerializer):
    class Meta:
        model = Order
        fields = [
            "id",
            "code",
            "event",
            "buyer_name",
            "buyer_email",
            "currency",
            "subtotal_cents",
            "fees_cents",
            "donation_cents",
            "total_cents",
            "status",
            "expires_at",
            "paid_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class OrderDetailSerializer(OrderSerializer):
    lines = OrderLineSerializer(many=True, read_only=True)
    tickets = TicketSerializer(many=True, read_only=True)

    class Meta(OrderSerializer.Meta):
        fields = [*OrderSerializer.Meta.fields, "lines", "tickets"]
        read_only_fields = fields


class OrderFilterSerializer(serializers.Serializer):
    event = IdField(required=False)
    status = serializers.ChoiceField(choices=OrderStatus.choices, required=False)
    email = serializers.CharField(required=False, max_length=254, help_text="The buyer's e-mail, exact match.")
    created_after = SafeDateTimeField(required=False)
    created_before = SafeDateTimeField(required=False)
    ordering = serializers.ChoiceField(
        choices=["created_at", "-created_at", "total_cents", "-total_cents"], required=False, default="-created_at"
    )
