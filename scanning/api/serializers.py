from __future__ import annotations

from typing import Any

from rest_framework import serializers

from scanning.models import Device, Direction, Scan, ScanResult
from ticketing.api.fields import MAX_ID, IdField, SafeDateTimeField

# Far above any ticket code (ticketing.ticket_codes.MAX_TOKEN_CHARS): longer
# input is refused as a bad request, shorter garbage is scanned as `unknown`.
MAX_CODE_CHARS = 4096


# --- devices --------------------------------------------------------------------------


class DeviceSerializer(serializers.ModelSerializer):
    is_active = serializers.BooleanField(read_only=True, help_text="False once revoked.")

    class Meta:
        model = Device
        fields = [
            "id",
            "organization",
            "event",
            "name",
            "gate",
            "prefix",
            "is_active",
            "created_at",
            "last_seen_at",
            "revoked_at",
        ]
        read_only_fields = fields


class DeviceCreatedSerializer(DeviceSerializer):
    token = serializers.CharField(
        read_only=True, help_text="The device's token: shown once, stored hashed. Send it as 'Bearer <token>'."
    )

    class Meta(DeviceSerializer.Meta):
        fields = [*DeviceSerializer.Meta.fields, "token"]
        read_only_fields = fields


class DeviceCreateSerializer(serializers.Serializer):
    event = IdField()
    name = serializers.CharField(max_length=100)
    gate = serializers.CharField(max_length=100)


class DeviceFilterSerializer(serializers.Serializer):
    event = IdField(required=False)
    active = serializers.BooleanField(required=False, allow_null=True, default=None)


# --- scans ------------------------------------------------------------------------------


class ScanSerializer(serializers.ModelSerializer):
    """A recorded scan, as staff list it and as checkin.created carries it."""

    gate = serializers.CharField(source="device.gate", read_only=True)
    admitted = serializers.BooleanField(read_only=True, help_text="An accepted entry.")

    class Meta:
        model = Scan
        fields = [
            "id",
            "event",
            "device",
            "gate",
            "ticket",
            "direction",
            "result",
            "reason",
            "admitted",
            "nonce",
            "device_time",
            "device_sequence",
            "server_time",
        ]
        read_only_fields = fields


class ScanFilterSerializer(serializers.Serializer):
    event = IdField(required=False)
    device = IdField(required=False)
    ticket = IdField(required=False)
    result = serializers.ChoiceField(choices=ScanResult.choices, required=False)
    direction = serializers.ChoiceField(choices=Direction.choices, required=False)
    since = SafeDateTimeField(required=False, help_text="Scans at or after this server time.")
    until = SafeDateTimeField(required=False, help_text="Scans before this server time.")


class ScanCreateSerializer(serializers.Serializer):
    code = serializers.CharField(max_length=MAX_CODE_CHARS, help_text="The scanned QR payload, as read (e.g. 'T1.…').")
    direction = serializers.ChoiceField(choices=Direction.choices, default=Direction.IN)
    nonce = serializers.RegexField(
        r"^[\x21-\x7e]{1,64}\Z",
        max_length=64,
        help_text="Unique per device and scan (e.g. a UUID): sending it again returns the first answer.",
    )
    device_time = SafeDateTimeField(required=False, allow_null=True, default=None)
    device_sequence = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=0, max_value=MAX_ID
    )


class ScanTicketSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    holder_name = serializers.CharField()
    seat_label = serializers.CharField(allow_null=True)
    ticket_type = serializers.CharField(help_text="The ticket type's name.")


class ScanAnswerSerializer(serializers.Serializer):
    """What the gate shows."""

    scan = serializers.IntegerField(help_text="The recorded scan's id.")
    result = serializers.ChoiceField(choices=ScanResult.choices)
    reason = serializers.CharField(help_text="For the gate staff.")
    admitted = serializers.BooleanField(help_text="True for an accepted entry: let them in.")
    direction = serializers.ChoiceField(choices=Direction.choices)
    replayed = serializers.BooleanField(help_text="True when this nonce was answered before (same answer).")
    server_time = serializers.DateTimeField()
    ticket = ScanTicketSerializer(
        allow_null=True, help_text="Only for this event's ticket under its current code; null otherwise."
    )


def scan_answer(outcome: Any) -> dict[str, Any]:
    """The body of a scan's answer (a scanning.services.scans.ScanOutcome)."""
    scan = outcome.scan
    ticket = outcome.ticket
    return {
        "scan": scan.pk,
        "result": scan.result,
        "reason": scan.reason,
        "admitted": scan.admitted,
        "direction": scan.direction,
        "replayed": not outcome.created,
        "server_time": scan.server_time,
        "ticket": None
        if ticket is None
        else {
            "id": ticket.pk,
            "holder_name": ticket.holder_name,
            "seat_label": outcome.seat_label,
            "ticket_type": ticket.ticket_type.name,
        },
    }
