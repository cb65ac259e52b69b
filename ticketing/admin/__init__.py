"""Staff admin for the ticketing domain, scoped to the staff's organizations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from ticketing.admin.tenant import ReadOnlyTenantAdmin, TenantAdmin
from ticketing.exceptions import DomainError
from ticketing.models import (
    AuditLogEntry,
    CapacityHold,
    Event,
    Membership,
    Order,
    OrderLine,
    Organization,
    Ticket,
    TicketType,
)
from ticketing.services.events import event_cancel, event_close_sales, event_open_sales


@admin.register(Organization)
class OrganizationAdmin(TenantAdmin):
    change_roles = frozenset({"owner"})
    list_display = ["name", "slug", "default_currency", "timezone"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        # New tenants are created by the platform, not by another tenant's staff.
        return request.user.is_superuser


@admin.register(Membership)
class MembershipAdmin(TenantAdmin):
    change_roles = frozenset({"owner"})
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__username", "user__email", "organization__name"]
    autocomplete_fields = ["organization"]


class TicketTypeInline(admin.TabularInline):
    model = TicketType
    extra = 0
    fields = [
        "name",
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
        "is_active",
    ]
    readonly_fields = ["sold", "held"]


def _run_on_each(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Any], service: Callable[..., Any], verb: str
) -> None:
    done = 0
    for obj in queryset:
        if not modeladmin.has_change_permission(request, obj):
            continue
        try:
            service(event_id=obj.pk, by=request.user, reason=f"admin action: {verb}")
            done += 1
        except DomainError as exc:
            modeladmin.message_user(request, f"{obj}: {exc.message}", level=messages.ERROR)
    if done:
        modeladmin.message_user(request, f"{verb.capitalize()}: {done} event(s).", level=messages.SUCCESS)


@admin.register(Event)
class EventAdmin(TenantAdmin):
    list_display = ["name", "organization", "starts_at", "venue_name", "status"]
    list_filter = ["status", "organization"]
    search_fields = ["name", "slug", "venue_name"]
    date_hierarchy = "starts_at"
    readonly_fields = ["status", "created_at", "updated_at"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [TicketTypeInline]
    actions = ["open_sales", "close_sales", "cancel_events"]

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        # Ticket types inherit the event's tenant and currency.
        instances = formset.save(commit=False)
        for obj in instances:
            if isinstance(obj, TicketType):
                obj.organization_id = form.instance.organization_id
                obj.currency = obj.currency or form.instance.currency
            obj.save()
        for obj in formset.deleted_objects:
            obj.delete()
        formset.save_m2m()

    @admin.action(description="Open sales")
    def open_sales(self, request: HttpRequest, queryset: QuerySet[Event]) -> None:
        _run_on_each(self, request, queryset, event_open_sales, "opened sales")

    @admin.action(description="Close sales")
    def close_sales(self, request: HttpRequest, queryset: QuerySet[Event]) -> None:
        _run_on_each(self, request, queryset, event_close_sales, "closed sales")

    @admin.action(description="Cancel event")
    def cancel_events(self, request: HttpRequest, queryset: QuerySet[Event]) -> None:
        _run_on_each(self, request, queryset, event_cancel, "cancelled")


@admin.register(TicketType)
class TicketTypeAdmin(TenantAdmin):
    list_display = ["name", "event", "kind", "price_cents", "capacity", "sold", "held", "is_active"]
    list_filter = ["kind", "is_active", "event__organization"]
    search_fields = ["name", "event__name"]
    readonly_fields = ["sold", "held"]


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    extra = 0
    can_delete = False
    readonly_fields = ["ticket_type", "quantity", "unit_price_cents", "seat"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class TicketInline(admin.TabularInline):
    model = Ticket
    extra = 0
    can_delete = False
    fields = ("code", "ticket_type", "seat", "holder_name", "status", "generation", "issued_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(ReadOnlyTenantAdmin):
    view_roles = frozenset({"owner", "manager", "finance", "box_office"})
    list_display = ["code", "event", "buyer_email", "status", "total_cents", "currency", "created_at"]
    list_filter = ["status", "event"]
    search_fields = ["code", "buyer_email", "buyer_name"]
    date_hierarchy = "created_at"
    inlines = [OrderLineInline, TicketInline]


@admin.register(Ticket)
class TicketAdmin(ReadOnlyTenantAdmin):
    view_roles = frozenset({"owner", "manager", "finance", "box_office"})
    list_display = ["code", "event", "ticket_type", "seat", "holder_name", "status", "generation"]
    list_filter = ["status", "event"]
    search_fields = ["code", "holder_name", "holder_email", "order__code"]


@admin.register(CapacityHold)
class CapacityHoldAdmin(ReadOnlyTenantAdmin):
    list_display = ["id", "ticket_type", "quantity", "status", "expires_at", "reference"]
    list_filter = ["status"]
    search_fields = ["reference"]


@admin.register(AuditLogEntry)
class AuditLogEntryAdmin(ReadOnlyTenantAdmin):
    list_display = ["created_at", "actor_repr", "content_type", "object_id", "source_state", "target_state", "reason"]
    list_filter = ["content_type", "target_state"]
    search_fields = ["object_id", "reason", "actor_repr"]


# The API's tokens and webhooks register themselves.
from ticketing.admin import api as _api_admin  # noqa: E402, F401
