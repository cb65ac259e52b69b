"""Scanning: gate devices, the append-only log of scans, and each ticket's
admission state (inside or not, entries used).

Admission policies are not stored here: a ticket type already carries its
policy (`TicketType.admission_policy`, `max_entries`), and a second copy in
this app would be a second truth. `TicketTypeAdmission` is a proxy of the
ticket type so staff edit policies under "Scanning" in the admin.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from ticketing.models import TicketType
from ticketing.tenancy import TenantQuerySet


class Direction(models.TextChoices):
    IN = "in", "Entry"
    OUT = "out", "Exit"


class ScanResult(models.TextChoices):
    """What the gate shows. Stable codes: devices and integrators match on them."""

    OK = "ok", "OK"
    UNKNOWN = "unknown", "Unknown code"
    REVOKED = "revoked", "Revoked or replaced"
    REFUNDED = "refunded", "Refunded"
    WRONG_EVENT = "wrong_event", "Another event's ticket"
    NOT_YET_VALID = "not_yet_valid", "Not valid yet"
    EXPIRED = "expired", "No longer valid"
    ALREADY_INSIDE = "already_inside", "Already inside"
    NOT_INSIDE = "not_inside", "Not inside"
    TOO_MANY_ENTRIES = "too_many_entries", "No entries left"
    ALREADY_TODAY = "already_today", "Already entered today"
    INVALID_SIGNATURE = "invalid_signature", "Invalid signature"


class Device(models.Model):
    """A scanner at a gate of one event, with its own token.

    Like ticketing's ApiToken, the token (`dv_<prefix>_<secret>`) is shown
    once and stored as a SHA-256 hash; the public prefix finds the row. A
    device is revoked, never deleted: its scans reference it."""

    organization = models.ForeignKey("ticketing.Organization", on_delete=models.PROTECT, related_name="+")
    event = models.ForeignKey("ticketing.Event", on_delete=models.CASCADE, related_name="scanning_devices")
    name = models.CharField(max_length=100, help_text="Which scanner, e.g. 'Handheld 3'.")
    gate = models.CharField(max_length=100, help_text="Where it scans, e.g. 'North gate'.")
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_seen_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = TenantQuerySet.as_manager()
    tenant_field = "organization"

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["event", "gate"])]

    def __str__(self) -> str:
        return f"{self.name} @ {self.gate}"

    # --- the actor protocol of ticketing.tenancy and DRF ---------------------------
    # An authenticated device is request.user on the scan endpoint. It holds
    # no staff role: role-checked queries see nothing through it.

    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = False

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def organization_ids(self, *, roles: Iterable[str] | None = None) -> set[int]:
        if not self.is_active or roles is not None:
            return set()
        return {self.organization_id}


class Scan(models.Model):
    """One scan at a gate, as answered. Append-only: never updated or deleted.

    `nonce` is the device's idempotency key (unique per device): a replayed
    request returns this row's answer. `code_hash` is the SHA-256 of what was
    scanned (the code itself is a bearer credential and is not kept).
    `ticket` is set only for tickets of the scanned event; another event's
    (or tenant's) ticket is never linked."""

    # No single-column indexes: the composite ones below lead with each key.
    organization = models.ForeignKey(
        "ticketing.Organization", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    event = models.ForeignKey("ticketing.Event", on_delete=models.PROTECT, related_name="+", db_index=False)
    device = models.ForeignKey(Device, on_delete=models.PROTECT, related_name="scans", db_index=False)
    ticket = models.ForeignKey(
        "ticketing.Ticket", null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    direction = models.CharField(max_length=3, choices=Direction.choices)
    result = models.CharField(max_length=20, choices=ScanResult.choices)
    reason = models.CharField(max_length=200, blank=True)
    nonce = models.CharField(max_length=64)
    code_hash = models.CharField(max_length=64)
    device_time = models.DateTimeField(null=True, blank=True)
    device_sequence = models.PositiveBigIntegerField(null=True, blank=True)
    server_time = models.DateTimeField(default=timezone.now)

    objects = TenantQuerySet.as_manager()
    tenant_field = "organization"

    class Meta:
        ordering = ["-server_time", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["device", "nonce"], name="scan_unique_device_nonce"),
        ]
        indexes = [
            models.Index(fields=["event", "server_time"]),
            models.Index(fields=["organization", "server_time"]),
            models.Index(fields=["device", "server_time"]),
            models.Index(
                fields=["ticket", "server_time"], condition=models.Q(ticket__isnull=False), name="scan_ticket_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"Scan {self.pk} {self.direction} {self.result}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ValueError("scans are append-only")
        super().save(*args, **kwargs)

    @property
    def admitted(self) -> bool:
        """An entry that let someone in (what checkin.created announces)."""
        return self.result == ScanResult.OK and self.direction == Direction.IN


class AdmissionState(models.Model):
    """Where a ticket stands at the gates. Created on its first accepted-for-
    policy scan and changed only under its row lock (scanning.services.scans),
    so two gates scanning one ticket at once are decided one after the other."""

    ticket = models.OneToOneField("ticketing.Ticket", primary_key=True, on_delete=models.CASCADE, related_name="+")
    organization = models.ForeignKey("ticketing.Organization", on_delete=models.PROTECT, related_name="+")
    event = models.ForeignKey("ticketing.Event", on_delete=models.PROTECT, related_name="+")
    inside = models.BooleanField(default=False)
    entries = models.PositiveIntegerField(default=0)
    last_entry_on = models.DateField(null=True, blank=True, help_text="The event-local date of the last entry.")
    last_entry = models.ForeignKey(Scan, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantQuerySet.as_manager()
    tenant_field = "organization"

    class Meta:
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["event", "inside"])]

    def __str__(self) -> str:
        return f"Ticket {self.ticket_id}: {'inside' if self.inside else 'outside'}, {self.entries} entries"


class TicketTypeAdmission(TicketType):
    """The admission policy of a ticket type, as staff see it under Scanning."""

    class Meta:
        proxy = True
        verbose_name = "admission policy"
        verbose_name_plural = "admission policies"
