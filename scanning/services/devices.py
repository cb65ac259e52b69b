"""Scanning devices: create (the token is returned once), authenticate, revoke.

A device token reads `dv_<prefix>_<secret>`, the scheme of ticketing's API
tokens (ticketing.bearer_tokens); authentication keeps `last_seen_at` to the
minute."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from scanning.exceptions import DeviceNotFound, EventNotScannable
from scanning.models import Device
from ticketing.bearer_tokens import BearerTokenKind, token_hash
from ticketing.exceptions import InvalidInput
from ticketing.locks import lock_timeout
from ticketing.models import AuditLogEntry, Event, EventStatus

DEVICE_TOKENS = BearerTokenKind(marker="dv_")


def is_device_token(raw: str) -> bool:
    return DEVICE_TOKENS.is_one(raw)


def _clean_label(value: Any, *, field: str, label: str) -> str:
    text = str(value or "").strip()
    if not text or len(text) > 100:
        raise InvalidInput(f"Name the {label} (up to 100 characters).", detail={field: "This field is required."})
    return text


def device_create(*, event: Event, name: str, gate: str, created_by: Any = None) -> tuple[Device, str]:
    """A new device for `event` and its token; the token cannot be recovered
    afterwards. The device belongs to the event's organization."""
    name = _clean_label(name, field="name", label="device")
    gate = _clean_label(gate, field="gate", label="gate")
    if event.status == EventStatus.CANCELLED:
        raise EventNotScannable(detail={"event": event.pk})
    prefix, raw = DEVICE_TOKENS.new()
    with transaction.atomic():
        device = Device.objects.create(
            organization_id=event.organization_id,
            event=event,
            name=name,
            gate=gate,
            prefix=prefix,
            secret_hash=token_hash(raw),
            # Only a staff user is recorded (an API token is not a user).
            created_by=created_by if isinstance(created_by, get_user_model()) and created_by.pk else None,
        )
    return device, raw


def device_authenticate(*, raw: str, now: datetime | None = None) -> Device | None:
    """The live device for `raw`, with its event loaded, or None (unknown,
    malformed or revoked)."""
    return DEVICE_TOKENS.find(Device.objects.select_related("event"), raw, used_field="last_seen_at", now=now)


def device_revoke(
    *, device_id: int, by: Any = None, reason: str = "", now: datetime | None = None
) -> tuple[Device, bool]:
    """Revoke a device: its token stops working at once. Locks the device
    row; audited in the same transaction. Idempotent: (device, False) when it
    was revoked already (the first revocation time is kept)."""
    with transaction.atomic(), lock_timeout():
        device = Device.objects.select_for_update().filter(pk=device_id).first()
        if device is None:
            raise DeviceNotFound(detail={"device": device_id})
        if device.revoked_at is not None:
            return device, False
        device.revoked_at = now or timezone.now()
        device.save(update_fields=["revoked_at"])
        AuditLogEntry.objects.record_many(
            objects=[device],
            field="revoked_at",
            source="active",
            target="revoked",
            transition="revoke",
            actor=by,
            reason=reason or "device revoked",
        )
        return device, True
