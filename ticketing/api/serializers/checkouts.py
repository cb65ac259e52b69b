"""Checkouts and the buyer's view of an order (public: the order code is the credential)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from seating.api.serializers import HOLD_TOKEN_PATTERN
from ticketing.api.fields import MAX_INT, MAX_SMALL, IdField
from ticketing.api.serializers.fields_once import FieldsCopiedOnce

# Bounds that keep a request small; the cart rules themselves (per-order
# limits, sales windows, seat lists) are the domain's, in workflows.checkout.cart.
MAX_CART_LINES = 50
MAX_SEATS = 100


class CheckoutLineSerializer(FieldsCopiedOnce):
    ticket_type = IdField()
    # Below 1 is the domain's `invalid_quantity`, not a generic validation error.
    quantity = serializers.IntegerField(min_value=-MAX_SMALL, max_value=MAX_SMALL)


class CheckoutStartSerializer(FieldsCopiedOnce):
    event = IdField()
    tickets = serializers.ListField(child=CheckoutLineSerializer(), required=False, max_length=MAX_CART_LINES)
    seats = serializers.ListField(child=IdField(), required=False, max_length=MAX_SEATS)
    buyer_name = serializers.CharField(max_length=200)
    buyer_email = serializers.EmailField(max_length=254)
    donation_cents = serializers.IntegerField(min_value=0, max_value=MAX_INT, required=False, default=0)
    seat_hold_token = serializers.RegexField(
        rf"^{HOLD_TOKEN_PATTERN}\Z",
        required=False,
        help_text="The token of the buyer's seat hold (POST /api/v1/public/events/{id}/seat-holds/), sent with "
        "exactly its seats in `seats`: the order takes over that hold instead of holding the seats again. "
        "409 seat_hold_mismatch if the seats differ, 410 seat_hold_expired once it lapsed or was released, "
        "409 seat_hold_in_use if another checkout has it, 404 seat_hold_not_found for an unknown token.",
    )
    return_url = serializers.URLField(
        max_length=500,
        required=False,
        help_text="Where the payment page sends the buyer back (with ?status=paid or ?status=cancelled).",
    )

    def validate_return_url(self, value: str) -> str:
        if "?" in value or "#" in value:
            raise serializers.ValidationError("Give the URL without a query string or fragment.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs.get("tickets") and not attrs.get("seats"):
            raise serializers.ValidationError({"tickets": ["Choose at least one ticket or seat."]})
        if attrs.get("seat_hold_token") and not attrs.get("seats"):
            raise serializers.ValidationError({"seats": ["Send the held seats with seat_hold_token."]})
        return attrs


class FeesSerializer(FieldsCopiedOnce):
    """What the buyer pays, as on the checkout page."""

    subtotal_cents = serializers.IntegerField()
    platform_fee_cents = serializers.IntegerField()
    processor_fee_cents = serializers.IntegerField()
    buyer_fees_cents = serializers.IntegerField(help_text="The part of the total that is fees.")
    donation_cents = serializers.IntegerField()
    total_cents = serializers.IntegerField()


class CheckoutSerializer(FieldsCopiedOnce):
    order_code = serializers.CharField(help_text="Keep it: it is the buyer's access to the order.")
    order_id = serializers.IntegerField()
    payment_url = serializers.CharField(help_text="Empty for a free order, which is complete already.")
    expires_at = serializers.DateTimeField(allow_null=True, help_text="The hold ends unpaid at this time.")
    total_cents = serializers.IntegerField()
    currency = serializers.CharField()
    fees = FeesSerializer()


class PublicOrderSerializer(serializers.Serializer):
    """No personal data: the buyer knows who they are."""

    code = serializers.CharField()
    event = serializers.IntegerField(source="event_id")
    status = serializers.CharField()
    currency = serializers.CharField()
    subtotal_cents = serializers.IntegerField()
    fees_cents = serializers.IntegerField()
    donation_cents = serializers.IntegerField()
    total_cents = serializers.IntegerField()
    expires_at = serializers.DateTimeField(allow_null=True)
    paid_at = serializers.DateTimeField(allow_null=True)
    quantity = serializers.IntegerField(help_text="Tickets ordered.")
    tickets_issued = serializers.IntegerField(help_text="Tickets issued (once paid).")
