"""Staff admin for scanning, scoped to the staff's organizations: devices
(the token is shown once, revoke instead of delete), the read-only scan log,
who is inside, and each ticket type's admission policy."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest

from scanning.api.permissions import SCAN_READERS
from scanning.models import AdmissionState, Device, Scan, TicketTypeAdmission
from scanning.services.devices import device_create, device_revoke
from ticketing.admin.tenant import ReadOnlyTenantAdmin, TenantAdmin
from ticketing.exceptions import DomainError

# Filters list only the events and devices of rows the staff can see (a
# plain related filter would list every tenant's).
EVENT_FILTER = ("event", admin.RelatedOnlyFieldListFilter)


@admin.register(Device)
class DeviceAdmin(TenantAdmin):
    view_roles = SCAN_READERS
    list_display = ["name", "gate", "event", "prefix", "created_at", "last_seen_at", "revoked_at"]
    list_filter = [EVENT_FILTER, "revoked_at"]
    search_fields = ["name", "gate", "prefix"]
    list_select_related = ["event"]
    actions = ["revoke"]

    def get_fields(self, request: HttpRequest, obj: Device | None = None) -> list[Any]:
        if obj is None:
            return ["event", "name", "gate"]
        return [
            "organization",
            "event",
            "name",
            "gate",
            "prefix",
            "created_by",
            "created_at",
            "last_seen_at",
            "revoked_at",
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Device | None = None) -> list[str]:
        if obj is None:
            return []
        # A device's event never changes: revoke it and add another.
        return ["organization", "event", "prefix", "created_by", "created_at", "last_seen_at", "revoked_at"]

    def save_model(self, request: HttpRequest, obj: Device, form: Any, change: bool) -> None:
        org_ids = self._org_ids(request, self.change_roles)
        organization_id = obj.event.organization_id
        if org_ids is not None and organization_id not in org_ids:
            raise PermissionDenied("You can only manage your own organization's devices.")
        if change:
            obj.save(update_fields=["name", "gate"])
            return
        try:
            device, token = device_create(event=obj.event, name=obj.name, gate=obj.gate, created_by=request.user)
        except DomainError as exc:
            # Refused by the service (a cancelled event): nothing was saved.
            raise PermissionDenied(exc.message) from exc
        obj.pk, obj.organization_id = device.pk, device.organization_id
        obj.prefix, obj.secret_hash, obj.created_at = device.prefix, device.secret_hash, device.created_at
        self.message_user(
            request,
            f"Copy this device token now; it is stored hashed and will not be shown again: {token}",
            level=messages.WARNING,
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoke instead: scans reference the device

    @admin.action(description="Revoke selected devices")
    def revoke(self, request: HttpRequest, queryset: QuerySet[Device]) -> None:
        done = 0
        for device in queryset:
            if self.has_change_permission(request, device):
                _, changed = device_revoke(device_id=device.pk, by=request.user, reason="admin action: revoke")
                done += int(changed)
        self.message_user(request, f"Revoked {done} device(s).", level=messages.SUCCESS)


class _TicketRefMixin:
    @admin.display(description="ticket")
    def ticket_ref(self, obj: Scan | AdmissionState) -> str:
        # Not str(ticket): that shows the ticket's page code, a credential that
        # gate staff (the scanner role) are not given elsewhere in the admin.
        ticket = obj.ticket
        return f"#{ticket.pk} ({ticket.holder_name})" if ticket is not None else "-"


@admin.register(Scan)
class ScanAdmin(_TicketRefMixin, ReadOnlyTenantAdmin):
    view_roles = SCAN_READERS
    list_display = ["server_time", "event", "device", "direction", "result", "ticket_ref", "device_time", "nonce"]
    readonly_fields = ["ticket_ref"]
    fields = [
        "server_time",
        "event",
        "device",
        "ticket_ref",
        "direction",
        "result",
        "reason",
        "nonce",
        "code_hash",
        "device_time",
        "device_sequence",
    ]
    list_filter = ["result", "direction", EVENT_FILTER, ("device", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["nonce", "ticket__code", "device__name", "device__gate"]
    date_hierarchy = "server_time"
    list_select_related = ["event", "device", "ticket"]


@admin.register(AdmissionState)
class AdmissionStateAdmin(_TicketRefMixin, ReadOnlyTenantAdmin):
    view_roles = SCAN_READERS
    list_display = ["ticket_ref", "event", "inside", "entries", "last_entry_on", "updated_at"]
    readonly_fields = ["ticket_ref"]
    fields = ["ticket_ref", "event", "inside", "entries", "last_entry_on", "last_entry", "updated_at"]
    list_filter = ["inside", EVENT_FILTER]
    search_fields = ["ticket__code", "ticket__holder_name"]
    list_select_related = ["ticket", "event"]


@admin.register(TicketTypeAdmission)
class TicketTypeAdmissionAdmin(TenantAdmin):
    """The policy of each ticket type (stored on the ticket type itself)."""

    list_display = ["name", "event", "admission_policy", "max_entries"]
    list_filter = ["admission_policy", EVENT_FILTER]
    search_fields = ["name", "event__name"]
    list_select_related = ["event"]
    fields = ["event", "name", "admission_policy", "max_entries"]
    readonly_fields = ["event", "name"]

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False  # ticket types are added with their event

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        org_ids = self._org_ids(request, self.change_roles)
        if org_ids is not None and obj.organization_id not in org_ids:
            raise PermissionDenied("You can only change your own organization's data.")
        # Only the policy: the counters (sold, held) belong to the sales path.
        obj.save(update_fields=["admission_policy", "max_entries"])
