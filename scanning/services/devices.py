"""Scanning devices: create (the token is returned once), authenticate, revoke.

A device token reads `dv_<prefix>_<secret>`, the scheme of ticketing's API
tokens: the prefix is public and finds the row, only sha256(token) is stored
(the secret has 256 bits of entropy, so a plain hash is enough and costs
nothing per scan). Authentication writes `last_seen_at` at most once a
minute per device (a conditional UPDATE), not once per scan."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from scanning.exceptions import DeviceNotFound, EventNotScannable
from scanning.models import Device
from ticketing.exceptions import InvalidInput
from ticketing.locks import lock_timeout
from ticketing.models import AuditLogEntry, Event, EventStatus

TOKEN_PREFIX = "dv_"  # noqa: S105 - the public marker of device tokens, not a secret
LAST_SEEN_RESOLUTION = timedelta(minutes=1)
MAX_TOKEN_CHARS = 128


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _split(raw: str) -> tuple[str, str] | None:
    if len(raw) > MAX_TOKEN_CHARS or not raw.startswith(TOKEN_PREFIX):
        return None
    prefix, sep, secret = raw[len(TOKEN_PREFIX) :].partition("_")
    if not sep or not prefix or not secret or len(prefix) > 16:
        return None
    return prefix, secret


def is_device_token(raw: str) -> bool:
    return raw.startswith(TOKEN_PREFIX)


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
    prefix = secrets.token_hex(6)
    raw = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        device = Device.objects.create(
            organization_id=event.organization_id,
            event=event,
            name=name,
            gate=gate,
            prefix=prefix,
            secret_hash=_hash(raw),
            # Only a staff user is recorded (an API token is not a user).
            created_by=created_by if isinstance(created_by, get_user_model()) and created_by.pk else None,
        )
    return device, raw


def device_authenticate(*, raw: str, now: datetime | None = None) -> Device | None:
    """The live device for `raw`, with its event loaded, or None (unknown,
    malformed or revoked)."""
    parts = _split(raw)
    if parts is None:
        return None
    device = Device.objects.select_related("event").filter(prefix=parts[0]).first()
    if device is None or not hmac.compare_digest(device.secret_hash, _hash(raw)) or device.revoked_at is not None:
        return None
    now = now or timezone.now()
    if device.last_seen_at is None or device.last_seen_at <= now - LAST_SEEN_RESOLUTION:
        # Conditional: of many concurrent scans, one writes per minute.
        stale = Device.objects.filter(pk=device.pk).exclude(last_seen_at__gt=now - LAST_SEEN_RESOLUTION)
        if stale.update(last_seen_at=now):
            device.last_seen_at = now
    return device


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
