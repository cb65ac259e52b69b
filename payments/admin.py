"""Staff admin for payments: read-only, scoped to the staff's organizations.

Payments change only through provider webhooks and the services; refunds are
started by the workflows layer (which also updates the order), so nothing here
is editable. Owners, managers and finance staff may look.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from payments.models import Dispute, Payment, PaymentSession, Refund, WebhookEvent
from ticketing.admin.tenant import ReadOnlyTenantAdmin

PAYMENT_VIEW_ROLES = frozenset({"owner", "manager", "finance"})


class PaymentsReadOnlyAdmin(ReadOnlyTenantAdmin):
    view_roles = PAYMENT_VIEW_ROLES
    change_roles = frozenset()


@admin.register(PaymentSession)
class PaymentSessionAdmin(PaymentsReadOnlyAdmin):
    list_display = ["reference", "order", "provider", "status", "amount_cents", "currency", "expires_at", "created_at"]
    list_filter = ["provider", "status"]
    search_fields = ["reference", "provider_session_id", "order__code", "idempotency_key"]
    list_select_related = ["order"]
    date_hierarchy = "created_at"


class RefundInline(admin.TabularInline):
    model = Refund
    extra = 0
    can_delete = False
    fields = ("amount_cents", "currency", "status", "provider_refund_id", "reason", "created_at", "completed_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Payment)
class PaymentAdmin(PaymentsReadOnlyAdmin):
    list_display = [
        "id",
        "order",
        "provider",
        "provider_payment_id",
        "status",
        "amount_cents",
        "captured_cents",
        "refunded_cents",
        "currency",
        "created_at",
    ]
    list_filter = ["provider", "status", "currency"]
    search_fields = ["provider_payment_id", "order__code", "order__buyer_email", "session__reference"]
    list_select_related = ["order"]
    date_hierarchy = "created_at"
    inlines = [RefundInline]


@admin.register(Refund)
class RefundAdmin(PaymentsReadOnlyAdmin):
    list_display = ["id", "payment", "amount_cents", "currency", "status", "provider_refund_id", "created_at"]
    list_filter = ["status", "provider"]
    search_fields = ["provider_refund_id", "idempotency_key", "payment__order__code"]
    list_select_related = ["payment"]


@admin.register(Dispute)
class DisputeAdmin(PaymentsReadOnlyAdmin):
    list_display = [
        "id",
        "payment",
        "provider_dispute_id",
        "status",
        "amount_cents",
        "fee_cents",
        "currency",
        "opened_at",
    ]
    list_filter = ["status", "provider"]
    search_fields = ["provider_dispute_id", "payment__provider_payment_id", "payment__order__code"]
    list_select_related = ["payment"]


@admin.register(WebhookEvent)
class WebhookEventAdmin(PaymentsReadOnlyAdmin):
    list_display = [
        "provider_event_id",
        "provider",
        "event_type",
        "outcome",
        "delivery_count",
        "received_at",
        "processed_at",
    ]
    list_filter = ["provider", "outcome", "event_type"]
    search_fields = ["provider_event_id", "payment__provider_payment_id", "session__reference"]
    date_hierarchy = "received_at"
