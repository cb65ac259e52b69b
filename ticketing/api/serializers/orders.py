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


class RefundRequestSerializer(serializers.Serializer):
    tickets = serializers.ListField(
        child=IdField(),
        required=False,
        min_length=1,
        max_length=500,
        help_text="The tickets to refund (their share of the total, fees included); omit for the whole order.",
    )
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


class RefundSerializer(serializers.Serializer):
    run_id = serializers.IntegerField(help_text="The RefundOrder workflow run (GET /api/v1/workflow-runs/{id}/).")
    status = serializers.ChoiceField(
        choices=["refunded", "pending", "processing"],
        help_text="refunded: done; pending: the provider confirms later; processing: retried until the provider "
        "answers.",
    )
    refund_id = serializers.IntegerField(allow_null=True)
    amount_cents = serializers.IntegerField(allow_null=True)
    tickets = serializers.ListField(child=serializers.IntegerField())
    order = OrderSerializer()


class TicketTransferSerializer(serializers.Serializer):
    holder_name = serializers.CharField(max_length=200)
    holder_email = serializers.EmailField(max_length=254)
